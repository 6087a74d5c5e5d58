"""The tree rewrites used by the policy package (policy-model.md §2.3)."""

from __future__ import annotations

import pytest

from regionmesh.selector import (
    ALL,
    SelectorError,
    and_,
    parse,
    prefix_keys,
    replace_all,
    replace_global,
)

NS = "projectcalico.org/namespace"


def test_and_drops_all_and_keeps_groups() -> None:
    ns = parse(f"{NS} == 'openstack-region-r1'")
    assert and_() == ALL
    assert and_(ALL, parse("")) == ALL
    assert and_(ALL, ns) is ns
    sel = and_(parse("has(a) && has(b)"), ALL, ns)
    assert str(sel) == f'((has(a) && has(b)) && {NS} == "openstack-region-r1")'
    assert parse(str(sel)) == sel
    assert sel.evaluate({"a": "", "b": "", NS: "openstack-region-r1"})
    assert not sel.evaluate({"a": "", "b": "", NS: "openstack-region-r2"})
    assert str(and_(parse("has(a)"), parse("has(b)"), parse("has(c)"))) == (
        "(has(a) && has(b) && has(c))"
    )


def test_and_of_or_keeps_precedence() -> None:
    sel = and_(parse("has(a) || has(b)"), parse("has(c)"))
    assert str(sel) == "((has(a) || has(b)) && has(c))"
    assert sel.evaluate({"b": "", "c": ""})
    assert not sel.evaluate({"b": ""})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("k == 'v'", 'pcns.k == "v"'),
        ("k != 'v'", 'pcns.k != "v"'),
        ("k contains 'v'", 'pcns.k contains "v"'),
        ("k starts with 'v'", 'pcns.k starts with "v"'),
        ("k ends with 'v'", 'pcns.k ends with "v"'),
        ("k == 'v' && x == 'y'", '(pcns.k == "v" && pcns.x == "y")'),
        ("k == 'v' || has(x)", '(pcns.k == "v" || has(pcns.x))'),
        ("!(k == 'v')", '!pcns.k == "v"'),
        ("k in {'v'}", 'pcns.k in {"v"}'),
        ("k not in {'v'}", 'pcns.k not in {"v"}'),
        ("all()", "all()"),
        ("global()", "global()"),
        (
            "!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))",
            '!(!((pcns.k == "v" && has(pcns.t)) || all()) && pcns.a in {"b", "c"})',
        ),
    ],
)
def test_prefix_keys(text: str, expected: str) -> None:
    # Rows follow libcalico-go's PrefixVisitor tests.
    sel = prefix_keys(parse(text), "pcns.")
    assert str(sel) == expected
    assert parse(expected) == sel
    assert sel.label_keys() == {"pcns." + k for k in parse(text).label_keys()}


def test_prefix_keys_validation() -> None:
    sel = parse("has(a)")
    assert prefix_keys(sel, "") is sel
    with pytest.raises(SelectorError):
        prefix_keys(sel, "bad prefix ")
    with pytest.raises(SelectorError):
        prefix_keys(parse("has(" + "k" * 510 + ")"), "pcns.")


def test_replace_all_and_global_for_namespace_selectors() -> None:
    has_ns = parse(f"has({NS})")
    no_ns = parse(f"!has({NS})")
    sel = replace_global(replace_all(parse("all()"), has_ns), no_ns)
    assert sel == has_ns
    assert str(replace_global(parse("global()"), no_ns)) == f"!has({NS})"
    # !global() → !!has(ns) → has(ns), exactly as Calico's textual replace + re-parse.
    assert replace_global(parse("!global()"), no_ns) == has_ns
    mixed = replace_global(replace_all(parse("all() || global() && has(x)"), has_ns), no_ns)
    assert str(mixed) == f"(has({NS}) || (!has({NS}) && has(x)))"
    assert parse(str(mixed)) == mixed
    # String literals that merely look like all() are left alone.
    assert replace_all(parse("a == 'all()'"), has_ns) == parse("a == 'all()'")


def test_replace_with_group_inside_group() -> None:
    repl = parse("has(p) && has(q)")
    sel = replace_all(parse("all() && has(z)"), repl)
    assert str(sel) == "((has(p) && has(q)) && has(z))"
    assert parse(str(sel)) == sel
    assert sel.evaluate({"p": "", "q": "", "z": ""})
    assert not sel.evaluate({"p": "", "z": ""})
