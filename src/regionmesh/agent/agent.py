"""The per-host agent runtime (Felix's daemon loop): config → datastore → calc graph → dataplane.

Start-up (:func:`start`): the file and ``FELIX_*`` sources are merged first, so an invalid
``OpenstackRegion`` (or ``DatastoreType``) stops the agent before it opens anything; then the
datastore is chosen (:func:`datastore_config`), FelixConfiguration ``default`` and
``node.<hostname>`` are read and everything is merged again with Felix's precedence
(:mod:`regionmesh.agent.config`).

The :class:`Agent` loop, single-threaded:

* :class:`~regionmesh.agent.syncer.ResourceSyncer` lists the resource tree once and watches it;
  each batch goes into the :class:`~regionmesh.agent.graph.CalcGraph`, batches arriving within
  ``apply_interval`` are coalesced, and then ONE dataplane apply runs (``graph.flush()`` →
  ``dataplane.on_update`` → ``dataplane.apply()``).
* Restart safety: the dataplane is told ``InSync`` only after the first complete list has gone
  through the graph, and its first apply replaces the whole table atomically; nothing is
  removed before that.
* Fail-safe: when the datastore is unreachable the programmed ruleset stays as it is, listing is
  retried with exponential backoff (0.5 s … 10 s), and heartbeats resume as soon as writes work
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

import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

from regionmesh.agent.config import AgentConfig, load_local, merge
from regionmesh.agent.graph import CalcGraph, ResourceUpdate
from regionmesh.agent.status import EndpointRef, EndpointStatusReporter, HeartbeatReporter
from regionmesh.agent.syncer import ResourceSyncer, decode_value
from regionmesh.dataplane.api import Dataplane
from regionmesh.dataplane.messages import EndpointToHostAction, HostConfig, Message
from regionmesh.datastore import DatastoreConfig, keys, open_datastore, resolve_config
from regionmesh.datastore.api import Datastore
from regionmesh.datastore.config import ENV_URL
from regionmesh.errors import ConfigError, DataplaneError, DatastoreError, RegionmeshError
from regionmesh.model import (
    ClusterInformation,
    FelixConfiguration,
    kind_info,
)

LOG = logging.getLogger(__name__)

RESTART = 129
"""Felix's exit code for "configuration changed, restart me"."""
APPLY_INTERVAL = 0.1
"""Minimum seconds between two dataplane applies (updates arriving meanwhile are batched)."""
INTERFACE_POLL = 1.0
BACKOFF_MIN = 0.5
BACKOFF_MAX = 10.0
FELIX_CONFIG_KIND = "FelixConfiguration"
CLUSTER_INFO_KIND = "ClusterInformation"
_ETCD_PARAMS = (
    "DatastoreType",
    "EtcdEndpoints",
    "EtcdAddr",
    "EtcdScheme",
    "EtcdCaFile",
    "EtcdCertFile",
    "EtcdKeyFile",
)


# --------------------------------------------------------------------------- configuration


def datastore_config(
    config: AgentConfig, url: str | None = None, env: Mapping[str, str] = os.environ
) -> DatastoreConfig:
    """Which store the agent uses, first match wins.

    ``url`` (``--datastore``), ``$REGIONMESH_DATASTORE``, Felix's own ``DatastoreType`` /
    ``EtcdEndpoints`` (or ``EtcdScheme`` + ``EtcdAddr``) / ``Etcd{Ca,Cert,Key}File`` from the
    config file or ``FELIX_*`` (credentials, as in Felix, only from ``ETCD_USERNAME`` /
    ``ETCD_PASSWORD``, ``CALICO_``-prefixed first), Calico's ``DATASTORE_TYPE`` / ``ETCD_*``
    environment, then
    regionmesh's usual defaults (calicoctl.cfg, else the embedded store).
    """
    if url or env.get(ENV_URL):
        return resolve_config(url=url, env=env)
    felix_set = [p for p in _ETCD_PARAMS if p in config.sources]
    if not felix_set:
        return resolve_config(env=env)
    endpoints = config.etcd_endpoints or f"{config.etcd_scheme}://{config.etcd_addr}"
    where = ", ".join(f"{p} from {config.sources[p]}" for p in felix_set)
    try:
        base = resolve_config(url=endpoints, env={})
    except ConfigError as exc:
        raise ConfigError(f"invalid etcd endpoints {endpoints!r} ({where}): {exc}") from exc
    ca, cert, key = (
        config.etcd_ca_file or None,
        config.etcd_cert_file or None,
        config.etcd_key_file or None,
    )
    for param, path in (("EtcdCaFile", ca), ("EtcdCertFile", cert), ("EtcdKeyFile", key)):
        if path and not os.path.isfile(path):
            raise ConfigError(f"invalid value {path!r} for {param}: the file does not exist")
    if bool(cert) != bool(key):
        raise ConfigError("EtcdCertFile and EtcdKeyFile must be set together")
    # Felix takes etcd credentials only from libcalico-go's environment, never felix.cfg
    username = env.get("CALICO_ETCD_USERNAME") or env.get("ETCD_USERNAME") or None
    password = env.get("CALICO_ETCD_PASSWORD") or env.get("ETCD_PASSWORD") or None
    return replace(
        base,
        source=f"Felix configuration ({where})",
        ca_cert_file=ca,
        cert_file=cert,
        key_file=key,
        username=username,
        password=password,
    )


