"""The ``regionmesh bgp`` process: register this host's Node, keep BIRD configured and alive.

Start-up (:func:`start`), in this order, so nothing is written when something is wrong:

1. felix.cfg + ``FELIX_*`` are merged by the agent's own loader
   (:func:`regionmesh.agent.agent.load_agent_config`): an invalid ``OpenstackRegion`` stops
   ``regionmesh bgp`` with exactly the agent's message. The datastore is chosen as the agent
   chooses it, and FelixConfiguration ``default`` / ``node.<host>`` give ``InterfacePrefix`` and
   ``DeviceRouteProtocol`` (which routes are the agent's workload routes).
2. :func:`register_node`: the ``Node`` named ``FelixHostname`` gets ``spec.bgp.ipv4Address`` /
   ``ipv6Address`` (and ``asNumber`` with ``--as``); labels, ``routeReflectorClusterID`` and
   every other field an operator set are kept. Another Node claiming one of the addresses is a
   :class:`~regionmesh.errors.ConfigError` naming it.

The loop (:class:`BGPDaemon`, single-threaded): one
:class:`~regionmesh.agent.syncer.ResourceSyncer` per kind (nodes, bgpconfigurations, bgppeers)
lists and watches; after each batch the BIRD configuration is recomputed
(:mod:`.peers`, :mod:`.render`) and, when the text changed, written atomically, checked with
``bird -p``, loaded with ``configure`` (no restart) and verified: ``show protocols`` must list
exactly the rendered sessions. BIRD is supervised: when it exits it is restarted with
graceful-restart recovery after a backoff (0.5 s doubling to 10 s). When the datastore is
unreachable BIRD keeps its last configuration (routes stay) and listing is retried with
backoff. On stop (SIGTERM) BIRD is stopped — it sends its peers a Cease, so they withdraw this
host's routes at once, and removes the routes it installed — and the Node is kept (as Calico).

Programming VM routes is the agent's job; BIRD itself speaks BGP.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from regionmesh.agent.agent import (
    datastore_config,
    felix_configuration_sources,
    full_config,
    load_agent_config,
)
from regionmesh.agent.config import AgentConfig
from regionmesh.agent.syncer import ResourceSyncer
from regionmesh.agent.updates import ResourceUpdate
from regionmesh.bgp.bird import BirdProcess, RunDir, check_config, write_atomically
from regionmesh.bgp.peers import BGPSettings, NodeBGP, Peering, PeerSpec, compute_peerings
from regionmesh.bgp.render import BirdInputs, render
from regionmesh.datastore import keys, open_datastore
from regionmesh.datastore.api import Datastore
from regionmesh.datastore.resources import ResourceClient
from regionmesh.errors import (
    ConfigError,
    DatastoreError,
    RevisionConflict,
    RoutingError,
)
from regionmesh.model import codec
from regionmesh.model.bgp import BGPConfiguration, BGPPeer, Node, bgp_settings

LOG = logging.getLogger(__name__)

KINDS = {"Node": "nodes", "BGPConfiguration": "bgpconfigurations", "BGPPeer": "bgppeers"}
BACKOFF_MIN = 0.5
BACKOFF_MAX = 10.0
POLL = 0.5
MAX_SOCKET_PATH = 107
"""Longest unix socket path Linux accepts (``sun_path`` is 108 bytes with the NUL)."""


@dataclass(frozen=True, slots=True)
class Options:
    """The command line of ``regionmesh bgp``."""

    config_file: str | None
    address: str | None  # CIDR
    address6: str | None  # CIDR
    asn: int | None = None
    run_dir: str = "/var/run/calico"
    url: str | None = None
    bird: str = "bird"


def _cidr(text: str | None, option: str, version: int) -> str | None:
    if not text:
        return None
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError as exc:
        raise ConfigError(f"invalid {option} {text!r}: must be an address in CIDR form") from exc
    if iface.version != version or "/" not in text:
        raise ConfigError(
            f"invalid {option} {text!r}: must be an IPv{version} address in CIDR form "
            f"(e.g. {'10.0.0.1/24' if version == 4 else 'fd00::1/64'})"
        )
    return str(iface)


def _bare(cidr: str) -> str:
    return str(ipaddress.ip_interface(cidr).ip)


# ------------------------------------------------------------------------- conversions


def node_facts(node: Node) -> NodeBGP:
    """A Node resource as :class:`NodeBGP`."""
    bgp = node.spec.bgp
    if bgp is None:
        return NodeBGP(node.metadata.name, labels=dict(node.metadata.labels))
    v4, v6 = bgp.ipv4_interface, bgp.ipv6_interface
    return NodeBGP(
        name=node.metadata.name,
        ipv4=str(v4) if v4 is not None else None,
        ipv6=str(v6) if v6 is not None else None,
        asn=bgp.as_number,
        rr_cluster_id=bgp.route_reflector_cluster_id or None,
        labels=dict(node.metadata.labels),
    )


def peer_spec(peer: BGPPeer) -> PeerSpec:
    """A BGPPeer resource as :class:`PeerSpec`."""
    s = peer.spec
    address = s.peer_address
    return PeerSpec(
        name=peer.metadata.name,
        node=s.node or None,
        node_selector=s.node_selector or None,
        peer_ip=address[0] if address else None,
        peer_selector=s.peer_selector or None,
        asn=s.as_number,
    )


# ------------------------------------------------------------------------- registration


def register_node(
    client: ResourceClient,
    name: str,
    ipv4: str | None,
    ipv6: str | None,
    asn: int | None = None,
    attempts: int = 5,
) -> Node:
    """Create or update the Node ``name`` with these addresses (see the module docstring)."""
    for _ in range(attempts):
        nodes = [n for n in client.list("Node").items if isinstance(n, Node)]
        mine = {4: _bare(ipv4) if ipv4 else None, 6: _bare(ipv6) if ipv6 else None}
        for other in nodes:
            if other.metadata.name == name:
                continue
            facts = node_facts(other)
            for family, field_name in ((4, "ipv4Address"), (6, "ipv6Address")):
                theirs = facts.address(family)
                if mine[family] is not None and theirs == mine[family]:
                    raise ConfigError(
                        f"Node {other.metadata.name} already claims address {theirs} "
                        f"(spec.bgp.{field_name}); refusing to register node {name} with it. "
                        f"Give this host its own address, or delete the stale Node with "
                        f"'calicoctl delete node {other.metadata.name}'"
                    )
        existing = next((n for n in nodes if n.metadata.name == name), None)
        if existing is not None:
            doc: dict[str, Any] = codec.to_output(existing)
        else:
            doc = {"apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": name}}
        spec = doc.setdefault("spec", {})
        bgp = spec.get("bgp") or {}
        bgp["ipv4Address"] = ipv4 or ""
        bgp["ipv6Address"] = ipv6 or ""
        if asn is not None:
            bgp["asNumber"] = asn
        spec["bgp"] = {k: v for k, v in bgp.items() if v not in ("", None)}
        resource = codec.decode(doc, where=f"Node {name}")
        try:
            if existing is None:
                created = client.create(resource)
                LOG.info("Registered Node %s (%s)", name, ", ".join(filter(None, (ipv4, ipv6))))
            elif codec.to_output(existing).get("spec") == doc["spec"]:
                return existing
            else:
                created = client.update(resource)
                LOG.info("Updated Node %s (%s)", name, ", ".join(filter(None, (ipv4, ipv6))))
        except RevisionConflict:
            continue
        except DatastoreError as exc:
            if existing is None and "already exists" in str(exc):
                continue
            raise
        assert isinstance(created, Node)
        return created
    raise RoutingError(f"cannot register Node {name}: it kept changing under us")


# ------------------------------------------------------------------------- the loop


@dataclass
class _Backoff:
    current: float = 0.0

    def next(self) -> float:
        self.current = BACKOFF_MIN if self.current == 0 else min(BACKOFF_MAX, self.current * 2)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


@dataclass
class DaemonStats:
    """Counters for tests and logs."""

    renders: int = 0
    reconfigures: int = 0
    bird_restarts: int = 0
    last_reconfigure_secs: float = 0.0


@dataclass
class BGPDaemon:
    """One host's BGP process (see the module docstring)."""

    config: AgentConfig
    store: Datastore
    local: NodeBGP
    bird: BirdProcess
    device_route_protocol: int = 3
    nodes: dict[str, Node] = field(default_factory=dict)
    bgp_configs: dict[str, BGPConfiguration] = field(default_factory=dict)
    bgp_peers: dict[str, BGPPeer] = field(default_factory=dict)
    stats: DaemonStats = field(default_factory=DaemonStats)

    def __post_init__(self) -> None:
        self.syncers = {
            kind: ResourceSyncer(self.store, prefix=keys.resource_prefix(plural))
            for kind, plural in KINDS.items()
        }
        self._text: str | None = None  # what BIRD has loaded
        self._peerings: list[Peering] = []
        self._list_backoff = _Backoff()
        self._next_list = 0.0
        self._bird_backoff = _Backoff()
        self._next_bird = 0.0
        self._synced = False
        self._ever_synced = False
        self._dirty = True

    # ---------------------------------------------------------------- desired state ----
    def _apply(self, updates: list[ResourceUpdate]) -> None:
        tables: Mapping[str, dict[str, Any]] = {
            "Node": self.nodes,
            "BGPConfiguration": self.bgp_configs,
            "BGPPeer": self.bgp_peers,
        }
        for upd in updates:
            table = tables.get(upd.kind)
            if table is None:
                continue
            if upd.value is None:
                table.pop(upd.name, None)
                if upd.kind == "Node" and upd.name == self.local.name:
                    LOG.warning(
                        "Node %s (this host) was deleted; peers no longer peer with it. "
                        "Restart regionmesh bgp to register it again",
                        upd.name,
                    )
            else:
                table[upd.name] = upd.value
                if upd.kind == "Node" and upd.name == self.local.name:
                    assert isinstance(upd.value, Node)
                    self.local = node_facts(upd.value)

    def settings(self) -> BGPSettings:
        """The effective BGPConfiguration for this node."""
        local_node = self.nodes.get(self.local.name)
        s = bgp_settings(
            local_node,
            self.bgp_configs.get("default"),
            self.bgp_configs.get(f"node.{self.local.name}"),
        )
        return BGPSettings(asn=s.as_number, mesh=s.node_to_node_mesh, listen_port=s.listen_port)

    def desired(self) -> tuple[str, list[Peering]]:
        """The configuration text BIRD should run, and its sessions."""
        settings = self.settings()
        nodes = [node_facts(n) for n in self.nodes.values()]
        peers = [peer_spec(p) for p in self.bgp_peers.values()]
        peerings = compute_peerings(self.local, nodes, settings, peers)
        text = render(
            BirdInputs(
                node=self.local.name,
                ipv4=self.local.address(4),
                ipv6=self.local.address(6),
                peerings=peerings,
                interface_prefixes=self.config.interface_prefixes,
                device_route_protocol=self.device_route_protocol,
                listen_port=settings.listen_port,
                rr_cluster_id=self.local.rr_cluster_id,
            )
        )
        self.stats.renders += 1
        return text, peerings

    # ---------------------------------------------------------------- BIRD ----
    def reconcile(self) -> bool:
        """Bring BIRD to the desired configuration; True when it runs it (verified)."""
        text, peerings = self.desired()
        run_dir = self.bird.run_dir
        if not self.bird.running():
            now = time.monotonic()
            if now < self._next_bird:
                return False
            restart = self.bird.starts > 0 or self._text is not None
            write_atomically(run_dir.config, text)
            check_config(run_dir.config, self.bird.bird)
            if restart:
                self.stats.bird_restarts += 1
                LOG.warning("BIRD is not running (exit status %s): restarting it",
                            self.bird.exit_status())  # fmt: skip
            try:
                self.bird.start(recovery=restart)
            except RoutingError as exc:
                delay = self._bird_backoff.next()
                self._next_bird = time.monotonic() + delay
                LOG.error("%s; retrying in %.1f s", exc, delay)
                return False
            self._bird_backoff.reset()
            self._text = None  # an adopted BIRD may run an older file: reload it below
        if text == self._text:
            return True
        started = time.monotonic()
        write_atomically(run_dir.config, text)
        check_config(run_dir.config, self.bird.bird)
        answer = self.bird.control.configure()
        self._verify(peerings)
        self._text, self._peerings = text, peerings
        self.stats.reconfigures += 1
        self.stats.last_reconfigure_secs = time.monotonic() - started
        LOG.info(
            "BIRD reconfigured (%s): %d session(s): %s",
            answer,
            len(peerings),
            ", ".join(p.name for p in peerings) or "none",
        )
        return True

    def _verify(self, peerings: list[Peering], timeout: float = 5.0) -> None:
        from regionmesh.bgp.status import parse_protocols, peer_type_of

        want = {p.name for p in peerings}
        deadline = time.monotonic() + timeout
        while True:
            protocols = parse_protocols(self.bird.control.command("show protocols"))
            have = {p.name for p in protocols if p.proto == "BGP" and peer_type_of(p.name)}
            if have == want:
                return
            if time.monotonic() > deadline:
                raise RoutingError(
                    f"BIRD runs sessions {sorted(have)} after reconfiguring, "
                    f"expected {sorted(want)}"
                )
            time.sleep(0.05)

    # ---------------------------------------------------------------- loop ----
    def _sync(self) -> bool:
        """List (first time / after an error) or poll every kind; True when something changed."""
        now = time.monotonic()
        if not self._synced:
            if now < self._next_list:
                return False
            try:
                for syncer in self.syncers.values():
                    self._apply(syncer.resync())
            except DatastoreError as exc:
                delay = self._list_backoff.next()
                self._next_list = now + delay
                LOG.warning("Cannot list BGP resources (%s); retrying in %.1f s", exc, delay)
                for syncer in self.syncers.values():
                    syncer.close()
                return False
            self._list_backoff.reset()
            self._synced = self._ever_synced = True
            return True
        changed = False
        try:
            for i, syncer in enumerate(self.syncers.values()):
                updates = syncer.poll(POLL if i == 0 else 0.0)
                if updates:
                    self._apply(updates)
                    changed = True
        except DatastoreError as exc:
            LOG.warning("Lost the datastore watch (%s); BIRD keeps its configuration", exc)
            self._synced = False
            self._next_list = time.monotonic() + self._list_backoff.next()
            for syncer in self.syncers.values():
                syncer.close()
        return changed

    def step(self) -> None:
        """One iteration: sync, then reconcile BIRD (from the last known state while the
        datastore is away)."""
        if self._sync():
            self._dirty = True
        if not self._ever_synced or not (self._dirty or not self.bird.running()):
            return  # nothing changed: no re-render (it costs ~0.2 s at 1,000 nodes)
        try:
            self._dirty = not self.reconcile()
        except RoutingError as exc:
            LOG.error("%s", exc)
            self._text = None
            self._dirty = True
            time.sleep(min(1.0, self._bird_backoff.next()))

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: sync and reconcile; then stop BIRD (the Node stays)."""
        try:
            while not stop.is_set():
                self.step()
                if not self._synced:
                    stop.wait(min(POLL, max(0.0, self._next_list - time.monotonic())))
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop BIRD (Cease to peers, installed routes removed) and the watches."""
        LOG.info("Stopping BIRD (the Node %s stays registered)", self.local.name)
        self.bird.stop()
        for syncer in self.syncers.values():
            syncer.close()


