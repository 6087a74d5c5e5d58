"""The dataplane's route boundary: per-tap routes, neighbours and sysctls through pyroute2.

:class:`NetlinkRoutes` implements :class:`~regionmesh.dataplane.api.RouteRunner`: for every
local endpoint it programs /32 and /128 routes ``dev <tap> scope link proto
<DeviceRouteProtocol>`` (default 3 = boot, as Felix; with another number, ``proto boot`` routes
left on taps are removed), permanent neighbour entries for the VM's MAC, and the per-tap sysctls (proxy ARP / proxy NDP, forwarding,
route_localnet, accept_ra), through netlink — never ``ip`` subprocesses — in the current or a
named network namespace. Netlink failures become :class:`~regionmesh.errors.DataplaneError`.

Which endpoints need routes is the driver's decision; reading interface state for others
(the agent's oper-up probe, the DHCP agent's MTUs and alias links) is :mod:`.links`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyroute2 import IPRoute, NetlinkError
from pyroute2 import netns as pyroute2_netns

from regionmesh.dataplane.api import EndpointRoute, RouteRunner
from regionmesh.errors import DataplaneError

__all__ = ["RTPROT_BOOT", "EndpointRoute", "NetlinkRoutes", "RouteRunner"]

RTPROT_BOOT = 3  # Felix's DeviceRouteProtocol default


def _sysctl_paths(iface: str, ipv6: bool) -> dict[str, str]:
    paths = {
        f"/proc/sys/net/ipv4/conf/{iface}/proxy_arp": "1",
        f"/proc/sys/net/ipv4/neigh/{iface}/proxy_delay": "0",
        f"/proc/sys/net/ipv4/conf/{iface}/forwarding": "1",
        f"/proc/sys/net/ipv4/conf/{iface}/route_localnet": "1",
    }
    if ipv6:
        paths |= {
            f"/proc/sys/net/ipv6/conf/{iface}/proxy_ndp": "1",
            f"/proc/sys/net/ipv6/conf/{iface}/forwarding": "1",
            f"/proc/sys/net/ipv6/conf/{iface}/accept_ra": "0",
        }
    return paths


class NetlinkRoutes:
    """:class:`RouteRunner` over pyroute2, in the current or a named network namespace."""

    def __init__(self, netns: str | None = None, protocol: int = RTPROT_BOOT) -> None:
        self.netns = netns
        self.protocol = protocol
        self._configured: dict[str, int] = {}  # iface -> ifindex whose sysctls we set

    def _write_sysctls(self, iface: str, ipv6: bool) -> None:
        if self.netns:
            pyroute2_netns.pushns(self.netns)
        try:
            for path, value in _sysctl_paths(iface, ipv6).items():
                try:
                    with open(path, "w") as f:
                        f.write(value)
                except FileNotFoundError:
                    if "/ipv6/" not in path:  # IPv6 may be disabled on the host
                        raise
        except OSError as exc:
            raise DataplaneError(f"cannot set sysctls of {iface}: {exc}") from exc
        finally:
            if self.netns:
                pyroute2_netns.popns()

    def sync(self, desired: Mapping[str, EndpointRoute], prefixes: tuple[str, ...]) -> set[str]:
        """Reconcile routes/neighbours/sysctls; returns interfaces that are missing."""
        try:
            with IPRoute(netns=self.netns) if self.netns else IPRoute() as ipr:
                return self._sync(ipr, desired, prefixes)
        except NetlinkError as exc:
            raise DataplaneError(f"netlink refused a route change: {exc}") from exc

    def _sync(
        self, ipr: Any, desired: Mapping[str, EndpointRoute], prefixes: tuple[str, ...]
    ) -> set[str]:
        links = {ln.get("ifname"): ln["index"] for ln in ipr.get_links()}
        names_by_index = {v: k for k, v in links.items()}
        have: set[tuple[int, str]] = set()
        legacy: set[tuple[int, str]] = set()  # proto boot routes left from before a change
        protocols = {self.protocol, RTPROT_BOOT}
        for family in (2, 10):
            for proto in sorted(protocols):
                for r in ipr.get_routes(family=family, proto=proto):
                    oif = r.get("oif")
                    name = names_by_index.get(oif, "")
                    if name.startswith(prefixes) and r.get("dst"):
                        route = (oif, f"{r.get('dst')}/{r['dst_len']}")
                        (have if proto == self.protocol else legacy).add(route)
        want: dict[tuple[int, str], EndpointRoute] = {}
        missing: set[str] = set()
        for iface, ep in desired.items():
            index = links.get(iface)
            if index is None:
                missing.add(iface)
                continue
            if self._configured.get(iface) != index:
                self._write_sysctls(iface, any(":" in n for n in ep.nets))
                self._configured[iface] = index
            for net in ep.nets:
                want[(index, net)] = ep
        for index, dst in sorted(have - set(want)):
            ipr.route("del", dst=dst, oif=index, proto=self.protocol, scope=253)
        for index, dst in sorted(legacy):
            ipr.route("del", dst=dst, oif=index, proto=RTPROT_BOOT, scope=253)
        for (index, dst), ep in sorted(want.items(), key=lambda kv: kv[0]):
            if (index, dst) in have:
                continue
            ipr.route("replace", dst=dst, oif=index, scope=253, proto=self.protocol)
            if ep.mac and dst.endswith(("/32", "/128")):
                addr = dst.rsplit("/", 1)[0]
                ipr.neigh("replace", dst=addr, lladdr=ep.mac, ifindex=index, state=0x80)
        for iface in list(self._configured):
            if iface not in desired:
                del self._configured[iface]
        return missing
