"""Selector expression trees: immutable nodes, the naive evaluator and the canonical text.

Each node is a frozen dataclass with

* ``evaluate(labels)`` – a straightforward tree-walking evaluator (the reference semantics of
  policy-model.md §1.3; the fast closure compiler in :mod:`.compiler` is checked against it);
* ``__str__`` – Calico's canonical form (§1.4), which re-parses to an equal tree;
* ``keys()`` – the label keys the subtree mentions.

Invariants kept by construction so that ``parse(str(node)) == node`` always holds:
set values are sorted (code-point order = UTF-8 byte order) and de-duplicated; ``Not`` never
wraps another ``Not`` (use :func:`negate`); ``And``/``Or`` have at least two operands (use
:func:`conjoin`/:func:`disjoin`). Tokenising and parsing are left to :mod:`.tokens` and
:mod:`.parser`; the public wrapper is :class:`regionmesh.selector.selector.Selector`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

__all__ = [
    "AllNode",
    "And",
    "Contains",
    "EndsWith",
    "Eq",
    "GlobalNode",
    "Has",
    "In",
    "KeyNode",
    "Ne",
    "Node",
    "Not",
    "NotIn",
    "Or",
    "StartsWith",
    "conjoin",
    "disjoin",
    "negate",
    "quote",
    "transform",
]

Labels = Mapping[str, str]


def quote(value: str) -> str:
    """Quote a literal the way Calico does: ``"`` unless the value contains ``"``, then ``'``."""
    return f"'{value}'" if '"' in value else f'"{value}"'


class Node:
    """Base of all expression nodes."""

    __slots__ = ()

    def evaluate(self, labels: Labels) -> bool:
        """Tree-walking evaluation against a label map."""
        raise NotImplementedError

    def children(self) -> tuple[Node, ...]:
        """Direct sub-expressions (empty for leaves)."""
        return ()

    def keys(self) -> Iterator[str]:
        """Every label key mentioned in this subtree (may repeat)."""
        for child in self.children():
            yield from child.keys()


@dataclass(frozen=True, slots=True)
class AllNode(Node):
    """``all()``: matches everything."""

    def evaluate(self, labels: Labels) -> bool:
        return True

    def __str__(self) -> str:
        return "all()"


@dataclass(frozen=True, slots=True)
class GlobalNode(Node):
    """``global()``: true as a label test; its meaning comes from rewrites (§2.3)."""

    def evaluate(self, labels: Labels) -> bool:
        return True

    def __str__(self) -> str:
        return "global()"


