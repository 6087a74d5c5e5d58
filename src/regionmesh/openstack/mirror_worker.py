"""The elected master's address-group mirror loop: datastore watch → Neutron address groups.

:class:`MirrorWorker` keeps this region's mirrors of the other regions' security groups
(:mod:`regionmesh.openstack.address_groups`) current. It lists the datastore's
WorkloadEndpoints and NetworkPolicies once, then follows both with watches from that
revision (re-listing after a compaction or an outage), keeping in memory only the facts
mirroring needs (a Neutron server's etcd role may read exactly these two prefixes). Every batch of changes to another region's endpoint or
``ossg.default.*`` policy triggers a reconciliation after :data:`DEBOUNCE` seconds (so a
burst of port changes is one set of Neutron calls); a periodic one every ``interval`` seconds
restores mirrors deleted or edited by hand. Only the region's master runs it, so each region
has one writer of its mirrors; it writes only its own Neutron, so nothing loops between
regions.

When the datastore cannot be read the mirrors are left with their last addresses (never
widened, never emptied) and, once the store answers again, a ``stale-address-group-mirrors``
finding says for how long; after each reconciliation a status record
(:func:`status_key`: time, the store revision it reflects, the number of mirrors) lets
``regionmesh doctor`` notice mirrors that fell behind. Neutron calls are the backend's
(:class:`~regionmesh.openstack.neutron_db.NeutronAddressGroups`); this module imports no
Neutron.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection

from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore, EventType, Watch, WatchEvent
from regionmesh.errors import Compacted, DatastoreError, PermissionDenied, RegionmeshError
from regionmesh.model.regions import region_of_namespace, region_string
from regionmesh.openstack.address_groups import (
    EndpointFacts,
    MirrorBackend,
    MirrorRef,
    MirrorReport,
    RemoteGroup,
    endpoint_facts_from_json,
    policy_sg,
    reconcile,
    region_mirrored,
    remote_groups,
)

LOG = logging.getLogger(__name__)

DEBOUNCE = 0.1
"""Seconds to wait after a change for more changes before reconciling."""
DEFAULT_INTERVAL = 10.0
"""Seconds between periodic reconciliations (restore hand-made edits)."""
STALE_FINDING = "stale-address-group-mirrors"
FAILED_FINDING = "address-group-mirror-failed"
NOT_PERMITTED_FINDING = "address-group-mirrors-not-permitted"
PERMISSION_RETRY = 30.0
"""Seconds between retries while etcd refuses the reads (the role must be changed first)."""
MIRROR_STATUS_PREFIX = keys.MIRROR_STATUS_PREFIX

_WEP_PLURAL = "workloadendpoints"
_NP_PLURAL = "networkpolicies"


def status_key(region: str | None) -> str:
    """``/calico/regionmesh/v1/mirrors/<region_string>``: the last reconciliation's status."""
    return keys.mirror_status_key(region)


def mirror_lag(
    status: dict[str, object], namespace_revisions: dict[str, int], now: float
) -> str | None:
    """Why a region's mirrors (its :func:`status_key` record) are out of date, or None.

    Out of date: the last reconciliation is older than three periodic checks plus 30 s (the
    master is gone or cannot reach the datastore), or the datastore changed a mirrored
    region's endpoints or policies after the revision the mirrors reflect, 30 s ago or more.
    ``namespace_revisions`` is the highest ``mod_revision`` of WorkloadEndpoints and
    NetworkPolicies per namespace.
    """
    region = status.get("region")
    regions = status.get("regions")
    try:
        then = float(status.get("unix_time") or 0)  # type: ignore[arg-type]
        revision = int(status.get("revision") or 0)  # type: ignore[call-overload]
        interval = float(status.get("interval") or DEFAULT_INTERVAL)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "the mirror status record cannot be read"
    age = now - then
    if age > 3 * interval + 30:
        return (
            f"the mirrors were last reconciled {age:.0f} s ago (expected every "
            f"{interval:.0f} s): the region's master is down or cannot read the datastore"
        )
    if age < 30:
        return None
    wanted = None if not isinstance(regions, list) else {str(r) for r in regions}
    behind = sorted(
        ns
        for ns, rev in namespace_revisions.items()
        if rev > revision
        and (r := region_of_namespace(ns)) is not None
        and region_mirrored(r, region if isinstance(region, str) else None, wanted)
    )
    if behind:
        return (
            f"the mirrors reflect datastore revision {revision}, but {', '.join(behind)} "
            f"changed after it and the last reconciliation was {age:.0f} s ago"
        )
    return None


