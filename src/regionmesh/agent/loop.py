"""The per-host agent's main loop (Felix's daemon loop): datastore → calc graph → dataplane.

Building an :class:`Agent` (config, datastore, dataplane, in that order) is
:mod:`regionmesh.agent.startup`'s job. The :class:`Agent` loop, single-threaded:

* :class:`~regionmesh.agent.syncer.ResourceSyncer` lists the resource tree once and watches it;
  each batch goes into the :class:`~regionmesh.agent.graph.CalcGraph`, batches arriving within
  ``apply_interval`` are coalesced, and then ONE dataplane apply runs (``graph.flush()`` →
  ``dataplane.on_update`` → ``dataplane.apply()``).
* Restart safety: the dataplane is told ``InSync`` only after the first complete list has gone
  through the graph, and its first apply replaces the whole table atomically; nothing is
  removed before that.
* Fail-safe: when the datastore is unreachable the programmed ruleset stays as it is, listing is
  retried with the mirror's exponential backoff (0.5 s … 10 s), and heartbeats resume as soon as writes work
  again. A compacted watch is re-listed and diffed (deletes for vanished keys). A failed
  dataplane transaction is retried with backoff (the driver then rewrites the whole table).
* ``ClusterInformation/default`` with ``datastoreReady: false`` holds programming (the kernel
  keeps what it has) until it turns true. Unlike Felix, an *absent* ClusterInformation does not
  block (a lone agent on the embedded store has nobody to write it); data that is missing
  still never opens traffic, because unknown interfaces are dropped by the dataplane.
* Timers: heartbeat every ``ReportingIntervalSecs``, endpoint status (rate-limited), a cheap
  apply every second so routes of taps that appear late get programmed, and a full dataplane
  resync every ``min(NftablesRefreshInterval, RouteRefreshInterval)``.
* A change of FelixConfiguration ``default`` / ``node.<hostname>`` that changes the merged
  config makes :meth:`Agent.run` return :data:`RESTART` (Felix exits for its supervisor to
  restart it); the CLI then starts a fresh Agent in-process, whose first apply again replaces
  the table atomically.

What is programmed is the graph's and the dataplane's business; this module only sequences.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from regionmesh.agent.felix_settings import (
    AgentConfig,
    comparable,
    felix_raw,
    full_config,
    host_config,
)
from regionmesh.agent.graph import CalcGraph, ResourceUpdate
from regionmesh.agent.status import EndpointRef, EndpointStatusReporter, HeartbeatReporter
from regionmesh.agent.syncer import ResourceSyncer
from regionmesh.backoff import Backoff
from regionmesh.dataplane.api import Dataplane
from regionmesh.dataplane.links import interface_is_up
from regionmesh.dataplane.messages import Message
from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore
from regionmesh.errors import ConfigError, DataplaneError, DatastoreError, RegionmeshError
from regionmesh.model import ClusterInformation, FelixConfiguration

LOG = logging.getLogger(__name__)

__all__ = ["APPLY_INTERVAL", "RESTART", "Agent", "AgentStats"]

RESTART = 129
"""Felix's exit code for "configuration changed, restart me"."""
APPLY_INTERVAL = 0.1
"""Minimum seconds between two dataplane applies (updates arriving meanwhile are batched)."""
INTERFACE_POLL = 1.0
BACKOFF_MIN = 0.5
BACKOFF_MAX = 10.0
FELIX_CONFIG_KIND = "FelixConfiguration"
CLUSTER_INFO_KIND = "ClusterInformation"


@dataclass
class AgentStats:
    """Counters for logs and tests."""

    applies: int = 0
    apply_failures: int = 0
    list_failures: int = 0
    updates: int = 0
    last_apply_seconds: float = 0.0
    in_sync_at: float | None = None


