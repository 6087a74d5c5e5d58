"""The region-aware DHCP agent of a compute host: what it serves, and the loop that keeps it so.

networking-calico's ``calico-dhcp-agent`` (openstack-driver.md §6.8), rebuilt. A compute host
serves DHCP to the VMs plugged into it, and to nothing else:

* it reads the WorkloadEndpoints of THIS host in ITS region's namespace only — the key prefix
  ``…/workloadendpoints/openstack-region-<r>/<host, '-' doubled>-openstack-`` — and re-checks
  namespace, ``spec.node`` and orchestrator of every endpoint it decodes
  (:func:`why_not_served`);
* subnets come from ``/calico/dhcp/v2/region-<r>/subnet/<id>`` (§1.3), falling back to the
  legacy ``/calico/dhcp/v1/subnet/<id>`` per address when the region has no match; the
  endpoint's ``openstack.projectcalico.org/network-id`` annotation picks the subnet when CIDRs
  repeat across networks (:class:`SubnetIndex`);
* ``allowedIps`` (allowed-address-pair addresses) are never given out;
* per Neutron network, one dnsmasq instance in Calico's routed mode: ``--dhcp-range=<net>,static``
  per subnet, requests arriving on any ``tap*`` are treated as arriving on the network's
  ``ns-<network id>`` alias interface, which carries the subnets' gateway addresses
  (networking-calico's DHCP port trick); host entries (MAC → IP, host name), router, DNS
  servers, classless static routes (option 121 and 249) and the taps' MTU (option 26) live in
  a hosts file and an options file that are rewritten and re-read on SIGHUP
  (:func:`render_hosts`, :func:`render_opts`, :func:`dnsmasq_args`).

The first part of this module is pure (decoding, choosing, rendering). :class:`DhcpAgent` at the
end mirrors the three key prefixes from an injected :class:`~regionmesh.datastore.api.Datastore`
(list, then watch; a compacted or broken watch is re-listed) and hands the desired
:class:`NetworkDhcp` per network to a :class:`Supervisor`. Spawning, signalling and supervising
dnsmasq, and the alias interfaces, belong to :mod:`regionmesh.openstack.dnsmasq`; reading
neutron.conf to :mod:`regionmesh.openstack.calico_options`; the command line to
:mod:`regionmesh.cli.dhcp_cmd`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import queue
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore, EventType, Watch
from regionmesh.datastore.selection import (
    ENV_URL,
    DatastoreConfig,
    parse_url,
    resolve_config,
)
from regionmesh.errors import (
    Compacted,
    DatastoreError,
    FieldError,
    ValidationError,
)
from regionmesh.model import codec
from regionmesh.model.endpoints import WorkloadEndpoint, split_workload_endpoint_name
from regionmesh.model.regions import region_namespace
from regionmesh.openstack.calico_options import ComputeNodeConfig, datastore_url
from regionmesh.openstack.translate import HostRoute

LOG = logging.getLogger(__name__)

ORCHESTRATOR = "openstack"
NETWORK_ID_ANNOTATION = "openstack.projectcalico.org/network-id"
FQDN_ANNOTATION = "openstack.projectcalico.org/fqdn"
WEP_PLURAL = "workloadendpoints"
DEFAULT_LEASE_SECONDS = 86400  # Neutron's dhcp_lease_duration default
ALIAS_PREFIX = "ns-"  # Neutron's DHCP device prefix; 3 + 11 characters = IFNAMSIZ - 1
_CALICO_ENV = ("DATASTORE_TYPE", "ETCD_ENDPOINTS")
_HOSTNAME_BAD = re.compile(r"[^a-z0-9-]+")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# ---------------------------------------------------------------------------- subnets


@dataclass(frozen=True, slots=True)
class DhcpSubnet:
    """A subnet record (openstack-driver.md §1.3) as the agent uses it."""

    id: str
    network_id: str
    cidr: IPNetwork
    gateway_ip: str | None = None
    host_routes: tuple[HostRoute, ...] = ()
    dns_servers: tuple[str, ...] = ()
    legacy: bool = False

    @property
    def tag(self) -> str:
        """dnsmasq tag of the subnet's range and options (Neutron's ``subnet-<id>``)."""
        return f"subnet-{self.id}"


def parse_subnet_record(subnet_id: str, value: bytes, *, legacy: bool = False) -> DhcpSubnet:
    """Decode the JSON value of a subnet key; ValidationError naming the bad field."""
    where = f"subnet record {subnet_id}"
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise ValidationError([FieldError("", value[:80], f"not JSON: {exc}")], where) from None
    if not isinstance(data, dict):
        raise ValidationError([FieldError("", data, "not a JSON object")], where)
    errors: list[FieldError] = []

    def text(name: str, required: bool) -> str | None:
        item = data.get(name)
        if item is None and not required:
            return None
        if not isinstance(item, str) or not item:
            errors.append(FieldError(name, item, "must be a non-empty string"))
            return None
        return item

    network_id = text("network_id", True)
    cidr_text = text("cidr", True)
    gateway = text("gateway_ip", False)
    cidr: IPNetwork | None = None
    if cidr_text is not None:
        try:
            cidr = ipaddress.ip_network(cidr_text, strict=False)
        except ValueError as exc:
            errors.append(FieldError("cidr", cidr_text, str(exc)))
    if gateway is not None:
        try:
            ipaddress.ip_address(gateway)
        except ValueError as exc:
            errors.append(FieldError("gateway_ip", gateway, str(exc)))
    routes: list[HostRoute] = []
    for i, route in enumerate(data.get("host_routes") or []):
        if (
            not isinstance(route, dict)
            or not isinstance(route.get("destination"), str)
            or not isinstance(route.get("nexthop"), str)
        ):
            errors.append(FieldError(f"host_routes[{i}]", route, "needs destination and nexthop"))
            continue
        try:
            dest = ipaddress.ip_network(route["destination"], strict=False)
            ipaddress.ip_address(route["nexthop"])
        except ValueError as exc:
            errors.append(FieldError(f"host_routes[{i}]", route, str(exc)))
            continue
        routes.append(HostRoute(str(dest), route["nexthop"]))
    dns = data.get("dns_servers") or []
    if not isinstance(dns, list) or not all(isinstance(d, str) for d in dns):
        errors.append(FieldError("dns_servers", dns, "must be a list of addresses"))
        dns = []
    if errors or network_id is None or cidr is None:
        raise ValidationError(errors, where)
    return DhcpSubnet(
        id=subnet_id,
        network_id=network_id,
        cidr=cidr,
        gateway_ip=gateway,
        host_routes=tuple(routes),
        dns_servers=tuple(dns),
        legacy=legacy,
    )


@dataclass
class SubnetIndex:
    """The subnets the agent knows: the region's (v2) and the legacy (v1) ones, by id."""

    v2: dict[str, DhcpSubnet] = field(default_factory=dict)
    v1: dict[str, DhcpSubnet] = field(default_factory=dict)

    @staticmethod
    def _match(
        subnets: Iterable[DhcpSubnet],
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
        network_id: str | None,
    ) -> DhcpSubnet | None:
        found = [
            s
            for s in subnets
            if ip in s.cidr and (network_id is None or s.network_id == network_id)
        ]
        if len({s.network_id for s in found}) > 1:
            return None  # repeated CIDR and no network id to choose by: refuse to guess
        return min(found, key=lambda s: (s.cidr.prefixlen * -1, s.id)) if found else None

    def subnet_for(self, address: str, network_id: str | None) -> DhcpSubnet | None:
        """The subnet serving ``address`` of an endpoint on ``network_id`` (v2 first, then v1).

        Without a network id an address inside subnets of several networks is ambiguous and
        gets None, rather than another network's gateway and routes.
        """
        ip = ipaddress.ip_address(address)
        return self._match(self.v2.values(), ip, network_id) or self._match(
            self.v1.values(), ip, network_id
        )


