"""The only place the dataplane talks to the kernel: ``nft`` subprocesses and netlink (pyroute2).

* :class:`NftRunner` is the seam the driver uses: ``apply(script)`` runs one atomic ``nft -f``
  transaction, ``list_ruleset_json(table)`` reads a table back.
* :class:`SubprocessNft` implements it with ``nft -f -`` (optionally inside a named network
  namespace via ``ip netns exec``); failures become :class:`~regionmesh.errors.DataplaneError`
  carrying nft's message and the offending script line.
* :class:`FakeNft` (defined in :mod:`.fakenft`, re-exported here) is the in-memory kernel for
  unit tests.
* :class:`RouteRunner` / :class:`NetlinkRoutes` program what each tap needs besides nft: /32
  and /128 routes ``dev <tap> scope link proto <DeviceRouteProtocol>`` (default 3 = boot, as
  Felix; with another number, ``proto boot`` routes left on taps are removed), permanent
  neighbour entries, and the
  per-tap sysctls (proxy ARP / proxy NDP, forwarding, route_localnet, accept_ra), through
  pyroute2 — never ``ip`` subprocesses.

Deciding what to program is the driver's and the renderer's job; this module only executes.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pyroute2 import IPRoute, NetlinkError
from pyroute2 import netns as pyroute2_netns

from regionmesh.dataplane.fakenft import FakeNft
from regionmesh.errors import DataplaneError

LOG = logging.getLogger(__name__)

__all__ = [
    "EndpointRoute",
    "FakeNft",
    "NetlinkRoutes",
    "NftRunner",
    "RouteRunner",
    "SubprocessNft",
]

RTPROT_BOOT = 3  # Felix's DeviceRouteProtocol default
_LOCATION = re.compile(r"^(?:/dev/stdin|-|<cmdline>):(\d+):\d+(?:-\d+)?: (Error: .*)$")


class NftRunner(Protocol):
    """Runs nft transactions against one kernel (or a fake of one)."""

    def apply(self, script: str) -> None:
        """Run ``script`` as ONE transaction; raise DataplaneError (nothing applied) on failure."""

    def list_ruleset_json(self, table: str) -> dict[str, Any]:
        """``nft -j list table <table>`` (e.g. ``"ip calico"``); an absent table lists as empty."""


def explain_nft_error(stderr: str, script: str) -> str:
    """nft's first error message plus the script line it points at."""
    lines = script.splitlines()
    for raw in stderr.splitlines():
        m = _LOCATION.match(raw.strip())
        if m:
            number = int(m.group(1))
            offending = lines[number - 1] if 0 < number <= len(lines) else "?"
            return f"{m.group(2)} (line {number}: {offending[:300]})"
    first = next((s for s in stderr.splitlines() if s.strip()), "nft failed")
    context = [s for s in stderr.splitlines()[1:2] if s.strip()]
    return first + (f" ({context[0][:300]})" if context else "")


class SubprocessNft:
    """:class:`NftRunner` over the ``nft`` binary, optionally inside network namespace ``netns``."""

    def __init__(self, netns: str | None = None, nft: str = "nft", timeout: float = 120.0):
        self.netns = netns
        self.timeout = timeout
        self._prefix = ["ip", "netns", "exec", netns, nft] if netns else [nft]

    def _run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                self._prefix + args,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataplaneError(f"cannot run nft: {exc}") from exc

    def apply(self, script: str) -> None:
        """``nft -f -`` with ``script`` on stdin (one transaction)."""
        proc = self._run(["-f", "-"], script)
        if proc.returncode != 0:
            raise DataplaneError(explain_nft_error(proc.stderr, script))

    def check(self, script: str) -> None:
        """``nft --check -f -``: the kernel validates the transaction, then aborts it."""
        proc = self._run(["--check", "-f", "-"], script)
        if proc.returncode != 0:
            raise DataplaneError(explain_nft_error(proc.stderr, script))

    def list_ruleset_json(self, table: str) -> dict[str, Any]:
        """``nft -j list table <table>``; a missing table reads as ``{"nftables": []}``."""
        proc = self._run(["-j", "list", "table", *table.split()])
        if proc.returncode != 0:
            if "No such file or directory" in proc.stderr:
                return {"nftables": []}
            raise DataplaneError(explain_nft_error(proc.stderr, f"list table {table}"))
        try:
            data: dict[str, Any] = json.loads(proc.stdout)
        except ValueError as exc:
            raise DataplaneError(f"nft printed invalid JSON: {exc}") from exc
        return data


