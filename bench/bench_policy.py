"""Benchmark of regionmesh.policy: explain-style evaluate_flow latency on OpenStack-like data.

Synthetic world: two regions (``openstack-region-one``/``-two``), projects owning security
groups; every VM carries 1–2 of its project's SG labels (``sg.projectcalico.org/openstack-<id>``)
plus the usual networking-calico labels; every SG is an ``ossg.default.<id>`` NetworkPolicy
written WITHOUT types (remote-group, remote-prefix and port rules), plus operator GNPs with an
order (some cross-region, some in a ``security`` tier ending in Pass rules).

Reports: snapshot build time, evaluate_flow p50/p99 (first touch of each endpoint and warm),
and — at a size both can run — the per-call ratio against the naive evaluator (which scans
everything and re-parses selectors on every call). Run: ``python bench/bench_policy.py``
(``--quick`` for a small smoke run).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from regionmesh.model import GlobalNetworkPolicy, NetworkPolicy, Resource, Tier, WorkloadEndpoint
from regionmesh.policy import Flow, Snapshot, evaluate_flow, naive_evaluate_flow
from regionmesh.policy.naive import NaiveWorld

REGIONS = ("one", "two")
LBL = "sg.projectcalico.org/openstack-"


def sg_id(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-{i:012x}"


def build_world(
    n_endpoints: int, n_policies: int, seed: int = 7
) -> tuple[list[Resource], list[WorkloadEndpoint]]:
    """OpenStack-like resources: n_endpoints VMs, ~n_policies policies (SG NPs + GNPs)."""
    rnd = random.Random(seed)
    n_gnps = max(2, n_policies // 100)
    n_sgs = n_policies - n_gnps
    sgs_per_project = 5
    n_projects = max(1, n_sgs // sgs_per_project)
    resources: list[Resource] = [
        Tier.model_validate({"metadata": {"name": "default"}, "spec": {"order": 1_000_000}}),
        Tier.model_validate({"metadata": {"name": "security"}, "spec": {"order": 100}}),
    ]
    sg_region: dict[int, str] = {}
    for s in range(n_sgs):
        project = s // sgs_per_project
        region = REGIONS[project % 2]
        sg_region[s] = region
        ns = f"openstack-region-{region}"
        first = project * sgs_per_project
        remote = first + rnd.randrange(sgs_per_project)
        ingress: list[dict[str, Any]] = [
            {"action": "Allow", "ipVersion": 4, "source": {"selector": f"has({LBL}{sg_id(s)})"}},
            {
                "action": "Allow",
                "ipVersion": 4,
                "protocol": 6,
                "source": {"selector": f"has({LBL}{sg_id(remote)})"},
                "destination": {"ports": [rnd.choice([80, 443, 5432, 8080])]},
            },
            {
                "action": "Allow",
                "ipVersion": 4,
                "protocol": 6,
                "source": {"nets": [f"192.0.{rnd.randrange(256)}.0/24"]},
                "destination": {"ports": [22]},
            },
            {"action": "Allow", "ipVersion": 4, "protocol": 1, "icmp": {"type": 8}},
        ]
        egress = [{"action": "Allow", "ipVersion": 4}, {"action": "Allow", "ipVersion": 6}]
        resources.append(
            NetworkPolicy.model_validate(
                {
                    "metadata": {"name": f"ossg.default.{sg_id(s)}", "namespace": ns},
                    "spec": {
                        "selector": f"has({LBL}{sg_id(s)})",
                        "ingress": ingress,
                        "egress": egress,
                    },
                }
            )
        )
    for g in range(n_gnps):
        a, b = rnd.randrange(n_sgs), rnd.randrange(n_sgs)
        if g % 4 == 0:
            spec: dict[str, Any] = {
                "tier": "security",
                "order": g,
                "selector": f"has({LBL}{sg_id(a)})",
                "ingress": [
                    {"action": "Deny", "protocol": 6, "source": {"nets": ["198.51.100.0/24"]}},
                    {"action": "Pass"},
                ],
                "egress": [{"action": "Pass"}],
            }
        else:
            spec = {
                "order": g,
                "selector": f"has({LBL}{sg_id(a)})",
                "types": ["Ingress"],
                "ingress": [
                    {
                        "action": "Allow",
                        "protocol": 6,
                        "source": {"selector": f"has({LBL}{sg_id(b)})"},
                        "destination": {"ports": [80]},
                    }
                ],
            }
        resources.append(
            GlobalNetworkPolicy.model_validate({"metadata": {"name": f"op-{g}"}, "spec": spec})
        )
    endpoints: list[WorkloadEndpoint] = []
    for e in range(n_endpoints):
        project = rnd.randrange(n_projects)
        region = REGIONS[project % 2]
        ns = f"openstack-region-{region}"
        first = project * sgs_per_project
        groups = rnd.sample(
            range(first, min(first + sgs_per_project, n_sgs)), k=min(2, rnd.randint(1, 2))
        )
        labels = {f"{LBL}{sg_id(s)}": f"sg{s}" for s in groups}
        labels["projectcalico.org/namespace"] = ns
        labels["projectcalico.org/orchestrator"] = "openstack"
        labels["projectcalico.org/openstack-project-id"] = f"proj{project}"
        octet2 = 1 if region == "one" else 2
        ip = f"10.{octet2 * 16 + (e >> 16)}.{(e >> 8) & 255}.{e & 255}"
        endpoints.append(
            WorkloadEndpoint.model_validate(
                {
                    "metadata": {
                        "name": f"cmp{e % 500}-openstack-vm{e}-tap{e}",
                        "namespace": ns,
                        "labels": labels,
                    },
                    "spec": {
                        "orchestrator": "openstack",
                        "node": f"cmp{e % 500}",
                        "workload": f"vm{e}",
                        "endpoint": f"tap{e}",
                        "ipNetworks": [f"{ip}/32"],
                    },
                }
            )
        )
    resources.extend(endpoints)
    return resources, endpoints


def random_flows(
    endpoints: list[WorkloadEndpoint], n: int, seed: int = 11
) -> list[tuple[WorkloadEndpoint, WorkloadEndpoint, Flow]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        src, dst = rnd.choice(endpoints), rnd.choice(endpoints)
        proto = rnd.choice(["TCP", "TCP", "TCP", "UDP", "ICMP"])
        s_ip = src.spec.ip_networks[0].split("/")[0]
        d_ip = dst.spec.ip_networks[0].split("/")[0]
        if proto == "ICMP":
            flow = Flow.make(s_ip, d_ip, proto, icmp_type=8, icmp_code=0)
        else:
            flow = Flow.make(
                s_ip,
                d_ip,
                proto,
                rnd.randrange(32768, 60999),
                rnd.choice([22, 80, 443, 5432, 8080, 9999]),
            )
        out.append((src, dst, flow))
    return out


def timed_calls(
    fn: Callable[[WorkloadEndpoint, WorkloadEndpoint, Flow], object],
    flows: list[tuple[WorkloadEndpoint, WorkloadEndpoint, Flow]],
) -> list[float]:
    times = []
    for src, dst, flow in flows:
        t0 = time.perf_counter()
        fn(src, dst, flow)
        times.append(time.perf_counter() - t0)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs" if seconds < 0.01 else f"{seconds * 1e3:,.1f} ms"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=100_000)
    ap.add_argument("--policies", type=int, default=10_000)
    ap.add_argument("--flows", type=int, default=2000)
    ap.add_argument("--naive-endpoints", type=int, default=500)
    ap.add_argument("--naive-policies", type=int, default=100)
    ap.add_argument("--naive-flows", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.endpoints, args.policies, args.flows = 5000, 500, 300
        args.naive_endpoints, args.naive_policies, args.naive_flows = 200, 40, 10

    rows: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    resources, endpoints = build_world(args.endpoints, args.policies)
    rows.append(
        (
            f"generate {len(endpoints):,} WEPs + {args.policies:,} policies (pydantic, not part of the snapshot)",
            us(time.perf_counter() - t0),
        )
    )

    t0 = time.perf_counter()
    snap = Snapshot(resources)
    build = time.perf_counter() - t0
    rows.append(("Snapshot build", us(build)))

    flows = random_flows(endpoints, args.flows)
    cold = timed_calls(lambda s, d, f: evaluate_flow(snap, s, d, f), flows)
    warm = timed_calls(lambda s, d, f: evaluate_flow(snap, s, d, f), flows)
    allowed = sum(evaluate_flow(snap, s, d, f).allowed for s, d, f in flows)
    rows.append(
        (
            f"evaluate_flow first touch p50 / p99 ({len(flows)} flows)",
            f"{us(pct(cold, 0.5))} / {us(pct(cold, 0.99))}",
        )
    )
    rows.append(("evaluate_flow warm p50 / p99", f"{us(pct(warm, 0.5))} / {us(pct(warm, 0.99))}"))
    rows.append(("flows allowed", f"{allowed} of {len(flows)}"))
    # The cold tail above is mostly the cyclic GC scanning the ~millions of live objects of the
    # model + snapshot. A long-running process can gc.freeze() after loading; measure that.
    snap = Snapshot(resources)
    gc.collect()
    gc.freeze()
    frozen = timed_calls(lambda s, d, f: evaluate_flow(snap, s, d, f), flows)
    gc.unfreeze()
    rows.append(
        (
            "evaluate_flow first touch p50 / p99 after gc.freeze()",
            f"{us(pct(frozen, 0.5))} / {us(pct(frozen, 0.99))}",
        )
    )

    # ---- ratio against the naive evaluator at a size both can run
    small, small_eps = build_world(args.naive_endpoints, args.naive_policies, seed=3)
    small_flows = random_flows(small_eps, args.naive_flows, seed=5)
    t0 = time.perf_counter()
    small_snap = Snapshot(small)
    small_build = time.perf_counter() - t0
    world = NaiveWorld(small)
    idx_times = timed_calls(lambda s, d, f: evaluate_flow(small_snap, s, d, f), small_flows)
    naive_times = timed_calls(lambda s, d, f: naive_evaluate_flow(world, s, d, f), small_flows)
    for s, d, f in small_flows:  # and they agree
        assert (
            evaluate_flow(small_snap, s, d, f).to_dict()
            == naive_evaluate_flow(world, s, d, f).to_dict()
        )
    idx_mean = statistics.mean(idx_times)
    naive_mean = statistics.mean(naive_times)
    label = (
        f"{args.naive_endpoints:,} WEPs / {args.naive_policies} policies, {len(small_flows)} flows"
    )
    rows.append((f"[{label}] naive evaluate_flow mean per call", us(naive_mean)))
    rows.append(
        (f"[{label}] indexed evaluate_flow mean per call (incl. first touch)", us(idx_mean))
    )
    rows.append(
        (
            f"[{label}] indexed incl. its snapshot build, amortised per call",
            us(idx_mean + small_build / len(small_flows)),
        )
    )
    rows.append(("**ratio naive / indexed, per call**", f"**{naive_mean / idx_mean:,.0f}×**"))
    rows.append(
        (
            "ratio naive / indexed incl. snapshot build",
            f"{naive_mean / (idx_mean + small_build / len(small_flows)):,.0f}×",
        )
    )

    print(f"\n### regionmesh.policy benchmark (python {sys.version.split()[0]})\n")
    print("| measurement | result |")
    print("| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