# ---------------------------------------------------------------------------- endpoints


@dataclass(frozen=True, slots=True)
class DhcpEndpoint:
    """What DHCP needs from a WorkloadEndpoint this host serves."""

    name: str
    port_id: str
    network_id: str | None
    interface: str
    mac: str
    addresses: tuple[str, ...]
    fqdn: str | None = None


def endpoint_prefix(region: str | None, host: str) -> str:
    """Key prefix of this host's OpenStack WorkloadEndpoints in ``region``'s namespace."""
    return keys.resource_prefix(WEP_PLURAL, region_namespace(region)) + (
        host.replace("-", "--") + f"-{ORCHESTRATOR}-"
    )


def why_not_served(wep: WorkloadEndpoint, *, host: str, region: str | None) -> str | None:
    """Why this host must not serve ``wep`` (None when it must)."""
    namespace = region_namespace(region)
    if wep.metadata.namespace != namespace:
        return f"namespace {wep.metadata.namespace!r} is not this region's {namespace!r}"
    spec = wep.spec
    if spec.node != host:
        return f"node {spec.node!r} is not this host {host!r}"
    if spec.orchestrator != ORCHESTRATOR:
        return f"orchestrator {spec.orchestrator!r} is not {ORCHESTRATOR!r}"
    parts = split_workload_endpoint_name(wep.metadata.name)
    if len(parts) != 4 or parts[0] != host:
        return f"name {wep.metadata.name!r} does not name this host"
    if not spec.interface_name or not spec.mac or not spec.ip_networks:
        return "interfaceName, mac or ipNetworks missing"
    return None


