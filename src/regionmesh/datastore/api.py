"""The key-value contract every datastore backend implements.

This module only declares the value types (:class:`KeyValue`, :class:`ListResult`,
:class:`WatchEvent`) and the two Protocols (:class:`Datastore`, :class:`Watch`) that the embedded
SQLite store (:mod:`regionmesh.datastore.sqlite`) and the etcd v3 store
(:mod:`regionmesh.datastore.etcd`) implement. Both are held to one behaviour suite
(``tests/datastore/test_conformance.py``). Keys are text (Calico's layout, see
:mod:`regionmesh.datastore.keys`), values are opaque bytes; encoding resources into values is
left to :mod:`regionmesh.datastore.resources`.

Contract shared by the backends (etcd v3 semantics):

* There is one store-wide *revision* counter. Every successful write bumps it by one and stamps
  each key it touches with that revision (``mod_revision``); a key remembers the revision it was
  created at (``create_revision``). A fresh store is at revision 1.
* ``create`` writes only if the key is absent (:class:`~regionmesh.errors.AlreadyExists`);
  ``create_many`` does the same for many keys in few transactions and reports per key;
  ``update`` and ``delete(revision=…)`` are compare-and-swap on ``mod_revision``
  (:class:`~regionmesh.errors.NotFound` when the key is absent,
  :class:`~regionmesh.errors.RevisionConflict` when it moved).
* ``list`` returns every key under a prefix as seen at one revision (``ListResult.revision``),
  even when it is read in pages. A prefix is matched byte-wise: callers add the trailing ``/``
  (so ``/a/`` does not match ``/ab/``).
* ``watch(prefix, start_revision=r)`` yields every change to keys under the prefix with
  ``mod_revision >= r``, in revision order, in batches. ``start_revision=0`` means "from now".
  If ``r`` (or a later position the watch reached) was compacted away, the watch raises
  :class:`~regionmesh.errors.Compacted` and the caller must list again.
* Leases: keys written with a lease are deleted (with delete events) when the lease expires or
  is revoked. Lease ids are positive integers; ``0`` means "no lease".
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol, runtime_checkable


class KeyValue(NamedTuple):
    """One stored key with its value and revisions.

    A NamedTuple rather than a frozen dataclass: lists build one per key, and a tuple is built
    about twice as fast (immutable all the same).
    """

    key: str
    value: bytes
    mod_revision: int
    create_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class ListResult:
    """The keys under a prefix, sorted by key, and the store revision they were read at."""

    items: list[KeyValue]
    revision: int


class EventType(StrEnum):
    """What happened to a key."""

    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change seen by a watch.

    ``value`` is the new value (None for a delete); ``prev_value`` is the value before the change
    when the backend knows it (None for a create).
    """

    type: EventType
    key: str
    value: bytes | None
    mod_revision: int
    prev_value: bytes | None = None


@runtime_checkable
class Watch(Protocol):
    """A stream of event batches from one ``Datastore.watch`` call.

    Iterating yields non-empty batches until :meth:`close`; :meth:`next_batch` returns ``[]`` on
    timeout or after close. Both raise :class:`~regionmesh.errors.Compacted` when the watch's
    position is compacted away, and :class:`~regionmesh.errors.DatastoreUnavailable` when the
    store cannot be reached any more.
    """

    def __iter__(self) -> Iterator[list[WatchEvent]]:
        """Yield batches until the watch is closed."""
        ...

    def next_batch(self, timeout: float | None) -> list[WatchEvent]:
        """Wait up to ``timeout`` seconds (None: forever) for the next batch; ``[]`` on timeout."""
        ...

    def close(self) -> None:
        """Stop the watch; safe to call from another thread and more than once."""
        ...


@runtime_checkable
class Datastore(Protocol):
    """A revisioned key-value store with CAS, prefix lists, watches and leases."""

    def get(self, key: str) -> KeyValue | None:
        """Return the key, or None when it is absent."""
        ...

    def list(self, prefix: str, *, page_size: int = 1000) -> ListResult:
        """Return every key under ``prefix`` at one revision (read in pages of ``page_size``)."""
        ...

    def create(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Write the key only if absent and return its mod revision; AlreadyExists otherwise."""
        ...

    def create_many(self, items: Sequence[tuple[str, bytes]]) -> builtins.list[int | None]:
        """Create each ``(key, value)`` only if absent; per item its revision, or None if present.

        The batched form of :meth:`create` (same compare-and-swap safety, no lease). etcd writes
        batches of up to ``--max-txn-ops`` keys in one transaction each; SQLite writes everything
        in one transaction. Not atomic as a whole on etcd; a key given twice is created once.
        """
        ...

    def update(self, key: str, value: bytes, *, revision: int, lease: int = 0) -> int:
        """CAS write on the key's mod revision; NotFound / RevisionConflict; returns the new one."""
        ...

    def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Write the key unconditionally and return its new mod revision."""
        ...

    def delete(self, key: str, *, revision: int | None = None) -> int:
        """Delete the key (CAS when ``revision`` is given); return the revision of the delete."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix`` in one revision; return how many were deleted."""
        ...

    def watch(self, prefix: str, *, start_revision: int) -> Watch:
        """Watch keys under ``prefix`` for events with ``mod_revision >= start_revision``."""
        ...

    def grant_lease(self, ttl: int) -> int:
        """Create a lease of ``ttl`` seconds and return its id."""
        ...

    def refresh_lease(self, lease: int) -> None:
        """Restart the lease's TTL; NotFound if it expired or was revoked."""
        ...

    def revoke_lease(self, lease: int) -> None:
        """Revoke the lease now, deleting its keys; NotFound if it does not exist."""
        ...

    def lease_ttl(self, lease: int) -> int:
        """Seconds the lease has left (its granted TTL after a refresh); NotFound when it has
        expired or was revoked."""
        ...

    def compact(self, revision: int) -> bool:
        """Forget history before ``revision``; True if this call compacted, False if the store
        was already compacted at or past it (by anyone). DatastoreError for a future revision."""
        ...

    def current_revision(self) -> int:
        """Return the store's current revision."""
        ...

    def close(self) -> None:
        """Release connections; the object must not be used afterwards."""
        ...
