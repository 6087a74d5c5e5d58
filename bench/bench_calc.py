"""Benchmark of the agent's calc graph (regionmesh.agent.graph.CalcGraph).

Cluster: N workload endpoints in two OpenStack regions (50 on this host, the rest remote), each
in 1-3 security groups; P security groups as ``ossg.default.<sg>`` NetworkPolicies without
``types`` (remote-group ingress rule + allow-all egress), plus one seed GNP.

Measured per size:
* first full state: queue the whole snapshot, flush (validation included);
* label change → delta: a remote endpoint swaps one security group (a member delta on two IP
  sets), and a local endpoint does the same (endpoint + policy + set updates): median and p99;
* memory per endpoint: tracemalloc of a second build (the input resources are not counted);
* baseline: a naive full recompute of the same state, i.e. building a fresh graph from the
  snapshot after the change — the ratio is baseline / incremental median.

Run: ``python bench/bench_calc.py`` (``--quick`` for the small size only).
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
import tracemalloc
from typing import Any

from regionmesh.agent.graph import CalcGraph, ResourceUpdate
from regionmesh.model import GlobalNetworkPolicy, NetworkPolicy, Resource, WorkloadEndpoint

HOST = "cmp0"
REGIONS = ("openstack-region-one", "openstack-region-two")
LOCAL = 50


def sg_key(sg: int) -> str:
    return f"sg.projectcalico.org/openstack-sg{sg}"


def make_wep(i: int, sgs: list[int]) -> WorkloadEndpoint:
    ns = REGIONS[i % 2]
    host = HOST if i < LOCAL else f"cmp{1 + i % 500}"
    labels = {sg_key(s): f"sg{s}" for s in sgs}
    labels |= {"projectcalico.org/namespace": ns, "projectcalico.org/orchestrator": "openstack"}
    ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}/32"
    data: dict[str, Any] = {
        "metadata": {"name": f"{host}-openstack-vm{i}-port{i}", "namespace": ns, "labels": labels},
        "spec": {
            "orchestrator": "openstack",
            "workload": f"vm{i}",
            "node": host,
            "endpoint": f"port{i}",
            "interfaceName": f"tap{i:011d}"[:14],
            "mac": "02:00:00:00:00:01",
            "ipNetworks": [ip],
        },
    }
    return WorkloadEndpoint.model_validate(data)


def make_np(sg: int) -> NetworkPolicy:
    return NetworkPolicy.model_validate(
        {
            "metadata": {"name": f"ossg.default.sg{sg}", "namespace": REGIONS[sg % 2]},
            "spec": {
                "selector": f"has({sg_key(sg)})",
                "ingress": [
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {"selector": f"has({sg_key(sg)})"},
                    },
                    {"action": "Allow", "protocol": "TCP", "destination": {"ports": [22]}},
                ],
                "egress": [{"action": "Allow"}],
            },
        }
    )


def sgs_for(i: int, n_sg: int, rng: random.Random) -> list[int]:
    # SGs live in one region (sg % 2 == region index), as networking-calico writes them.
    region = i % 2
    return sorted({rng.randrange(n_sg // 2) * 2 + region for _ in range(rng.randint(1, 3))})


def build(n: int, n_sg: int) -> tuple[list[Resource], dict[int, list[int]]]:
    rng = random.Random(n)
    sgs = {i: sgs_for(i, n_sg, rng) for i in range(n)}
    res: list[Resource] = [make_wep(i, sgs[i]) for i in range(n)]
    res += [make_np(s) for s in range(n_sg)]
    res.append(
        GlobalNetworkPolicy.model_validate(
            {
                "metadata": {"name": "allow-tcp-80"},
                "spec": {
                    "selector": "has(projectcalico.org/orchestrator)",
                    "types": ["Ingress"],
                    "ingress": [
                        {"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}}
                    ],
                },
            }
        )
    )
    return res, sgs


def upd(r: Resource) -> ResourceUpdate:
    return ResourceUpdate(r.KIND, r.metadata.namespace or None, r.metadata.name, r)


def first_state(resources: list[Resource]) -> tuple[CalcGraph, float, int]:
    t0 = time.perf_counter()
    g = CalcGraph(HOST)
    g.on_updates(upd(r) for r in resources)
    g.in_sync()
    msgs = g.flush()
    return g, time.perf_counter() - t0, len(msgs)


def change_latencies(
    g: CalcGraph, sgs: dict[int, list[int]], n_sg: int, local: bool, rounds: int
) -> list[float]:
    rng = random.Random(1)
    n = len(sgs)
    out: list[float] = []
    for _ in range(rounds):
        i = rng.randrange(LOCAL) if local else rng.randrange(LOCAL, n)
        cur = sgs[i]
        new = sorted(set(cur[1:]) | {rng.randrange(n_sg // 2) * 2 + i % 2})
        sgs[i] = new
        w = make_wep(i, new)  # built outside the timed region (the syncer decodes it)
        t0 = time.perf_counter()
        g.on_updates([upd(w)])
        msgs = g.flush()
        out.append(time.perf_counter() - t0)
        assert isinstance(msgs, list)
    return out


def p99(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.99) - 1)]


def memory_per_endpoint(resources: list[Resource], n: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    g = CalcGraph(HOST)
    g.on_updates(upd(r) for r in resources)
    g.flush()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del g
    return (after - before) / n


def main() -> None:
    sizes = [(10_000, 1_000), (100_000, 10_000)]
    if "--quick" in sys.argv:
        sizes = sizes[:1]
    rows = []
    for n, n_sg in sizes:
        resources, sgs = build(n, n_sg)
        g, t_first, n_msgs = first_state(resources)
        remote = change_latencies(g, sgs, n_sg, local=False, rounds=300)
        local = change_latencies(g, sgs, n_sg, local=True, rounds=100)
        # Baseline: naive full recompute of the state after the changes.
        snapshot = [r for r in resources if not isinstance(r, WorkloadEndpoint)]
        snapshot += [make_wep(i, sgs[i]) for i in range(n)]
        del g
        gc.collect()
        _, t_naive, _ = first_state(snapshot)
        mem = memory_per_endpoint(snapshot, n)
        med_r = statistics.median(remote)
        med_l = statistics.median(local)
        rows.append(
            (
                n,
                n_sg,
                t_first,
                n_msgs,
                med_r,
                p99(remote),
                med_l,
                p99(local),
                t_naive,
                t_naive / med_r,
                mem,
            )
        )
        del resources, snapshot
        gc.collect()
    print(
        "| endpoints | policies | first full state | msgs | remote change median / p99 | "
        "local change median / p99 | naive recompute | ratio (naive / remote median) | "
        "graph memory per endpoint |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, p, tf, nm, mr, pr, ml, pl, tn, ratio, mem in rows:
        print(
            f"| {n:,} | {p:,} | {tf:.2f} s | {nm:,} | {mr * 1e3:.3f} / {pr * 1e3:.3f} ms | "
            f"{ml * 1e3:.3f} / {pl * 1e3:.3f} ms | {tn:.2f} s | {ratio:,.0f}x | {mem / 1024:.2f} KiB |"
        )


if __name__ == "__main__":
    main()