def felix_configuration_sources(
    store: Datastore, hostname: str
) -> list[tuple[str, dict[str, str]]]:
    """FelixConfiguration ``default`` and ``node.<hostname>`` as raw sources (lowest first)."""
    out: list[tuple[str, dict[str, str]]] = []
    for name in ("default", f"node.{hostname}"):
        kv = store.get(keys.resource_key(kind_info(FelixConfiguration.KIND).plural, name))
        if kv is None:
            continue
        resource = decode_value(FELIX_CONFIG_KIND, kv.key, kv.value, kv.mod_revision)
        if isinstance(resource, FelixConfiguration):
            out.append((f"FelixConfiguration {name}", _felix_raw(resource)))
    return out


def _felix_raw(resource: FelixConfiguration) -> dict[str, str]:
    return {k.lower(): v for k, v in resource.spec.felix_parameters().items()}


def full_config(
    local: list[tuple[str, dict[str, str]]], datastore: list[tuple[str, dict[str, str]]]
) -> AgentConfig:
    """defaults < FelixConfiguration default < node.<host> < file < environment."""
    sources: list[tuple[str, Mapping[str, str]]] = [*datastore, *local]
    return merge(sources)


def _comparable(config: AgentConfig) -> tuple[object, ...]:
    return tuple(getattr(config, f.name) for f in fields(config) if f.name != "sources")


def host_config(config: AgentConfig) -> HostConfig:
    """The dataplane's view of the config; ConfigError names the parameter that does not fit."""
    addr: str | None = config.metadata_addr or None
    if addr is not None:
        try:
            ipaddress.IPv4Address(addr)
        except ValueError:
            try:
                addr = socket.gethostbyname(addr)
            except OSError as exc:
                raise ConfigError(
                    f"invalid value {config.metadata_addr!r} for MetadataAddr: must be an IPv4 "
                    f"address, a resolvable host name or 'none' ({exc})"
                ) from exc
    prefixes = tuple(p for p in config.interface_prefixes if p)
    bad = [p for p in prefixes if not (p.isascii() and p.isalnum())]
    if bad or not prefixes:
        raise ConfigError(
            f"invalid value {','.join(config.interface_prefixes)!r} for InterfacePrefix: must be "
            "a comma-separated list of alphanumeric interface name prefixes"
        )
    port = config.metadata_port or 8775
    return HostConfig(
        interface_prefixes=prefixes,
        default_endpoint_to_host_action=EndpointToHostAction(
            config.default_endpoint_to_host_action
        ),
        metadata_addr=addr,
        metadata_port=port,
        ipv6_enabled=config.ipv6_support,
    )


# --------------------------------------------------------------------------- interfaces

IFF_UP = 0x1
IFF_RUNNING = 0x40


