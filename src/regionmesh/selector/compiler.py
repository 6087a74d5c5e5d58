"""Compile a selector expression tree once into nested Python closures.

``compile_node(node)`` returns a predicate ``labels -> bool`` that does no tree dispatch at
evaluation time: every node becomes one small closure specialised for its operator (and for
2/3-operand AND/OR), constants are folded (``all()``, ``global()``, empty sets), and a few
negations are fused (``!has(k)`` → ``k not in labels``, ``!k == v`` → ``k != v``, …), which is
exact because of the missing-label rules of policy-model.md §1.3.

The semantics are defined by the naive evaluator in :mod:`.expr`; tests check that both agree
on random expressions. This module does no parsing and keeps no cache (the Selector does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from regionmesh.selector.expr import (
    AllNode,
    And,
    Contains,
    EndsWith,
    Eq,
    GlobalNode,
    Has,
    In,
    Ne,
    Node,
    Not,
    NotIn,
    Or,
    StartsWith,
)

__all__ = ["Predicate", "compile_node"]

Predicate = Callable[[Mapping[str, str]], bool]


def _true(labels: Mapping[str, str]) -> bool:
    return True


def _false(labels: Mapping[str, str]) -> bool:
    return False


def _has(key: str) -> Predicate:
    return lambda labels: key in labels


def _has_not(key: str) -> Predicate:
    return lambda labels: key not in labels


def _eq(key: str, value: str) -> Predicate:
    # ``get`` returns None for a missing key, which never equals a str: absent → False.
    return lambda labels: labels.get(key) == value


def _ne(key: str, value: str) -> Predicate:
    # Absent → None != value → True, as Calico requires.
    return lambda labels: labels.get(key) != value


def _in(key: str, values: frozenset[str]) -> Predicate:
    return lambda labels: labels.get(key) in values


def _not_in(key: str, values: frozenset[str]) -> Predicate:
    return lambda labels: labels.get(key) not in values


def _contains(key: str, value: str) -> Predicate:
    def contains(labels: Mapping[str, str]) -> bool:
        current = labels.get(key)
        return current is not None and value in current

    return contains


def _starts_with(key: str, value: str) -> Predicate:
    def starts_with(labels: Mapping[str, str]) -> bool:
        current = labels.get(key)
        return current is not None and current.startswith(value)

    return starts_with


def _ends_with(key: str, value: str) -> Predicate:
    def ends_with(labels: Mapping[str, str]) -> bool:
        current = labels.get(key)
        return current is not None and current.endswith(value)

    return ends_with


def _set_test(key: str, values: tuple[str, ...], negated: bool) -> Predicate:
    if not values:
        return _true if negated else _false
    if len(values) == 1:
        return _ne(key, values[0]) if negated else _eq(key, values[0])
    return _not_in(key, frozenset(values)) if negated else _in(key, frozenset(values))


def _not(inner: Predicate) -> Predicate:
    if inner is _true:
        return _false
    if inner is _false:
        return _true
    return lambda labels: not inner(labels)


def _and(parts: list[Predicate]) -> Predicate:
    if any(p is _false for p in parts):
        return _false
    parts = [p for p in parts if p is not _true]
    if not parts:
        return _true
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda labels: a(labels) and b(labels)
    if len(parts) == 3:
        a, b, c = parts
        return lambda labels: a(labels) and b(labels) and c(labels)
    frozen = tuple(parts)

    def and_n(labels: Mapping[str, str]) -> bool:
        for part in frozen:
            if not part(labels):
                return False
        return True

    return and_n


def _or(parts: list[Predicate]) -> Predicate:
    if any(p is _true for p in parts):
        return _true
    parts = [p for p in parts if p is not _false]
    if not parts:
        return _false
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda labels: a(labels) or b(labels)
    if len(parts) == 3:
        a, b, c = parts
        return lambda labels: a(labels) or b(labels) or c(labels)
    frozen = tuple(parts)

    def or_n(labels: Mapping[str, str]) -> bool:
        for part in frozen:
            if part(labels):
                return True
        return False

    return or_n


def _compile_negated(node: Node) -> Predicate:
    """Compile ``!node`` directly where a cheaper equivalent test exists."""
    if isinstance(node, Has):
        return _has_not(node.key)
    if isinstance(node, Eq):
        return _ne(node.key, node.value)
    if isinstance(node, Ne):
        return _eq(node.key, node.value)
    if isinstance(node, In):
        return _set_test(node.key, node.values, negated=True)
    if isinstance(node, NotIn):
        return _set_test(node.key, node.values, negated=False)
    if isinstance(node, Not):
        return compile_node(node.operand)
    return _not(compile_node(node))


def compile_node(node: Node) -> Predicate:
    """Return a fast predicate equivalent to ``node.evaluate``."""
    if isinstance(node, (AllNode, GlobalNode)):
        return _true
    if isinstance(node, Has):
        return _has(node.key)
    if isinstance(node, Eq):
        return _eq(node.key, node.value)
    if isinstance(node, Ne):
        return _ne(node.key, node.value)
    if isinstance(node, In):
        return _set_test(node.key, node.values, negated=False)
    if isinstance(node, NotIn):
        return _set_test(node.key, node.values, negated=True)
    if isinstance(node, Contains):
        return _contains(node.key, node.value)
    if isinstance(node, StartsWith):
        return _starts_with(node.key, node.value)
    if isinstance(node, EndsWith):
        return _ends_with(node.key, node.value)
    if isinstance(node, Not):
        return _compile_negated(node.operand)
    if isinstance(node, And):
        return _and([compile_node(op) for op in node.operands])
    if isinstance(node, Or):
        return _or([compile_node(op) for op in node.operands])
    raise TypeError(f"unknown selector node {node!r}")
