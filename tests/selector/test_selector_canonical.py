"""Canonical form (policy-model.md §1.4), unique ids, equality, hashing and label keys."""

from __future__ import annotations

import copy
import pickle

import pytest

from regionmesh.selector import ALL, Selector, parse

# (input, canonical text, Calico UniqueID or "") – the UIDs are libcalico-go's own test values.
CANONICAL_ROWS: list[tuple[str, str, str]] = [
    ("", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
    (" all() ", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
    (" (all() )", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
    ("! (has( b)||! has(a ))", "!(has(b) || !has(a))", "s:Iss0uCleLYv1GSv_pNm7hAO58kE9jAx1NKyG3Q"),
    (
        '! (a == "b"&&! c != "d")',
        '!(a == "b" && !c != "d")',
        "s:lh3haoY1ikTRkd4UZu0nWSaIBknYLPJLX16d-w",
    ),
    ("global( )", "global()", ""),
    ('a == "\'"', 'a == "\'"', ""),
    ("a == '\"'", "a == '\"'", ""),
    ("a contains '\"'", "a contains '\"'", ""),
    ('a contains "\'"', 'a contains "\'"', ""),
    ("a startswith '\"'", "a starts with '\"'", ""),
    ('a endswith "\'"', 'a ends with "\'"', ""),
    ("a!='\"'", "a != '\"'", ""),
    ("a == 'x'", 'a == "x"', ""),
    ('a in {"d"}', 'a in {"d"}', ""),
    ('a in {"d", "a", "b"}', 'a in {"a", "b", "d"}', ""),
    ('a in {"z", "z", "x", "y", "x", "a"}', 'a in {"a", "x", "y", "z"}', ""),
    ("a in {'\"', \"'\", 'b'}", 'a in {\'"\', "\'", "b"}', ""),
    ('a in {"x",}', 'a in {"x"}', ""),
    ("a in {}", "a in {}", ""),
    ("a notin{'b','a'}", 'a not in {"a", "b"}', ""),
    ("a not\t \tin {}", "a not in {}", ""),
    # Byte order: upper case before lower case, ASCII before non-ASCII.
    ("a in {'b', 'B', '\u00e9', 'e'}", 'a in {"B", "b", "e", "\u00e9"}', ""),
    ("has( a )", "has(a)", ""),
    ("!!has(a)", "has(a)", ""),
    ("!!!has(a)", "!has(a)", ""),
    ("!(!has(a))", "has(a)", ""),
    ("!(a == 'v')", '!a == "v"', ""),
    ("!(a in {'v'})", '!a in {"v"}', ""),
    ("a == 'b' && c == 'd'", '(a == "b" && c == "d")', ""),
    ("a == 'b' || c == 'd'", '(a == "b" || c == "d")', ""),
    ("has(a) && has(b) && has(c)", "(has(a) && has(b) && has(c))", ""),
    ("(has(a) && has(b)) && has(c)", "((has(a) && has(b)) && has(c))", ""),
    ("has(a) || has(b) && has(c)", "(has(a) || (has(b) && has(c)))", ""),
    ("(has(a) || has(b)) && has(c)", "((has(a) || has(b)) && has(c))", ""),
    ("!a == 'x' && b == 'y'", '(!a == "x" && b == "y")', ""),
    ("!(a == 'x' && b == 'y')", '!(a == "x" && b == "y")', ""),
    ("((a == 'x'))", 'a == "x"', ""),
    ("all() && global()", "(all() && global())", ""),
    ('a == "x\\y"', 'a == "x\\y"', ""),
    ("a == ''", 'a == ""', ""),
    (
        "!(!(k == 'v' && has(t) || all()) && (a in {'c', 'b'}))",
        '!(!((k == "v" && has(t)) || all()) && a in {"b", "c"})',
        "",
    ),
]


@pytest.mark.parametrize(("text", "canonical", "uid"), CANONICAL_ROWS)
def test_canonical_rows(text: str, canonical: str, uid: str) -> None:
    sel = parse(text)
    assert str(sel) == canonical
    again = parse(canonical)
    assert str(again) == canonical
    assert again == sel and hash(again) == hash(sel)
    assert again.root == sel.root
    assert again.unique_id == sel.unique_id
    if uid:
        assert sel.unique_id == uid


def test_unique_id_shape() -> None:
    uid = parse("has(a)").unique_id
    assert uid.startswith("s:") and len(uid) == 40 and "=" not in uid
    assert parse("has(b)").unique_id != uid


def test_equality_is_by_canonical_text() -> None:
    assert parse("a == 'x'") == parse('a=="x"')
    assert parse("a == 'x'") != parse("a == 'y'")
    assert parse("a == 'x'") != 'a == "x"'
    assert len({parse("a in {'x','y'}"), parse("a in {'y', 'x', 'x'}")}) == 1
    assert parse("") is parse("") or parse("") == ALL
    assert ALL == parse("all()") and str(ALL) == "all()"


def test_repr_and_immutability() -> None:
    sel = parse("has(a)")
    assert repr(sel) == "Selector('has(a)')"
    with pytest.raises(AttributeError):
        sel.evaluate = lambda labels: True  # type: ignore[method-assign]
    with pytest.raises(AttributeError):
        del sel._text  # type: ignore[attr-defined]


def test_pickle_and_copy() -> None:
    sel = parse("has(a) && b in {'x', 'y'}")
    clone = pickle.loads(pickle.dumps(sel))
    assert clone == sel and clone.evaluate({"a": "", "b": "y"})
    assert copy.copy(sel) is sel and copy.deepcopy(sel) is sel


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("", set()),
        ("all() || global()", set()),
        ("has(a)", {"a"}),
        (
            "a == 'x' && b != 'x' || !c contains 'x' || d starts with 'x' && e ends with 'x'",
            {"a", "b", "c", "d", "e"},
        ),
        ("f in {} && g not in {'x'} && has(f)", {"f", "g"}),
        ("has(sg.projectcalico.org/openstack-1)", {"sg.projectcalico.org/openstack-1"}),
    ],
)
def test_label_keys(text: str, keys: set[str]) -> None:
    assert parse(text).label_keys() == frozenset(keys)


def test_selector_needs_a_node() -> None:
    with pytest.raises(TypeError):
        Selector("has(a)")  # type: ignore[arg-type]
