"""policy-model.md §7, "things an implementer most often gets wrong", seen through policies.

Items 5–12 and 15 have their detailed tables in test_policy_selectors/flows/verdicts/ordering;
this file covers each item at least once end to end (selector → policy → verdict).
"""

from typing import Any

import pytest
from tests.policy.builders import ALLOW, DENY, R1, R2, gnp, hep, netset, np, rule, wep

from regionmesh.errors import SelectorError
from regionmesh.model import NetworkPolicy, Resource, WorkloadEndpoint, validation
from regionmesh.policy import Direction, Flow, Snapshot, evaluate_endpoint, policy_selector

PLAIN = wep("plain", ["10.0.0.1"], {})
WEB = wep("web", ["10.0.0.2"], {"app": "web", "tier": "x"})
FLOW = Flow.make("192.0.2.1", "10.0.0.1", "TCP", 1, 80)


def allowed(resources: list[Resource], ep: WorkloadEndpoint, flow: Flow = FLOW) -> bool:
    snap = Snapshot([*resources, ep])
    return evaluate_endpoint(snap, ep, Direction.INGRESS, flow).allowed


@pytest.mark.parametrize(
    ("selector", "selects_unlabelled"),
    [
        ("app != 'web'", True),  # §7.1: != is true when the label is missing
        ("app not in {'web'}", True),
        ("app notin {'web'}", True),  # §7.2: 'notin' is a legal spelling
        ("app == 'web'", False),
        ("app in {'web'}", False),
        ("app contains ''", False),
        ("app starts with ''", False),
    ],
)
def test_item1_2_missing_label_semantics_decide_policy_selection(
    selector: str, selects_unlabelled: bool
) -> None:
    assert allowed([gnp("g", selector, ingress=[ALLOW])], PLAIN) is selects_unlabelled


def test_item2_invalid_selector_text_is_an_error_not_a_silent_match() -> None:
    with pytest.raises(SelectorError):
        policy_selector(gnp("g", "has (app)"))


def test_item3_precedence_in_policy_selectors() -> None:
    # !has(app) && tier == 'x' || app == 'web'  ==  ((!has(app)) && tier == 'x') || app == 'web'
    sel = policy_selector(gnp("g", "!has(app) && tier == 'x' || app == 'web'"))
    assert sel.evaluate({"app": "web"})
    assert not sel.evaluate({"tier": "x", "app": "db"})
    assert sel.evaluate({"tier": "x"})


def test_item4_canonical_form_of_rewritten_selectors() -> None:
    sel = policy_selector(np("p", "app in {'b', 'a', 'b'} || x == 'y'", ns=R1))
    assert (
        str(sel) == f'((app in {{"a", "b"}} || x == "y") && projectcalico.org/namespace == "{R1}")'
    )


def test_item5_np_cannot_reach_other_namespace() -> None:
    other = wep("o", ["10.0.0.1"], {}, ns=R2)
    assert not allowed(
        [np("p", f"projectcalico.org/namespace == '{R2}'", ns=R1, ingress=[ALLOW])], other
    )


def test_item6_np_empty_side_vs_not_selector_only() -> None:
    # external source, endpoint in R1
    assert allowed([np("p", ingress=[ALLOW])], PLAIN)
    assert not allowed([np("p", ingress=[rule(source={"notSelector": "app == 'web'"})])], PLAIN)


def test_item7_namespace_selector_by_name_fails_for_openstack() -> None:
    src = wep("src", ["10.1.0.5"], {"app": "web"}, ns=R2)
    flow = Flow.make("10.1.0.5", "10.0.0.1", "TCP", 1, 80)
    by_name = rule(source={"namespaceSelector": f"projectcalico.org/name == '{R2}'"})
    assert not allowed([src, np("p", ingress=[by_name])], PLAIN, flow)
    cross = rule(
        source={"namespaceSelector": "all()", "selector": f"projectcalico.org/namespace == '{R2}'"}
    )
    assert allowed([src, np("p", ingress=[cross])], PLAIN, flow)


def test_item8_end_of_tier_deny_once_any_policy_selects() -> None:
    blocker = gnp(
        "block-ssh",
        "all()",
        order=1,
        ingress=[rule("Deny", protocol="TCP", destination={"ports": [22]})],
    )
    assert not allowed([blocker], PLAIN)  # port 80 is not denied by a rule, but by the tier end


