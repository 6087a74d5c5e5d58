"""End to end: the dataplane programs a namespace "host"; real TCP between "VMs" obeys policy.

Topology (tests/netns.py, as in netns-proof.sh): host h1 with VMs a, b, d (known to the
agent) and e (a tap the agent does not know), host h2 with VM c, hosts joined by a fabric
veth. Policy: a accepts TCP 80 only from IP set S = {b, c}; b accepts TCP 80 from anywhere;
d accepts nothing; all may send anything. The dataplane runs nft and netlink INSIDE h1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dp_scenario import IP, MAC, POL_WEB, SET_CLIENT, TAP, endpoint, snapshot

from netns import Netns, Topology, require_root_tools
from regionmesh.dataplane import ActivePolicyRemove, HostConfig, IPSetDeltaUpdate
from regionmesh.dataplane.driver import NftDataplane
from regionmesh.dataplane.runner import NetlinkRoutes, SubprocessNft

pytestmark = pytest.mark.root

HOST1, HOST2 = "10.64.0.1", "10.64.0.2"


@dataclass
class World:
    topo: Topology
    h1: Netns
    vm: dict[str, Netns]
    dp: NftDataplane

    def ok(self, src: str, dst_ip: str, port: int) -> bool:
        return self.topo.connect(self.vm[src], dst_ip, port) is not None

    def unknown_iface_drops(self) -> int:
        out = self.h1.run("nft", "list", "chain", "ip", "calico", "filter-cali-from-wl-dispatch")
        m = re.search(r"counter packets (\d+) .*Unknown interface", out)
        assert m, out
        return int(m.group(1))


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    require_root_tools()
    with Topology() as topo:
        h1, h2 = topo.add_host("h1"), topo.add_host("h2")
        topo.link_hosts(h1, HOST1, h2, HOST2)
        vm = {
            v: topo.add_vm(h1, f"vm{v}", IP[v], TAP[v], mac=MAC[v], vm_routes_by_helper=v == "e")
            for v in "abde"
        }
        vm["c"] = topo.add_vm(h2, "vmc", IP["c"], TAP["c"], mac=MAC["c"], vm_routes_by_helper=True)
        h1.ip("route", "replace", f"{IP['c']}/32", "via", HOST2)
        h2.ip("route", "replace", "10.65.1.0/24", "via", HOST1)
        for v, port in (("a", 80), ("a", 81), ("b", 80)):
            topo.listen(vm[v], IP[v], port)
        topo.listen(h1, HOST1, 8775)  # stands in for nova metadata
        topo.listen(h1, HOST1, 8080)  # some other host service
        dp = NftDataplane(SubprocessNft(h1.name), NetlinkRoutes(h1.name))
        assert not World(topo, h1, vm, dp).ok("b", IP["a"], 80)  # no routes/proxy ARP yet
        for msg in snapshot():
            dp.on_update(msg)
        dp.on_update(HostConfig(ipv6_enabled=False, metadata_addr=HOST1))
        dp.apply()
        yield World(topo, h1, vm, dp)


def test_routes_and_proxy_arp_programmed_by_netlink(world: World) -> None:
    routes = world.h1.ip("route", "show", "proto", "boot")
    for v in "abd":
        assert f"{IP[v]} dev {TAP[v]} scope link" in routes
    assert world.h1.run("cat", f"/proc/sys/net/ipv4/conf/{TAP['a']}/proxy_arp").strip() == "1"
    assert f"{IP['a']} dev {TAP['a']} lladdr {MAC['a']} PERMANENT" in world.h1.ip("neigh")


def test_policy_allows_exactly_port_80_from_set_members(world: World) -> None:
    assert world.ok("b", IP["a"], 80)  # same host, b in S
    assert world.ok("c", IP["a"], 80)  # other host, c in S
    assert not world.ok("d", IP["a"], 80)  # d not in S
    assert not world.ok("b", IP["a"], 81)  # port not allowed, listener exists


def test_conntrack_return_traffic(world: World) -> None:
    # a -> b:80: a's egress allows, b's ingress allows; the replies reach a although a's
    # ingress policy allows nothing but TCP 80 from S: only conntrack lets them in.
    assert world.ok("a", IP["b"], 80)


def test_host_traffic_metadata_and_default_endpoint_to_host(world: World) -> None:
    assert world.topo.connect(world.vm["b"], "169.254.169.254", 80) == f"ok {IP['b']}"
    assert not world.ok("b", HOST1, 8080)  # DefaultEndpointToHostAction=DROP


def test_host_to_local_vm_is_not_policed(world: World) -> None:
    # Felix's cali-OUTPUT returns early for traffic to workload interfaces: neither a host
    # endpoint's egress policy nor the VM's ingress policy applies to host → local VM. a's
    # ingress allows only TCP 80 from S (the host is not in S), yet the host reaches a:81 —
    # what `regionmesh explain` reports for the same flow (tests/policy: host_local tests).
    assert not world.ok("b", IP["a"], 81)
    assert world.topo.connect(world.h1, IP["a"], 81) is not None
    assert world.topo.connect(world.h1, IP["a"], 80) is not None


def test_unknown_tap_is_dropped(world: World) -> None:
    before = world.unknown_iface_drops()
    assert not world.ok("e", IP["b"], 80)
    assert world.unknown_iface_drops() > before


def test_set_delta_then_policy_removal_closes(world: World) -> None:
    dp = world.dp
    full = dp.full_applies
    dp.on_update(IPSetDeltaUpdate(SET_CLIENT, added=frozenset({IP["d"]})))
    dp.apply()
    assert world.ok("d", IP["a"], 80)
    dp.on_update(endpoint("a", policy=""))
    dp.on_update(ActivePolicyRemove(POL_WEB))
    dp.apply()
    assert dp.full_applies == full  # both changes were deltas
    assert not world.ok("b", IP["a"], 80)
    assert not dp.resync()
