"""List-then-watch of the v3 resource tree, turned into calc-graph :class:`ResourceUpdate` batches.

:class:`ResourceSyncer` is the agent's only reader of resources (Felix's syncer +
``ValidationFilter``): :meth:`ResourceSyncer.resync` lists every key under
``/calico/resources/v3/projectcalico.org/`` at one revision and emits the difference against what
it emitted before (updates for new or changed keys, deletes for keys that vanished), then
(re)starts one watch from the revision after the list. :meth:`ResourceSyncer.poll` returns the
next watch batch as updates; when etcd compacted the watch's position away it re-lists by itself
(so a compaction costs one diff, never a lost delete). Values that do not decode or validate
become deletes, as in Felix: a broken resource must not keep (or open) anything.

Errors: :class:`~regionmesh.errors.DatastoreUnavailable` (and other datastore errors) propagate;
the caller keeps the dataplane as it is, backs off and calls :meth:`resync` again, which restarts
the watch cleanly. What to do with the updates (which kinds matter, what is local) is the calc
graph's and the agent's business.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from regionmesh.agent.graph import ResourceUpdate
from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore, EventType, KeyValue, Watch, WatchEvent
from regionmesh.errors import Compacted, ValidationError
from regionmesh.model import KINDS, Resource, codec

LOG = logging.getLogger(__name__)

KIND_BY_PLURAL: dict[str, str] = {info.plural: info.kind for info in KINDS.values()}


@dataclass(frozen=True, slots=True)
class _Known:
    kind: str
    namespace: str | None
    name: str
    mod_revision: int


def decode_value(kind: str, key: str, value: bytes, mod_revision: int) -> Resource | None:
    """Decode one stored value; None (with a warning) when it is not a valid resource of ``kind``."""
    try:
        data = json.loads(value)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        resource = codec.from_storage(data, resource_version=str(mod_revision))
    except (ValueError, ValidationError) as exc:
        LOG.warning("Ignoring invalid value at %s (treated as deleted): %s", key, exc)
        return None
    if resource.kind != kind:
        LOG.warning("Ignoring %s stored under %s (treated as deleted)", resource.kind, key)
        return None
    return resource


class ResourceSyncer:
    """Keeps a calc graph fed from one datastore prefix (see the module docstring)."""

    def __init__(self, store: Datastore, *, prefix: str = keys.RESOURCES_PREFIX) -> None:
        self.store = store
        self.prefix = prefix
        self._known: dict[str, _Known] = {}
        self._watch: Watch | None = None
        self.revision = 0
        self.resyncs = 0
        self.compactions = 0

    @property
    def watching(self) -> bool:
        """True once a list succeeded and its watch is running."""
        return self._watch is not None

    def _identify(self, key: str) -> tuple[str, str | None, str] | None:
        parsed = keys.parse_resource_key(key)
        if parsed is None:
            return None
        plural, namespace, name = parsed
        kind = KIND_BY_PLURAL.get(plural)
        if kind is None:
            return None
        if KINDS[kind].namespaced != (namespace is not None):
            return None
        return kind, namespace, name

    def _update_for(self, kv: KeyValue | WatchEvent, mod_revision: int) -> ResourceUpdate | None:
        ident = self._identify(kv.key)
        if ident is None:
            return None
        kind, namespace, name = ident
        value = kv.value
        resource = None if value is None else decode_value(kind, kv.key, value, mod_revision)
        if resource is None:
            if self._known.pop(kv.key, None) is None:
                return None  # never emitted: nothing to delete
            return ResourceUpdate(kind, namespace, name, None)
        self._known[kv.key] = _Known(kind, namespace, name, mod_revision)
        return ResourceUpdate(kind, namespace, name, resource)

    def resync(self) -> list[ResourceUpdate]:
        """List everything, return the updates that bring a consumer of earlier ones up to date.

        Restarts the watch from the list's revision + 1. Raises datastore errors unchanged (the
        previous watch is closed either way, so the caller just calls this again later).
        """
        self.close()
        listing = self.store.list(self.prefix)
        updates: list[ResourceUpdate] = []
        seen: set[str] = set()
        for kv in listing.items:
            seen.add(kv.key)
            known = self._known.get(kv.key)
            if known is not None and known.mod_revision == kv.mod_revision:
                continue
            upd = self._update_for(kv, kv.mod_revision)
            if upd is not None:
                updates.append(upd)
        for key in sorted(set(self._known) - seen):
            gone = self._known.pop(key)
            updates.append(ResourceUpdate(gone.kind, gone.namespace, gone.name, None))
        self.revision = listing.revision
        self._watch = self.store.watch(self.prefix, start_revision=listing.revision + 1)
        self.resyncs += 1
        return updates

    def poll(self, timeout: float) -> list[ResourceUpdate]:
        """Wait up to ``timeout`` s for the next change; ``[]`` when nothing happened.

        Re-lists (and returns the diff) when the watch position was compacted; datastore
        outages propagate after closing the watch.
        """
        if self._watch is None:
            return self.resync()
        try:
            batch = self._watch.next_batch(timeout)
        except Compacted as exc:
            self.compactions += 1
            LOG.warning("Watch compacted (%s): re-listing", exc)
            return self.resync()
        except BaseException:  # close the broken watch, whatever ended it; the caller re-lists
            self.close()
            raise
        return self._apply_events(batch)

    def _apply_events(self, batch: Iterable[WatchEvent]) -> list[ResourceUpdate]:
        updates: list[ResourceUpdate] = []
        for event in batch:
            self.revision = max(self.revision, event.mod_revision)
            if event.type is EventType.DELETE:
                gone = self._known.pop(event.key, None)
                if gone is not None:
                    updates.append(ResourceUpdate(gone.kind, gone.namespace, gone.name, None))
                continue
            upd = self._update_for(event, event.mod_revision)
            if upd is not None:
                updates.append(upd)
        return updates

    def close(self) -> None:
        """Stop the watch (the known state is kept for the next :meth:`resync`)."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()
