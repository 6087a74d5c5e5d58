"""The §2.5 verdict algorithm and its traces (common mistakes §7.8–7.12)."""

import json
from collections.abc import Sequence

from tests.policy.builders import (
    ALLOW,
    DENY,
    LOG,
    PASS,
    gnp,
    hep,
    np,
    profile,
    rule,
    tier,
    wep,
)

from regionmesh.model import Resource
from regionmesh.policy import (
    Direction,
    DirectionVerdict,
    Flow,
    Snapshot,
    StepKind,
    evaluate_endpoint,
    evaluate_flow,
    explain_flow,
    naive_evaluate_endpoint,
)

A = wep("a", ["10.0.0.1"], {"app": "web"})
B = wep("b", ["10.0.0.2"], {"app": "db"})
FLOW = Flow.make("10.0.0.1", "10.0.0.2", "TCP", 40000, 80)


def verdict(
    resources: Sequence[Resource], endpoint: Resource = B, direction: str = "ingress"
) -> DirectionVerdict:
    """Evaluate with the indexed evaluator and check the naive oracle agrees exactly."""
    res = [A, B, *resources] if endpoint in (A, B) else [*resources, endpoint]
    got = evaluate_endpoint(Snapshot(res), endpoint, direction, FLOW)  # type: ignore[arg-type]
    oracle = naive_evaluate_endpoint(res, endpoint, direction, FLOW)  # type: ignore[arg-type]
    assert got.to_dict() == oracle.to_dict()
    return got


def kinds(v: DirectionVerdict) -> list[str]:
    return [str(s.kind) for s in v.trace]


def test_no_policy_no_profile_is_deny() -> None:
    v = verdict([])
    assert v.action == "Deny"
    assert v.trace[0].message == "no policy in tier default selects the endpoint for ingress"
    assert v.trace[-1].message == "no tier decided and the endpoint has no profiles: deny"


def test_no_policy_falls_to_profiles() -> None:
    b = wep("b", ["10.0.0.2"], {"app": "db"}, profiles=["allow-all"])
    v = verdict([profile("allow-all", ingress=[ALLOW], egress=[ALLOW])], endpoint=b)
    assert v.allowed
    assert kinds(v) == ["tier-skipped", "rule"]


def test_missing_profile_fails_closed_like_felix() -> None:
    # Felix renders a missing profile as drop-all rules, so a later profile never allows.
    b = wep("b", ["10.0.0.2"], {"app": "db"}, profiles=["missing", "allow-all"])
    v = verdict([profile("allow-all", ingress=[ALLOW], egress=[ALLOW])], endpoint=b)
    assert not v.allowed
    assert kinds(v) == ["tier-skipped", "profile-missing"]


def test_implicit_deny_at_end_of_tier_per_direction() -> None:
    prof = profile("allow-all", ingress=[ALLOW], egress=[ALLOW])
    b = wep("b", ["10.0.0.2"], {"app": "db"}, profiles=["allow-all"])
    pol = gnp(
        "only-ssh",
        "app == 'db'",
        types=["Ingress"],
        ingress=[rule(protocol="TCP", destination={"ports": [22]})],
    )
    ing = verdict([prof, pol], endpoint=b, direction="ingress")
    assert ing.action == "Deny"
    assert ing.trace[-1].message == "end of tier default: implicit deny"
    assert kinds(ing) == ["policy-no-match", "end-of-tier"]
    # the policy does not govern egress: the tier does not apply, the profile allows
    eg = verdict([prof, pol], endpoint=b, direction="egress")
    assert eg.allowed
    assert kinds(eg) == ["tier-skipped", "rule"]


def test_policy_without_rules_denies_its_types() -> None:
    assert verdict([gnp("empty", "app == 'db'", types=["Ingress"])]).action == "Deny"


def test_pass_goes_to_next_tier() -> None:
    res = [
        tier("sec", 10),
        gnp("pass-db", "app == 'db'", tier="sec", order=1, ingress=[PASS]),
        gnp("deny-after-pass", "app == 'db'", tier="sec", order=2, ingress=[DENY]),
        gnp("allow-db", "app == 'db'", ingress=[ALLOW]),
    ]
    v = verdict(res)
    assert v.allowed
    assert [(s.kind, s.tier, s.action) for s in v.trace] == [
        (StepKind.RULE, "sec", "Pass"),
        (StepKind.RULE, "default", "Allow"),
    ]


def test_pass_out_of_last_tier_without_profiles_is_deny() -> None:
    v = verdict([gnp("pass-db", "app == 'db'", ingress=[PASS])])
    assert v.action == "Deny"
    assert kinds(v) == ["rule", "final-deny"]


def test_pass_out_of_last_tier_reaches_profiles() -> None:
    b = wep("b", ["10.0.0.2"], {"app": "db"}, profiles=["allow-all"])
    res = [gnp("pass-db", "app == 'db'", ingress=[PASS]), profile("allow-all", ingress=[ALLOW])]
    assert verdict(res, endpoint=b).allowed


def test_tier_default_action_pass() -> None:
    res = [
        tier("sec", 10, default_action="Pass"),
        gnp(
            "block-ssh",
            "app == 'db'",
            tier="sec",
            ingress=[rule("Deny", protocol="TCP", destination={"ports": [22]})],
        ),
        gnp("allow-db", "app == 'db'", ingress=[ALLOW]),
    ]
    v = verdict(res)
    assert v.allowed
    assert v.trace[1].message == "end of tier sec: defaultAction Pass, continue with the next tier"