@dataclass
class Started:
    """What :func:`start` produced."""

    daemon: BGPDaemon
    store: Datastore

    def close(self) -> None:
        """Close the datastore."""
        self.store.close()


def start(options: Options, env: Mapping[str, str] = os.environ) -> Started:
    """Validate, open the datastore, register the Node; the daemon ready to :meth:`run`."""
    local_config, local = load_agent_config(options.config_file, env)
    ipv4 = _cidr(options.address, "--address", 4)
    ipv6 = _cidr(options.address6, "--address6", 6)
    if ipv4 is None and ipv6 is None:
        raise ConfigError("regionmesh bgp needs --address (IPv4 CIDR) and/or --address6")
    sock = RunDir(options.run_dir).socket
    if len(os.fsencode(os.path.abspath(sock))) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"--run-dir {options.run_dir!r} is too long: BIRD's control socket {sock} must be at "
            f"most {MAX_SOCKET_PATH} bytes (a unix socket path limit)"
        )
    if options.asn is not None and not 0 < options.asn < 2**32:
        raise ConfigError(f"invalid --as {options.asn}: must be 1-4294967295")
    dsconfig = datastore_config(local_config, options.url, env)
    LOG.info("Using %s", dsconfig.describe())
    store = open_datastore(dsconfig)
    try:
        config = full_config(local, felix_configuration_sources(store, local_config.hostname))
        protocol = config.device_route_protocol
        os.makedirs(options.run_dir, exist_ok=True)
        node = register_node(ResourceClient(store), config.hostname, ipv4, ipv6, options.asn)
        daemon = BGPDaemon(
            config=config,
            store=store,
            local=node_facts(node),
            bird=BirdProcess(RunDir(options.run_dir), options.bird),
            device_route_protocol=protocol,
        )
    except BaseException:
        store.close()
        raise
    return Started(daemon, store)
