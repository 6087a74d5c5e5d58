"""LabelIndex: incremental selector ↔ labelled-item matching (Felix's ``labelindex``).

The index holds selectors (by id) and items (by id, with their *effective* labels) and calls
``on_match_started(selector_id, item_id)`` / ``on_match_stopped(...)`` exactly when a pair
starts or stops matching. Every start is balanced by one stop before the pair is forgotten.

A change costs only what it can affect:

* **Selector added or changed**: only the items its *restriction* admits are evaluated. The
  restriction is one label every match must carry (``has(k)``, ``k == v``, ``k in {…}``),
  read from the expression tree; ``has(sg.projectcalico.org/openstack-<id>)`` therefore looks
  at the members of one security group, not at every endpoint. Only selectors with no
  restriction at all (``all()``, ``!has(x)``, ``a != "b"``) scan every item.
* **Item labels changed**: only selectors that mention a changed key can change their result
  (``Selector.label_keys()`` inverted index). The candidates are the selectors mentioning a
  changed key, or the selectors the item's labels admit, whichever list is shorter.
* **Item added**: the selectors its labels admit (restriction postings of its ``(key,
  value)`` pairs and keys) plus the unrestricted ones.

This module knows nothing about policies, endpoints or IP sets: computing effective labels is
:mod:`regionmesh.policy.labels`' job and acting on matches is the owning node's.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from regionmesh.selector import Selector

__all__ = ["BROAD_KEYS", "LabelIndex", "Restriction", "restriction_of"]

ItemId = TypeVar("ItemId", bound=Hashable)
SelId = TypeVar("SelId", bound=Hashable)

BROAD_KEYS = frozenset(
    {
        "projectcalico.org/namespace",
        "projectcalico.org/orchestrator",
        "projectcalico.org/serviceaccount",
    }
)
"""Keys that nearly every endpoint carries: a poor choice for a selector's index restriction."""


@dataclass(frozen=True, slots=True)
class Restriction:
    """Every item a selector matches has label ``key``, with a value in ``values`` if given."""

    key: str
    values: frozenset[str] | None = None


def restriction_of(selector: Selector) -> Restriction | None:
    """The restriction used to index ``selector``; None if it can match label-less items.

    Preference: a key outside :data:`BROAD_KEYS`, then an exact value set over mere presence.
    """
    found = selector.required_labels()
    if not found:
        return None

    def rank(item: tuple[str, frozenset[str] | None]) -> tuple[bool, bool, int, str]:
        key, values = item
        return (key in BROAD_KEYS, values is None, len(values or ()), key)

    key, values = min(found.items(), key=rank)
    return Restriction(key, values)


