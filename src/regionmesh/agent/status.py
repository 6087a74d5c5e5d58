"""What the agent reports about itself and its endpoints, in Felix's keys and values.

* :class:`HeartbeatReporter` — the process status (agent-dataplane.md §1.6): every
  ``ReportingIntervalSecs`` it writes ``{"time": <RFC 3339 UTC>, "uptime": <s>, "first_update":
  <bool>}`` to ``/calico/felix/v2/<region-string>/host/<hostname>/status`` under a **new** lease
  of ``ReportingTTLSecs`` (as Felix's etcdv3 backend does; the previous lease is revoked
  afterwards so leases do not pile up), and the same value to ``…/last_reported_status`` without
  a lease. ``first_update`` stays true until a write succeeds.
* :class:`EndpointStatusReporter` — per-port status ``{"status": "up"|"down"}`` at
  ``…/workload/<orchestrator>/<escaped ns/device>/endpoint/<port>`` while
  ``EndpointReportingEnabled``; keys of endpoints that went away are deleted. Writes are
  rate-limited like Felix's: one key per ``EndpointReportingDelaySecs`` tick; the reporter
  re-reads its own subtree at start and every ``delay × 180`` and repairs it.

Both only write when told to (:meth:`~HeartbeatReporter.maybe_report`,
:meth:`~EndpointStatusReporter.step`) and never raise datastore errors: a failed write is logged
and retried on the next tick. Deciding whether an endpoint is up is the agent's job.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore
from regionmesh.datastore.resource_client import timestamp_now
from regionmesh.errors import DatastoreError, NotFound

LOG = logging.getLogger(__name__)

Clock = Callable[[], float]
FIRST_REPORT_DELAY = 0.0
"""Seconds after start before the first heartbeat (Felix waits ~10 s; we report at once)."""
ENDPOINT_RESYNC_FACTOR = 180


def heartbeat_value(uptime: float, first_update: bool, now: str | None = None) -> bytes:
    """The JSON of one heartbeat, fields in Felix's order, compact like Go's encoder."""
    doc = {"time": now or timestamp_now(), "uptime": uptime, "first_update": first_update}
    return json.dumps(doc, separators=(",", ":")).encode()


class HeartbeatReporter:
    """Writes the agent's liveness keys (see the module docstring)."""

    def __init__(
        self,
        store: Datastore,
        *,
        hostname: str,
        region: str | None,
        interval: float,
        ttl: float,
        start_time: float | None = None,
        clock: Clock = time.monotonic,
        first_delay: float = FIRST_REPORT_DELAY,
    ) -> None:
        self.store = store
        self.status_key = keys.felix_status_key(region, hostname)
        self.last_key = keys.felix_last_reported_status_key(region, hostname)
        self.interval = interval
        self.ttl = ttl
        self.clock = clock
        self.start = clock() if start_time is None else start_time
        self.first_update = True
        self.reports = 0
        self.failures = 0
        self._lease = 0
        self.next_due: float | None = self.start + first_delay if interval > 0 else None

    def maybe_report(self, now: float | None = None) -> bool:
        """Report if due; True when a report was written now."""
        now = self.clock() if now is None else now
        if self.next_due is None or now < self.next_due:
            return False
        ok = self.report(now)
        # After a failure retry sooner (but not in a tight loop) so liveness resumes quickly.
        self.next_due = now + (self.interval if ok else min(self.interval, 1.0))
        return ok

    def report(self, now: float | None = None) -> bool:
        """Write both keys once; False (logged) when the datastore refused or is away."""
        try:
            self.write(now)
        except DatastoreError as exc:
            LOG.warning("Status report to %s failed: %s", self.status_key, exc)
            return False
        return True

    def write(self, now: float | None = None) -> None:
        """Write both keys once; the DatastoreError (counted in ``failures``) propagates, so a
        caller that must succeed (``--once``) reports the real cause."""
        now = self.clock() if now is None else now
        value = heartbeat_value(round(now - self.start, 3), self.first_update)
        try:
            lease = self.store.grant_lease(max(1, math.ceil(self.ttl))) if self.ttl > 0 else 0
            self.store.put(self.status_key, value, lease=lease)
            self.store.put(self.last_key, value)
        except DatastoreError:
            self.failures += 1
            raise
        old, self._lease = self._lease, lease
        if old and old != lease:
            try:
                self.store.revoke_lease(old)
            except DatastoreError:
                pass  # expired already, or etcd is away: it expires on its own
        self.first_update = False
        self.reports += 1

    def seconds_until_due(self, now: float | None = None) -> float | None:
        """How long until the next report is due (None: reporting is off)."""
        if self.next_due is None:
            return None
        now = self.clock() if now is None else now
        return max(0.0, self.next_due - now)