def interface_is_up(name: str) -> bool:
    """Oper-up as Felix's interface monitor sees it (``up``, or ``unknown`` with UP|RUNNING)."""
    base = f"/sys/class/net/{name}"
    try:
        with open(f"{base}/operstate", encoding="ascii") as f:
            state = f.read().strip()
        if state == "up":
            return True
        if state == "unknown":
            with open(f"{base}/flags", encoding="ascii") as f:
                flags = int(f.read().strip(), 16)
            return flags & (IFF_UP | IFF_RUNNING) == IFF_UP | IFF_RUNNING
    except (OSError, ValueError):
        return False
    return False


# --------------------------------------------------------------------------- the agent


@dataclass
class _Backoff:
    low: float = BACKOFF_MIN
    high: float = BACKOFF_MAX
    current: float = 0.0

    def next(self) -> float:
        self.current = self.low if self.current == 0 else min(self.high, self.current * 2)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


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
        self.syncer = ResourceSyncer(store)
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
        self._apply_backoff = _Backoff()
        self._next_apply_retry = 0.0
        self._list_backoff = _Backoff()
        self._next_list = 0.0
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
            (f"FelixConfiguration {name}", _felix_raw(self.felix_configs[name]))
            for name in ("default", f"node.{self.hostname}")
            if name in self.felix_configs
        ]
        try:
            new = full_config(self.local_sources, datastore)
        except ConfigError as exc:
            LOG.error("New datastore configuration is invalid, keeping the old one: %s", exc)
            return
        if _comparable(new) != _comparable(self.config):
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
            self._next_list = now + self._list_backoff.next()
            LOG.warning(
                "Cannot list the datastore (retrying in %.1fs; dataplane left as programmed): %s",
                self._list_backoff.current,
                exc,
            )
            return False
        self._list_backoff.reset()
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
            waits.append(max(0.0, self._next_list - now))
        return max(0.01, min(waits))

    def run(self, stop: threading.Event | None = None) -> int:
        """Watch and apply until ``stop`` is set (returns 0) or a restart is needed (RESTART)."""
        stop = stop or threading.Event()
        try:
            while not stop.is_set():
                now = self.clock()
                if not self.syncer.watching and now >= self._next_list:
                    self._list(now)
                if self.restart_reason:
                    return RESTART
                if self.syncer.watching:
                    try:
                        updates = self.syncer.poll(self._wait_budget(now))
                    except DatastoreError as exc:
                        self.stats.list_failures += 1
                        self._next_list = self.clock() + self._list_backoff.next()
                        LOG.warning(
                            "Lost the datastore watch (re-listing in %.1fs; dataplane left as "
                            "programmed): %s",
                            self._list_backoff.current,
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


# --------------------------------------------------------------------------- start-up


@dataclass
class StartedAgent:
    """What :func:`start` produced: the agent and the store it owns."""

    agent: Agent
    store: Datastore

    def close(self) -> None:
        """Close the datastore."""
        self.store.close()


def load_agent_config(
    config_file: str | None, env: Mapping[str, str]
) -> tuple[AgentConfig, list[tuple[str, dict[str, str]]]]:
    """Merge only the local sources (file + environment): validates them before any I/O."""
    local = load_local(config_file, env)
    return merge(list[tuple[str, Mapping[str, str]]](local)), local


def start(
    config_file: str | None,
    *,
    url: str | None = None,
    env: Mapping[str, str] = os.environ,
    dataplane_factory: Callable[[AgentConfig], Dataplane],
    store: Datastore | None = None,
    iface_up: Callable[[str], bool] = interface_is_up,
    start_time: float | None = None,
) -> StartedAgent:
    """Build an Agent: local config, datastore, datastore config, dataplane — in that order.

    Raises :class:`ConfigError` (bad parameter) or a datastore error (cannot read the
    FelixConfigurations); nothing has been programmed when it raises.
    """
    local_config, local = load_agent_config(config_file, env)
    own_store = store is None
    if store is None:
        dsconfig = datastore_config(local_config, url, env)
        LOG.info("Using %s", dsconfig.describe())
        store = open_datastore(dsconfig)
    try:
        datastore_sources = felix_configuration_sources(store, local_config.hostname)
        config = full_config(local, datastore_sources)
        agent = Agent(
            config,
            store,
            dataplane_factory(config),
            local_sources=local,
            iface_up=iface_up,
            start_time=start_time,
        )
    except (RegionmeshError, OSError):
        if own_store:
            store.close()
        raise
    return StartedAgent(agent, store)
