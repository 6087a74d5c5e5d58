"""Property test: the indexed evaluator agrees with the naive oracle on random configurations.

Random small worlds (workloads and host endpoints with overlapping IPs in two namespaces,
network sets, profiles, tiers with Deny/Pass defaults, GNPs and NPs with random orders, types,
selectors, notSelectors, namespaceSelectors, nets, ports, named ports, ICMP) and random flows;
every verdict *and trace* of :func:`evaluate_flow` must equal the brute-force one.
"""

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.policy.builders import R1, R2, gnetset, gnp, hep, netset, np, profile, tier, wep

from regionmesh.model import HostEndpoint, Resource, Rule, WorkloadEndpoint
from regionmesh.policy import (
    Direction,
    Flow,
    Snapshot,
    evaluate_flow,
    naive_evaluate_flow,
    rule_matches,
)
from regionmesh.policy.naive import naive_rule_matches

NAMESPACES = [R1, R2]
IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "192.0.2.9"]
LABELS = st.dictionaries(
    st.sampled_from(["app", "role", "sg"]), st.sampled_from(["a", "b"]), max_size=2
)
SELECTORS = st.sampled_from(
    [
        "",
        "all()",
        "app == 'a'",
        "has(role)",
        "app != 'b'",
        "sg in {'a', 'b'}",
        "!has(app)",
        "pcns.team == 'x'",
    ]
)
NETS = st.sampled_from(
    [["10.0.0.0/30"], ["192.0.2.0/24"], ["10.0.0.2"], ["fd00::/64"], ["0.0.0.0/0"]]
)
PORTS = st.sampled_from([[80], ["80:90"], ["http"], ["dns"], [53, "http"]])
NAMED_PORTS = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["http", "dns"]),
            "protocol": st.sampled_from(["TCP", "UDP"]),
            "port": st.sampled_from([53, 80, 8080]),
        }
    ),
    max_size=2,
)


@st.composite
def sides(draw: st.DrawFn) -> dict[str, Any]:
    side: dict[str, Any] = {}
    for key, strat in (
        ("selector", SELECTORS.filter(bool)),
        ("notSelector", SELECTORS.filter(bool)),
        ("namespaceSelector", st.sampled_from(["all()", "global()", "team == 'x'"])),
        ("nets", NETS),
        ("notNets", NETS),
        ("ports", PORTS),
        ("notPorts", PORTS),
    ):
        if draw(st.integers(0, 1 if key == "ports" else 4)) == 0:
            side[key] = draw(strat)
    return side


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    r: dict[str, Any] = {"action": draw(st.sampled_from(["Allow", "Deny", "Pass", "Log"]))}
    proto = draw(st.sampled_from([None, "TCP", "UDP", "ICMP", 6]))
    if proto is not None:
        r["protocol"] = proto
    if draw(st.integers(0, 5)) == 0:
        r["notProtocol"] = draw(st.sampled_from(["TCP", "UDP"]))
    if draw(st.integers(0, 5)) == 0:
        r["ipVersion"] = draw(st.sampled_from([4, 6]))
    if proto == "ICMP" and draw(st.booleans()):
        icmp = {"type": draw(st.sampled_from([0, 8]))}
        if draw(st.booleans()):
            icmp["code"] = draw(st.sampled_from([0, 1]))
        r[draw(st.sampled_from(["icmp", "notICMP"]))] = icmp
    for key in ("source", "destination"):
        side = draw(sides())
        if side:
            r[key] = side
    return r


RULE_LISTS = st.lists(rules(), max_size=3)


