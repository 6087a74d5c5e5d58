"""Floating IPs (``ipNATs``): messages, rendering of the fip chains, deltas through FakeNft, routes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest
from dp_scenario import IP, TAP, endpoint, snapshot

from regionmesh.dataplane import (
    HostConfig,
    NatMapping,
    WorkloadEndpointRemove,
    WorkloadEndpointUpdate,
    names,
)
from regionmesh.dataplane.driver import NftDataplane
from regionmesh.dataplane.fakenft import FakeNft
from regionmesh.dataplane.render import DesiredState, fip_chains, floating_ip_maps, render_table
from regionmesh.dataplane.runner import EndpointRoute
from regionmesh.errors import ValidationError

T4, T6 = "ip calico", "ip6 calico"
FIP = {"a": "172.16.5.2", "b": "172.16.5.3"}


def strip(line: str) -> str:
    return line.split(' comment "', 1)[0]


def with_fip(vm: str, *nats: NatMapping, v6: tuple[NatMapping, ...] = ()) -> WorkloadEndpointUpdate:
    ep = endpoint(vm)
    if v6:
        ep = dataclasses.replace(ep, ipv6_nets=tuple(f"{n.internal}/128" for n in v6))
    return dataclasses.replace(ep, ipv4_nats=nats, ipv6_nats=v6)


def nat(vm: str) -> NatMapping:
    return NatMapping(IP[vm], FIP[vm])


class RecordingRoutes:
    """A RouteRunner that remembers what it was asked to program (every interface exists)."""

    def __init__(self) -> None:
        self.desired: dict[str, EndpointRoute] = {}

    def sync(self, desired: Mapping[str, EndpointRoute], prefixes: tuple[str, ...]) -> set[str]:
        self.desired = dict(desired)
        return set()


def programmed(ipv6: bool = False) -> tuple[NftDataplane, FakeNft, RecordingRoutes]:
    fake, routes = FakeNft(), RecordingRoutes()
    dp = NftDataplane(fake, routes)
    for msg in snapshot():
        dp.on_update(msg)
    dp.on_update(HostConfig(ipv6_enabled=ipv6))
    dp.apply()
    return dp, fake, routes


# ------------------------------------------------------------------- messages ----


def test_nat_mapping_validation() -> None:
    assert NatMapping("10.0.0.1", "172.16.0.1").version == 4
    assert NatMapping("fd00::1", "2001:db8::1").version == 6
    with pytest.raises(ValidationError):
        NatMapping("10.0.0.1", "2001:db8::1")  # families differ
    with pytest.raises(ValidationError):
        NatMapping("10.0.0.0/24", "172.16.0.1")  # not an address
    with pytest.raises(ValidationError):
        WorkloadEndpointUpdate("e", "tap1", ipv4_nats=(NatMapping("fd00::1", "2001:db8::1"),))
    with pytest.raises(ValidationError):
        WorkloadEndpointUpdate("e", "tap1", ipv6_nats=(NatMapping("10.0.0.1", "172.16.0.1"),))


# ------------------------------------------------------------------ rendering ----


def test_fip_chains_dnat_and_hairpin_snat() -> None:
    eps = [with_fip("a", nat("a")), with_fip("b", nat("b")), endpoint("d")]
    chains = fip_chains(eps, 4)
    assert [strip(r) for r in chains[names.FIP_DNAT].rules] == [
        f"ip daddr {FIP['a']} dnat to {IP['a']}",
        f"ip daddr {FIP['b']} dnat to {IP['b']}",
    ]
    assert [strip(r) for r in chains[names.FIP_SNAT].rules] == [
        f"ip saddr {IP['a']} ip daddr {IP['a']} snat to {FIP['a']}",  # hairpin only
        f"ip saddr {IP['b']} ip daddr {IP['b']} snat to {FIP['b']}",
    ]
    assert all(not c.rules for c in fip_chains(eps, 6).values())


def test_conflicting_claims_resolve_like_felix() -> None:
    # The same floating IP for two internal IPs: the internal IP that sorts first wins; an
    # internal IP with two floating IPs is SNATed to the floating IP that sorts first.
    eps = [
        WorkloadEndpointUpdate("x", "tapx", ipv4_nats=(NatMapping("10.0.0.9", "172.16.0.1"),)),
        WorkloadEndpointUpdate(
            "y",
            "tapy",
            ipv4_nats=(
                NatMapping("10.0.0.10", "172.16.0.1"),
                NatMapping("10.0.0.10", "172.16.0.0"),
            ),
        ),
    ]
    dnats, snats = floating_ip_maps(eps, 4)
    assert dnats == {
        "172.16.0.1": "10.0.0.10",
        "172.16.0.0": "10.0.0.10",
    }  # "10.0.0.10" < "10.0.0.9"
    assert snats == {"10.0.0.10": "172.16.0.0"}


def test_v6_addresses_are_normalised() -> None:
    eps = [WorkloadEndpointUpdate("x", "tapx", ipv6_nats=(NatMapping("fd00:0::2", "2001:DB8::2"),))]
    rules = [strip(r) for r in fip_chains(eps, 6)[names.FIP_DNAT].rules]
    assert rules == ["ip6 daddr 2001:db8::2 dnat to fd00::2"]


def test_nat_hooks_in_both_families() -> None:
    state = DesiredState(config=HostConfig(metadata_addr=None))
    state.endpoints["a"] = with_fip("a", nat("a"))
    for fam in (4, 6):
        t = render_table(state, fam)
        hooks = {n: c.hook for n, c in t.chains.items() if c.hook and "type nat" in c.hook}
        assert hooks == {
            "nat-PREROUTING": "type nat hook prerouting priority dstnat; policy accept;",
            "nat-OUTPUT": "type nat hook output priority -100; policy accept;",
            "nat-POSTROUTING": "type nat hook postrouting priority 110; policy accept;",
        }
        assert [strip(r) for r in t.chains["nat-cali-PREROUTING"].rules] == [
            f"jump {names.FIP_DNAT}"
        ]
        assert [strip(r) for r in t.chains["nat-cali-OUTPUT"].rules] == [f"jump {names.FIP_DNAT}"]
        assert [strip(r) for r in t.chains["nat-cali-POSTROUTING"].rules] == [
            f"jump {names.FIP_SNAT}"
        ]
    # The endpoint's own chains are untouched: its policy matches the internal address.
    plain = DesiredState()
    plain.endpoints["a"] = endpoint("a")
    for to_wl in (True, False):
        chain = names.endpoint_chain(TAP["a"], to_wl)
        assert render_table(state, 4).chains[chain] == render_table(plain, 4).chains[chain]


# ----------------------------------------------------------------- the driver ----


def test_full_apply_programs_fip_chains_and_routes() -> None:
    fake, routes = FakeNft(), RecordingRoutes()
    dp = NftDataplane(fake, routes)
    for msg in [*snapshot()[:-1], with_fip("a", nat("a")), snapshot()[-1]]:
        dp.on_update(msg)
    dp.apply()
    assert dp.full_applies == 1
    assert fake.chain_rules(T4, names.FIP_DNAT)[0].startswith(
        f"ip daddr {FIP['a']} dnat to {IP['a']} "
    )
    assert routes.desired[TAP["a"]].nets == (f"{IP['a']}/32", f"{FIP['a']}/32")
    assert routes.desired[TAP["b"]].nets == (f"{IP['b']}/32",)
    assert not dp.resync()


def test_adding_and_removing_a_fip_are_small_deltas() -> None:
    dp, fake, routes = programmed()
    full = dp.full_applies
    dp.on_update(with_fip("a", nat("a")))
    dp.apply()
    script = fake.transactions[-1].splitlines()
    assert f"flush chain {T4} {names.FIP_DNAT}" in script
    assert f"flush chain {T4} {names.FIP_SNAT}" in script
    assert not any("add table" in line for line in script)
    assert [strip(r) for r in fake.chain_rules(T4, names.FIP_SNAT)] == [
        f"ip saddr {IP['a']} ip daddr {IP['a']} snat to {FIP['a']}"
    ]
    assert f"{FIP['a']}/32" in routes.desired[TAP["a"]].nets

    # An endpoint update that leaves the floating IPs alone does not touch the fip chains.
    dp.on_update(dataclasses.replace(with_fip("a", nat("a")), admin_up=False))
    dp.apply()
    assert names.FIP_DNAT not in fake.transactions[-1]

    # Removing the ipNAT (endpoint stays) empties both chains and drops the route.
    dp.on_update(endpoint("a"))
    dp.apply()
    assert fake.chain_rules(T4, names.FIP_DNAT) == []
    assert fake.chain_rules(T4, names.FIP_SNAT) == []
    assert routes.desired[TAP["a"]].nets == (f"{IP['a']}/32",)
    assert dp.full_applies == full
    assert not dp.resync()


def test_removing_the_endpoint_removes_its_fip() -> None:
    dp, fake, routes = programmed()
    dp.on_update(with_fip("a", nat("a")))
    dp.on_update(with_fip("b", nat("b")))
    dp.apply()
    assert len(fake.chain_rules(T4, names.FIP_DNAT)) == 2
    dp.on_update(WorkloadEndpointRemove("host1/openstack/a"))
    dp.apply()
    assert [strip(r) for r in fake.chain_rules(T4, names.FIP_DNAT)] == [
        f"ip daddr {FIP['b']} dnat to {IP['b']}"
    ]
    assert TAP["a"] not in routes.desired
    assert not dp.resync()


def test_v6_fip_delta_and_ipv6_switched_off() -> None:
    dp, fake, routes = programmed(ipv6=True)
    v6 = NatMapping("fd00::2", "2001:db8::2")
    dp.on_update(with_fip("a", nat("a"), v6=(v6,)))
    dp.apply()
    assert [strip(r) for r in fake.chain_rules(T6, names.FIP_DNAT)] == [
        "ip6 daddr 2001:db8::2 dnat to fd00::2"
    ]
    assert [strip(r) for r in fake.chain_rules(T6, names.FIP_SNAT)] == [
        "ip6 saddr fd00::2 ip6 daddr fd00::2 snat to 2001:db8::2"
    ]
    assert routes.desired[TAP["a"]].nets == (
        f"{IP['a']}/32",
        f"{FIP['a']}/32",
        "fd00::2/128",
        "2001:db8::2/128",
    )
    dp.on_update(HostConfig(ipv6_enabled=False))
    dp.apply()
    assert (("ip6", "calico")) not in fake.tables
    assert routes.desired[TAP["a"]].nets == (f"{IP['a']}/32", f"{FIP['a']}/32")
    assert not dp.resync()