class MirrorView:
    """The datastore facts mirroring needs, kept from a list and then watch events."""

    def __init__(self) -> None:
        self.endpoints: dict[str, EndpointFacts] = {}
        self.policies: dict[str, MirrorRef] = {}
        self.revision = 0

    def clear(self) -> None:
        self.endpoints.clear()
        self.policies.clear()

    def apply(self, key: str, value: bytes | None) -> bool:
        """Apply one put (``value``) or delete (None); True when it concerns mirroring."""
        parsed = keys.parse_resource_key(key)
        if parsed is None:
            return False
        plural, namespace, name = parsed
        if namespace is None:
            return False
        if plural == _WEP_PLURAL:
            facts = None if value is None else endpoint_facts_from_json(namespace, value)
            if facts is None:
                return self.endpoints.pop(key, None) is not None
            self.endpoints[key] = facts
            return True
        if plural == _NP_PLURAL:
            ref = policy_sg(namespace, name)
            if ref is None:
                return False
            if value is None:
                self.policies.pop(key, None)
            else:
                self.policies[key] = ref
            return True
        return False

    def wanted(
        self, my_region: str | None, regions: Collection[str] | None
    ) -> dict[MirrorRef, RemoteGroup]:
        return remote_groups(
            self.endpoints.values(),
            self.policies.values(),
            my_region=my_region,
            regions=regions,
        )


def load_view(store: Datastore) -> MirrorView:
    """A :class:`MirrorView` listed from the store now (for resync and the CLI)."""
    view = MirrorView()
    revision = 0
    for plural in (_WEP_PLURAL, _NP_PLURAL):
        listed = store.list(keys.resource_prefix(plural))
        revision = max(revision, listed.revision)
        for kv in listed.items:
            view.apply(kv.key, kv.value)
    view.revision = revision
    return view


def _pump(watch: Watch, events: queue.Queue[list[WatchEvent] | Exception]) -> None:
    """Forward a watch's batches (then its error, if it fails) into ``events``."""
    try:
        for batch in watch:
            events.put(batch)
    except DatastoreError as exc:
        events.put(exc)


def _next(events: queue.Queue[list[WatchEvent] | Exception], timeout: float) -> list[WatchEvent]:
    """The next batch within ``timeout`` seconds ([] if none); re-raises a watch's error."""
    try:
        item = events.get(timeout=max(timeout, 0.0))
    except queue.Empty:
        return []
    if isinstance(item, Exception):
        raise item
    return item


