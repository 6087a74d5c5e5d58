"""One list-then-watch mirror of a key prefix: snapshot, changes, re-list on compaction, backoff.

:class:`Mirror` is what every long-running reader of the datastore builds on (the agent's
resource syncer, the Neutron status watcher, the DHCP agent). It keeps, per key under one
prefix, the ``mod_revision`` it last reported, and hands out :class:`Change` lists:

* :meth:`Mirror.resync` lists the prefix at one revision and returns the difference against
  what it reported before (a put for every new or changed key, a delete for every key that
  vanished; on the first call: every key), then (re)starts ONE watch from the list's revision
  + 1, so nothing between the list and the watch is lost or repeated;
* :meth:`Mirror.poll` returns the next watch batch as changes. When the datastore compacted the
  watch's position away (:class:`~regionmesh.errors.Compacted`) it re-lists by itself and
  returns the diff, so a compaction costs one diff and never loses a delete;
* a :class:`~regionmesh.errors.DatastoreError` while listing or watching closes the watch,
  schedules the next list after an exponential :class:`~regionmesh.backoff.Backoff`
  (``next_attempt``, on the mirror's clock) and propagates; a later :meth:`poll` waits out the
  backoff (returning ``[]``) and then re-lists. A success resets the backoff.
* :meth:`Mirror.resume` re-creates the watch from the last revision seen + 1 (a watch that
  stalled silently; see the status watcher's round-trip probe); if that revision is compacted,
  the next :meth:`poll` re-lists.

Single-threaded: one caller drives one mirror. What the keys mean, which ones matter and how
values decode is the consumer's business; so is logging a failure beyond one line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from regionmesh.backoff import Backoff
from regionmesh.datastore.api import Datastore, EventType, Watch
from regionmesh.errors import Compacted, DatastoreError

LOG = logging.getLogger(__name__)

__all__ = ["BACKOFF_MAX", "BACKOFF_MIN", "Change", "Mirror"]

BACKOFF_MIN = 0.5
BACKOFF_MAX = 10.0


@dataclass(frozen=True, slots=True)
class Change:
    """One key's new state: ``value`` None means deleted (``mod_revision``: when it changed).

    ``listed`` says the change came from a (re-)list diff: after a compaction or an outage a
    consumer may treat those as a snapshot (e.g. not report a deletion it never saw happen).
    """

    key: str
    value: bytes | None
    mod_revision: int
    listed: bool = False  # part of a (re-)list diff rather than a watch event

    @property
    def deleted(self) -> bool:
        """Whether the key is gone."""
        return self.value is None


class Mirror:
    """Follows one prefix of one datastore (see the module docstring)."""

    def __init__(
        self,
        store: Datastore,
        prefix: str,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.backoff = backoff or Backoff(BACKOFF_MIN, BACKOFF_MAX)
        self.clock = clock
        self.sleep = sleep
        self.known: dict[str, int] = {}  # key -> mod_revision last reported
        self.revision = 0  # the newest revision seen (list or watch)
        self.resyncs = 0
        self.compactions = 0
        self.failures = 0
        self.next_attempt = 0.0  # clock time before which poll() does not list again
        self._watch: Watch | None = None

    @property
    def watching(self) -> bool:
        """True once a list succeeded and its watch is running."""
        return self._watch is not None

    @property
    def retry_delay(self) -> float:
        """The backoff delay scheduled by the last failure (0 after a success)."""
        return self.backoff.current

    def _failed(self) -> None:
        self.close()
        self.failures += 1
        self.next_attempt = self.clock() + self.backoff.next()

    def resync(self) -> list[Change]:
        """List the prefix, return the diff against what was reported; restart the watch."""
        self.close()
        try:
            listing = self.store.list(self.prefix)
            watch = self.store.watch(self.prefix, start_revision=listing.revision + 1)
        except DatastoreError:
            self._failed()
            raise
        changes: list[Change] = []
        listed: dict[str, int] = {}
        for kv in listing.items:
            listed[kv.key] = kv.mod_revision
            if self.known.get(kv.key) != kv.mod_revision:
                changes.append(Change(kv.key, kv.value, kv.mod_revision, listed=True))
        for key in sorted(set(self.known) - set(listed)):
            changes.append(Change(key, None, listing.revision, listed=True))
        self.known = listed
        self.revision = listing.revision
        self._watch = watch
        self.resyncs += 1
        self.backoff.reset()
        return changes

    def poll(self, timeout: float) -> list[Change]:
        """Wait up to ``timeout`` s for the next changes; ``[]`` when nothing happened.

        Not watching: waits out the backoff (at most ``timeout``), then re-lists. Re-lists (and
        returns the diff) when the watch position was compacted. Datastore errors propagate
        after closing the watch and scheduling the next list.
        """
        watch = self._watch
        if watch is None:
            delay = self.next_attempt - self.clock()
            if delay > 0:
                self.sleep(min(delay, timeout))
                return []
            return self.resync()
        try:
            batch = watch.next_batch(timeout)
        except Compacted as exc:
            self.compactions += 1
            LOG.warning("watch on %s compacted (%s): re-listing", self.prefix, exc)
            return self.resync()
        except DatastoreError:
            self._failed()
            raise
        except BaseException:
            self.close()
            raise
        changes: list[Change] = []
        for event in batch:
            self.revision = max(self.revision, event.mod_revision)
            if event.type is EventType.DELETE:
                if self.known.pop(event.key, None) is not None:
                    changes.append(Change(event.key, None, event.mod_revision))
                continue
            self.known[event.key] = event.mod_revision
            changes.append(Change(event.key, event.value, event.mod_revision))
        return changes

    def resume(self, revision: int | None = None) -> None:
        """Re-create the watch from ``revision`` (default: the last one seen) + 1."""
        self.close()
        start = self.revision if revision is None else revision
        try:
            self._watch = self.store.watch(self.prefix, start_revision=start + 1)
        except DatastoreError:
            self._failed()
            raise

    def close(self) -> None:
        """Stop the watch (what was reported is kept for the next :meth:`resync`)."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()