@st.composite
def worlds(draw: st.DrawFn) -> list[Resource]:
    out: list[Resource] = []
    for i in range(draw(st.integers(1, 4))):
        out.append(
            wep(
                f"w{i}",
                [draw(st.sampled_from(IPS))],
                draw(LABELS),
                ns=draw(st.sampled_from(NAMESPACES)),
                profiles=draw(
                    st.lists(st.sampled_from(["p1", "p2", "kns.x"]), max_size=2, unique=True)
                ),
                ports=draw(NAMED_PORTS),
            )
        )
    if draw(st.booleans()):
        out.append(
            hep(
                "h0",
                [draw(st.sampled_from(IPS))],
                draw(LABELS),
                profiles=["p1"],
                ports=draw(NAMED_PORTS),
            )
        )
    if draw(st.booleans()):
        out.append(gnetset("g0", draw(NETS), draw(LABELS)))
    if draw(st.booleans()):
        out.append(netset("n0", draw(NETS), draw(LABELS), ns=draw(st.sampled_from(NAMESPACES))))
    for name in draw(st.lists(st.sampled_from(["p1", "p2"]), max_size=2, unique=True)):
        out.append(profile(name, draw(RULE_LISTS), draw(RULE_LISTS), draw(LABELS)))
    if draw(st.booleans()):
        out.append(
            tier(
                "t1",
                draw(st.sampled_from([None, 1.0, 2_000_000.0])),
                draw(st.sampled_from([None, "Deny", "Pass"])),
            )
        )
    for i in range(draw(st.integers(0, 4))):
        kwargs: dict[str, Any] = {
            "order": draw(st.sampled_from([None, 1.0, 2.0])),
            "types": draw(st.sampled_from([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]])),
            "ingress": draw(RULE_LISTS),
            "egress": draw(RULE_LISTS),
            "tier": draw(st.sampled_from([None, "t1", "ghost"])),
        }
        name = draw(st.sampled_from([f"p{i}", f"p{i}-x"]))
        if draw(st.booleans()):
            extra: dict[str, Any] = {}
            if draw(st.integers(0, 3)) == 0:
                extra["namespaceSelector"] = draw(st.sampled_from(["all()", "team == 'x'"]))
            if draw(st.integers(0, 5)) == 0:
                extra.update(doNotTrack=True, applyOnForward=True)
            out.append(gnp(name, draw(SELECTORS), **kwargs, **extra))
        else:
            out.append(np(name, draw(SELECTORS), ns=draw(st.sampled_from(NAMESPACES)), **kwargs))
    return out


FLOWS = st.builds(
    lambda src, dst, proto, sport, dport, itype: Flow.make(
        src,
        dst,
        proto,
        sport if proto != "ICMP" else None,
        dport if proto != "ICMP" else None,
        itype if proto == "ICMP" else None,
        0 if proto == "ICMP" else None,
    ),
    st.sampled_from(IPS),
    st.sampled_from(IPS),
    st.sampled_from(["TCP", "UDP", "ICMP"]),
    st.sampled_from([53, 80, 1000]),
    st.sampled_from([53, 80, 85, 8080]),
    st.sampled_from([0, 8]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.lists(FLOWS, min_size=1, max_size=3))
def test_indexed_equals_naive(world: list[Resource], flows: list[Flow]) -> None:
    snap = Snapshot(world)
    endpoints = [r for r in world if isinstance(r, (WorkloadEndpoint, HostEndpoint))]
    for flow in flows:
        for src in [None, *endpoints]:
            for dst in [None, *endpoints]:
                got = evaluate_flow(snap, src, dst, flow)
                want = naive_evaluate_flow(world, src, dst, flow)
                assert got.to_dict() == want.to_dict()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    worlds(),
    st.lists(rules(), min_size=1, max_size=4),
    st.sampled_from(["", R1, R2]),
    st.lists(FLOWS, min_size=1, max_size=4),
)
def test_rule_matching_equals_naive(
    world: list[Resource], rule_docs: list[dict[str, Any]], namespace: str, flows: list[Flow]
) -> None:
    snap = Snapshot(world)
    for doc in rule_docs:
        r = Rule.model_validate(doc)
        for flow in flows:
            got = rule_matches(r, flow, Direction.INGRESS, snap, namespace)
            assert got == naive_rule_matches(world, r, namespace, flow), (doc, flow)
