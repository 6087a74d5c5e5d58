"""The public ``Selector`` value, ``parse`` and the tree rewrites the policy package needs.

A :class:`Selector` wraps one expression tree. On construction it renders the canonical text
(equality, hashing and ``unique_id`` all derive from it) and compiles the tree once into
closures, so ``sel.evaluate(labels)`` is a direct call with no tree dispatch. Selectors are
immutable and cheap to share; ``parse`` keeps a bounded cache of recent results.

The rewrites (``and_``, ``prefix_keys``, ``replace_all``, ``replace_global``) work on trees, not
on text, and always return a Selector whose canonical text re-parses to itself. What those
rewrites mean for policies (namespace clauses, ``pcns.``/``pcsa.`` prefixes, §2.3 of
policy-model.md) is decided by :mod:`regionmesh.policy`, not here.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

from regionmesh.errors import SelectorError
from regionmesh.selector.compiler import compile_node
from regionmesh.selector.expr import (
    AllNode,
    And,
    Contains,
    EndsWith,
    Eq,
    GlobalNode,
    Has,
    In,
    KeyNode,
    Ne,
    Node,
    Not,
    NotIn,
    Or,
    StartsWith,
    transform,
)
from regionmesh.selector.parser import parse_expression
from regionmesh.selector.tokens import MAX_KEY_LENGTH, is_valid_key

__all__ = [
    "ALL",
    "Selector",
    "and_",
    "parse",
    "prefix_keys",
    "replace_all",
    "replace_global",
]

_PARSE_CACHE_SIZE = 8192


def _unique_id(canonical: str) -> str:
    """Calico's ``hash.MakeUniqueID("s", canonical)``: ``s:`` + unpadded base64url(SHA-224)."""
    digest = hashlib.sha224(b"s:" + canonical.encode("utf-8")).digest()
    return "s:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class Selector:
    """A parsed label selector.

    Usage::

        sel = parse('has(sg.projectcalico.org/openstack-1234) && role != "db"')
        sel.evaluate({"sg.projectcalico.org/openstack-1234": "web"})   # True
        str(sel)          # canonical text: (has(sg.projectcalico.org/openstack-1234) && role != "db")
        sel.unique_id     # "s:…", stable hash of the canonical text (same as Calico's UniqueID)
    """

    __slots__ = ("_root", "_text", "_uid", "_keys", "evaluate")

    _root: Node
    _text: str
    _uid: str | None
    _keys: frozenset[str] | None
    #: ``evaluate(labels) -> bool``: the compiled predicate (an instance attribute for speed).
    evaluate: Callable[[Mapping[str, str]], bool]

    def __init__(self, root: Node) -> None:
        if not isinstance(root, Node):
            raise TypeError(f"Selector needs an expression node, not {type(root).__name__}")
        text = str(root)
        setattr_ = object.__setattr__
        setattr_(self, "_root", root)
        setattr_(self, "_text", text)
        setattr_(self, "_uid", None)
        setattr_(self, "_keys", None)
        setattr_(self, "evaluate", compile_node(root))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Selector is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Selector is immutable (cannot delete {name!r})")

    @property
    def root(self) -> Node:
        """The expression tree (frozen nodes from :mod:`regionmesh.selector.expr`)."""
        return self._root

    @property
    def unique_id(self) -> str:
        """Stable id of the canonical text, identical to libcalico-go's ``UniqueID()``."""
        uid = self._uid
        if uid is None:
            uid = _unique_id(self._text)
            object.__setattr__(self, "_uid", uid)
        return uid

    def label_keys(self) -> frozenset[str]:
        """Every label key the expression mentions (``has(k)``, ``k == …``, …)."""
        keys = self._keys
        if keys is None:
            keys = frozenset(self._root.keys())
            object.__setattr__(self, "_keys", keys)
        return keys

    def required_labels(self) -> Mapping[str, frozenset[str] | None]:
        """Labels every matching item must carry: key → the values it may have (None: any).

        A sound under-approximation (an empty mapping when nothing is required, e.g. for
        ``all()`` or a bare ``!has(k)``). Indexes use it to look only at items that can match.
        """
        return _required(self._root)

    def interpret(self, labels: Mapping[str, str]) -> bool:
        """Re-parse the canonical text and walk the tree: no compiled predicate, no cache.

        The reference semantics, for the naive oracle and benchmark baseline.
        """
        result: bool = parse_expression(self._text).evaluate(labels)
        return result

    def _evaluate_naive(self, labels: Mapping[str, str]) -> bool:
        """Tree-walking evaluation (reference semantics; benchmark baseline and test oracle)."""
        return self._root.evaluate(labels)

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Selector({self._text!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Selector):
            return self._text == other._text
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._text)

    def __reduce__(self) -> tuple[Callable[[str], Selector], tuple[str]]:
        return (parse, (self._text,))

    def __copy__(self) -> Selector:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Selector:
        return self


