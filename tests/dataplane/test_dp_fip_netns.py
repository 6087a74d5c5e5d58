"""End to end: floating IPs (``ipNATs``) programmed into a namespace host, proven with real TCP.

Topology (tests/netns.py): host h1 (the dataplane runs nft and netlink INSIDE it) with VM a,
host h2 with VM c, joined by a fabric veth; h2 routes the floating-IP range to h1 (what BGP
would do). VM a has fixed IP ``IP["a"]`` and floating IP ``FIP``. Its policy accepts TCP 80
only from IP set S and only to its *internal* address, so a connection through the floating
IP succeeds only if the DNAT happened before the forward filter (as in Felix).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from dp_scenario import IP, MAC, POL_WEB, SET_CLIENT, TAP, endpoint

from netns import Netns, Topology, require_root_tools
from regionmesh.dataplane import (
    Action,
    ActivePolicyUpdate,
    HostConfig,
    InSync,
    IPSetDeltaUpdate,
    IPSetUpdate,
    NatMapping,
    PortRange,
    Rule,
    WorkloadEndpointUpdate,
    names,
)
from regionmesh.dataplane.driver import NftDataplane
from regionmesh.dataplane.runner import NetlinkRoutes, SubprocessNft

pytestmark = pytest.mark.root

HOST1, HOST2 = "10.64.0.1", "10.64.0.2"
FIP = "172.16.5.2"


def web_to_internal_only() -> ActivePolicyUpdate:
    rule = Rule(
        Action.ALLOW,
        protocol=6,
        src_ipset_ids=(SET_CLIENT,),
        dst_nets=(f"{IP['a']}/32",),
        dst_ports=(PortRange.single(80),),
    )
    return ActivePolicyUpdate(POL_WEB, (rule,), (Rule(Action.ALLOW),))


def vm_a(with_fip: bool = True) -> WorkloadEndpointUpdate:
    nats = (NatMapping(IP["a"], FIP),) if with_fip else ()
    return replace(endpoint("a"), ipv4_nats=nats)


@dataclass
class World:
    topo: Topology
    h1: Netns
    vm: dict[str, Netns]
    dp: NftDataplane

    def greeting(self, src: Netns, dst_ip: str) -> str | None:
        return self.topo.connect(src, dst_ip, 80)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    require_root_tools()
    with Topology() as topo:
        h1, h2 = topo.add_host("f1"), topo.add_host("f2")
        topo.link_hosts(h1, HOST1, h2, HOST2)
        vm = {"a": topo.add_vm(h1, "fva", IP["a"], TAP["a"], mac=MAC["a"])}
        vm["c"] = topo.add_vm(h2, "fvc", IP["c"], TAP["c"], mac=MAC["c"], vm_routes_by_helper=True)
        h1.ip("route", "replace", f"{IP['c']}/32", "via", HOST2)
        h2.ip("route", "replace", "10.65.1.0/24", "via", HOST1)
        h2.ip("route", "replace", "172.16.5.0/24", "via", HOST1)  # BGP's job in production
        topo.listen(vm["a"], IP["a"], 80)
        dp = NftDataplane(SubprocessNft(h1.name), NetlinkRoutes(h1.name))
        world = World(topo, h1, vm, dp)
        assert world.greeting(vm["c"], FIP) is None  # nothing programmed yet
        for msg in (
            HostConfig(ipv6_enabled=False, metadata_addr=None),
            IPSetUpdate(SET_CLIENT, frozenset({IP["c"], IP["a"]})),
            web_to_internal_only(),
            vm_a(),
            InSync(),
        ):
            dp.on_update(msg)
        dp.apply()
        yield world


def test_fip_route_and_nat_rules_programmed(world: World) -> None:
    routes = world.h1.ip("route", "show", "proto", "boot")
    assert f"{FIP} dev {TAP['a']} scope link" in routes
    assert f"{IP['a']} dev {TAP['a']} scope link" in routes
    dnat = world.h1.run("nft", "list", "chain", "ip", "calico", names.FIP_DNAT)
    assert f"ip daddr {FIP} dnat to {IP['a']}" in dnat


def test_client_on_other_host_reaches_vm_through_fip(world: World) -> None:
    # The VM sees the client's own address (no SNAT outside hairpin), and the policy that
    # only allows the *internal* destination let it through: DNAT ran before the filter.
    assert world.greeting(world.vm["c"], FIP) == f"ok {IP['c']}"
    assert world.greeting(world.vm["c"], IP["a"]) == f"ok {IP['c']}"


def test_host_itself_reaches_fip_through_output_dnat(world: World) -> None:
    assert world.greeting(world.h1, FIP) == f"ok {HOST1}"


def test_hairpin_vm_reaches_its_own_fip_and_sees_it_as_source(world: World) -> None:
    assert world.greeting(world.vm["a"], FIP) == f"ok {FIP}"


def test_policy_denial_applies_through_fip(world: World) -> None:
    dp = world.dp
    full = dp.full_applies
    dp.on_update(IPSetDeltaUpdate(SET_CLIENT, removed=frozenset({IP["c"]})))
    dp.apply()
    assert world.greeting(world.vm["c"], FIP) is None
    assert world.greeting(world.vm["c"], IP["a"]) is None
    dp.on_update(IPSetDeltaUpdate(SET_CLIENT, added=frozenset({IP["c"]})))
    dp.apply()
    assert world.greeting(world.vm["c"], FIP) == f"ok {IP['c']}"
    assert dp.full_applies == full


def test_removing_the_ipnat_stops_fip_traffic(world: World) -> None:
    dp = world.dp
    full = dp.full_applies
    dp.on_update(vm_a(with_fip=False))
    dp.apply()
    assert dp.full_applies == full  # a delta
    assert world.greeting(world.vm["c"], FIP) is None
    assert world.greeting(world.vm["c"], IP["a"]) == f"ok {IP['c']}"  # the VM itself still open
    assert FIP not in world.h1.ip("route", "show", "proto", "boot")
    assert not dp.resync()
    dp.on_update(vm_a())  # and back
    dp.apply()
    assert world.greeting(world.vm["c"], FIP) == f"ok {IP['c']}"
    assert dp.full_applies == full
