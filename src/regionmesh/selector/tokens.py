"""Tokenizer for Calico label selectors: text → list of :class:`Token` with 0-based positions.

It follows libcalico-go's ``selector/tokenizer`` (v3.30+): only space and tab are whitespace;
label keys are maximal runs of ``[A-Za-z0-9_./-]`` of at most 512 bytes; string literals are
``"…"`` or ``'…'`` with no escapes; ``has(``, ``all(``, ``global(`` are recognised only when the
word is immediately followed by ``(``; the operator words ``contains``, ``in``, ``not in``,
``starts with``, ``ends with`` are recognised only directly after a label key and must end at a
word boundary (the two-word ones accept any spaces/tabs between the words, including none).

Every lexical error is raised as :class:`regionmesh.errors.SelectorError` carrying the
column (character offset) of the problem. Grammar (what may follow what) is left to
:mod:`regionmesh.selector.parser`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from regionmesh.errors import SelectorError

__all__ = ["MAX_KEY_LENGTH", "Kind", "Token", "is_valid_key", "tokenize"]

#: Longest label key the selector grammar accepts (bytes; keys are ASCII so also characters).
MAX_KEY_LENGTH = 512

_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-")
# ASCII-only character class; ``re.ASCII`` is irrelevant because the class has no escapes.
_KEY_RE = re.compile(r"[A-Za-z0-9_./-]+")
_WS_RE = re.compile(r"[ \t]*")


class Kind(enum.Enum):
    """Token kinds, named after libcalico-go's ``TokXxx`` constants."""

    LABEL = "label"
    STRING = "string literal"
    LBRACE = "'{'"
    RBRACE = "'}'"
    COMMA = "','"
    EQ = "'=='"
    NE = "'!='"
    IN = "'in'"
    NOT = "'!'"
    NOT_IN = "'not in'"
    CONTAINS = "'contains'"
    STARTS_WITH = "'starts with'"
    ENDS_WITH = "'ends with'"
    ALL = "'all()'"
    HAS = "'has()'"
    LPAREN = "'('"
    RPAREN = "')'"
    AND = "'&&'"
    OR = "'||'"
    GLOBAL = "'global()'"
    EOF = "end of selector"


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its value (key or literal text, else ``""``) and its start column."""

    kind: Kind
    value: str
    pos: int

    def describe(self) -> str:
        """Human-readable form used in error messages, e.g. ``label "a"``."""
        if self.kind is Kind.LABEL:
            return f"label {self.value!r}"
        if self.kind is Kind.STRING:
            return f"string {self.value!r}"
        if self.kind is Kind.HAS:
            return f"'has({self.value})'"
        return str(self.kind.value)


_PUNCTUATION = {
    "(": Kind.LPAREN,
    ")": Kind.RPAREN,
    "{": Kind.LBRACE,
    "}": Kind.RBRACE,
    ",": Kind.COMMA,
}

# Operator words tried, in this order, directly after a label (libcalico-go's order).
_OPERATOR_WORDS: tuple[tuple[tuple[str, ...], Kind], ...] = (
    (("contains",), Kind.CONTAINS),
    (("starts", "with"), Kind.STARTS_WITH),
    (("ends", "with"), Kind.ENDS_WITH),
    (("not", "in"), Kind.NOT_IN),
    (("in",), Kind.IN),
)


def is_valid_key(key: str) -> bool:
    """True if ``key`` is a label key the selector grammar accepts (non-empty, ≤512, key chars)."""
    return 0 < len(key) <= MAX_KEY_LENGTH and _KEY_RE.fullmatch(key) is not None


def _skip_ws(text: str, pos: int) -> int:
    match = _WS_RE.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _at_word_boundary(text: str, pos: int) -> bool:
    return pos >= len(text) or text[pos] not in _KEY_CHARS


def _match_operator(text: str, pos: int) -> tuple[Kind, int] | None:
    """Return (kind, end) of the operator word at ``pos``, or None."""
    for words, kind in _OPERATOR_WORDS:
        cur = pos
        for i, word in enumerate(words):
            if i:
                cur = _skip_ws(text, cur)
            if not text.startswith(word, cur):
                break
            cur += len(word)
        else:
            if _at_word_boundary(text, cur):
                return kind, cur
    return None


def _cut_key(text: str, pos: int) -> tuple[str, int]:
    """Read a label key at ``pos``; raise for an empty or over-long key."""
    match = _KEY_RE.match(text, pos)
    if match is None:
        raise SelectorError("expected identifier", text, pos)
    key = match.group()
    if len(key) > MAX_KEY_LENGTH:
        raise SelectorError(f"label too long: {len(key)} > {MAX_KEY_LENGTH} characters", text, pos)
    return key, match.end()


def _cut_function(text: str, pos: int, name: str) -> tuple[str, int]:
    """Lex ``name(`` … ``)`` starting at ``pos`` (which points at ``name``).

    For ``has`` the argument key is returned; ``all``/``global`` take no argument.
    """
    cur = _skip_ws(text, pos + len(name) + 1)
    key = ""
    if name == "has":
        key, cur = _cut_key(text, cur)
        cur = _skip_ws(text, cur)
    if not text.startswith(")", cur):
        raise SelectorError(f"no closing ')' after {name}(", text, cur)
    return key, cur + 1


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, always ending with one ``Kind.EOF`` token.

    Raises :class:`SelectorError` (with the column) for any lexical error.
    """
    tokens: list[Token] = []
    append = tokens.append
    end = len(text)
    pos = 0
    last_was_label = False
    while True:
        pos = _skip_ws(text, pos)
        if pos >= end:
            append(Token(Kind.EOF, "", end))
            return tokens
        char = text[pos]
        start = pos
        kind: Kind
        value = ""
        if char in _PUNCTUATION:
            kind = _PUNCTUATION[char]
            pos += 1
        elif char == '"' or char == "'":
            close = text.find(char, pos + 1)
            if close < 0:
                raise SelectorError("unterminated string", text, pos)
            kind, value, pos = Kind.STRING, text[pos + 1 : close], close + 1
        elif char == "=":
            if not text.startswith("==", pos):
                raise SelectorError("expected ==", text, pos)
            kind, pos = Kind.EQ, pos + 2
        elif char == "!":
            if text.startswith("!=", pos):
                kind, pos = Kind.NE, pos + 2
            else:
                kind, pos = Kind.NOT, pos + 1
        elif char == "&":
            if not text.startswith("&&", pos):
                raise SelectorError("expected &&", text, pos)
            kind, pos = Kind.AND, pos + 2
        elif char == "|":
            if not text.startswith("||", pos):
                raise SelectorError("expected ||", text, pos)
            kind, pos = Kind.OR, pos + 2
        elif last_was_label:
            found = _match_operator(text, pos)
            if found is None:
                raise SelectorError(
                    f"expected operator after label {tokens[-1].value!r}", text, pos
                )
            kind, pos = found
        elif text.startswith("has(", pos):
            kind = Kind.HAS
            value, pos = _cut_function(text, pos, "has")
        elif text.startswith("all(", pos):
            kind = Kind.ALL
            _, pos = _cut_function(text, pos, "all")
        elif text.startswith("global(", pos):
            kind = Kind.GLOBAL
            _, pos = _cut_function(text, pos, "global")
        else:
            kind = Kind.LABEL
            value, pos = _cut_key(text, pos)
        append(Token(kind, value, start))
        last_was_label = kind is Kind.LABEL
