"""Table-driven match tests, in the style of libcalico-go's parser_test.go.

Each row: (selector, label maps that must match, label maps that must not match). Every row is
checked with the compiled evaluator, the naive evaluator, and after a canonical round trip.
"""

from __future__ import annotations

import pytest

from regionmesh.selector import SelectorError, parse

L = dict[str, str]

SG = "sg.projectcalico.org/openstack-85cc3048-abc3-43cc-89b3-377341426ac5"

MATCH_ROWS: list[tuple[str, list[L], list[L]]] = [
    ('a == "b"', [{"a": "b"}, {"a": "b", "c": "d"}], [{}, {"a": "c"}, {"c": "d"}]),
    (
        'a == "b" && c == "d"',
        [{"a": "b", "c": "d"}],
        [{}, {"a": "b", "c": "e"}, {"a": "c", "c": "d"}, {"c": "d"}, {"a": "b"}],
    ),
    (
        'a == "b" || c == "d"',
        [{"a": "b", "c": "d"}, {"a": "b"}, {"c": "d"}],
        [{}, {"a": "e", "c": "e"}, {"c": "e"}, {"a": "e"}],
    ),
    ("""a in {"'", '"', "c"}""", [{"a": "c"}, {"a": '"'}, {"a": "'"}], [{}, {"a": "e"}]),
    ("""a not in {"'", '"', "c"}""", [{}, {"a": "e"}], [{"a": "c"}, {"a": '"'}, {"a": "'"}]),
    ("a == 'a'", [{"a": "a"}], [{"a": "b"}, {}, {"a": "A"}, {"a": "a "}]),
    ('a != "b"', [{"a": "a"}, {}, {"b": "b"}], [{"a": "b"}]),
    ('a != "a"', [{}], [{"a": "a"}]),
    (
        'a contains "a"',
        [{"a": "a"}, {"a": "bab"}, {"a": "aaa", "b": "c"}],
        [{}, {"a": "b"}, {"b": "aaa"}],
    ),
    ('a contains ""', [{"a": ""}, {"a": "x"}], [{}, {"b": ""}]),
    (
        'a starts with "a"',
        [{"a": "a"}, {"a": "abb"}, {"a": "aaa", "b": "c"}],
        [{}, {"a": "b"}, {"a": "baa"}, {"b": "aaa"}],
    ),
    ('a startswith "ab"', [{"a": "abc"}], [{"a": "ba"}, {}]),
    (
        'a ends with "a"',
        [{"a": "a"}, {"a": "bba"}, {"a": "aaa", "b": "c"}],
        [{}, {"a": "b"}, {"a": "aab"}, {"b": "aaa"}],
    ),
    ("a endswith\t'z'", [{"a": "xyz"}], [{"a": "zy"}, {}]),
    ('a in {"a"}', [{"a": "a"}], [{"a": "b"}, {}]),
    ('!a in {"a"}', [{"a": "b"}, {}], [{"a": "a"}]),
    ('a in {"a", "b"}', [{"a": "a"}, {"a": "b"}], [{"a": "c"}, {}]),
    ("a in {}", [], [{}, {"a": ""}, {"a": "x"}]),
    ("a not in {}", [{}, {"a": ""}, {"a": "x"}], []),
    ('a not in {"d", "e"}', [{"a": "a"}, {}], [{"a": "d"}, {"a": "e"}]),
    ('a notin {"d"}', [{"a": "a"}, {}], [{"a": "d"}]),
    ('a not  \t in {"d"}', [{"a": "a"}], [{"a": "d"}]),
    ('a in {"x",}', [{"a": "x"}], [{"a": ""}]),
    ("has(a)", [{"a": "b"}, {"a": ""}], [{}, {"b": "a"}]),
    ("!has(a)", [{"b": "b"}, {}], [{"a": "b"}, {"a": ""}]),
    ("has( a )", [{"a": "b"}], [{}]),
    ("has(\ta\t)", [{"a": "b"}], [{}]),
    ("", [{}, {"a": "b"}], []),
    (" ", [{}], []),
    ("\t \t", [{"a": "b"}], []),
    ("all()", [{}, {"a": "b"}], []),
    (" all( ) ", [{}, {"a": "b"}], []),
    ("global()", [{}, {"a": "b"}], []),
    (" global(\t)", [{}], []),
    ("!all()", [], [{}, {"a": "b"}]),
    ("!!has(b)", [{"b": "x"}], [{"a": "b"}]),
    ("! has(a)", [{}], [{"a": "b"}]),
    ("!!! has(a)", [{}], [{"a": "b"}]),
    ("!! ! has(a)", [{}], [{"a": "b"}]),
    ("! !!has(a)", [{}], [{"a": "b"}]),
    ("!(!has(a))", [{"a": "x"}], [{}]),
    # Boolean expressions.
    ("a == 'a1' && b == 'b1'", [{"a": "a1", "b": "b1"}], [{"a": "a1"}]),
    ("a == 'a1' && b != 'b1'", [{"a": "a1"}], [{"a": "a1", "b": "b1"}]),
    ("a != 'a1' && !b == 'b1'", [{}], [{"a": "a1", "b": "b1"}]),
    ("!a == 'a1' && b == 'b1'", [{"b": "b1"}, {"a": "x", "b": "b1"}], [{"a": "a1", "b": "b1"}]),
    ('!a == "x" && b == "y"', [{"b": "y"}], [{"a": "x", "b": "y"}, {}]),
    ("!a != 'x'", [{"a": "x"}], [{}, {"a": "y"}]),
    ("has(a) && !has(b)", [{"a": "a"}], [{"a": "a", "b": ""}, {}]),
    ("!(!has(a) || has(b))", [{"a": "a"}], [{"b": "b"}, {"a": "a", "b": "b"}]),
    ("a == 'a1' || b != 'b1'", [{"a": "a1", "b": "b1"}, {}], [{"b": "b1"}]),
    ("! a == 'a1' || ! b == 'b1'", [{}], [{"a": "a1", "b": "b1"}]),
    # Precedence: && binds tighter than ||.
    ("has(a) || has(b) && has(c)", [{"a": ""}, {"b": "", "c": ""}], [{"b": ""}, {"c": ""}]),
    ("(has(a) || has(b)) && has(c)", [{"a": "", "c": ""}, {"b": "", "c": ""}], [{"a": ""}]),
    ("((a == 'x'))", [{"a": "x"}], [{"a": "y"}]),
    # Keywords are ordinary label keys where no operator is expected.
    ('contains contains "x"', [{"contains": "axb"}], [{"contains": "y"}]),
    ('in in {"x"}', [{"in": "x"}], [{"in": "y"}]),
    ('not not in {"x"}', [{"not": "y"}, {}], [{"not": "x"}]),
    ('has == "x"', [{"has": "x"}], [{}]),
    ('all == "x"', [{"all": "x"}], [{}]),
    ('a contains"x"', [{"a": "yxy"}], [{"a": "y"}]),
    ('a in{"x"}', [{"a": "x"}], [{"a": "y"}]),
    ('a=="x"&&b!="y"', [{"a": "x"}], [{"a": "x", "b": "y"}]),
    # Keys with prefixes, dots, slashes, digits, dashes.
    (f"has({SG})", [{SG: "default"}], [{}, {SG[:-1]: "default"}]),
    (
        f"has({SG}) && projectcalico.org/namespace == 'openstack-region-r1'",
        [{SG: "", "projectcalico.org/namespace": "openstack-region-r1"}],
        [{SG: ""}, {"projectcalico.org/namespace": "openstack-region-r1"}],
    ),
    ('-a == "x"', [{"-a": "x"}], [{"a": "x"}]),
    ('9 == "x"', [{"9": "x"}], [{}]),
    ('a.b/c_d-e == "x"', [{"a.b/c_d-e": "x"}], [{"a.b/c_d-e": "X"}]),
    # Literals: no escapes, any characters, byte-wise and case-sensitive comparisons.
    (r'a == "x\"', [{"a": "x\\"}], [{"a": "x"}]),
    ('a == "&& ) ||"', [{"a": "&& ) ||"}], [{}]),
    ('a == "\u00e9\n"', [{"a": "\u00e9\n"}], [{"a": "\u00e9"}, {"a": "E\u0301\n"}]),
    ('a == "X"', [{"a": "X"}], [{"a": "x"}]),
    ("A == 'x'", [{"A": "x"}], [{"a": "x"}]),
]


@pytest.mark.parametrize(("text", "matches", "non_matches"), MATCH_ROWS)
def test_match_rows(text: str, matches: list[L], non_matches: list[L]) -> None:
    sel = parse(text)
    again = parse(str(sel))
    assert again == sel and str(again) == str(sel)
    for labels in matches:
        assert sel.evaluate(labels) is True, labels
        assert sel._evaluate_naive(labels) is True, labels
        assert again.evaluate(labels) is True, labels
    for labels in non_matches:
        assert sel.evaluate(labels) is False, labels
        assert sel._evaluate_naive(labels) is False, labels
        assert again.evaluate(labels) is False, labels


def test_evaluate_accepts_any_mapping() -> None:
    from collections import ChainMap
    from types import MappingProxyType

    sel = parse('has(a) && b == "x" && c != "y" && d in {"1", "2"}')
    assert sel.evaluate(ChainMap({"a": ""}, {"b": "x", "d": "2"}))
    assert sel.evaluate(MappingProxyType({"a": "", "b": "x", "d": "1"}))
    assert not sel.evaluate(MappingProxyType({"a": "", "b": "x", "c": "y", "d": "1"}))


def test_selector_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        parse("a ==")
    with pytest.raises(SelectorError):
        parse("a ==")
