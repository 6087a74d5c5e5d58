"""Keeps FakeNft honest: the same scripts through the real nft, in a throwaway namespace."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from dp_scenario import IP, POL_WEB, SET_CLIENT, endpoint, snapshot
from fakenft_cases import BASE, CASES

from netns import Topology, require_root_tools
from regionmesh.dataplane import (
    ActivePolicyRemove,
    HostConfig,
    IPSetDeltaUpdate,
    IPSetRemove,
    IPSetUpdate,
    Message,
    NatMapping,
    WorkloadEndpointRemove,
)
from regionmesh.dataplane.driver import NftDataplane
from regionmesh.dataplane.fakenft import FakeNft
from regionmesh.dataplane.runner import SubprocessNft
from regionmesh.dataplane.tables import fingerprint_json
from regionmesh.errors import DataplaneError

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    require_root_tools()
    with Topology() as t:
        yield t


@pytest.fixture
def kernel(topo: Topology) -> SubprocessNft:
    ns = topo.netns(f"k{len(topo.namespaces)}")
    return SubprocessNft(ns.name)


@pytest.mark.parametrize(("name", "script", "accepted"), CASES, ids=[c[0] for c in CASES])
def test_kernel_agrees_with_fake(
    kernel: SubprocessNft, name: str, script: str, accepted: bool
) -> None:
    kernel.apply(BASE)
    fake = FakeNft()
    fake.apply(BASE)
    assert fingerprint_json(kernel.list_ruleset_json("ip t")) == fingerprint_json(
        fake.list_ruleset_json("ip t")
    )
    if accepted:
        kernel.check(script + "\n")
        kernel.apply(script + "\n")
        fake.apply(script + "\n")
    else:
        with pytest.raises(DataplaneError):
            kernel.check(script + "\n")
        with pytest.raises(DataplaneError):
            kernel.apply(script + "\n")
        with pytest.raises(DataplaneError):
            fake.apply(script + "\n")
    assert fingerprint_json(kernel.list_ruleset_json("ip t")) == fingerprint_json(
        fake.list_ruleset_json("ip t")
    )


def _sequence() -> list[list[Message]]:
    """Batches exercising full renders, set/chain/map deltas and removals."""
    return [
        [HostConfig(ipv6_enabled=True), *snapshot()[1:]],
        [IPSetDeltaUpdate(SET_CLIENT, added=frozenset({IP["d"], "2001:db8::4"}))],
        [IPSetDeltaUpdate(SET_CLIENT, added=frozenset({"10.80.0.0/16"}))],  # becomes interval
        [IPSetDeltaUpdate(SET_CLIENT, added=frozenset({"10.80.1.1", "10.81.0.0/24"}))],
        [IPSetUpdate("s:new", frozenset({"10.9.0.1"}))],
        [  # floating IPs, both families: nat chains flushed and refilled by a delta
            replace(
                endpoint("a"),
                ipv6_nets=("fd00::2/128",),
                ipv4_nats=(NatMapping(IP["a"], "172.16.5.2"),),
                ipv6_nats=(NatMapping("fd00::2", "2001:db8::2"),),
            ),
            replace(endpoint("d"), ipv4_nats=(NatMapping(IP["d"], "172.16.5.4"),)),
        ],
        [endpoint("a")],  # ipNAT removed, endpoint kept
        [endpoint("a", policy=""), ActivePolicyRemove(POL_WEB), IPSetRemove(SET_CLIENT)],
        [WorkloadEndpointRemove("host1/openstack/d"), endpoint("e", policy="")],
        [HostConfig(ipv6_enabled=False)],
    ]


def test_driver_scripts_run_on_the_kernel_like_on_the_fake(kernel: SubprocessNft) -> None:
    fake = FakeNft()
    via_fake = NftDataplane(fake)
    via_kernel = NftDataplane(kernel)
    for batch in _sequence():
        for msg in batch:
            via_fake.on_update(msg)
            via_kernel.on_update(msg)
        via_fake.apply()
        kernel.check(fake.transactions[-1])  # the fake's script passes the kernel's check ...
        via_kernel.apply()
        for table in ("ip calico", "ip6 calico"):  # ... and both end in the same state
            assert fingerprint_json(kernel.list_ruleset_json(table)) == fingerprint_json(
                fake.list_ruleset_json(table)
            ), table
        assert not via_kernel.resync()
    assert via_kernel.full_applies == via_fake.full_applies == 3
    assert via_kernel.delta_applies == via_fake.delta_applies >= 4
