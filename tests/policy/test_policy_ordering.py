"""Tier/policy ordering and types (policy-model.md §2.4, §2.6; common mistakes §7.9, §7.10)."""

from tests.policy.builders import ALLOW, R1, gnp, np, tier

from regionmesh.policy import (
    Direction,
    Snapshot,
    governed_directions,
    policy_sort_key,
    sort_policies,
    sort_tiers,
    tier_default_action,
)


def test_tiers_existing_before_missing_then_order_nil_last_then_name() -> None:
    tiers = {
        t.metadata.name: t
        for t in (tier("b", 10), tier("a", 10), tier("first", -5.5), tier("noorder"))
    }
    names = ["missing-b", "noorder", "b", "missing-a", "a", "first"]
    assert sort_tiers(names, tiers) == ["first", "a", "b", "noorder", "missing-a", "missing-b"]


def test_snapshot_tier_names_include_referenced_missing_tiers_and_default() -> None:
    snap = Snapshot([tier("sec", 100), gnp("g", tier="ghost")])
    assert snap.tier_names == ("sec", "default", "ghost")


def test_policy_nil_order_sorts_last() -> None:
    pols = [gnp("a"), gnp("z", order=1000), np("m", order=-1.5)]
    assert [p.metadata.name for p in sort_policies(pols)] == ["m", "z", "a"]


def test_policy_tie_break_quirk_dash_before_plain_name() -> None:
    # "web-deny/..." < "web/..." because '-' (0x2d) sorts before '/' (0x2f)
    pols = [gnp("web", order=10), gnp("web-deny", order=10), gnp("webz", order=10)]
    assert [p.metadata.name for p in sort_policies(pols)] == ["web-deny", "web", "webz"]


def test_policy_tie_break_gnp_before_np_of_same_name() -> None:
    pols = [np("x", order=5, ns=R1), gnp("x", order=5)]
    assert [p.KIND for p in sort_policies(pols)] == ["GlobalNetworkPolicy", "NetworkPolicy"]
    assert policy_sort_key(gnp("x", order=5))[2] == "x//GlobalNetworkPolicy"


def test_types_stored_without_types_govern_both_directions() -> None:
    assert governed_directions(np("p", ingress=[ALLOW])) == {Direction.INGRESS, Direction.EGRESS}
    assert governed_directions(np("p", types=["Ingress"], egress=[ALLOW])) == {Direction.INGRESS}
    assert governed_directions(np("p", types=["Egress"])) == {Direction.EGRESS}
    both = governed_directions(np("p", types=["Ingress", "Egress"]))
    assert both == {Direction.INGRESS, Direction.EGRESS}


def test_tier_default_action() -> None:
    assert tier_default_action(None) == "Deny"
    assert tier_default_action(tier("t")) == "Deny"
    assert tier_default_action(tier("t", default_action="Deny")) == "Deny"
    assert tier_default_action(tier("t", default_action="Pass")) == "Pass"