class LabelIndex(Generic[ItemId, SelId]):
    """Matches selectors against labelled items incrementally; see the module docstring."""

    def __init__(
        self,
        on_match_started: Callable[[SelId, ItemId], None],
        on_match_stopped: Callable[[SelId, ItemId], None],
    ) -> None:
        self._on_started = on_match_started
        self._on_stopped = on_match_stopped
        # Selectors.
        self._selectors: dict[SelId, Selector] = {}
        self._restriction: dict[SelId, Restriction | None] = {}
        self._sels_unrestricted: set[SelId] = set()
        self._sels_by_has: dict[str, set[SelId]] = {}
        self._sels_by_value: dict[str, dict[str, set[SelId]]] = {}
        self._sels_by_mentioned_key: dict[str, set[SelId]] = {}
        # Items.
        self._labels: dict[ItemId, Mapping[str, str]] = {}
        self._items_by_value: dict[str, dict[str, set[ItemId]]] = {}
        # Matches, both directions.
        self._matches_by_sel: dict[SelId, set[ItemId]] = {}
        self._matches_by_item: dict[ItemId, set[SelId]] = {}

    # ------------------------------------------------------------------ queries ----
    def selector(self, sid: SelId) -> Selector | None:
        """The selector registered as ``sid``."""
        return self._selectors.get(sid)

    def labels(self, iid: ItemId) -> Mapping[str, str] | None:
        """The labels last given for ``iid``."""
        return self._labels.get(iid)

    def items_matching(self, sid: SelId) -> frozenset[ItemId]:
        """Items currently matching selector ``sid``."""
        return frozenset(self._matches_by_sel.get(sid, ()))

    def selectors_matching(self, iid: ItemId) -> frozenset[SelId]:
        """Selectors currently matching item ``iid``."""
        return frozenset(self._matches_by_item.get(iid, ()))

    def match_count(self, sid: SelId) -> int:
        """How many items match selector ``sid``."""
        return len(self._matches_by_sel.get(sid, ()))

    # --------------------------------------------------------------- selectors ----
    def update_selector(self, sid: SelId, selector: Selector) -> None:
        """Add or change selector ``sid``; emit the match deltas."""
        old = self._selectors.get(sid)
        if old == selector:
            return
        if old is not None:
            self._unindex_selector(sid, old)
        self._selectors[sid] = selector
        self._index_selector(sid, selector)
        evaluate = selector.evaluate
        labels = self._labels
        new = {iid for iid in self._candidate_items(sid) if evaluate(labels[iid])}
        prev = self._matches_by_sel.get(sid, set())
        for iid in new - prev:
            self._start(sid, iid)
        for iid in prev - new:
            self._stop(sid, iid)

    def delete_selector(self, sid: SelId) -> None:
        """Remove selector ``sid``; every match it had stops."""
        old = self._selectors.pop(sid, None)
        if old is None:
            return
        self._unindex_selector(sid, old)
        for iid in list(self._matches_by_sel.get(sid, ())):
            self._stop(sid, iid)

    def _index_selector(self, sid: SelId, selector: Selector) -> None:
        restriction = restriction_of(selector)
        self._restriction[sid] = restriction
        if restriction is None:
            self._sels_unrestricted.add(sid)
        elif restriction.values is None:
            self._sels_by_has.setdefault(restriction.key, set()).add(sid)
        else:
            by_value = self._sels_by_value.setdefault(restriction.key, {})
            for value in restriction.values:
                by_value.setdefault(value, set()).add(sid)
        for key in selector.label_keys():
            self._sels_by_mentioned_key.setdefault(key, set()).add(sid)

    def _unindex_selector(self, sid: SelId, selector: Selector) -> None:
        restriction = self._restriction.pop(sid)
        if restriction is None:
            self._sels_unrestricted.discard(sid)
        elif restriction.values is None:
            _discard(self._sels_by_has, restriction.key, sid)
        else:
            by_value = self._sels_by_value[restriction.key]
            for value in restriction.values:
                _discard(by_value, value, sid)
            if not by_value:
                del self._sels_by_value[restriction.key]
        for key in selector.label_keys():
            _discard(self._sels_by_mentioned_key, key, sid)

    def _candidate_items(self, sid: SelId) -> Iterable[ItemId]:
        restriction = self._restriction[sid]
        if restriction is None:
            return list(self._labels)
        by_value = self._items_by_value.get(restriction.key)
        if not by_value:
            return ()
        if restriction.values is None:
            return [iid for items in by_value.values() for iid in items]
        return [iid for v in restriction.values for iid in by_value.get(v, ())]

    # ------------------------------------------------------------------- items ----
    def update_labels(self, iid: ItemId, labels: Mapping[str, str]) -> None:
        """Add or change item ``iid``; emit the match deltas."""
        old = self._labels.get(iid)
        if old is not None and old == labels:
            return
        labels = dict(labels)
        if old is not None:
            changed = {k for k in old.keys() | labels.keys() if old.get(k) != labels.get(k)}
            self._unindex_item(iid, old)
        self._labels[iid] = labels
        self._index_item(iid, labels)
        prev = self._matches_by_item.get(iid, set())
        if old is None:
            candidates = self._admitted_selectors(labels)
        else:
            mentioned_cost = sum(len(self._sels_by_mentioned_key.get(k, ())) for k in changed)
            if mentioned_cost <= self._admitted_cost(labels):
                candidates = set()
                for key in changed:
                    candidates.update(self._sels_by_mentioned_key.get(key, ()))
            else:
                candidates = {
                    sid
                    for sid in self._admitted_selectors(labels)
                    if not changed.isdisjoint(self._selectors[sid].label_keys())
                }
            candidates.update(
                sid for sid in prev if not changed.isdisjoint(self._selectors[sid].label_keys())
            )
        selectors = self._selectors
        for sid in candidates:
            matches = selectors[sid].evaluate(labels)
            if matches and sid not in prev:
                self._start(sid, iid)
            elif not matches and sid in prev:
                self._stop(sid, iid)

    def delete_labels(self, iid: ItemId) -> None:
        """Remove item ``iid``; every match it had stops."""
        old = self._labels.pop(iid, None)
        if old is None:
            return
        self._unindex_item(iid, old)
        for sid in list(self._matches_by_item.get(iid, ())):
            self._stop(sid, iid)

    def _index_item(self, iid: ItemId, labels: Mapping[str, str]) -> None:
        by_key = self._items_by_value
        for key, value in labels.items():
            by_value = by_key.get(key)
            if by_value is None:
                by_value = by_key[key] = {}
            items = by_value.get(value)
            if items is None:
                by_value[value] = {iid}
            else:
                items.add(iid)

    def _unindex_item(self, iid: ItemId, labels: Mapping[str, str]) -> None:
        for key, value in labels.items():
            by_value = self._items_by_value[key]
            _discard(by_value, value, iid)
            if not by_value:
                del self._items_by_value[key]

    def _admitted_cost(self, labels: Mapping[str, str]) -> int:
        cost = len(self._sels_unrestricted)
        for key, value in labels.items():
            cost += len(self._sels_by_has.get(key, ()))
            by_value = self._sels_by_value.get(key)
            if by_value is not None:
                cost += len(by_value.get(value, ()))
        return cost

    def _admitted_selectors(self, labels: Mapping[str, str]) -> set[SelId]:
        out = set(self._sels_unrestricted)
        by_has = self._sels_by_has
        by_key_value = self._sels_by_value
        for key, value in labels.items():
            has = by_has.get(key)
            if has:
                out.update(has)
            by_value = by_key_value.get(key)
            if by_value is not None:
                sids = by_value.get(value)
                if sids:
                    out.update(sids)
        return out

    # ----------------------------------------------------------------- matches ----
    def _start(self, sid: SelId, iid: ItemId) -> None:
        self._matches_by_sel.setdefault(sid, set()).add(iid)
        self._matches_by_item.setdefault(iid, set()).add(sid)
        self._on_started(sid, iid)

    def _stop(self, sid: SelId, iid: ItemId) -> None:
        _discard(self._matches_by_sel, sid, iid)
        _discard(self._matches_by_item, iid, sid)
        self._on_stopped(sid, iid)


K = TypeVar("K")
V = TypeVar("V")


def _discard(index: dict[K, set[V]], key: K, value: V) -> None:
    """Remove ``value`` from ``index[key]``, dropping the key when its set empties."""
    values = index.get(key)
    if values is not None:
        values.discard(value)
        if not values:
            del index[key]
