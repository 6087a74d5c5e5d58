"""What each network's dnsmasq serves, and the files and arguments that say so (pure).

:func:`desired_networks` turns this host's endpoints and the known subnets into one
:class:`NetworkDhcp` per Neutron network: host entries (MAC → IP, host name), the subnets, the
taps' MTU and the lease time. ``allowedIps`` (allowed-address-pair addresses) are never given
out. :func:`render_hosts` and :func:`render_opts` write the hosts file and the options file
(router, DNS servers, classless static routes as options 121 and 249, MTU as option 26);
:func:`dnsmasq_args` is the command line, in Calico's routed mode (``--dhcp-range=<net>,static``
per subnet, requests on any ``tap*`` attributed to the network's ``ns-<network id>`` alias
interface, which carries the subnets' server addresses: :func:`server_addresses`).

No I/O: writing the files and running dnsmasq is :mod:`.dnsmasq`'s job.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from regionmesh.dhcp.records import DhcpEndpoint, DhcpSubnet, IPNetwork, SubnetIndex

LOG = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 86400  # Neutron's dhcp_lease_duration default
ALIAS_PREFIX = "ns-"  # Neutron's DHCP device prefix; 3 + 11 characters = IFNAMSIZ - 1
_HOSTNAME_BAD = re.compile(r"[^a-z0-9-]+")


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
