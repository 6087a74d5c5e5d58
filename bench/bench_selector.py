"""Benchmark regionmesh.selector: compiled closures vs the naive tree-walking evaluator.

Evaluates selectors over 100k generated OpenStack-style label sets (the labels networking-calico
writes on a WorkloadEndpoint), and times parse() of 10k distinct selectors. Prints a markdown
table; the baseline for each evaluation row is the naive evaluator measured in the same run.

    python bench/bench_selector.py [--labels N] [--parses N] [--seed S]
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import uuid
from collections.abc import Callable, Mapping

from regionmesh.selector import Selector, parse

REGIONS = ["r1", "r2", "r3", "lab"]
SG_NAMES = ["default", "web", "db", "ssh", "monitoring", "production", "staging", "bastion"]
NETWORKS = ["private", "public", "storage", "mgmt"]


def make_label_sets(count: int, rng: random.Random) -> tuple[list[dict[str, str]], list[str]]:
    """OpenStack workload labels; returns (label sets, pool of security-group ids)."""
    sg_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(200)]
    sg_name = {sg: rng.choice(SG_NAMES) for sg in sg_ids}
    projects = [uuid.UUID(int=rng.getrandbits(128), version=4).hex for _ in range(50)]
    out = []
    for _ in range(count):
        labels = {
            "projectcalico.org/namespace": f"openstack-region-{rng.choice(REGIONS)}",
            "projectcalico.org/orchestrator": "openstack",
            "projectcalico.org/openstack-project-id": rng.choice(projects),
            "projectcalico.org/openstack-project-name": f"project-{rng.randrange(50)}",
            "projectcalico.org/openstack-network-name": rng.choice(NETWORKS),
        }
        for sg in rng.sample(sg_ids, rng.randint(1, 4)):
            labels[f"sg.projectcalico.org/openstack-{sg}"] = sg_name[sg]
            labels[f"sg-name.projectcalico.org/openstack-{sg_name[sg]}"] = sg
        out.append(labels)
    return out, sg_ids


def time_evals(
    fn: Callable[[Mapping[str, str]], bool], label_sets: list[dict[str, str]]
) -> tuple[float, int]:
    """Best of 3 runs: (evaluations per second, number of matches)."""
    best = float("inf")
    results: list[bool] = []
    for _ in range(3):
        gc.collect()
        start = time.perf_counter()
        results = list(map(fn, label_sets))
        best = min(best, time.perf_counter() - start)
    return len(label_sets) / best, sum(results)


def distinct_selectors(count: int, rng: random.Random) -> list[str]:
    texts = []
    for i in range(count):
        sg = uuid.UUID(int=rng.getrandbits(128), version=4)
        shape = i % 3
        if shape == 0:
            texts.append(f"has(sg.projectcalico.org/openstack-{sg})")
        elif shape == 1:
            texts.append(
                f"(has(sg.projectcalico.org/openstack-{sg}) && "
                f"projectcalico.org/namespace == 'openstack-region-r{i}')"
            )
        else:
            texts.append(
                f"projectcalico.org/openstack-network-name in {{'private', 'n{i}'}} || "
                f"projectcalico.org/openstack-project-name starts with 'p{i}' && "
                f"!has(sg.projectcalico.org/openstack-{sg})"
            )
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=int, default=100_000)
    ap.add_argument("--parses", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    label_sets, sg_ids = make_label_sets(args.labels, rng)
    sg = sg_ids[0]
    cases: list[tuple[str, Selector]] = [
        ("simple `has(sg…)`", parse(f"has(sg.projectcalico.org/openstack-{sg})")),
        (
            "compound",
            parse(
                f"(has(sg.projectcalico.org/openstack-{sg}) && "
                "projectcalico.org/openstack-network-name in {'private', 'mgmt', 'x', 'y'}) || "
                "projectcalico.org/openstack-project-name starts with 'project-1' && "
                "!has(sg-name.projectcalico.org/openstack-db)"
            ),
        ),
        (
            "NP-rewritten (and_ + ns clause)",
            parse(
                f"(has(sg.projectcalico.org/openstack-{sg}) || "
                "projectcalico.org/openstack-network-name != 'public') && "
                "projectcalico.org/namespace == 'openstack-region-r1'"
            ),
        ),
    ]

    print(
        f"{len(label_sets)} label sets, avg {sum(map(len, label_sets)) / len(label_sets):.1f} labels each\n"
    )
    print("| case | matches | naive evals/s | compiled evals/s | ratio (compiled/naive) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, sel in cases:
        naive_rate, naive_hits = time_evals(sel._evaluate_naive, label_sets)
        fast_rate, fast_hits = time_evals(sel.evaluate, label_sets)
        assert naive_hits == fast_hits, (name, naive_hits, fast_hits)
        print(
            f"| {name} | {fast_hits} | {naive_rate:,.0f} | {fast_rate:,.0f} | "
            f"{fast_rate / naive_rate:.2f}x |"
        )

    texts = distinct_selectors(args.parses, rng)
    # Uncached internals, so each row does the full work for every text.
    from regionmesh.selector.parser import parse_expression
    from regionmesh.selector.selector import _parse_cached

    def tree_only() -> None:
        for text in texts:
            parse_expression(text)

    def full_parse() -> None:
        _parse_cached.cache_clear()
        for text in texts:
            parse(text)

    def cached_parse() -> None:
        for text in texts[:1000]:
            parse(text)

    rows = []
    for name, fn, count in [
        ("tokenize + parse to tree (baseline)", tree_only, len(texts)),
        ("parse() → Selector (tree, canonical str, compile)", full_parse, len(texts)),
        ("parse() of an already-seen text (cache hit)", cached_parse, 1000),
    ]:
        best = float("inf")
        for _ in range(3):
            gc.collect()
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        rows.append((name, count, best / count))
    base = rows[0][2]
    print()
    print("| parse of distinct selectors | count | µs each | parses/s | time ratio vs baseline |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, count, each in rows:
        print(f"| {name} | {count} | {each * 1e6:.1f} | {1 / each:,.0f} | {each / base:.2f}x |")


if __name__ == "__main__":
    main()