def test_log_never_terminates() -> None:
    v = verdict([gnp("p", "app == 'db'", ingress=[LOG, LOG, ALLOW])])
    assert v.allowed
    assert [s.action for s in v.trace] == ["Log", "Log", "Allow"]


def test_allow_in_earlier_tier_wins_over_later_deny() -> None:
    res = [
        tier("first", 1),
        gnp("allow", "all()", tier="first", ingress=[ALLOW]),
        gnp("deny", "all()", ingress=[DENY]),
    ]
    assert verdict(res).allowed


def test_first_matching_policy_in_order_decides_and_nil_order_is_last() -> None:
    res = [
        np("sg-allow", "app == 'db'", ingress=[ALLOW]),
        gnp("operator-deny", "app == 'db'", order=10, ingress=[DENY]),
    ]
    v = verdict(res)
    assert v.action == "Deny"
    assert v.trace[0].policy is not None and v.trace[0].policy.name == "operator-deny"


def test_tie_break_quirk_decides_the_verdict() -> None:
    res = [
        gnp("web", "app == 'db'", order=10, ingress=[ALLOW]),
        gnp("web-deny", "app == 'db'", order=10, ingress=[DENY]),
    ]
    assert verdict(res).action == "Deny"


def test_np_applies_only_in_its_namespace() -> None:
    other = np("p", "app == 'db'", ns="openstack-region-two", ingress=[ALLOW])
    v = verdict([other])
    assert v.action == "Deny"
    assert kinds(v) == ["tier-skipped", "final-deny"]


def test_stored_without_types_governs_egress_too() -> None:
    sg = np("ossg.default.sg1", "app == 'web'", ingress=[ALLOW])  # no egress rules, no types
    v = verdict([sg], endpoint=A, direction="egress")
    assert v.action == "Deny"
    assert v.trace[-1].message == "end of tier default: implicit deny"
    typed = np("typed", "app == 'web'", types=["Ingress"], ingress=[ALLOW])
    assert kinds(verdict([typed], endpoint=A, direction="egress"))[0] == "tier-skipped"


def test_explicit_types_make_other_direction_rules_inert() -> None:
    pol = gnp("p", "app == 'web'", types=["Ingress"], egress=[ALLOW])
    v = verdict([pol], endpoint=A, direction="egress")
    assert v.action == "Deny"
    assert kinds(v) == ["tier-skipped", "final-deny"]


def test_workloads_ignore_prednat_and_donottrack_policies() -> None:
    res = [
        gnp(
            "untracked",
            "all()",
            doNotTrack=True,
            applyOnForward=True,
            ingress=[DENY],
            egress=[DENY],
        ),
        gnp("prednat", "all()", preDNAT=True, applyOnForward=True, ingress=[DENY]),
        gnp("normal", "all()", ingress=[ALLOW]),
    ]
    v = verdict(res)
    assert v.allowed
    assert [s.policy.name for s in v.trace if s.policy] == ["normal"]


def test_host_endpoint_policed_by_gnp_not_np() -> None:
    h = hep("h1", ["10.9.0.1"], {"app": "db"}, profiles=[])
    res = [np("p", "app == 'db'", ingress=[ALLOW]), gnp("g", "app == 'db'", ingress=[DENY])]
    v = verdict(res, endpoint=h)
    assert v.action == "Deny"
    assert v.trace[0].policy is not None and v.trace[0].policy.kind == "GlobalNetworkPolicy"


def test_profile_pass_leaves_the_profile_and_log_continues() -> None:
    b = wep("b", ["10.0.0.2"], {"app": "db"}, profiles=["p1", "p2"])
    res = [profile("p1", ingress=[LOG, PASS, DENY]), profile("p2", ingress=[ALLOW])]
    v = verdict(res, endpoint=b)
    assert v.allowed
    assert [s.action for s in v.trace if s.kind == StepKind.RULE] == ["Log", "Pass", "Allow"]


def test_profile_rules_are_not_namespace_limited() -> None:
    b = wep("b", ["10.0.0.2"], {"app": "db"}, profiles=["p"])
    other = wep("x", ["10.1.0.9"], {"app": "web"}, ns="openstack-region-two")
    res = [other, profile("p", ingress=[rule(source={"selector": "app == 'web'"})])]
    snap = Snapshot([A, B, *res, b])
    flow = Flow.make("10.1.0.9", "10.0.0.2", "TCP", 1, 80)
    assert evaluate_endpoint(snap, b, Direction.INGRESS, flow).allowed


def test_flow_non_calico_source_is_not_policed() -> None:
    snap = Snapshot([A, B, gnp("g", "all()", ingress=[ALLOW])])
    flow = Flow.make("192.0.2.1", "10.0.0.2", "TCP", 1, 80)
    (fv,) = explain_flow(snap, flow)
    assert fv.egress is None and fv.ingress is not None
    assert fv.allowed
    doc = json.loads(json.dumps(fv.to_dict()))
    assert doc["egress"] == "not policed"
    assert doc["ingress"]["trace"][0]["policy"] == {"kind": "GlobalNetworkPolicy", "name": "g"}


def test_flow_needs_both_egress_and_ingress() -> None:
    res = [A, B, gnp("in", "all()", types=["Ingress"], ingress=[ALLOW])]
    snap = Snapshot(res)
    fv = evaluate_flow(snap, A, B, FLOW)
    assert fv.ingress is not None and fv.ingress.allowed
    assert fv.egress is not None and not fv.egress.allowed  # egress: no profile => deny
    assert not fv.allowed
    res.append(gnp("out", "all()", types=["Egress"], egress=[ALLOW]))
    assert evaluate_flow(Snapshot(res), A, B, FLOW).allowed