def dhcp_endpoint(wep: WorkloadEndpoint) -> DhcpEndpoint:
    """The DHCP view of a served endpoint: its addresses without the ``allowedIps`` ones."""
    spec = wep.spec
    allowed = {a.split("/")[0] for a in spec.allowed_ips}
    addresses: list[str] = []
    for net in spec.ip_networks:
        address = net.split("/")[0]
        if address not in allowed and address not in addresses:
            addresses.append(address)
    parts = split_workload_endpoint_name(wep.metadata.name)
    return DhcpEndpoint(
        name=wep.metadata.name,
        port_id=spec.endpoint or parts[-1],
        network_id=wep.metadata.annotations.get(NETWORK_ID_ANNOTATION) or None,
        interface=spec.interface_name,
        mac=spec.mac.lower(),
        addresses=tuple(addresses),
        fqdn=wep.metadata.annotations.get(FQDN_ANNOTATION) or None,
    )


def decode_endpoint(key: str, value: bytes, revision: int) -> WorkloadEndpoint:
    """Decode a stored WorkloadEndpoint value; ValidationError when it is not one."""
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise ValidationError([FieldError("", key, f"not JSON: {exc}")], key) from None
    if not isinstance(data, dict):
        raise ValidationError([FieldError("", key, "not a JSON object")], key)
    resource = codec.from_storage(data, resource_version=str(revision))
    if not isinstance(resource, WorkloadEndpoint):
        raise ValidationError([FieldError("kind", resource.kind, "not a WorkloadEndpoint")], key)
    return resource


# ---------------------------------------------------------------------------- per network


@dataclass(frozen=True, slots=True)
class HostEntry:
    """One dnsmasq host entry: the port's MAC gets ``ip`` and ``hostname``."""

    port_id: str
    mac: str
    ip: str
    hostname: str
    subnet_id: str


@dataclass(frozen=True, slots=True)
class NetworkDhcp:
    """Everything one network's dnsmasq serves; equal values need no dnsmasq action."""

    network_id: str
    subnets: tuple[DhcpSubnet, ...]
    hosts: tuple[HostEntry, ...]
    mtu: int | None = None  # the smallest MTU of the served ports' taps
    lease_seconds: int = DEFAULT_LEASE_SECONDS

    @property
    def alias(self) -> str:
        """The alias interface requests on the taps are attributed to."""
        return alias_name(self.network_id)


