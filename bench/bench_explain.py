"""Benchmark explain, the grouped connectivity matrix and the what-if diff.

Three measurements, each with a baseline measured in the same run and reported as a ratio:

1. ``explain`` (resolve + evaluate_flow, as the CLI does once the snapshot is loaded) with
   100k WorkloadEndpoints and 10k policies in 3 regions: p50/p99 over random VM pairs and ports.
   Baseline: the brute-force evaluator ``regionmesh.policy.naive`` on the same world (a few
   flows: it scans everything per flow).
2. A full region-by-region connectivity matrix for 10k VMs, grouped. Baseline: evaluating every
   VM pair separately (same probes, no grouping) on a random subset, extrapolated to all
   10k x 10k pairs.
3. The what-if diff of one policy change at 10k VMs. Baseline: two full matrices (before and
   after) without the "only re-evaluate pairs whose inputs changed" pruning.

    python bench/bench_explain.py [--endpoints 100000] [--policies 10000] [--vms 10000]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import uuid
from typing import Any

from regionmesh.model import Resource, WorkloadEndpoint, codec
from regionmesh.policy import Snapshot, evaluate_flow, naive_evaluate_flow
from regionmesh.policy.connectivity import (
    GroupIndex,
    PairEvaluator,
    compute_connectivity,
    group_endpoints,
    workload_endpoints,
)
from regionmesh.policy.flowspec import EndpointRef, FlowSpec, resolve_flow
from regionmesh.policy.naive import NaiveWorld
from regionmesh.policy.whatif import what_if

API = "projectcalico.org/v3"
REGIONS = ["one", "two", "three"]
PORTS = [22, 80, 443, 3306, 5432, 6379, 8080, 9090]


def _sg(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def build_world(
    n_endpoints: int, n_policies: int, sgs_per_region: int, rng: random.Random
) -> tuple[list[Resource], list[WorkloadEndpoint]]:
    """Neutron-style endpoints (a region default SG + one app SG each), one
    ``ossg.default.<sg>`` NetworkPolicy per SG, and operator GNPs up to ``n_policies``."""
    sgs = {r: [_sg(rng) for _ in range(sgs_per_region)] for r in REGIONS}
    res: list[Resource] = []
    for region, ids in sgs.items():
        ns = f"openstack-region-{region}"
        for i, sg in enumerate(ids):
            peer = ids[0] if i else ids[-1]
            res.append(
                codec.decode({
                    "apiVersion": API, "kind": "NetworkPolicy",
                    "metadata": {"name": f"ossg.default.{sg}", "namespace": ns},
                    "spec": {
                        "selector": f"has(sg.projectcalico.org/openstack-{sg})",
                        "ingress": [
                            {"action": "Allow", "source": {"selector": f"has(sg.projectcalico.org/openstack-{sg})"}},
                            {"action": "Allow", "protocol": "TCP", "source": {"selector": f"has(sg.projectcalico.org/openstack-{peer})"},
                             "destination": {"ports": [rng.choice(PORTS)]}},
                        ],
                        "egress": [{"action": "Allow"}],
                    },
                })
            )  # fmt: skip
    all_sgs = [(r, sg) for r, ids in sgs.items() for sg in ids]
    for i in range(max(0, n_policies - len(all_sgs))):
        (_r1, dst), (_r2, src) = rng.choice(all_sgs), rng.choice(all_sgs)
        res.append(
            codec.decode({
                "apiVersion": API, "kind": "GlobalNetworkPolicy", "metadata": {"name": f"op-{i}"},
                "spec": {
                    "order": rng.choice([10, 100, 500]),
                    "selector": f"has(sg.projectcalico.org/openstack-{dst})",
                    "types": ["Ingress"],
                    "ingress": [{"action": rng.choice(["Allow", "Allow", "Deny"]), "protocol": "TCP",
                                 "source": {"selector": f"has(sg.projectcalico.org/openstack-{src})"},
                                 "destination": {"ports": [rng.choice(PORTS)]}}],
                },
            })
        )  # fmt: skip
    weps: list[WorkloadEndpoint] = []
    for i in range(n_endpoints):
        region = REGIONS[i % len(REGIONS)]
        ids = sgs[region]
        labels = {f"sg.projectcalico.org/openstack-{ids[0]}": "default"}
        labels[f"sg.projectcalico.org/openstack-{rng.choice(ids)}"] = "app"
        r = REGIONS.index(region) + 1
        wep = codec.decode({
            "apiVersion": API, "kind": "WorkloadEndpoint",
            "metadata": {"name": f"cmp-{i % 97}-openstack-vm{i}-eth0",
                         "namespace": f"openstack-region-{region}", "labels": labels},
            "spec": {"orchestrator": "openstack", "node": f"cmp-{i % 97}", "workload": f"vm{i}",
                     "endpoint": "eth0", "ipNetworks": [f"10.{r}.{(i // 250) % 250}.{i % 250 + 1}/32"]},
        })  # fmt: skip
        assert isinstance(wep, WorkloadEndpoint)
        weps.append(wep)
    return res + weps, weps


def _timed(fn: Any) -> tuple[float, Any]:
    gc.collect()
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_explain(args: argparse.Namespace, rng: random.Random) -> list[tuple[str, str, str, str]]:
    build_t, (resources, weps) = _timed(
        lambda: build_world(args.endpoints, args.policies, args.sgs, rng)
    )
    snap_t, snap = _timed(lambda: Snapshot(resources))
    pairs = [(rng.choice(weps), rng.choice(weps), rng.choice(PORTS)) for _ in range(args.samples)]
    times = []
    allowed = 0
    for src, dst, port in pairs:
        spec = FlowSpec(
            EndpointRef(src.metadata.namespace, src.metadata.name),
            EndpointRef(dst.metadata.namespace, dst.metadata.name),
            6,
            port,
        )
        t = time.perf_counter()
        rf = resolve_flow(snap, spec)
        verdict = evaluate_flow(snap, rf.source, rf.destination, rf.flow)
        times.append(time.perf_counter() - t)
        allowed += verdict.allowed
    world_t, world = _timed(lambda: NaiveWorld(resources))
    naive_times = []
    for src, dst, port in pairs[: args.naive_samples]:
        spec = FlowSpec(
            EndpointRef(src.metadata.namespace, src.metadata.name),
            EndpointRef(dst.metadata.namespace, dst.metadata.name),
            6,
            port,
        )
        rf = resolve_flow(snap, spec)
        t = time.perf_counter()
        naive = naive_evaluate_flow(world, rf.source, rf.destination, rf.flow)
        naive_times.append(time.perf_counter() - t)
        assert naive.allowed == evaluate_flow(snap, rf.source, rf.destination, rf.flow).allowed
    p50, p99 = _pct(times, 0.5), _pct(times, 0.99)
    n50 = statistics.median(naive_times)
    print(
        f"explain world: {args.endpoints} endpoints, {len(resources) - len(weps)} policies; "
        f"build {build_t:.1f} s, Snapshot() {snap_t:.1f} s, NaiveWorld() {world_t:.1f} s; "
        f"{allowed}/{len(pairs)} sampled flows allowed"
    )
    size = f"{args.endpoints // 1000}k eps / {(len(resources) - len(weps)) // 1000}k pols"
    return [
        ("explain p50", size, f"{p50 * 1e3:.3f} ms", f"naive p50 {n50 * 1e3:.0f} ms → ×{n50 / p50:.0f}"),
        ("explain p99", size, f"{p99 * 1e3:.3f} ms", f"naive p50 {n50 * 1e3:.0f} ms → ×{n50 / p99:.0f}"),
    ]  # fmt: skip


def bench_matrix(args: argparse.Namespace, rng: random.Random) -> list[tuple[str, str, str, str]]:
    resources, weps = build_world(args.vms, args.matrix_policies, args.matrix_sgs, rng)
    snap = Snapshot(resources)
    grouped_t, conn = _timed(lambda: compute_connectivity(snap))
    cells = conn.matrix()
    allowed_pairs = sum(c.vm_pairs for c in cells.values())
    # baseline: every VM pair on its own (same evaluator and probes, no grouping)
    subset = rng.sample(weps, args.subset)
    evaluator = PairEvaluator(snap)

    def all_pairs() -> int:
        n = 0
        for s in subset:
            for d in subset:
                if s is not d:
                    evaluator.access(s, d)
                    n += 1
        return n

    pair_t, n_pairs = _timed(all_pairs)
    per_pair = pair_t / n_pairs
    extrapolated = per_pair * args.vms * (args.vms - 1)
    # the diff of one policy change (an operator GNP gets another port)
    gnps = [r for r in resources if r.kind == "GlobalNetworkPolicy"]
    victim = next(g for g in gnps if codec.to_storage(g)["spec"]["ingress"][0]["action"] == "Allow")
    doc = codec.to_storage(victim)
    doc["spec"]["ingress"][0]["destination"]["ports"] = [1234]
    changed = codec.decode({"apiVersion": API, "kind": victim.kind, **doc})
    diff_t, result = _timed(lambda: what_if(resources, [changed]))
    after = [changed if r is victim else r for r in resources]
    full_t, _ = _timed(lambda: (compute_connectivity(snap), compute_connectivity(Snapshot(after))))
    groups = len(
        group_endpoints(workload_endpoints(snap), GroupIndex(snap).signature, snap.labels_of)
    )
    print(
        f"matrix world: {args.vms} VMs, {len(resources) - len(weps)} policies, {groups} groups, "
        f"{len(conn.access)} group pairs with access, {allowed_pairs} VM pairs allowed, "
        f"{conn.evaluations} flow evaluations; all-pairs baseline on {args.subset} VMs: "
        f"{per_pair * 1e3:.2f} ms/pair"
    )
    print(
        f"diff: {len(result.changes)} change rows, {result.pairs_evaluated}/{result.pairs_total} "
        f"group pairs re-evaluated"
    )
    size = f"{args.vms // 1000}k VMs"
    return [
        ("region matrix (grouped)", size, f"{grouped_t:.2f} s",
         f"all pairs (extrapolated) {extrapolated / 3600:.1f} h → ×{extrapolated / grouped_t:.0f}"),
        ("diff of one policy change", size, f"{diff_t:.2f} s",
         f"two full matrices {full_t:.2f} s → ×{full_t / diff_t:.1f}"),
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=100_000)
    ap.add_argument("--policies", type=int, default=10_000)
    ap.add_argument("--sgs", type=int, default=300, help="security groups per region (explain)")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--naive-samples", type=int, default=5)
    ap.add_argument("--vms", type=int, default=10_000)
    ap.add_argument("--matrix-sgs", type=int, default=40, help="security groups per region")
    ap.add_argument("--matrix-policies", type=int, default=1000)
    ap.add_argument("--subset", type=int, default=120, help="VMs for the all-pairs baseline")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = bench_explain(args, rng) + bench_matrix(args, rng)
    print()
    print("| measurement | size | regionmesh | baseline (same run) → ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
