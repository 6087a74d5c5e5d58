"""One semantics: the calc graph's messages, interpreted naively, agree with ``regionmesh.policy``.

For random small configurations, every flow to or from a local endpoint gets the same verdict
from :func:`regionmesh.policy.verdicts.evaluate_endpoint` (over a Snapshot of the resources)
and from :func:`interpret` — a tiny, deliberately straightforward reading of the messages the
graph sent to a RecordingDataplane (tiers, rules, IP-set members).
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import pytest
from tests.agent.states import HOST, R1, R2, gnp, gns, key_of, np, profile, tier, wep

from regionmesh.agent.graph import CalcGraph, ResourceUpdate
from regionmesh.dataplane import messages as dp
from regionmesh.dataplane.recording import RecordingDataplane
from regionmesh.model import Resource, WorkloadEndpoint
from regionmesh.model.validation import validate
from regionmesh.policy.flows import Flow
from regionmesh.policy.ordering import Direction
from regionmesh.policy.snapshot import Snapshot
from regionmesh.policy.verdicts import evaluate_endpoint


# ------------------------------------------------------------------- the interpreter ----
def _in_set(
    dpl: RecordingDataplane, set_id: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> bool:
    for m in dpl.ipsets[set_id]:
        assert isinstance(m, str)
        if ip in ipaddress.ip_network(m, strict=False):
            return True
    return False


def _in_named(dpl: RecordingDataplane, set_id: str, ip: Any, proto: int, port: int | None) -> bool:
    return port is not None and dp.NamedPortMember(str(ip), proto, port) in dpl.ipsets[set_id]


def _nets_ok(nets: tuple[str, ...], ip: Any, negate: bool) -> bool:
    fam = [ipaddress.ip_network(n, strict=False) for n in nets]
    fam = [n for n in fam if n.version == ip.version]
    hit = any(ip in n for n in fam)
    return not hit if negate else hit


def _rendered_for(rule: dp.Rule, version: int) -> bool:
    if rule.ip_version is not None and rule.ip_version != version:
        return False
    for nets in (rule.src_nets, rule.not_src_nets, rule.dst_nets, rule.not_dst_nets):
        if nets and not any(ipaddress.ip_network(n, strict=False).version == version for n in nets):
            return False
    return True


def _ports_ok(ranges: tuple[dp.PortRange, ...], port: int | None) -> bool:
    return port is not None and any(r.first <= port <= r.last for r in ranges)


def rule_matches(dpl: RecordingDataplane, rule: dp.Rule, flow: Flow) -> bool:
    if not _rendered_for(rule, flow.ip_version):
        return False
    if rule.protocol is not None and flow.protocol != rule.protocol:
        return False
    if rule.not_protocol is not None and flow.protocol == rule.not_protocol:
        return False
    for ip, nets, not_nets, ids, not_ids in (
        (flow.src_ip, rule.src_nets, rule.not_src_nets, rule.src_ipset_ids, rule.not_src_ipset_ids),
        (flow.dst_ip, rule.dst_nets, rule.not_dst_nets, rule.dst_ipset_ids, rule.not_dst_ipset_ids),
    ):
        if nets and not _nets_ok(nets, ip, False):
            return False
        if not_nets and not _nets_ok(not_nets, ip, True):
            return False
        if any(not _in_set(dpl, s, ip) for s in ids):
            return False
        if any(_in_set(dpl, s, ip) for s in not_ids):
            return False
    if rule.src_ports and not _ports_ok(rule.src_ports, flow.src_port):
        return False
    if rule.dst_ports or rule.dst_named_port_ipset_ids:
        if not (
            _ports_ok(rule.dst_ports, flow.dst_port)
            or any(
                _in_named(dpl, s, flow.dst_ip, flow.protocol, flow.dst_port)
                for s in rule.dst_named_port_ipset_ids
            )
        ):
            return False
    if rule.not_dst_ports or rule.not_dst_named_port_ipset_ids:
        if flow.dst_port is not None and (
            _ports_ok(rule.not_dst_ports, flow.dst_port)
            or any(
                _in_named(dpl, s, flow.dst_ip, flow.protocol, flow.dst_port)
                for s in rule.not_dst_named_port_ipset_ids
            )
        ):
            return False
    return True


def interpret(dpl: RecordingDataplane, endpoint_id: str, direction: Direction, flow: Flow) -> str:
    """The verdict the messages describe: tiers, end-of-tier action, then profiles."""
    ep = dpl.endpoints[endpoint_id]
    ingress = direction is Direction.INGRESS
    for t in ep.tiers:
        pids = t.ingress_policies if ingress else t.egress_policies
        if not pids:
            continue
        passed = False
        for pid in pids:
            pol = dpl.policies[pid]
            for rule in pol.inbound_rules if ingress else pol.outbound_rules:
                if rule_matches(dpl, rule, flow):
                    if rule.action is dp.Action.ALLOW:
                        return "Allow"
                    if rule.action is dp.Action.DENY:
                        return "Deny"
                    if rule.action is dp.Action.PASS:
                        passed = True
                        break
            if passed:
                break
        if passed or t.default_action is dp.TierDefaultAction.PASS:
            continue
        return "Deny"
    for name in ep.profile_ids:
        prof = dpl.profiles[name]
        for rule in prof.inbound_rules if ingress else prof.outbound_rules:
            if rule_matches(dpl, rule, flow):
                if rule.action is dp.Action.ALLOW:
                    return "Allow"
                if rule.action is dp.Action.DENY:
                    return "Deny"
                if rule.action is dp.Action.PASS:
                    break
    return "Deny"


# ------------------------------------------------------------- random configurations ----
SELECTORS = [
    "all()",
    'role == "web"',
    'role == "db"',
    "has(role)",
    'team == "blue"',
    "!has(team)",
    'role != "db"',
]


def _side(rng: random.Random) -> dict[str, Any]:
    side: dict[str, Any] = {}
    r = rng.random()
    if r < 0.35:
        side["selector"] = rng.choice(SELECTORS)
    elif r < 0.45:
        side["notSelector"] = rng.choice(SELECTORS[1:])
    elif r < 0.55:
        side["nets"] = [rng.choice(["192.168.1.0/24", "10.0.0.0/29", "fd00::/64"])]
    elif r < 0.6:
        side["notNets"] = ["10.0.0.0/30"]
    elif r < 0.65:
        side["namespaceSelector"] = "all()"
    return side


def _rule(rng: random.Random) -> dict[str, Any]:
    rule: dict[str, Any] = {"action": rng.choice(["Allow", "Allow", "Deny", "Pass", "Log"])}
    proto = rng.choice([None, "TCP", "TCP", "UDP"])
    if proto:
        rule["protocol"] = proto
    if rng.random() < 0.2:
        rule["ipVersion"] = rng.choice([4, 6])
    src, dst = _side(rng), _side(rng)
    if proto and rng.random() < 0.5:
        dst["ports"] = [rng.choice([80, "http", "8000:8100", 53] if proto == "TCP" else [80, 53])]
    if proto == "TCP" and rng.random() < 0.1:
        dst["notPorts"] = [rng.choice([22, "http"])]
    if src:
        rule["source"] = src
    if dst:
        rule["destination"] = dst
    return rule


def _rules(rng: random.Random) -> list[dict[str, Any]]:
    return [_rule(rng) for _ in range(rng.randrange(3))]


def random_config(seed: int) -> list[Resource]:
    rng = random.Random(seed)
    out: list[Resource] = []
    for i in range(7):
        host = HOST if i < 4 else "cmp2"
        labels = {"role": rng.choice(["web", "db"])} if rng.random() < 0.8 else {}
        ports = []
        if rng.random() < 0.5:
            # TCP only: regionmesh.policy's named_port_matches ignores the declared protocol
            # (policy-model.md §2.7 says it must equal the rule's); reported to the lead.
            ports.append({"name": "http", "protocol": "TCP", "port": rng.choice([80, 8080])})
        ips = [f"10.0.0.{i + 1}"] + ([f"fd00::{i + 1}"] if rng.random() < 0.3 else [])
        profiles = rng.sample(["p1", "p2"], rng.randrange(3))
        out.append(
            wep(
                host,
                rng.choice([R1, R2]),
                f"e{i}",
                ips,
                labels=labels,
                profiles=profiles,
                ports=ports,
            )
        )
    for name in ("p1", "p2"):
        # Profiles must exist: for a *missing* profile Felix (and this graph) drops everything
        # (DummyDropRules), while regionmesh.policy.verdicts skips it — a known disagreement.
        labels = {"team": rng.choice(["blue", "red"])} if rng.random() < 0.6 else {}
        prof = profile(name, labels, ingress=_rules(rng), egress=_rules(rng))
        while validate(prof):
            prof = profile(name, labels, ingress=_rules(rng), egress=_rules(rng))
        out.append(prof)
    out.append(gns("db-nets", ["192.168.1.0/24"], {"role": "db"}))
    out.append(tier("t1", 5, rng.choice(["Pass", "Deny"])))
    for j in range(rng.randrange(2, 6)):
        t = rng.choice(["default", "t1"])
        name = f"pol{j}" if t == "default" else f"t1.pol{j}"
        spec: dict[str, Any] = {
            "tier": t,
            "selector": rng.choice(SELECTORS),
            "ingress": _rules(rng),
            "egress": _rules(rng),
        }
        if rng.random() < 0.5:
            spec["order"] = rng.choice([1, 2, 2])
        if rng.random() < 0.7:
            spec["types"] = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"]])
        if rng.random() < 0.5:
            out.append(gnp(name, **spec))
        else:
            out.append(np(rng.choice([R1, R2]), name, **spec))
    return [r for r in out if not validate(r)]


FLOW_PORTS = [("TCP", 80), ("TCP", 8080), ("TCP", 22), ("UDP", 53), ("UDP", 80), ("ICMP", None)]


@pytest.mark.parametrize("seed", range(150))
def test_messages_agree_with_policy_verdicts(seed: int) -> None:
    resources = random_config(seed)
    graph = CalcGraph(HOST)
    dpl = RecordingDataplane()
    graph.on_updates(ResourceUpdate(*key_of(r), r) for r in resources)
    graph.in_sync()
    for msg in graph.flush():
        dpl.on_update(msg)
    snapshot = Snapshot(resources)
    weps = [r for r in resources if isinstance(r, WorkloadEndpoint)]
    local = [w for w in weps if w.spec.node == HOST]
    assert {f"{w.metadata.namespace}/{w.metadata.name}" for w in local} == set(dpl.endpoints)
    others = [ip.split("/")[0] for w in weps for ip in w.spec.ip_networks]
    others += ["192.168.1.5", "8.8.8.8", "fd00::99"]
    checked = 0
    for ep in local:
        eid = f"{ep.metadata.namespace}/{ep.metadata.name}"
        for own in (ip.split("/")[0] for ip in ep.spec.ip_networks):
            for other in others:
                if ipaddress.ip_address(own).version != ipaddress.ip_address(other).version:
                    continue
                for proto, port in FLOW_PORTS:
                    for direction in Direction:
                        src, dst = (other, own) if direction is Direction.INGRESS else (own, other)
                        if proto == "ICMP" and ":" in own:
                            continue
                        flow = Flow.make(src, dst, proto, dst_port=port)
                        want = evaluate_endpoint(snapshot, ep, direction, flow).action
                        got = interpret(dpl, eid, direction, flow)
                        assert got == want, f"{eid} {direction} {flow}"
                        checked += 1
    assert checked > 0