class Agent:
    """One host's agent: feed the graph from the datastore, program the dataplane, report."""

    def __init__(
        self,
        config: AgentConfig,
        store: Datastore,
        dataplane: Dataplane,
        *,
        local_sources: list[tuple[str, dict[str, str]]] | None = None,
        iface_up: Callable[[str], bool] = interface_is_up,
        clock: Callable[[], float] = time.monotonic,
        start_time: float | None = None,
        apply_interval: float = APPLY_INTERVAL,
    ) -> None:
        self.config = config
        self.store = store
        self.dataplane = dataplane
        self.local_sources = local_sources or []
        self.iface_up = iface_up
        self.clock = clock
        self.apply_interval = apply_interval
        self.hostname = config.hostname
        self.region = config.region
        self.host_config = host_config(config)
        self.graph = CalcGraph(hostname=self.hostname, host_config=self.host_config)
        self.syncer = ResourceSyncer(store, clock=clock)
        self.heartbeat = HeartbeatReporter(
            store,
            hostname=self.hostname,
            region=self.region,
            interval=config.reporting_interval,
            ttl=config.reporting_ttl,
            start_time=start_time,
            clock=clock,
        )
        self.endpoint_status: EndpointStatusReporter | None = None
        if config.endpoint_reporting_enabled:
            self.endpoint_status = EndpointStatusReporter(
                store,
                hostname=self.hostname,
                region=self.region,
                delay=config.endpoint_reporting_delay,
                clock=clock,
            )
        self.stats = AgentStats()
        self.in_sync = False
        self.restart_reason: str | None = None
        self.cluster_ready: bool | None = None  # None: no ClusterInformation/default seen
        self.felix_configs: dict[str, FelixConfiguration] = {}
        self._dirty = False
        self._apply_ok = False
        self._last_apply = -1e9
        self._apply_backoff = Backoff(BACKOFF_MIN, BACKOFF_MAX)
        self._next_apply_retry = 0.0
        self._next_iface_poll = 0.0
        refresh = min(config.nft_refresh_interval, config.route_refresh_interval)
        self.resync_interval = refresh if refresh > 0 else None
        self._next_resync = clock() + refresh if refresh > 0 else None

    # -------------------------------------------------------------------- feeding ----
    def _feed(self, updates: list[ResourceUpdate]) -> None:
        graph_updates: list[ResourceUpdate] = []
        for upd in updates:
            if upd.kind == FELIX_CONFIG_KIND:
                self._on_felix_configuration(upd)
            elif upd.kind == CLUSTER_INFO_KIND:
                if upd.name == "default":
                    value = upd.value
                    ready = (
                        value.spec.datastore_ready
                        if isinstance(value, ClusterInformation)
                        else None
                    )
                    self.cluster_ready = None if value is None else ready is not False
            else:
                graph_updates.append(upd)
        if graph_updates:
            self.graph.on_updates(graph_updates)
            self.stats.updates += len(graph_updates)
            self._dirty = True

    def _on_felix_configuration(self, upd: ResourceUpdate) -> None:
        if upd.name not in ("default", f"node.{self.hostname}"):
            return
        if isinstance(upd.value, FelixConfiguration):
            self.felix_configs[upd.name] = upd.value
        else:
            self.felix_configs.pop(upd.name, None)
        if not self.in_sync:
            return  # the start-up read already covered the snapshot; compare once in sync
        self._check_config()

    def _check_config(self) -> None:
        datastore = [
            (f"FelixConfiguration {name}", felix_raw(self.felix_configs[name]))
            for name in ("default", f"node.{self.hostname}")
            if name in self.felix_configs
        ]
        try:
            new = full_config(self.local_sources, datastore)
        except ConfigError as exc:
            LOG.error("New datastore configuration is invalid, keeping the old one: %s", exc)
            return
        if comparable(new) != comparable(self.config):
            self.restart_reason = "FelixConfiguration changed"
            LOG.warning("Configuration changed in the datastore: restarting the agent")

    # -------------------------------------------------------------------- applying ----
    def _send(self, messages: list[Message]) -> None:
        for msg in messages:
            self.dataplane.on_update(msg)

    def _mark_in_sync(self) -> None:
        if self.in_sync:
            return
        self.in_sync = True
        self.graph.in_sync()
        self.stats.in_sync_at = self.clock()
        self._check_config()
        LOG.info("Datastore in sync (revision %d)", self.syncer.revision)

    def apply(self, now: float | None = None) -> bool:
        """Flush the graph into the dataplane and apply; False (logged) if the kernel refused."""
        try:
            return self.apply_or_raise(now)
        except DataplaneError:
            return False

    def apply_or_raise(self, now: float | None = None) -> bool:
        """:meth:`apply`, but the kernel's DataplaneError (logged, retry scheduled) propagates
        so a caller that must succeed (``--once``) chains the real cause. False when not in
        sync or the cluster is not ready (nothing to program yet)."""
        now = self.clock() if now is None else now
        if not self.in_sync or self.cluster_ready is False:
            return False
        started = time.monotonic()
        messages = self.graph.flush()
        self._send(messages)
        try:
            self.dataplane.apply()
        except DataplaneError as exc:
            self.stats.apply_failures += 1
            self._next_apply_retry = now + self._apply_backoff.next()
            LOG.error(
                "Dataplane apply failed (retrying in %.1fs): %s", self._apply_backoff.current, exc
            )
            self._dirty = True
            raise
        self.stats.last_apply_seconds = time.monotonic() - started
        self.stats.applies += 1
        if messages or self.stats.applies == 1:
            LOG.log(
                logging.INFO if self.stats.applies == 1 else logging.DEBUG,
                "Applied %d message(s) in %.3fs (apply #%d)",
                len(messages),
                self.stats.last_apply_seconds,
                self.stats.applies,
            )
        self._apply_backoff.reset()
        self._dirty = False
        self._apply_ok = True
        self._last_apply = now
        self._update_endpoint_status()
        return True

    def _update_endpoint_status(self) -> None:
        if self.endpoint_status is None:
            return
        desired: dict[EndpointRef, str] = {}
        for endpoint_id in sorted(self.graph.local_endpoint_ids()):
            wep = self.graph.local_endpoint(endpoint_id)
            if wep is None:
                continue
            namespace = wep.metadata.namespace
            spec = wep.spec
            if not spec.endpoint:
                continue
            workload = keys.workload_id(namespace, spec.workload_or_pod)
            up = self._apply_ok and bool(spec.interface_name) and self.iface_up(spec.interface_name)
            ref = EndpointRef(
                spec.orchestrator or keys.DEFAULT_ORCHESTRATOR, workload, spec.endpoint
            )
            desired[ref] = "up" if up else "down"
        self.endpoint_status.set_desired(desired)

    # -------------------------------------------------------------------- syncing ----
    def _list(self, now: float) -> bool:
        try:
            updates = self.syncer.resync()
        except DatastoreError as exc:
            self.stats.list_failures += 1
            LOG.warning(
                "Cannot list the datastore (retrying in %.1fs; dataplane left as programmed): %s",
                self.syncer.retry_delay,
                exc,
            )
            return False
        self._feed(updates)
        self._mark_in_sync()
        self._dirty = True
        return True

    def sync_once(self) -> None:
        """List everything, feed the graph and program the dataplane (raises on failure)."""
        updates = self.syncer.resync()
        self._feed(updates)
        self._mark_in_sync()
        if self.cluster_ready is False:
            raise ConfigError(
                "ClusterInformation default has datastoreReady: false; not programming"
            )
        try:
            applied = self.apply_or_raise()
        except DataplaneError as exc:
            raise DataplaneError(f"the dataplane apply failed: {exc}") from exc
        if not applied:
            raise RegionmeshError("the datastore is not in sync; nothing was programmed")

    def run_once(self) -> None:
        """``--once``: sync, program, write the heartbeat and endpoint statuses, return."""
        try:
            self.sync_once()
            if self.heartbeat.next_due is not None:
                try:
                    self.heartbeat.write()
                except DatastoreError as exc:
                    raise DatastoreError(f"could not write the status report: {exc}") from exc
            if self.endpoint_status is not None:
                self.endpoint_status.delay = 0.0
                self.endpoint_status.step()
                if self.endpoint_status.pending():
                    raise DatastoreError("could not write every endpoint status")
        finally:
            self.syncer.close()

    def _timers(self, now: float) -> None:
        self.heartbeat.maybe_report(now)
        if self.in_sync and self._apply_ok and now >= self._next_iface_poll:
            self._next_iface_poll = now + INTERFACE_POLL
            if not self._dirty:
                self.apply(now)  # cheap: programs routes of taps that appeared, refreshes status
        if self.endpoint_status is not None and self._apply_ok:
            self.endpoint_status.step(now)
        if (
            self._next_resync is not None
            and self.resync_interval is not None
            and now >= self._next_resync
            and self._apply_ok
        ):
            self._next_resync = now + self.resync_interval
            try:
                if self.dataplane.resync():
                    LOG.warning("Dataplane drift repaired")
            except DataplaneError as exc:
                LOG.error("Dataplane resync failed: %s", exc)
                self._dirty = True

    def _wait_budget(self, now: float) -> float:
        waits = [INTERFACE_POLL]
        hb = self.heartbeat.seconds_until_due(now)
        if hb is not None:
            waits.append(hb)
        if self.endpoint_status is not None and self._apply_ok:
            es = self.endpoint_status.seconds_until_due(now)
            if es is not None:
                waits.append(es)
        if self._dirty and self.in_sync:
            waits.append(
                max(0.0, max(self._next_apply_retry, self._last_apply + self.apply_interval) - now)
            )
        if not self.syncer.watching:
            waits.append(max(0.0, self.syncer.next_attempt - now))
        return max(0.01, min(waits))

    def run(self, stop: threading.Event | None = None) -> int:
        """Watch and apply until ``stop`` is set (returns 0) or a restart is needed (RESTART)."""
        stop = stop or threading.Event()
        try:
            while not stop.is_set():
                now = self.clock()
                if not self.syncer.watching and now >= self.syncer.next_attempt:
                    self._list(now)
                if self.restart_reason:
                    return RESTART
                if self.syncer.watching:
                    try:
                        updates = self.syncer.poll(self._wait_budget(now))
                    except DatastoreError as exc:
                        self.stats.list_failures += 1
                        LOG.warning(
                            "Lost the datastore watch (re-listing in %.1fs; dataplane left as "
                            "programmed): %s",
                            self.syncer.retry_delay,
                            exc,
                        )
                        updates = []
                    if updates:
                        self._feed(updates)
                else:
                    stop.wait(self._wait_budget(now))
                if self.restart_reason:
                    return RESTART
                now = self.clock()
                if (
                    self._dirty
                    and self.in_sync
                    and now >= self._next_apply_retry
                    and now >= self._last_apply + self.apply_interval
                ):
                    self.apply(now)
                self._timers(self.clock())
            return 0
        finally:
            self.syncer.close()
