"""Grouped connectivity must agree with evaluate_flow on every VM pair (random scenarios)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from regionmesh.model import Resource, WorkloadEndpoint, codec
from regionmesh.policy import Flow, Snapshot, evaluate_flow
from regionmesh.policy.connectivity import OTHER_PROTOCOL, compute_connectivity
from regionmesh.policy.whatif import what_if

API = "projectcalico.org/v3"
SGS = ["a", "b", "c"]
PORTS = [22, 80, 443, 8080]


def _wep(i: int, region: str, sgs: list[str]) -> Resource:
    labels = {f"sg.projectcalico.org/openstack-{s}": "" for s in sgs}
    return codec.decode({
        "apiVersion": API, "kind": "WorkloadEndpoint",
        "metadata": {"name": f"vm{i}", "namespace": f"openstack-region-{region}", "labels": labels},
        "spec": {"orchestrator": "openstack", "node": "n", "workload": f"w{i}", "endpoint": "e",
                 "ipNetworks": [f"10.{i // 200}.{i % 200}.{i % 7 + 1}/32"]},
    })  # fmt: skip


rules = st.fixed_dictionaries(
    {"action": st.sampled_from(["Allow", "Deny", "Pass", "Log"])},
    optional={
        "protocol": st.sampled_from(["TCP", "UDP", "ICMP"]),
        "source": st.one_of(
            st.fixed_dictionaries({"selector": st.sampled_from([f"has(sg.projectcalico.org/openstack-{s})" for s in SGS])}),
            st.fixed_dictionaries({"nets": st.sampled_from([["10.0.0.0/16"], ["10.0.1.0/24"], ["10.1.0.0/16"]])}),
        ),
    },
)  # fmt: skip


def _rule(raw: dict[str, Any], ports: list[int], icmp_type: int | None) -> dict[str, Any]:
    rule = dict(raw)
    if rule.get("protocol") in ("TCP", "UDP") and ports:
        rule["destination"] = {"ports": ports}
    if rule.get("protocol") == "ICMP" and icmp_type is not None:
        rule["icmp"] = {"type": icmp_type}
    return rule


policies = st.lists(
    st.tuples(
        st.sampled_from(SGS + ["all"]),
        st.sampled_from(["GlobalNetworkPolicy", "NetworkPolicy"]),
        st.lists(st.tuples(rules, st.lists(st.sampled_from(PORTS), min_size=1, max_size=2), st.sampled_from([None, 0, 8])), max_size=3),
        st.lists(st.tuples(rules, st.lists(st.sampled_from(PORTS), max_size=2), st.sampled_from([None, 8])), max_size=2),
        st.sampled_from([None, 10, 100]),
        st.sampled_from([None, ["Ingress"], ["Ingress"], ["Egress"]]),
    ),
    max_size=4,
)  # fmt: skip
endpoints = st.lists(
    st.tuples(st.sampled_from(["one", "two"]), st.lists(st.sampled_from(SGS), max_size=2, unique=True)),
    min_size=2, max_size=7,
)  # fmt: skip


def _policy(i: int, spec: tuple[Any, ...]) -> Resource:
    sg, kind, ingress, egress, order, types = spec
    selector = "all()" if sg == "all" else f"has(sg.projectcalico.org/openstack-{sg})"
    md: dict[str, Any] = {"name": f"p{i}"}
    if kind == "NetworkPolicy":
        md["namespace"] = "openstack-region-one"
    body: dict[str, Any] = {
        "selector": selector,
        "ingress": [_rule(r, p, t) for r, p, t in ingress],
        "egress": [_rule(r, p, t) for r, p, t in egress],
    }
    if order is not None:
        body["order"] = order
    if types is not None:
        body["types"] = types
        body["egress" if types == ["Ingress"] else "ingress"] = []
    return codec.decode({"apiVersion": API, "kind": kind, "metadata": md, "spec": body})


EGRESS_ALL = codec.decode({
    "apiVersion": API, "kind": "GlobalNetworkPolicy", "metadata": {"name": "zz-egress-all"},
    "spec": {"order": 5000, "selector": "all()", "types": ["Egress"], "egress": [{"action": "Allow"}]},
})  # fmt: skip
"""Like every default SG's egress rule: without it almost no random flow would be allowed."""


