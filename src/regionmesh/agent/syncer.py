"""The v3 resource tree, mirrored and turned into calc-graph :class:`ResourceUpdate` batches.

:class:`ResourceSyncer` is the agent's only reader of resources (Felix's syncer +
``ValidationFilter``). The list-then-watch itself is the datastore's
:class:`~regionmesh.datastore.mirror.Mirror` over ``/calico/resources/v3/projectcalico.org/``:
:meth:`ResourceSyncer.resync` lists at one revision and emits the difference against what it
emitted before (updates for new or changed keys, deletes for keys that vanished), then watches
from the revision after the list; :meth:`ResourceSyncer.poll` returns the next watch batch as
updates, and after a compaction the mirror re-lists by itself (one diff, never a lost delete).
This module adds the decoding: keys name a kind, values that do not decode or validate become
deletes, as in Felix: a broken resource must not keep (or open) anything.

Errors: :class:`~regionmesh.errors.DatastoreUnavailable` (and other datastore errors) propagate;
the mirror has then closed its watch and scheduled the next list (``next_attempt``, exponential
backoff); the caller keeps the dataplane as it is and calls :meth:`resync` again when that time
has come. What to do with the updates (which kinds matter, what is local) is the calc graph's and
the agent's business.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from regionmesh.agent.graph import ResourceUpdate
from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore
from regionmesh.datastore.mirror import Change, Mirror
from regionmesh.errors import ValidationError
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

    def __init__(
        self,
        store: Datastore,
        *,
        prefix: str = keys.RESOURCES_PREFIX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.mirror = Mirror(store, prefix, clock=clock)
        self._known: dict[str, _Known] = {}

    @property
    def watching(self) -> bool:
        """True once a list succeeded and its watch is running."""
        return self.mirror.watching

    @property
    def revision(self) -> int:
        """The newest datastore revision seen."""
        return self.mirror.revision

    @property
    def resyncs(self) -> int:
        """How many lists succeeded."""
        return self.mirror.resyncs

    @property
    def compactions(self) -> int:
        """How many times the watch position was compacted away (each cost one re-list)."""
        return self.mirror.compactions

    @property
    def next_attempt(self) -> float:
        """Clock time of the next list after a failure (backoff)."""
        return self.mirror.next_attempt

    @property
    def retry_delay(self) -> float:
        """The backoff delay the last failure scheduled."""
        return self.mirror.retry_delay

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

    def _update_for(self, change: Change) -> ResourceUpdate | None:
        if change.value is None:
            gone = self._known.pop(change.key, None)
            if gone is None:
                return None  # never emitted: nothing to delete
            return ResourceUpdate(gone.kind, gone.namespace, gone.name, None)
        ident = self._identify(change.key)
        if ident is None:
            return None
        kind, namespace, name = ident
        resource = decode_value(kind, change.key, change.value, change.mod_revision)
        if resource is None:
            if self._known.pop(change.key, None) is None:
                return None  # never emitted: nothing to delete
            return ResourceUpdate(kind, namespace, name, None)
        self._known[change.key] = _Known(kind, namespace, name, change.mod_revision)
        return ResourceUpdate(kind, namespace, name, resource)

    def _updates(self, changes: list[Change]) -> list[ResourceUpdate]:
        return [u for u in map(self._update_for, changes) if u is not None]

    def resync(self) -> list[ResourceUpdate]:
        """List everything, return the updates that bring a consumer of earlier ones up to date.

        Restarts the watch from the list's revision + 1. Raises datastore errors unchanged (the
        previous watch is closed either way, so the caller just calls this again later).
        """
        return self._updates(self.mirror.resync())

    def poll(self, timeout: float) -> list[ResourceUpdate]:
        """Wait up to ``timeout`` s for the next change; ``[]`` when nothing happened.

        Re-lists (and returns the diff) when the watch position was compacted; datastore
        outages propagate after closing the watch.
        """
        return self._updates(self.mirror.poll(timeout))

    def close(self) -> None:
        """Stop the watch (the known state is kept for the next :meth:`resync`)."""
        self.mirror.close()