@dataclass(frozen=True, slots=True)
class KeyNode(Node):
    """A leaf that tests one label key."""

    key: str

    def keys(self) -> Iterator[str]:
        yield self.key

    def with_key(self, key: str) -> KeyNode:
        """A copy of this node testing ``key`` instead."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Has(KeyNode):
    """``has(key)``: the label is present (any value, even empty)."""

    def evaluate(self, labels: Labels) -> bool:
        return self.key in labels

    def with_key(self, key: str) -> Has:
        return Has(key)

    def __str__(self) -> str:
        return f"has({self.key})"


@dataclass(frozen=True, slots=True)
class _ValueNode(KeyNode):
    """A ``key <op> "value"`` comparison."""

    value: str

    def with_key(self, key: str) -> KeyNode:
        return type(self)(key, self.value)


@dataclass(frozen=True, slots=True)
class Eq(_ValueNode):
    """``key == "v"``; false when the label is absent."""

    def evaluate(self, labels: Labels) -> bool:
        if self.key in labels:
            return labels[self.key] == self.value
        return False

    def __str__(self) -> str:
        return f"{self.key} == {quote(self.value)}"


@dataclass(frozen=True, slots=True)
class Ne(_ValueNode):
    """``key != "v"``; TRUE when the label is absent."""

    def evaluate(self, labels: Labels) -> bool:
        if self.key in labels:
            return labels[self.key] != self.value
        return True

    def __str__(self) -> str:
        return f"{self.key} != {quote(self.value)}"


@dataclass(frozen=True, slots=True)
class Contains(_ValueNode):
    """``key contains "v"``: substring test; false when absent."""

    def evaluate(self, labels: Labels) -> bool:
        if self.key in labels:
            return self.value in labels[self.key]
        return False

    def __str__(self) -> str:
        return f"{self.key} contains {quote(self.value)}"


@dataclass(frozen=True, slots=True)
class StartsWith(_ValueNode):
    """``key starts with "v"``: prefix test; false when absent."""

    def evaluate(self, labels: Labels) -> bool:
        if self.key in labels:
            return labels[self.key].startswith(self.value)
        return False

    def __str__(self) -> str:
        return f"{self.key} starts with {quote(self.value)}"


@dataclass(frozen=True, slots=True)
class EndsWith(_ValueNode):
    """``key ends with "v"``: suffix test; false when absent."""

    def evaluate(self, labels: Labels) -> bool:
        if self.key in labels:
            return labels[self.key].endswith(self.value)
        return False

    def __str__(self) -> str:
        return f"{self.key} ends with {quote(self.value)}"


def _set_text(values: tuple[str, ...]) -> str:
    return "{" + ", ".join(quote(v) for v in values) + "}"


@dataclass(frozen=True, slots=True)
class _SetNode(KeyNode):
    """A ``key in {…}`` style test; ``values`` is normalised to sorted, de-duplicated."""

    values: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        normal = tuple(sorted(set(self.values)))
        if normal != self.values:
            object.__setattr__(self, "values", normal)

    def with_key(self, key: str) -> KeyNode:
        return type(self)(key, self.values)


@dataclass(frozen=True, slots=True)
class In(_SetNode):
    """``key in {…}``; false when absent (and always false for ``{}``)."""

    def evaluate(self, labels: Labels) -> bool:
        if self.key in labels:
            return labels[self.key] in self.values
        return False

    def __str__(self) -> str:
        return f"{self.key} in {_set_text(self.values)}"


@dataclass(frozen=True, slots=True)
class NotIn(_SetNode):
    """``key not in {…}``; TRUE when absent (and always true for ``{}``)."""

    def evaluate(self, labels: Labels) -> bool:
        if self.key in labels:
            return labels[self.key] not in self.values
        return True

    def __str__(self) -> str:
        return f"{self.key} not in {_set_text(self.values)}"


@dataclass(frozen=True, slots=True)
class Not(Node):
    """``!operand``. Build with :func:`negate` so that ``!!x`` collapses to ``x``."""

    operand: Node

    def evaluate(self, labels: Labels) -> bool:
        return not self.operand.evaluate(labels)

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)

    def __str__(self) -> str:
        return f"!{self.operand}"


@dataclass(frozen=True, slots=True)
class And(Node):
    """``(a && b && …)`` with ≥2 operands; nested groups stay nested (as in Calico)."""

    operands: tuple[Node, ...]

    def evaluate(self, labels: Labels) -> bool:
        for operand in self.operands:
            if not operand.evaluate(labels):
                return False
        return True

    def children(self) -> tuple[Node, ...]:
        return self.operands

    def __str__(self) -> str:
        return "(" + " && ".join(str(op) for op in self.operands) + ")"


@dataclass(frozen=True, slots=True)
class Or(Node):
    """``(a || b || …)`` with ≥2 operands."""

    operands: tuple[Node, ...]

    def evaluate(self, labels: Labels) -> bool:
        for operand in self.operands:
            if operand.evaluate(labels):
                return True
        return False

    def children(self) -> tuple[Node, ...]:
        return self.operands

    def __str__(self) -> str:
        return "(" + " || ".join(str(op) for op in self.operands) + ")"


def negate(node: Node) -> Node:
    """``!node``, collapsing a double negation."""
    if isinstance(node, Not):
        return node.operand
    return Not(node)


def conjoin(operands: Iterable[Node]) -> Node:
    """AND of ``operands`` (one operand is returned as is; none gives ``all()``)."""
    ops = tuple(operands)
    if not ops:
        return AllNode()
    if len(ops) == 1:
        return ops[0]
    return And(ops)


def disjoin(operands: Iterable[Node]) -> Node:
    """OR of ``operands`` (one operand is returned as is; at least one is required)."""
    ops = tuple(operands)
    if not ops:
        raise ValueError("an OR needs at least one operand")
    if len(ops) == 1:
        return ops[0]
    return Or(ops)


def transform(node: Node, leaf: Callable[[Node], Node]) -> Node:
    """Rebuild ``node`` bottom-up, replacing every leaf ``x`` by ``leaf(x)``.

    Inner nodes are rebuilt with :func:`negate`/:func:`conjoin`/:func:`disjoin`, so the
    canonical-form invariants survive any replacement (e.g. ``!global()`` → ``!(!has(x))``
    becomes ``has(x)``, exactly as Calico's textual rewrite followed by a re-parse would).
    """
    if isinstance(node, Not):
        return negate(transform(node.operand, leaf))
    if isinstance(node, And):
        return And(tuple(transform(op, leaf) for op in node.operands))
    if isinstance(node, Or):
        return Or(tuple(transform(op, leaf) for op in node.operands))
    return leaf(node)