def _probes() -> list[tuple[int, int | None, int | None]]:
    out: list[tuple[int, int | None, int | None]] = []
    for proto in (6, 17):
        for port in (0, 21, 22, 23, 79, 80, 81, 443, 8080, 8081, 65535):
            out.append((proto, port, None))
    for t in (0, 3, 8):
        out.append((1, None, t))
    out.append((47, None, None))
    return out


SEED_LIKE = (
    [("one", ["a"]), ("one", ["a"]), ("two", ["b"]), ("two", ["c"])],
    [("a", "GlobalNetworkPolicy", [({"action": "Allow", "protocol": "TCP",
      "source": {"selector": "has(sg.projectcalico.org/openstack-b)"}}, [80], None)], [], None, ["Ingress"])],
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(endpoints, policies)
@example(*SEED_LIKE)
def test_grouped_access_matches_per_pair_verdicts(eps: list[Any], pols: list[Any]) -> None:
    res = [_wep(i, region, sgs) for i, (region, sgs) in enumerate(eps)]
    res += [_policy(i, p) for i, p in enumerate(pols)] + [EGRESS_ALL]
    snap = Snapshot(res)
    conn = compute_connectivity(snap)
    group_of = {m.metadata.name: g for g in conn.groups for m in g.members}
    weps = [e for e in snap.endpoints() if isinstance(e, WorkloadEndpoint)]
    for s in weps:
        for d in weps:
            if s is d:
                continue
            access = conn.access.get((group_of[s.metadata.name].key, group_of[d.metadata.name].key))
            allowed = access.allowed if access else {}
            sip = s.spec.ip_networks[0].split("/")[0]
            dip = d.spec.ip_networks[0].split("/")[0]
            for proto, port, icmp in _probes():
                if proto == 1:
                    flow = Flow.make(sip, dip, proto, icmp_type=icmp, icmp_code=0)
                    key, axis = 1, (icmp or 0) * 256
                elif proto == 47:
                    flow = Flow.make(sip, dip, proto)
                    key, axis = OTHER_PROTOCOL, 0
                else:
                    flow = Flow.make(sip, dip, proto, src_port=40000, dst_port=port)
                    key, axis = proto, port or 0
                truth = evaluate_flow(snap, s, d, flow).allowed
                grouped = any(lo <= axis <= hi for lo, hi in allowed.get(key, ()))
                assert grouped == truth, (s.metadata.name, d.metadata.name, flow, allowed)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(endpoints, policies, policies)
def test_diff_matches_two_full_connectivities(
    eps: list[Any], old: list[Any], new: list[Any]
) -> None:
    base = [_wep(i, region, sgs) for i, (region, sgs) in enumerate(eps)] + [EGRESS_ALL]
    before = base + [_policy(i, p) for i, p in enumerate(old)]
    proposed = [_policy(i, p) for i, p in enumerate(new)]
    result = what_if(before, proposed)
    after = Snapshot(
        [*{(r.kind, r.metadata.namespace, r.metadata.name): r for r in before + proposed}.values()]
    )
    c_b, c_a = compute_connectivity(Snapshot(before)), compute_connectivity(after)

    def per_vm(conn: Any) -> dict[tuple[str, str], Any]:
        by_key = {g.key: g for g in conn.groups}
        out = {}
        for (sk, dk), acc in conn.access.items():
            for s in by_key[sk].members:
                for d in by_key[dk].members:
                    if s is not d:
                        out[(s.metadata.name, d.metadata.name)] = acc
        return out

    vb, va = per_vm(c_b), per_vm(c_a)
    opened = sum(
        1 for k in set(vb) | set(va) if (va.get(k) and (not vb.get(k) or va[k].minus(vb[k])))
    )
    closed = sum(
        1 for k in set(vb) | set(va) if (vb.get(k) and (not va.get(k) or vb[k].minus(va[k])))
    )
    assert (opened > 0) == any(c.change == "open" for c in result.changes)
    assert (closed > 0) == any(c.change == "close" for c in result.changes)
