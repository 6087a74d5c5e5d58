"""The elected master's view of its region's agents: heartbeats and per-port status.

:class:`StatusWatcher` lists ``/calico/felix/v2/<region_string>/host/`` once, then follows
it with a datastore watch from the next revision (re-listing after a compaction or an
outage), as networking-calico's status watchers do (openstack-driver.md §4.1, §4.4, §4.5):

* ``…/host/<h>/status`` put → ``on_agent(host, first_update)``; while the key lives the
  agent is re-reported every ``refresh_interval`` seconds from memory (no datastore reads), so
  Neutron's ``agent_down_time`` may be shorter than the agents' reporting interval; delete →
  ``on_agent_gone(host)`` (Neutron then notices by timeout; no port is marked in error);
* ``…/host/<h>/workload/openstack/<escaped>/endpoint/<port>`` ``{"status": up|down|error}``
  → ``on_port_status(host, port_id, ACTIVE|DOWN|ERROR)``; a deleted key is reported as
  ERROR (Neutron ignores that for a port that is gone). Snapshot items already reported with
  the same status are skipped.

Watch liveness, as networking-calico's status watchers do (§4.5): every
``round_trip_interval`` seconds (10/3 s) the watcher writes ``…/host/round-trip-check`` (no
lease; the value is its monotonic clock, as text) inside the prefix it watches. A watch that has
not delivered one of those writes within ``watch_timeout`` seconds (10 s) has stalled silently
(a frozen etcd member behind the JSON gateway keeps the stream open): it is closed and
re-created from the last revision seen + 1, so nothing is lost or repeated; only if that
revision has been compacted away does the watcher list again.

Only this region's prefix is read, so other regions' agents are never seen. Turning the
callbacks into Neutron agent rows and port updates is :mod:`regionmesh.openstack.mech_driver`'s
job; this module does not import Neutron.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore, EventType, Watch
from regionmesh.errors import Compacted, DatastoreError, PermissionDenied

LOG = logging.getLogger(__name__)

ACTIVE, DOWN, ERROR = "ACTIVE", "DOWN", "ERROR"
_STATUS_MAP = {"up": ACTIVE, "down": DOWN, "error": ERROR}
STALE_STATUS_SECS = 300
WATCH_TIMEOUT_SECS = 10.0  # networking-calico's etcdutils.WATCH_TIMEOUT_SECS
ROUND_TRIP_INTERVAL_SECS = WATCH_TIMEOUT_SECS / 3  # its round-trip write cadence


def neutron_port_status(value: bytes | None) -> str:
    """An agent's ``{"status": up|down|error}`` as Neutron's ACTIVE/DOWN/ERROR (else ERROR)."""
    if value is None:
        return ERROR
    try:
        data = json.loads(value)
    except ValueError:
        return ERROR
    status = data.get("status") if isinstance(data, dict) else None
    return _STATUS_MAP.get(status, ERROR) if isinstance(status, str) else ERROR


def _first_update(value: bytes | None) -> bool:
    try:
        data = json.loads(value or b"")
    except ValueError:
        return False
    return bool(data.get("first_update")) if isinstance(data, dict) else False


class StatusWatcher:
    """Follows one region's agent heartbeats and port statuses; drive it with :meth:`run`."""

    def __init__(
        self,
        datastore: Datastore,
        region: str | None,
        *,
        on_agent: Callable[[str, bool], None],
        on_port_status: Callable[[str, str, str], None],
        on_agent_gone: Callable[[str], None] | None = None,
        refresh_interval: float = 5.0,
        round_trip_interval: float = ROUND_TRIP_INTERVAL_SECS,
        watch_timeout: float = WATCH_TIMEOUT_SECS,
    ) -> None:
        if not 0 < round_trip_interval < watch_timeout:
            raise ValueError(
                f"round_trip_interval ({round_trip_interval}) must be positive and shorter "
                f"than watch_timeout ({watch_timeout})"
            )
        self.ds = datastore
        self.region = region
        self.prefix = keys.felix_hosts_prefix(region)
        self.round_trip_key = keys.round_trip_key(region)
        self.round_trip_interval = round_trip_interval
        self.watch_timeout = watch_timeout
        self.stalls = 0  # watches re-created because a round-trip write was not seen in time
        self._on_agent = on_agent
        self._on_port_status = on_port_status
        self._on_agent_gone = on_agent_gone
        self.refresh_interval = refresh_interval
        self._stop = threading.Event()
        self._watch: Watch | None = None
        self._live: set[str] = set()
        self._port_status: dict[str, str] = {}
        self._last_refresh = 0.0

    @property
    def live_hosts(self) -> list[str]:
        """Hosts whose heartbeat key currently exists."""
        return sorted(self._live)

    # ------------------------------------------------------------------ events

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:  # a failing Neutron call must not stop the watch
            LOG.exception("regionmesh status: %s%r failed", getattr(fn, "__name__", fn), args)

    def handle(self, key: str, value: bytes | None, *, snapshot: bool = False) -> None:
        """Process one key (value None: deleted)."""
        felix = keys.parse_felix_status_key(key)
        if felix is not None:
            if felix.last:
                return
            if value is None:
                self._live.discard(felix.hostname)
                LOG.info("regionmesh status: agent on %s failed to check in", felix.hostname)
                if self._on_agent_gone is not None:
                    self._call(self._on_agent_gone, felix.hostname)
                return
            self._live.add(felix.hostname)
            self._call(self._on_agent, felix.hostname, _first_update(value))
            return
        endpoint = keys.parse_endpoint_status_key(key)
        if endpoint is None:
            return
        status = neutron_port_status(value)
        if snapshot and self._port_status.get(endpoint.endpoint_id) == status:
            return
        self._port_status[endpoint.endpoint_id] = status
        if value is None:
            self._port_status.pop(endpoint.endpoint_id, None)
        self._call(self._on_port_status, endpoint.hostname, endpoint.endpoint_id, status)

    def _refresh_agents(self) -> None:
        now = time.monotonic()
        if now - self._last_refresh < self.refresh_interval:
            return
        self._last_refresh = now
        for host in sorted(self._live):
            self._call(self._on_agent, host, False)

    # ------------------------------------------------------------------ loop

    def _snapshot(self) -> int:
        listed = self.ds.list(self.prefix)
        present: set[str] = set()
        hosts: set[str] = set()
        for kv in listed.items:
            self.handle(kv.key, kv.value, snapshot=True)
            ep = keys.parse_endpoint_status_key(kv.key)
            if ep is not None:
                present.add(ep.endpoint_id)
            felix = keys.parse_felix_status_key(kv.key)
            if felix is not None and not felix.last:
                hosts.add(felix.hostname)
        for host in self._live - hosts:  # expired while we were not watching
            self.handle(keys.felix_status_key(self.region, host), None)
        for port_id in set(self._port_status) - present:
            self._port_status.pop(port_id, None)
        self._last_refresh = time.monotonic()
        return listed.revision

    def _write_round_trip(self, pending: deque[tuple[int, float]]) -> None:
        now = time.monotonic()
        try:
            revision = self.ds.put(self.round_trip_key, str(now).encode())
        except DatastoreError as exc:
            LOG.warning("regionmesh status: cannot write %s: %s", self.round_trip_key, exc)
            return
        pending.append((revision, now))

    def _follow(self, revision: int) -> None:
        """Watch from ``revision + 1`` until stopped; re-create a stalled watch in place."""
        pending: deque[tuple[int, float]] = deque()  # round-trip writes not seen yet
        self._watch = self.ds.watch(self.prefix, start_revision=revision + 1)
        next_write = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_write:
                self._write_round_trip(pending)
                next_write = now + self.round_trip_interval
            if pending and now - pending[0][1] > self.watch_timeout:
                self.stalls += 1
                LOG.warning(
                    "regionmesh status: watch on %s did not deliver the round-trip write of "
                    "revision %d within %.1fs; re-creating it from revision %d",
                    self.prefix, pending[0][0], self.watch_timeout, revision + 1,
                )  # fmt: skip
                self._watch.close()
                pending.clear()
                self._watch = self.ds.watch(self.prefix, start_revision=revision + 1)
                next_write = time.monotonic()
                continue
            wait = min(1.0, self.refresh_interval, max(0.0, next_write - now))
            batch = self._watch.next_batch(wait)
            for event in batch:
                revision = max(revision, event.mod_revision)
                while pending and pending[0][0] <= event.mod_revision:
                    pending.popleft()
                if event.key == self.round_trip_key:
                    continue
                value = event.value if event.type is EventType.PUT else None
                self.handle(event.key, value)
            self._refresh_agents()
            if self._watch is None or getattr(self._watch, "closed", False):
                break

    def run(self) -> None:
        """Snapshot, then watch, until :meth:`stop`; re-lists after compaction or outage."""
        while not self._stop.is_set():
            try:
                self._follow(self._snapshot())
            except Compacted:
                LOG.info("regionmesh status: watch compacted; re-listing")
            except PermissionDenied as exc:
                LOG.error("regionmesh status: %s; re-listing in 1 s", exc)
                self._stop.wait(1.0)
            except DatastoreError:
                LOG.exception("regionmesh status: datastore error; re-listing in 1 s")
                self._stop.wait(1.0)
            finally:
                if self._watch is not None:
                    self._watch.close()
                    self._watch = None

    def start(self) -> threading.Thread:
        """Run in a daemon thread."""
        thread = threading.Thread(target=self.run, name="regionmesh-status", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop :meth:`run` (from any thread)."""
        self._stop.set()
        watch = self._watch
        if watch is not None:
            watch.close()
