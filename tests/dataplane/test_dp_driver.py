"""NftDataplane against FakeNft: full first apply, small deltas, failure fallback, resync."""

from __future__ import annotations

import pytest
from dp_scenario import (
    IP,
    POL_OTHER,
    POL_WEB,
    SET_CLIENT,
    TAP,
    endpoint,
    snapshot,
    web_policy,
)

from regionmesh.dataplane import (
    ActivePolicyRemove,
    HostConfig,
    IPSetDeltaUpdate,
    IPSetRemove,
    IPSetUpdate,
    WorkloadEndpointRemove,
    names,
)
from regionmesh.dataplane.driver import NftDataplane
from regionmesh.dataplane.fakenft import FakeNft
from regionmesh.errors import DataplaneError

SET4 = names.set_name(SET_CLIENT, 4)
T = "ip calico"


def programmed() -> tuple[NftDataplane, FakeNft]:
    fake = FakeNft()
    dp = NftDataplane(fake)
    for msg in snapshot():
        dp.on_update(msg)
    dp.apply()
    return dp, fake


def test_nothing_before_in_sync_then_one_full_transaction() -> None:
    fake = FakeNft()
    dp = NftDataplane(fake)
    for msg in snapshot()[:-1]:
        dp.on_update(msg)
    dp.apply()
    assert fake.transactions == []
    dp.on_update(snapshot()[-1])
    dp.apply()
    assert len(fake.transactions) == 1 and dp.full_applies == 1
    script = fake.transactions[0]
    # IPv6 is off: its table is deleted in the same transaction that replaces the v4 one.
    assert script.splitlines()[:5] == [
        "add table ip6 calico",
        "delete table ip6 calico",
        "add table ip calico",
        "delete table ip calico",
        "add table ip calico",
    ]
    assert fake.set_elements(T, SET4) == {IP["b"], IP["c"]}
    assert fake.map_elements(T, names.FROM_WL_DISPATCH) == {
        TAP[v]: f"goto filter-cali-fw-{TAP[v]}" for v in "abd"
    }
    assert not dp.resync()


def test_set_delta_is_one_small_transaction() -> None:
    dp, fake = programmed()
    dp.on_update(
        IPSetDeltaUpdate(SET_CLIENT, added=frozenset({IP["d"]}), removed=frozenset({IP["b"]}))
    )
    dp.apply()
    assert fake.transactions[-1].splitlines() == [
        f"delete element {T} {SET4} {{ {IP['b']} }}",
        f"add element {T} {SET4} {{ {IP['d']} }}",
    ]
    assert fake.set_elements(T, SET4) == {IP["c"], IP["d"]}
    # Add then remove before an apply: nothing to do, no transaction at all.
    count = len(fake.transactions)
    dp.on_update(IPSetDeltaUpdate(SET_CLIENT, added=frozenset({"10.9.9.9"})))
    dp.on_update(IPSetDeltaUpdate(SET_CLIENT, removed=frozenset({"10.9.9.9"})))
    dp.apply()
    assert len(fake.transactions) == count
    assert dp.full_applies == 1


def test_set_becoming_interval_rerenders_whole_table() -> None:
    dp, fake = programmed()
    dp.on_update(IPSetDeltaUpdate(SET_CLIENT, added=frozenset({"10.70.0.0/16"})))
    dp.apply()
    assert dp.full_applies == 2
    assert fake.tables[("ip", "calico")].sets[SET4].interval
    dp.on_update(IPSetDeltaUpdate(SET_CLIENT, added=frozenset({"10.70.1.1"})))  # masked
    dp.apply()
    assert dp.full_applies == 2
    assert fake.set_elements(T, SET4) == {IP["b"], IP["c"], "10.70.0.0/16"}


def test_policy_removal_delta_in_contract_order() -> None:
    dp, fake = programmed()
    dp.on_update(endpoint("a", policy=""))
    dp.on_update(ActivePolicyRemove(POL_WEB))
    dp.on_update(IPSetRemove(SET_CLIENT))
    dp.apply()
    assert dp.full_applies == 1 and dp.delta_applies == 1
    lines = fake.transactions[-1].splitlines()
    assert f"delete chain {T} {names.policy_chain(POL_WEB, True)}" in lines
    assert lines[-1] == f"delete set {T} {SET4}"
    assert f"flush chain {T} filter-cali-tw-{TAP['a']}" in lines
    tw = fake.chain_rules(T, f"filter-cali-tw-{TAP['a']}")
    assert not any("jump filter-cali-pi" in r for r in tw)
    assert not dp.resync()