@dataclass(frozen=True, slots=True, order=True)
class EndpointRef:
    """Identifies one endpoint's status key: the v1 workload id and the port id."""

    orchestrator: str
    workload: str  # "<namespace>/<device_id>", unescaped
    endpoint: str


def status_value(status: str) -> bytes:
    """``{"status":"up"}`` / ``{"status":"down"}``."""
    return json.dumps({"status": status}, separators=(",", ":")).encode()


class EndpointStatusReporter:
    """Keeps ``…/workload/…/endpoint/<port>`` keys equal to the desired statuses, rate-limited."""

    def __init__(
        self,
        store: Datastore,
        *,
        hostname: str,
        region: str | None,
        delay: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.store = store
        self.hostname = hostname
        self.region = region
        self.delay = delay
        self.clock = clock
        self.prefix = keys.felix_host_dir(region, hostname) + "/workload/"
        self.desired: dict[EndpointRef, str] = {}
        self.reported: dict[EndpointRef, str] | None = None  # None: not read yet
        self.writes = 0
        self._next_write = 0.0
        self._next_resync = 0.0

    def key(self, ref: EndpointRef) -> str:
        """The status key of one endpoint."""
        return keys.endpoint_status_key(
            self.region, self.hostname, ref.workload, ref.endpoint, ref.orchestrator
        )

    def set_desired(self, desired: Mapping[EndpointRef, str]) -> None:
        """Replace the desired statuses (endpoints absent here get their key deleted)."""
        self.desired = dict(desired)

    def _read_reported(self) -> None:
        listing = self.store.list(self.prefix)
        reported: dict[EndpointRef, str] = {}
        for kv in listing.items:
            parsed = keys.parse_endpoint_status_key(kv.key)
            if parsed is None or parsed.hostname != self.hostname:
                continue
            try:
                status = str(json.loads(kv.value).get("status", ""))
            except (ValueError, AttributeError):
                status = ""
            ref = EndpointRef(parsed.orchestrator, parsed.workload, parsed.endpoint_id)
            reported[ref] = status
        self.reported = reported

    def pending(self) -> list[EndpointRef]:
        """Endpoints whose key differs from the desired status, in a stable order."""
        if self.reported is None:
            return sorted(self.desired)
        refs = set(self.desired) | set(self.reported)
        return sorted(r for r in refs if self.desired.get(r) != self.reported.get(r))

    def step(self, now: float | None = None) -> int:
        """Do the writes that are due now (one per ``delay`` tick; all when delay is 0)."""
        now = self.clock() if now is None else now
        try:
            if self.reported is None or now >= self._next_resync:
                self._read_reported()
                self._next_resync = now + max(self.delay * ENDPOINT_RESYNC_FACTOR, 1.0)
            done = 0
            for ref in self.pending():
                if now < self._next_write:
                    break
                assert self.reported is not None
                want = self.desired.get(ref)
                if want is None:
                    try:
                        self.store.delete(self.key(ref))
                    except NotFound:
                        pass
                    self.reported.pop(ref, None)
                else:
                    self.store.put(self.key(ref), status_value(want))
                    self.reported[ref] = want
                done += 1
                self.writes += 1
                if self.delay > 0:
                    self._next_write = now + self.delay
        except DatastoreError as exc:
            LOG.warning("Endpoint status report failed: %s", exc)
            self.reported = None  # re-read on the next tick
            return 0
        return done

    def seconds_until_due(self, now: float | None = None) -> float | None:
        """When :meth:`step` has something to do next (None: nothing pending)."""
        now = self.clock() if now is None else now
        if self.reported is None:
            return 0.0
        wait_resync = max(0.0, self._next_resync - now)
        if not self.pending():
            return wait_resync
        return min(wait_resync, max(0.0, self._next_write - now))