_Restrictions = dict[str, frozenset[str] | None]


def _and(parts: Iterable[_Restrictions]) -> _Restrictions:
    out: _Restrictions = {}
    for part in parts:
        for key, values in part.items():
            if key not in out:
                out[key] = values
            elif values is not None:
                prev = out[key]
                out[key] = values if prev is None else prev & values
    return out


def _or(parts: list[_Restrictions]) -> _Restrictions:
    out: _Restrictions = dict(parts[0])
    for part in parts[1:]:
        merged: _Restrictions = {}
        for key, values in out.items():
            if key in part:
                other = part[key]
                merged[key] = None if values is None or other is None else values | other
        out = merged
    return out


def _required(node: Node) -> _Restrictions:
    """Labels every item matching ``node`` must carry (a sound under-approximation)."""
    if isinstance(node, Has | Contains | StartsWith | EndsWith):
        return {node.key: None}
    if isinstance(node, Eq):
        return {node.key: frozenset((node.value,))}
    if isinstance(node, In):
        return {node.key: frozenset(node.values)}
    if isinstance(node, Not):
        inner = node.operand
        if isinstance(inner, Ne):  # !(k != v)  ==  k == v
            return {inner.key: frozenset((inner.value,))}
        if isinstance(inner, NotIn):
            return {inner.key: frozenset(inner.values)}
        return {}
    if isinstance(node, And):
        return _and(_required(op) for op in node.operands)
    if isinstance(node, Or):
        return _or([_required(op) for op in node.operands])
    return {}


@functools.lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _parse_cached(text: str) -> Selector:
    return Selector(parse_expression(text))


def parse(text: str) -> Selector:
    """Parse a Calico selector; raise :class:`SelectorError` (with column) if invalid.

    Empty or whitespace-only text (spaces/tabs) is ``all()``.
    """
    if not isinstance(text, str):
        raise TypeError(f"selector text must be str, not {type(text).__name__}")
    return _parse_cached(text)


#: ``parse("all()")``: matches every label set.
ALL = Selector(AllNode())


def and_(*sels: Selector) -> Selector:
    """AND of several selectors, in order; ``all()`` operands are dropped (``ALL`` if none left).

    A single remaining operand is returned unchanged; groups are not flattened, matching what
    Calico's textual ``(a) && b`` rewrite parses to.
    """
    kept = [s for s in sels if not isinstance(s.root, AllNode)]
    if not kept:
        return ALL
    if len(kept) == 1:
        return kept[0]
    return Selector(And(tuple(s.root for s in kept)))


def prefix_keys(sel: Selector, prefix: str) -> Selector:
    """Every label key ``k`` becomes ``prefix + k`` (Calico's PrefixVisitor, e.g. ``pcns.``).

    Raises :class:`SelectorError` if a resulting key would not be a valid selector key
    (bad characters in ``prefix``, or longer than 512), since its text could not re-parse.
    """
    if not prefix:
        return sel
    if not is_valid_key(prefix):
        raise SelectorError(f"invalid label key prefix {prefix!r}", str(sel), 0)

    def rename(node: Node) -> Node:
        if not isinstance(node, KeyNode):
            return node
        key = prefix + node.key
        if len(key) > MAX_KEY_LENGTH:
            raise SelectorError(
                f"label too long after prefixing: {len(key)} > {MAX_KEY_LENGTH}", str(sel), 0
            )
        return node.with_key(key)

    return Selector(transform(sel.root, rename))


def replace_all(sel: Selector, replacement: Selector) -> Selector:
    """Every ``all()`` node becomes ``replacement`` (e.g. ``has(projectcalico.org/namespace)``)."""
    new = replacement.root
    return Selector(transform(sel.root, lambda n: new if isinstance(n, AllNode) else n))


def replace_global(sel: Selector, replacement: Selector) -> Selector:
    """Every ``global()`` node becomes ``replacement`` (e.g. ``!has(projectcalico.org/namespace)``)."""
    new = replacement.root
    return Selector(transform(sel.root, lambda n: new if isinstance(n, GlobalNode) else n))