def test_endpoint_removal_and_interface_rename() -> None:
    dp, fake = programmed()
    dp.on_update(WorkloadEndpointRemove("host1/openstack/d"))
    renamed = endpoint("b")
    renamed = type(renamed)(
        renamed.id, "tapnewname-bb", renamed.mac, renamed.ipv4_nets, (), renamed.tiers
    )
    dp.on_update(renamed)
    dp.apply()
    dispatch = fake.map_elements(T, names.FROM_WL_DISPATCH)
    assert set(dispatch) == {TAP["a"], "tapnewname-bb"}
    chains = fake.tables[("ip", "calico")].chains
    assert f"filter-cali-tw-{TAP['d']}" not in chains and f"filter-cali-fw-{TAP['b']}" not in chains
    assert not dp.resync()
    assert dp.full_applies == 1


def test_unknown_references_fail_closed_and_heal() -> None:
    fake = FakeNft()
    dp = NftDataplane(fake, wait_for_in_sync=False)
    dp.on_update(HostConfig(ipv6_enabled=False))
    dp.on_update(endpoint("a"))  # policy web not known yet (contract violation)
    dp.apply()
    tw = fake.chain_rules(T, f"filter-cali-tw-{TAP['a']}")
    assert "fail closed" in tw[-1] and tw[-1].startswith("drop")
    dp.on_update(web_policy())  # references an unknown set: policy chain fails closed
    dp.apply()
    assert fake.chain_rules(T, names.policy_chain(POL_WEB, True))[0].startswith("drop")
    assert any(
        "jump filter-cali-pi-" in r for r in fake.chain_rules(T, f"filter-cali-tw-{TAP['a']}")
    )
    dp.on_update(IPSetUpdate(SET_CLIENT, frozenset({IP["b"]})))
    dp.apply()
    assert f"@{SET4}" in fake.chain_rules(T, names.policy_chain(POL_WEB, True))[0]
    assert dp.full_applies == 1 and not dp.resync()


def test_kernel_error_falls_back_to_full_render() -> None:
    dp, fake = programmed()
    # Someone removes our set behind our back; the next delta touching it fails ...
    fake.apply(f"flush chain {T} {names.policy_chain(POL_WEB, True)}\ndelete set {T} {SET4}\n")
    dp.on_update(IPSetDeltaUpdate(SET_CLIENT, added=frozenset({IP["d"]})))
    with pytest.raises(DataplaneError, match="No such file or directory"):
        dp.apply()
    # ... atomically (nothing of the failed delta is in the kernel) ...
    assert len(fake.transactions) == 2
    # ... and the next apply rewrites the whole table.
    dp.apply()
    assert dp.full_applies == 2
    assert fake.set_elements(T, SET4) == {IP["b"], IP["c"], IP["d"]}
    assert not dp.resync()


def test_resync_repairs_drift() -> None:
    dp, fake = programmed()
    assert not dp.resync()
    fake.apply(f"add rule {T} filter-cali-tw-{TAP['a']} accept\n")
    assert dp.resync() and dp.drift_repairs == 1 and dp.full_applies == 2
    fake.apply(f'delete element {T} {names.FROM_WL_DISPATCH} {{ "{TAP["d"]}" }}\n')
    assert dp.resync()
    fake.apply(f"add element {T} {SET4} {{ 10.1.1.1 }}\n")
    assert dp.resync()
    fake.apply("delete table ip calico\n")
    assert dp.resync()
    assert not dp.resync()
    assert fake.set_elements(T, SET4) == {IP["b"], IP["c"]}


def test_config_change_rerenders() -> None:
    dp, fake = programmed()
    dp.on_update(HostConfig(ipv6_enabled=True, interface_prefixes=("tap", "vm")))
    dp.apply()
    assert dp.full_applies == 2
    assert ("ip6", "calico") in fake.tables
    rules = fake.chain_rules(T, "filter-cali-FORWARD")
    assert any('iifname "vm*"' in r for r in rules)
    dp.on_update(HostConfig(ipv6_enabled=False))
    dp.apply()
    assert ("ip6", "calico") not in fake.tables


def test_policy_update_rewrites_only_its_chains() -> None:
    dp, fake = programmed()
    dp.on_update(snapshot()[4])  # same "other" policy again: no change at all
    dp.apply()
    assert len(fake.transactions) == 1
    from regionmesh.dataplane import Action, ActivePolicyUpdate, Rule

    dp.on_update(
        ActivePolicyUpdate(POL_OTHER, (Rule(Action.ALLOW, protocol=17),), (Rule(Action.ALLOW),))
    )
    dp.apply()
    lines = fake.transactions[-1].splitlines()
    assert lines[0] == f"flush chain {T} {names.policy_chain(POL_OTHER, True)}"
    assert len(lines) == 2