# ------------------------------------------------------------------- routes ----


@dataclass(frozen=True, slots=True)
class EndpointRoute:
    """What one tap needs: its addresses (routed to it) and the VM's MAC (permanent neighbour)."""

    iface: str
    nets: tuple[str, ...]  # v4 and v6 CIDRs, normally /32 and /128
    mac: str | None = None


class RouteRunner(Protocol):
    """Programs routes, neighbours and per-tap sysctls for local endpoints."""

    def sync(self, desired: Mapping[str, EndpointRoute], prefixes: tuple[str, ...]) -> set[str]:
        """Make ``proto boot`` routes on prefix interfaces equal ``desired`` (keyed by iface).

        Returns the interfaces that do not exist yet (the caller retries later).
        """


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


IFA_F_NOPREFIXROUTE = 0x200


class NetlinkAliases:
    """Alias interfaces that carry addresses without changing routing (for the DHCP agent).

    ``ensure(name, addresses)`` makes a ``dummy`` link (or, where this kernel has no dummy
    links, a veth whose peer ``nsp-…`` stays down), sets it up and gives it exactly
    ``addresses`` (IPv4 ``a.b.c.d/len``) with ``noprefixroute``, so no connected route
    appears. Acts on the current network namespace, or ``netns`` when given.
    """

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def _ipr(self) -> IPRoute:
        return IPRoute(netns=self.netns) if self.netns else IPRoute()

    def exists(self, name: str) -> bool:
        """Whether the link exists."""
        with self._ipr() as ipr:
            return bool(ipr.link_lookup(ifname=name))

    def ensure(self, name: str, addresses: list[str], *, peer: str) -> None:
        """The link exists, is up and carries exactly ``addresses``."""
        try:
            with self._ipr() as ipr:
                found = ipr.link_lookup(ifname=name)
                if not found:
                    try:
                        ipr.link("add", ifname=name, kind="dummy")
                    except NetlinkError as exc:
                        LOG.debug("dummy links unavailable (%s): a veth for %s", exc, name)
                        ipr.link("add", ifname=name, kind="veth", peer=peer)
                    found = ipr.link_lookup(ifname=name)
                index = found[0]
                ipr.link("set", index=index, state="up")
                have = {
                    f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                    for a in ipr.get_addr(index=index, family=socket.AF_INET)
                }
                for address in sorted(set(addresses) - have):
                    ip, _, plen = address.partition("/")
                    ipr.addr(
                        "add", index=index, address=ip, prefixlen=int(plen),
                        IFA_FLAGS=IFA_F_NOPREFIXROUTE,
                    )  # fmt: skip
                for address in sorted(have - set(addresses)):
                    ip, _, plen = address.partition("/")
                    ipr.addr("del", index=index, address=ip, prefixlen=int(plen))
        except (NetlinkError, OSError) as exc:
            raise DataplaneError(f"alias interface {name}: {exc}") from exc

    def remove(self, name: str) -> None:
        """Delete the link (and its veth peer) if it exists."""
        try:
            with self._ipr() as ipr:
                found = ipr.link_lookup(ifname=name)
                if found:
                    ipr.link("del", index=found[0])
        except (NetlinkError, OSError) as exc:
            raise DataplaneError(f"alias interface {name}: {exc}") from exc