def alias_name(network_id: str) -> str:
    """``ns-`` + the first 11 characters of the network id (Neutron's DHCP device name)."""
    return ALIAS_PREFIX + network_id[:11]


def host_name(endpoint: DhcpEndpoint, ip: str) -> str:
    """The FQDN annotation's first label, else Neutron's ``host-10-0-0-2``."""
    if endpoint.fqdn:
        label = _HOSTNAME_BAD.sub("-", endpoint.fqdn.split(".")[0].lower()).strip("-")
        if label:
            return label[:63]
    return "host-" + ip.replace(".", "-").replace(":", "-")


def desired_networks(
    endpoints: Iterable[DhcpEndpoint],
    subnets: SubnetIndex,
    mtu_of: Callable[[str], int | None] = lambda _iface: None,
    *,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
) -> dict[str, NetworkDhcp]:
    """One :class:`NetworkDhcp` per network with at least one served IPv4 address.

    An address without a subnet record is skipped (the agent serves it once the record
    appears); IPv6 addresses are not served (see docs/dhcp.md).
    """
    hosts: dict[str, list[HostEntry]] = {}
    used: dict[str, dict[str, DhcpSubnet]] = {}
    mtus: dict[str, list[int]] = {}
    for ep in sorted(endpoints, key=lambda e: e.name):
        for address in ep.addresses:
            if ":" in address:
                continue
            subnet = subnets.subnet_for(address, ep.network_id)
            if subnet is None:
                LOG.debug("no subnet record for %s of %s yet", address, ep.name)
                continue
            net = subnet.network_id
            hosts.setdefault(net, []).append(
                HostEntry(ep.port_id, ep.mac, address, host_name(ep, address), subnet.id)
            )
            used.setdefault(net, {})[subnet.id] = subnet
            mtu = mtu_of(ep.interface)
            if mtu:
                mtus.setdefault(net, []).append(mtu)
    return {
        net: NetworkDhcp(
            network_id=net,
            subnets=tuple(sorted(used[net].values(), key=lambda s: s.id)),
            hosts=tuple(entries),
            mtu=min(mtus[net]) if net in mtus else None,
            lease_seconds=lease_seconds,
        )
        for net, entries in sorted(hosts.items())
    }


# ---------------------------------------------------------------------------- rendering


def render_hosts(net: NetworkDhcp) -> str:
    """The ``--dhcp-hostsfile``: ``<mac>,<ip>,<hostname>`` per entry.

    No per-port ``set:`` tags (Neutron writes ``set:port-<id>``): dnsmasq 2.90, Debian 12's,
    crashes on SIGHUP when a leased host's entry carries one.
    """
    return "".join(f"{h.mac},{h.ip},{h.hostname}\n" for h in net.hosts)


def _classless_routes(subnet: DhcpSubnet) -> list[str]:
    routes = [f"{r.destination},{r.nexthop}" for r in subnet.host_routes]
    if (
        routes
        and subnet.gateway_ip
        and not any(r.destination == "0.0.0.0/0" for r in subnet.host_routes)
    ):
        # RFC 3442: a client given option 121 ignores option 3, so repeat the default route.
        routes.append(f"0.0.0.0/0,{subnet.gateway_ip}")
    return routes


def render_opts(net: NetworkDhcp) -> str:
    """The ``--dhcp-optsfile``: router, DNS, static routes and MTU per subnet.

    A subnet without a gateway gets an empty router option, so dnsmasq does not offer its own
    (alias) address as the router. The MTU is the network's smallest tap MTU on this host (see
    :func:`render_hosts` for why it is not per port).
    """
    lines: list[str] = []
    for s in net.subnets:
        lines.append(f"tag:{s.tag},option:router" + (f",{s.gateway_ip}" if s.gateway_ip else ""))
        if s.dns_servers:
            lines.append(f"tag:{s.tag},option:dns-server,{','.join(s.dns_servers)}")
        routes = _classless_routes(s)
        if routes:
            lines.append(f"tag:{s.tag},option:classless-static-route,{','.join(routes)}")
            lines.append(f"tag:{s.tag},249,{','.join(routes)}")
        if net.mtu:
            lines.append(f"tag:{s.tag},option:mtu,{net.mtu}")
    return "".join(line + "\n" for line in lines)


