"""Benchmark the address-group mirror loop's CPU cost per burst of changes (issue 13).

Run: ``python bench/bench_mirrors.py [--endpoints 1000,10000] [--sgs 200]``

For N WorkloadEndpoints of another region (as networking-calico stores them: each in two of
``sgs`` security groups, JSON values) it measures, in one run:

* **parse all** (the baseline): ``json.loads`` of every stored endpoint value — what any
  consumer of the datastore pays once per full read;
* **view build**: the master's snapshot (:class:`MirrorView` from the stored values);
* **cold reconcile**: every mirror created (``remote_groups`` + ``plan_mirrors`` + the calls,
  against :class:`MemoryAddressGroups`, so Neutron's own SQL is not in it);
* **one-port reconcile**: one endpoint changed, the steady-state reconciliation after the
  burst (wanted state recomputed from the view, one ``add_addresses``).

Prints a markdown table: total ms, µs per endpoint, and the ratio to "parse all" of this run.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from regionmesh.datastore import keys
from regionmesh.openstack import address_groups as ag
from regionmesh.openstack.endpoints import SG_LABEL_PREFIX
from regionmesh.openstack.mirror_worker import MirrorView

NS = "openstack-region-two"


def values(n: int, sgs: int) -> dict[str, bytes]:
    out = {}
    for i in range(n):
        a, b = i % sgs, (i * 7 + 3) % sgs
        doc = {
            "kind": "WorkloadEndpoint",
            "apiVersion": "projectcalico.org/v3",
            "metadata": {
                "name": f"cmp-openstack-vm--{i}-port--{i}",
                "namespace": NS,
                "labels": {
                    f"{SG_LABEL_PREFIX}sg-{a:04d}": f"group-{a}",
                    f"{SG_LABEL_PREFIX}sg-{b:04d}": f"group-{b}",
                    "projectcalico.org/namespace": NS,
                    "projectcalico.org/orchestrator": "openstack",
                },
            },
            "spec": {
                "orchestrator": "openstack",
                "node": "cmp",
                "ipNetworks": [f"10.{20 + i // 65536}.{(i // 256) % 256}.{i % 256}/32"],
            },
        }
        key = keys.resource_key("workloadendpoints", doc["metadata"]["name"], NS)  # type: ignore[arg-type,index]
        out[key] = json.dumps(doc).encode()
    return out


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(n: int, sgs: int) -> list[tuple[str, float]]:
    stored = values(n, sgs)
    parse_all = timed(lambda: [json.loads(v) for v in stored.values()])

    def build() -> MirrorView:
        view = MirrorView()
        for k, v in stored.items():
            view.apply(k, v)
        return view

    view_s = timed(build)
    view = build()

    def cold() -> None:
        ag.reconcile(view.wanted("one", None), ag.MemoryAddressGroups())

    cold_s = timed(cold, 1)
    backend = ag.MemoryAddressGroups()
    ag.reconcile(view.wanted("one", None), backend)
    first = next(iter(stored))
    doc = json.loads(stored[first])
    counter = iter(range(1, 10_000))

    def one_port() -> None:
        doc["spec"]["ipNetworks"] = [f"10.99.0.{next(counter) % 250}/32"]
        view.apply(first, json.dumps(doc).encode())
        report = ag.reconcile(view.wanted("one", None), backend)
        assert report.ok

    one_s = timed(one_port)
    return [
        ("parse all (baseline)", parse_all),
        ("view build", view_s),
        ("cold reconcile (all mirrors created)", cold_s),
        ("one-port reconcile", one_s),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", default="1000,10000")
    parser.add_argument("--sgs", type=int, default=200)
    args = parser.parse_args()
    print("| endpoints | what | total ms | µs/endpoint | ratio to parse all |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for n in (int(x) for x in args.endpoints.split(",")):
        rows = run(n, args.sgs)
        base = rows[0][1]
        for what, secs in rows:
            print(
                f"| {n:,} | {what} | {secs * 1e3:.1f} | {secs * 1e6 / n:.2f} | {secs / base:.2f} |"
            )


if __name__ == "__main__":
    main()