def test_item9_types_defaulting_vs_stored_without_types() -> None:
    snap = Snapshot([PLAIN, np("sg", ingress=[ALLOW])])  # stored without types
    out = Flow.make("10.0.0.1", "192.0.2.1", "TCP", 1, 80)
    v = evaluate_endpoint(snap, PLAIN, Direction.EGRESS, out)
    assert [str(s.kind) for s in v.trace] == ["policy-no-match", "end-of-tier"]
    # written through calicoctl-style defaulting the same policy only governs ingress
    defaulted = validation.apply_defaults(np("sg", ingress=[ALLOW]))
    assert isinstance(defaulted, NetworkPolicy) and defaulted.spec.types == ["Ingress"]
    v2 = evaluate_endpoint(Snapshot([PLAIN, defaulted]), PLAIN, Direction.EGRESS, out)
    assert [str(s.kind) for s in v2.trace] == ["tier-skipped", "final-deny"]


def test_item10_nil_order_last_and_tie_quirk() -> None:
    assert not allowed([np("sg", ingress=[ALLOW]), gnp("op", order=100, ingress=[DENY])], PLAIN)
    assert not allowed(
        [gnp("a", order=1, ingress=[ALLOW]), gnp("a-b", order=1, ingress=[DENY])], PLAIN
    )


def test_item11_pass_out_of_last_tier_without_profiles_denies() -> None:
    assert not allowed([gnp("p", ingress=[rule("Pass")])], PLAIN)


def test_item12_log_continues() -> None:
    assert allowed([gnp("p", ingress=[rule("Log"), ALLOW])], PLAIN)
    assert not allowed([gnp("p", ingress=[rule("Log"), DENY, ALLOW])], PLAIN)


@pytest.mark.parametrize(
    ("rule_doc", "proto", "expected"),
    [
        (rule(protocol="TCP", destination={"ports": [80]}), "TCP", True),
        (rule(protocol="TCP", destination={"ports": [80]}), "UDP", False),
        (rule(protocol="UDP", destination={"ports": [80]}), "UDP", True),
        (rule(protocol="SCTP", destination={"ports": [80]}), "SCTP", True),
        (rule(protocol="TCP", destination={"ports": [80]}), "UDPLite", False),
    ],
)
def test_item13_ports_are_per_protocol(
    rule_doc: dict[str, Any], proto: str, expected: bool
) -> None:
    flow = Flow.make("192.0.2.1", "10.0.0.1", proto, 1, 80)
    assert allowed([gnp("g", ingress=[rule_doc])], PLAIN, flow) is expected


def test_item14_network_set_nets_need_not_be_masked() -> None:
    loose = netset("loose", ["192.0.2.77/24"], {"role": "partner"}, ns=R1)
    r = rule(source={"selector": "role == 'partner'"})
    assert allowed([loose, gnp("g", ingress=[r])], PLAIN)


def test_item15_named_port_needs_matching_declared_protocol() -> None:
    ep = wep("svc", ["10.0.0.1"], {}, ports=[{"name": "metrics", "protocol": "UDP", "port": 80}])
    assert not allowed(
        [gnp("g", ingress=[rule(protocol="TCP", destination={"ports": ["metrics"]})])], ep
    )
    udp = Flow.make("192.0.2.1", "10.0.0.1", "UDP", 1, 80)
    assert allowed(
        [gnp("g", ingress=[rule(protocol="UDP", destination={"ports": ["metrics"]})])], ep, udp
    )


def test_host_endpoint_named_ports() -> None:
    h = hep(
        "h", ["10.9.0.1"], {"role": "node"}, ports=[{"name": "bgp", "protocol": "TCP", "port": 179}]
    )
    snap = Snapshot(
        [
            h,
            gnp(
                "g",
                "role == 'node'",
                ingress=[rule(protocol="TCP", destination={"ports": ["bgp"]})],
            ),
        ]
    )
    flow = Flow.make("192.0.2.1", "10.9.0.1", "TCP", 1, 179)
    assert evaluate_endpoint(snap, h, Direction.INGRESS, flow).allowed
