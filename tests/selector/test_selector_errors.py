"""Invalid selectors: each row must raise SelectorError at the given column with the given reason."""

from __future__ import annotations

import pytest

from regionmesh.selector import SelectorError, parse

# (text, expected column, fragment of the reason)
BAD_ROWS: list[tuple[str, int, str]] = [
    # From libcalico-go's badSelectors.
    ("b == b", 5, "expected string"),
    ("b contains b", 11, "expected string"),
    ("b starts with b", 14, "expected string"),
    ("b ends with b", 12, "expected string"),
    ("'b1' == b", 0, "unexpected token"),
    ("b", 1, "unexpected end of string in middle of op"),
    ("a b", 2, "expected operator after label 'a'"),
    ("!", 1, "unexpected end of string looking for op"),
    ('foo == "bar" &', 13, "expected &&"),
    ('foo == "bar" |', 13, "expected ||"),
    ("foo != ||", 7, "expected string"),
    ('foo in {"", ||', 12, "expected }"),
    ('foo in ""', 7, "expected set literal"),
    ('"FOO', 0, "unterminated string"),
    ("\"FOO'", 0, "unterminated string"),
    ("'FOO", 0, "unterminated string"),
    ('a == "x', 5, "unterminated string"),
    ("(", 1, "unexpected end of string looking for op"),
    ('(a == "foo"', 11, "expected )"),
    (")", 0, "unexpected token"),
    ("()", 1, "unexpected token"),
    ("%", 0, "expected identifier"),
    ('a == "b" && %', 12, "expected identifier"),
    ('a == "b" || %', 12, "expected identifier"),
    ("a ", 2, "unexpected end of string in middle of op"),
    ("has(foo) &&", 11, "unexpected end of string looking for op"),
    # Lexical rules of policy-model.md §1.1.
    ("has (a)", 4, "expected operator after label 'has'"),
    ("has()", 4, "expected identifier"),
    ("has( )", 5, "expected identifier"),
    ("has(a", 5, "no closing ')' after has("),
    ("has(a b)", 6, "no closing ')' after has("),
    ("all(x)", 4, "no closing ')' after all("),
    ("global(", 7, "no closing ')' after global("),
    ("all ()", 4, "expected operator after label 'all'"),
    ('a !== "b"', 4, "expected =="),
    ('a ! = "b"', 4, "expected =="),
    ('a = "b"', 2, "expected =="),
    ("a == 'b'\n", 8, "expected identifier"),
    ("\na == 'b'", 0, "expected identifier"),
    ("a == 'b' \r", 9, "expected identifier"),
    ("a ==\n'b'", 4, "expected identifier"),
    ("has(\na)", 4, "expected identifier"),
    ('a not\nin {"x"}', 2, "expected operator after label 'a'"),
    ("a\u00e9 == 'b'", 1, "expected operator after label 'a'"),
    ("\u00e9 == 'b'", 0, "expected identifier"),
    ("a == 'b' @", 9, "expected identifier"),
    ('a containsx "y"', 2, "expected operator after label"),
    ('a innot {"x"}', 2, "expected operator after label"),
    ('a ends withs "x"', 2, "expected operator after label"),
    ('a starts "x"', 2, "expected operator after label"),
    ('a not {"x"}', 2, "expected operator after label"),
    ('a == "x" b', 9, "unexpected content at end of selector [label 'b']"),
    ('a == "x" b == "y"', 9, "unexpected content at end of selector"),
    ('a == "x")', 8, "unexpected content at end of selector"),
    ('a == "x" in {}', 9, "unexpected content at end of selector"),
    ('"b" == a', 0, "unexpected token"),
    ("a == 1", 5, "expected string"),
    ('a in "x"', 5, "expected set literal"),
    ("a in {,}", 6, "expected }"),
    ('a in {"x",,"y"}', 10, "expected }"),
    ('a in {"x" "y"}', 10, "expected }"),
    ("a in {x}", 6, "expected }"),
    ('a in {"x"', 9, "expected }"),
    ("{,}", 0, "unexpected token"),
    ('a == "x" &&', 11, "unexpected end of string looking for op"),
    ('&& a == "x"', 0, "unexpected token"),
    ('a == "x" || || b == "y"', 12, "unexpected token"),
    ('a (== "x")', 2, "expected operator after label 'a'"),
    ("!!", 2, "unexpected end of string looking for op"),
    ('!&& a == "x"', 1, "unexpected token"),
    ("((a == 'x')", 11, "expected )"),
    ("x" * 513 + ' == "a"', 0, "label too long"),
    ("has(" + "x" * 513 + ")", 4, "label too long"),
]


@pytest.mark.parametrize(("text", "column", "reason"), BAD_ROWS)
def test_bad_selectors(text: str, column: int, reason: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse(text)
    err = info.value
    assert isinstance(err, SelectorError) and isinstance(err, ValueError)
    assert err.text == text
    assert err.column == column, err
    assert reason in err.reason, err
    assert 0 <= err.column <= len(text)


def test_nesting_limit() -> None:
    deep = "(" * 100 + "has(a)" + ")" * 100
    assert parse(deep) == parse("has(a)")
    hostile = "(" * 5000 + "has(a)" + ")" * 5000
    with pytest.raises(SelectorError) as info:
        parse(hostile)
    assert info.value.column == 100
    many_bangs = "!" * 10001 + "has(a)"
    assert parse(many_bangs) == parse("!has(a)")


def test_longest_key_is_accepted() -> None:
    key = "k" * 512
    assert parse(f"{key} == 'a'").evaluate({key: "a"})
    assert parse(f"has({key})").label_keys() == {key}


def test_parse_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        parse(None)  # type: ignore[arg-type]