def server_addresses(net: NetworkDhcp) -> list[str]:
    """``addr/prefix`` for the alias interface: each subnet's gateway (networking-calico's
    DHCP-port trick), or, without one, the highest address no served host uses."""
    taken = {h.ip for h in net.hosts}
    out: list[str] = []
    for s in net.subnets:
        if s.gateway_ip:
            address = s.gateway_ip
        else:
            address = next(str(a) for a in _descending_hosts(s.cidr) if str(a) not in taken)
        out.append(f"{address}/{s.cidr.prefixlen}")
    return out


def _descending_hosts(
    cidr: IPNetwork,
) -> Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    last = int(cidr.broadcast_address) - (1 if cidr.num_addresses > 2 else 0)
    first = int(cidr.network_address)
    for value in range(last, first - 1, -1):
        yield ipaddress.ip_address(value)


@dataclass(frozen=True, slots=True)
class DnsmasqFiles:
    """Where one network's dnsmasq keeps its files."""

    directory: str

    @property
    def hosts(self) -> str:
        """The hosts file."""
        return os.path.join(self.directory, "host")

    @property
    def opts(self) -> str:
        """The options file."""
        return os.path.join(self.directory, "opts")

    @property
    def leases(self) -> str:
        """The lease database."""
        return os.path.join(self.directory, "leases")

    @property
    def pid(self) -> str:
        """The pid file."""
        return os.path.join(self.directory, "pid")

    @property
    def log(self) -> str:
        """dnsmasq's own log."""
        return os.path.join(self.directory, "dnsmasq.log")


def dnsmasq_args(net: NetworkDhcp, files: DnsmasqFiles, binary: str = "dnsmasq") -> list[str]:
    """dnsmasq's command line for ``net``; it changes only when the subnets do.

    DNS is off (``--port=0``): this is a DHCP server, and the subnet's own DNS servers are
    handed out. ``--bind-dynamic`` with ``--interface=tap*`` picks up VM taps as they come.
    """
    args = [
        binary,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--port=0",
        "--no-hosts",
        "--no-resolv",
        "--except-interface=lo",
        "--bind-dynamic",
        f"--interface={net.alias}",
        "--interface=tap*",
        f"--bridge-interface={net.alias},tap*",
        f"--pid-file={files.pid}",
        f"--dhcp-hostsfile={files.hosts}",
        f"--dhcp-optsfile={files.opts}",
        f"--dhcp-leasefile={files.leases}",
        f"--log-facility={files.log}",
        "--log-dhcp",
    ]
    possible = 0
    for s in net.subnets:
        if s.cidr.version != 4:
            continue
        args.append(
            f"--dhcp-range=set:{s.tag},{s.cidr.network_address},static,{s.cidr.netmask},"
            f"{net.lease_seconds}s"
        )
        possible += s.cidr.num_addresses
    args.append(f"--dhcp-lease-max={max(1, min(possible, 16777216))}")
    return args


# ---------------------------------------------------------------------------- state


