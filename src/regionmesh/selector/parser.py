"""Recursive-descent parser: selector text → expression tree (:mod:`.expr`).

Grammar (policy-model.md §1.2)::

    selector   := ws* ( or_expr )? ws*          empty / whitespace-only input == all()
    or_expr    := and_expr ( "||" and_expr )*
    and_expr   := unary ( "&&" unary )*
    unary      := "!"* primary                  bangs collapse: odd count = NOT
    primary    := "has(" KEY ")" | "all(" ")" | "global(" ")"
                | KEY ( "==" | "!=" | "contains" | "starts with" | "ends with" ) STRING
                | KEY ( "in" | "not in" ) set
                | "(" or_expr ")"
    set        := "{" ( STRING ( "," STRING )* ","? )? "}"

Every error is a :class:`regionmesh.errors.SelectorError` whose ``column`` is the start
of the offending token (or the end of the text). Lexing is left to :mod:`.tokens`; wrapping the
tree in a ``Selector`` (compiling, hashing) is left to :mod:`.selector`.
"""

from __future__ import annotations

from regionmesh.errors import SelectorError
from regionmesh.selector.expr import (
    AllNode,
    Contains,
    EndsWith,
    Eq,
    GlobalNode,
    Has,
    In,
    Ne,
    Node,
    NotIn,
    StartsWith,
    conjoin,
    disjoin,
    negate,
)
from regionmesh.selector.tokens import Kind, Token, tokenize

__all__ = ["MAX_NESTING", "parse_expression"]

#: Deepest parenthesis nesting accepted. Calico has no limit, but real selectors nest a few
#: levels; the cap keeps every recursive walk (parse, str, compile) far from Python's recursion
#: limit, so hostile input gets a SelectorError instead of a RecursionError.
MAX_NESTING = 100

_VALUE_OPS: dict[Kind, type[Eq | Ne | Contains | StartsWith | EndsWith]] = {
    Kind.EQ: Eq,
    Kind.NE: Ne,
    Kind.CONTAINS: Contains,
    Kind.STARTS_WITH: StartsWith,
    Kind.ENDS_WITH: EndsWith,
}


class _Parser:
    __slots__ = ("text", "tokens", "index", "depth")

    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def error(self, message: str, token: Token) -> SelectorError:
        return SelectorError(message, self.text, token.pos)

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not Kind.EOF:
            self.index += 1
        return token

    def parse(self) -> Node:
        if self.peek().kind is Kind.EOF:
            return AllNode()
        node = self.or_expr()
        rest = self.peek()
        if rest.kind is not Kind.EOF:
            remaining = " ".join(t.describe() for t in self.tokens[self.index : -1])
            raise self.error(f"unexpected content at end of selector [{remaining}]", rest)
        return node

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while self.peek().kind is Kind.OR:
            self.take()
            operands.append(self.and_expr())
        return disjoin(operands)

    def and_expr(self) -> Node:
        operands = [self.unary()]
        while self.peek().kind is Kind.AND:
            self.take()
            operands.append(self.unary())
        return conjoin(operands)

    def unary(self) -> Node:
        negated = False
        while self.peek().kind is Kind.NOT:
            self.take()
            negated = not negated
        node = self.primary()
        return negate(node) if negated else node

    def primary(self) -> Node:
        token = self.take()
        kind = token.kind
        if kind is Kind.HAS:
            return Has(token.value)
        if kind is Kind.ALL:
            return AllNode()
        if kind is Kind.GLOBAL:
            return GlobalNode()
        if kind is Kind.LABEL:
            return self.comparison(token.value)
        if kind is Kind.LPAREN:
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise self.error(f"parentheses nested deeper than {MAX_NESTING}", token)
            node = self.or_expr()
            self.depth -= 1
            close = self.take()
            if close.kind is not Kind.RPAREN:
                raise self.error(f"expected ), found {close.describe()}", close)
            return node
        if kind is Kind.EOF:
            raise self.error("unexpected end of string looking for op", token)
        raise self.error(f"unexpected token: {token.describe()}", token)

    def comparison(self, key: str) -> Node:
        op = self.take()
        node_type = _VALUE_OPS.get(op.kind)
        if node_type is not None:
            literal = self.take()
            if literal.kind is not Kind.STRING:
                raise self.error(f"expected string, found {literal.describe()}", literal)
            return node_type(key, literal.value)
        if op.kind is Kind.IN or op.kind is Kind.NOT_IN:
            values = self.set_literal()
            return In(key, values) if op.kind is Kind.IN else NotIn(key, values)
        if op.kind is Kind.EOF:
            raise self.error("unexpected end of string in middle of op", op)
        raise self.error(f"expected operator after label {key!r}, found {op.describe()}", op)

    def set_literal(self) -> tuple[str, ...]:
        brace = self.take()
        if brace.kind is not Kind.LBRACE:
            raise self.error(f"expected set literal, found {brace.describe()}", brace)
        values: list[str] = []
        while self.peek().kind is Kind.STRING:
            values.append(self.take().value)
            if self.peek().kind is not Kind.COMMA:
                break
            self.take()
        close = self.take()
        if close.kind is not Kind.RBRACE:
            raise self.error(f"expected }}, found {close.describe()}", close)
        return tuple(values)


def parse_expression(text: str) -> Node:
    """Parse selector ``text`` into an expression tree; raise SelectorError if invalid."""
    return _Parser(text, tokenize(text)).parse()