class MirrorWorker:
    """Keeps this region's mirrors current while this process is the region's master."""

    def __init__(
        self,
        store: Datastore,
        region: str | None,
        backend_factory: Callable[[], MirrorBackend],
        *,
        regions: Collection[str] | None = None,
        interval: float = DEFAULT_INTERVAL,
        retry: float = 1.0,
        on_reconciled: Callable[[MirrorReport], None] | None = None,
    ) -> None:
        self.ds = store
        self.region = region
        self.regions = None if regions is None else frozenset(regions)
        self.backend_factory = backend_factory
        self.interval = interval
        self.retry = retry
        self.on_reconciled = on_reconciled
        self.view = MirrorView()
        self._stop = threading.Event()
        self._watches: list[Watch] = []
        self._thread: threading.Thread | None = None
        self._stale_since: float | None = None
        self._failed_recorded = False
        self.reconciliations = 0

    # ------------------------------------------------------------------ reconciling

    def reconcile_now(self) -> MirrorReport | None:
        """One reconciliation from the view; None when Neutron could not be reached."""
        wanted = self.view.wanted(self.region, self.regions)
        try:
            report = reconcile(wanted, self.backend_factory())
        except RegionmeshError as exc:
            LOG.error("regionmesh mirrors: cannot update Neutron's address groups: %s", exc)
            self._record(FAILED_FINDING, f"cannot update the address-group mirrors: {exc}")
            self._failed_recorded = True
            return None
        self.reconciliations += 1
        if report.actions:
            LOG.info(
                "regionmesh mirrors: %s",
                "; ".join(str(a) for a in report.actions),
            )
        for action, reason in report.failed:
            LOG.warning("regionmesh mirrors: %s refused: %s", action, reason)
        if report.failed:
            self._record(
                FAILED_FINDING,
                "address-group mirror changes refused by Neutron: "
                + "; ".join(f"{a}: {r}" for a, r in report.failed),
            )
            self._failed_recorded = True
        elif self._failed_recorded:
            self._forget(FAILED_FINDING)
            self._failed_recorded = False
        self._write_status(report)
        if self.on_reconciled is not None:
            self.on_reconciled(report)
        return report

    def _write_status(self, report: MirrorReport) -> None:
        doc = {
            "region": self.region,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "unix_time": time.time(),
            "revision": self.view.revision,
            "mirrors": report.mirrors,
            "ok": report.ok,
            "regions": None if self.regions is None else sorted(self.regions),
            "interval": self.interval,
        }
        try:
            self.ds.put(status_key(self.region), json.dumps(doc).encode())
        except DatastoreError:
            LOG.warning("regionmesh mirrors: cannot write the mirror status", exc_info=True)

    def _finding_key(self, kind: str) -> str:
        return keys.finding_key(self.region, kind, region_string(self.region))

    def _record(self, kind: str, message: str, **details: object) -> None:
        doc = {
            "kind": kind,
            "subject": region_string(self.region),
            "region": self.region,
            "message": message,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "unix_time": time.time(),
            **details,
        }
        try:
            self.ds.put(self._finding_key(kind), json.dumps(doc).encode())
        except DatastoreError:
            LOG.warning("regionmesh mirrors: cannot record finding %s", kind, exc_info=True)

    def _forget(self, kind: str) -> None:
        try:
            self.ds.delete(self._finding_key(kind))
        except DatastoreError:
            pass

    # ------------------------------------------------------------------ the loop

    def _snapshot(self) -> int:
        listed = load_view(self.ds)
        self.view = listed
        return listed.revision

    def _went_stale(self, exc: Exception, *, quiet: bool = False) -> None:
        if self._stale_since is None:
            self._stale_since = time.time()
            if quiet:
                return
            LOG.error(
                "regionmesh mirrors: the datastore cannot be read (%s); the mirrors keep "
                "their last addresses until it answers again",
                exc,
            )

    def _fresh_again(self) -> None:
        if self._stale_since is None:
            return
        since = self._stale_since
        self._stale_since = None
        seconds = time.time() - since
        self._record(
            STALE_FINDING,
            f"the address-group mirrors of region {self.region} were stale for "
            f"{seconds:.0f} s (the datastore could not be read since "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since))}); they kept their "
            "last addresses and are current again",
            stale_seconds=round(seconds, 1),
        )

    def run(self) -> None:
        """Snapshot, reconcile, then watch and reconcile on change, until :meth:`stop`.

        Two watches (WorkloadEndpoints and NetworkPolicies of every namespace: what the
        region's etcd role may read) feed one queue, each from its own thread."""
        while not self._stop.is_set():
            watches: list[Watch] = []
            try:
                revision = self._snapshot()
                self._fresh_again()
                self.reconcile_now()
                last = time.monotonic()
                events: queue.Queue[list[WatchEvent] | Exception] = queue.Queue()
                for plural in (_WEP_PLURAL, _NP_PLURAL):
                    watch = self.ds.watch(keys.resource_prefix(plural), start_revision=revision + 1)
                    watches.append(watch)
                    threading.Thread(
                        target=_pump, args=(watch, events), name="regionmesh-mirrors-watch",
                        daemon=True,
                    ).start()  # fmt: skip
                self._watches = watches
                while not self._stop.is_set():
                    dirty = self._absorb(_next(events, min(self.interval, 1.0)))
                    if dirty:  # debounce a burst
                        deadline = time.monotonic() + DEBOUNCE
                        while (left := deadline - time.monotonic()) > 0:
                            more = _next(events, left)
                            if not more:
                                break
                            self._absorb(more)
                    if dirty or time.monotonic() - last >= self.interval:
                        self.reconcile_now()
                        last = time.monotonic()
            except Compacted:
                LOG.info("regionmesh mirrors: watch compacted; re-listing")
            except PermissionDenied as exc:
                message = (
                    f"the address-group mirrors cannot read the other regions' endpoints: "
                    f"{exc}. With etcd authentication, re-run `regionmesh etcd-auth apply "
                    f"--address-group-mirrors …` (or set [calico] address_group_mirrors = false)"
                )
                if self._stale_since is None:
                    LOG.error("regionmesh mirrors: %s", message)
                    self._record(NOT_PERMITTED_FINDING, message)
                self._went_stale(exc, quiet=True)
                self._stop.wait(PERMISSION_RETRY)
            except DatastoreError as exc:
                self._went_stale(exc)
                self._stop.wait(self.retry)
            finally:
                for watch in watches:
                    watch.close()
                self._watches = []

    def _absorb(self, batch: list[WatchEvent]) -> bool:
        """Apply a batch; True when it changed another mirrored region's facts."""
        dirty = False
        for event in batch:
            self.view.revision = max(self.view.revision, event.mod_revision)
            value = None if event.type == EventType.DELETE else event.value
            if self.view.apply(event.key, value):
                parsed = keys.parse_resource_key(event.key)
                region = region_of_namespace(parsed[1] or "") if parsed else None
                if region is not None and region_mirrored(region, self.region, self.regions):
                    dirty = True
        return dirty

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="regionmesh-mirrors", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        self._stop.set()
        for watch in list(self._watches):
            watch.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