@dataclass
class DhcpState:
    """The agent's view of the datastore: this host's endpoints and the known subnets.

    ``apply_*`` take raw key/values (None value = deleted). Endpoints that decode badly or must
    not be served are dropped (and logged once per revision).
    """

    host: str
    region: str | None
    endpoints: dict[str, DhcpEndpoint] = field(default_factory=dict)
    subnets: SubnetIndex = field(default_factory=SubnetIndex)

    def apply_endpoint(self, key: str, value: bytes | None, revision: int) -> None:
        """A WorkloadEndpoint key changed."""
        if value is None:
            self.endpoints.pop(key, None)
            return
        try:
            wep = decode_endpoint(key, value, revision)
        except ValidationError as exc:
            LOG.warning("ignoring endpoint %s: %s", key, exc)
            self.endpoints.pop(key, None)
            return
        reason = why_not_served(wep, host=self.host, region=self.region)
        if reason is not None:
            LOG.info("not serving %s: %s", key, reason)
            self.endpoints.pop(key, None)
            return
        self.endpoints[key] = dhcp_endpoint(wep)

    def apply_subnet(self, key: str, value: bytes | None) -> None:
        """A subnet key (v2 of this region, or legacy v1) changed."""
        parsed = keys.parse_subnet_key(key)
        if parsed is None:
            return
        region_str, subnet_id = parsed
        table = self.subnets.v1 if region_str is None else self.subnets.v2
        if value is None:
            table.pop(subnet_id, None)
            return
        try:
            table[subnet_id] = parse_subnet_record(subnet_id, value, legacy=region_str is None)
        except ValidationError as exc:
            LOG.warning("ignoring %s: %s", key, exc)
            table.pop(subnet_id, None)

    def reset(self, prefix: str) -> None:
        """Forget everything under ``prefix`` (before a re-list)."""
        if prefix.startswith(keys.RESOURCES_PREFIX):
            self.endpoints.clear()
        elif prefix.startswith(keys.LEGACY_SUBNET_DIR):
            self.subnets.v1.clear()
        else:
            self.subnets.v2.clear()

    def desired(
        self,
        mtu_of: Callable[[str], int | None],
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> dict[str, NetworkDhcp]:
        """What every network's dnsmasq should serve now."""
        return desired_networks(
            self.endpoints.values(), self.subnets, mtu_of, lease_seconds=lease_seconds
        )


# ---------------------------------------------------------------------------- datastore choice


def choose_datastore(
    url: str | None, node: ComputeNodeConfig, env: Mapping[str, str]
) -> DatastoreConfig:
    """The datastore a compute node's DHCP agent uses, first match wins:

    ``--datastore``; ``$REGIONMESH_DATASTORE``; ``[calico] datastore`` or ``etcd_*`` set in
    neutron.conf; Calico's ``DATASTORE_TYPE``/``ETCD_ENDPOINTS`` environment; finally
    neutron.conf's etcd defaults (``127.0.0.1:2379``, as networking-calico).
    """
    if url or env.get(ENV_URL):
        return resolve_config(url=url, env=env, default_config_file="")
    from_conf = datastore_url(node.calico)
    if node.datastore_configured:
        return parse_url(from_conf, source="[calico] in neutron.conf", env=env)
    if any(env.get(n) or env.get("CALICO_" + n) for n in _CALICO_ENV):
        return resolve_config(env=env, default_config_file="")
    return parse_url(from_conf, source="[calico] defaults", env=env)


# ---------------------------------------------------------------------------- the loop


class Supervisor(Protocol):
    """Runs one dnsmasq per network (implemented by :mod:`regionmesh.openstack.dnsmasq`)."""

    def apply(self, networks: Mapping[str, NetworkDhcp]) -> None:
        """Make the running instances serve exactly ``networks``."""
        ...

    def tick(self) -> None:
        """Restart crashed instances whose backoff has passed; retry deferred signals."""
        ...

    def close(self) -> None:
        """Stop every instance and remove what it created."""
        ...


@dataclass(frozen=True, slots=True)
class _Reset:
    prefix: str
    items: tuple[tuple[str, bytes, int], ...]


@dataclass(frozen=True, slots=True)
class _Change:
    prefix: str
    key: str
    value: bytes | None
    revision: int


class DhcpAgent:
    """Mirror this host's endpoints and the region's subnets; keep the supervisor in step.

    One thread per key prefix lists and then watches it (re-listing after
    :class:`~regionmesh.errors.Compacted` or a lost store, with backoff); the calling thread
    applies the changes, polls tap MTUs every ``tick`` seconds and calls the supervisor.
    """

    def __init__(
        self,
        store: Datastore,
        supervisor: Supervisor,
        *,
        host: str,
        region: str | None,
        mtu_of: Callable[[str], int | None],
        tick: float = 1.0,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.supervisor = supervisor
        self.state = DhcpState(host=host, region=region)
        self.mtu_of = mtu_of
        self.tick = tick
        self.lease_seconds = lease_seconds
        self.prefixes = (
            endpoint_prefix(region, host),
            keys.subnet_dir(region) + "/",
            keys.LEGACY_SUBNET_DIR + "/",
        )
        self._events: queue.Queue[_Reset | _Change] = queue.Queue()
        self._watches: dict[str, Watch] = {}
        self._lock = threading.Lock()
        self.applied: dict[str, NetworkDhcp] | None = None  # None until the first apply
        self._listed: set[str] = set()

    # -- mirroring (one thread per prefix) -------------------------------------------------
    def _mirror(self, prefix: str, stop: threading.Event) -> None:
        backoff = 0.2
        while not stop.is_set():
            try:
                listed = self.store.list(prefix)
                self._events.put(
                    _Reset(
                        prefix, tuple((kv.key, kv.value, kv.mod_revision) for kv in listed.items)
                    )
                )
                watch = self.store.watch(prefix, start_revision=listed.revision + 1)
                with self._lock:
                    self._watches[prefix] = watch
                try:
                    backoff = 0.2
                    while not stop.is_set():
                        for event in watch.next_batch(0.5):
                            value = event.value if event.type is EventType.PUT else None
                            self._events.put(_Change(prefix, event.key, value, event.mod_revision))
                finally:
                    with self._lock:
                        self._watches.pop(prefix, None)
                    watch.close()
            except Compacted as exc:
                LOG.info("watch on %s compacted (%s): re-listing", prefix, exc)
            except DatastoreError as exc:
                LOG.warning("datastore problem on %s: %s; retrying in %.1fs", prefix, exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception:  # keep mirroring whatever a client library throws
                LOG.exception("unexpected error mirroring %s; retrying in %.1fs", prefix, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _apply(self, item: _Reset | _Change) -> None:
        is_endpoint = item.prefix == self.prefixes[0]
        if isinstance(item, _Reset):
            self._listed.add(item.prefix)
            self.state.reset(item.prefix)
            for key, value, revision in item.items:
                self._apply(_Change(item.prefix, key, value, revision))
            return
        if is_endpoint:
            self.state.apply_endpoint(item.key, item.value, item.revision)
        else:
            self.state.apply_subnet(item.key, item.value)

    def step(self, timeout: float) -> None:
        """Apply queued changes (waiting up to ``timeout`` for the first) and reconcile."""
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            pass
        else:
            self._apply(item)
            while True:
                try:
                    self._apply(self._events.get_nowait())
                except queue.Empty:
                    break
        if len(self._listed) < len(self.prefixes):
            return  # not everything listed yet: do not act on a partial view
        desired = self.state.desired(self.mtu_of, self.lease_seconds)
        if desired != self.applied:
            before = self.applied or {}
            for net_id in sorted(set(desired) | set(before)):
                if desired.get(net_id) != before.get(net_id):
                    LOG.debug("network %s: %s", net_id, desired.get(net_id))
            LOG.info(
                "serving %d network(s): %s",
                len(desired),
                ", ".join(f"{n} ({len(d.hosts)} host(s))" for n, d in desired.items()) or "none",
            )
            self.supervisor.apply(desired)
            self.applied = desired
        self.supervisor.tick()

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; the supervisor is closed on the way out."""
        threads = [
            threading.Thread(
                target=self._mirror, args=(p, stop), name=f"dhcp-watch-{i}", daemon=True
            )
            for i, p in enumerate(self.prefixes)
        ]
        for t in threads:
            t.start()
        LOG.info(
            "DHCP agent for host %s, namespace %s, watching %s",
            self.state.host,
            region_namespace(self.state.region),
            ", ".join(self.prefixes),
        )
        try:
            while not stop.is_set():
                self.step(self.tick)
        finally:
            with self._lock:
                watches = list(self._watches.values())
            for w in watches:
                w.close()
            for t in threads:
                t.join(timeout=5)
            self.supervisor.close()
