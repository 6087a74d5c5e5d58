"""Benchmark the nft dataplane driver against raw ``nft -f`` of the same text (needs root).

Runs only inside network namespaces it creates (``rmt-bench-<id>-*``) and deletes them.

1. Full ruleset apply at N endpoints / N policies: ``NftDataplane.apply()`` (render + one
   ``nft -f`` transaction) vs ``nft -f`` of exactly the script the driver produced, each into a
   fresh namespace.
2. One IP-set element delta into a 100k-member set: ``on_update(IPSetDeltaUpdate) + apply()``
   vs ``nft -f`` of the same one-element script.

Prints a markdown table with the ratio (target ≤ 1.3×). Usage:
``python bench/bench_dataplane.py [--endpoints 1000] [--policies 1000] [--set-size 100000]``
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import statistics
import subprocess
import sys
import time
from typing import Any

from regionmesh.dataplane import (
    Action,
    ActivePolicyUpdate,
    HostConfig,
    InSync,
    IPSetDeltaUpdate,
    IPSetUpdate,
    Message,
    PortRange,
    Rule,
    TierInfo,
    WorkloadEndpointUpdate,
)
from regionmesh.dataplane.driver import NftDataplane
from regionmesh.dataplane.runner import SubprocessNft

RUN = secrets.token_hex(3)


class Recording(SubprocessNft):
    """SubprocessNft that remembers the last script it ran."""

    last: str = ""

    def apply(self, script: str) -> None:
        self.last = script
        super().apply(script)


def ip(i: int, base: str = "10.0.0.0") -> str:
    return str(ipaddress.IPv4Address(base) + i)


def workload(endpoints: int, policies: int, sets: int, members: int) -> list[Message]:
    msgs: list[Message] = [HostConfig(ipv6_enabled=False)]
    for s in range(sets):
        msgs.append(
            IPSetUpdate(f"s:set{s}", frozenset(ip(s * members + m) for m in range(members)))
        )
    for p in range(policies):
        rules = (
            Rule(
                Action.ALLOW,
                protocol=6,
                src_ipset_ids=(f"s:set{p % sets}",),
                dst_ports=(PortRange.single(22),),
            ),
            Rule(Action.ALLOW, protocol=6, dst_ports=(PortRange.single(80), PortRange.single(443))),
            Rule(
                Action.ALLOW,
                protocol=17,
                src_nets=(f"172.16.{p % 250}.0/24",),
                dst_ports=(PortRange(5000, 5100),),
            ),
            Rule(Action.DENY, protocol=6, src_ipset_ids=(f"s:set{(p + 1) % sets}",)),
            Rule(Action.ALLOW, protocol=1),
        )
        msgs.append(
            ActivePolicyUpdate(
                f"np/openstack-region-one/ossg.default.{p:08d}", rules, (Rule(Action.ALLOW),)
            )
        )
    for e in range(endpoints):
        pols = tuple(
            f"np/openstack-region-one/ossg.default.{(e + k) % policies:08d}" for k in range(2)
        )
        msgs.append(
            WorkloadEndpointUpdate(
                f"host/openstack/{e}",
                f"tap{e:011x}",
                None,
                (f"{ip(e, '10.128.0.0')}/32",),
                (),
                (TierInfo("default", pols, pols),),
            )
        )
    msgs.append(InSync())
    return msgs


def fresh_ns(tag: str) -> str:
    name = f"rmt-bench-{RUN}-{tag}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "add", name], check=True)
    return name


def raw_nft(ns: str, script: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"],
        input=script,
        text=True,
        capture_output=True,
        check=False,
    )
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[:500])
    return dt


def bench_full(endpoints: int, policies: int, reps: int) -> dict[str, Any]:
    msgs = workload(endpoints, policies, sets=200, members=20)
    driver_times, raw_times, render_times = [], [], []
    script = ""
    for r in range(reps):
        ns = fresh_ns(f"full-d{r}")
        runner = Recording(ns)
        dp = NftDataplane(runner)
        for m in msgs:
            dp.on_update(m)
        t0 = time.perf_counter()
        dp.apply()
        driver_times.append(time.perf_counter() - t0)
        script = runner.last
        subprocess.run(["ip", "netns", "del", ns], check=True)
        ns = fresh_ns(f"full-r{r}")
        raw_times.append(raw_nft(ns, script))
        subprocess.run(["ip", "netns", "del", ns], check=True)
        from regionmesh.dataplane.render import render_table
        from regionmesh.dataplane.tables import full_script

        t0 = time.perf_counter()
        full_script([render_table(dp.state, 4)])
        render_times.append(time.perf_counter() - t0)
    return {
        "driver": statistics.median(driver_times),
        "raw": statistics.median(raw_times),
        "render": statistics.median(render_times),
        "rules": sum(1 for line in script.splitlines() if line.startswith("add rule")),
    }


def bench_delta(set_size: int, reps: int) -> dict[str, Any]:
    ns = fresh_ns("delta")
    try:
        runner = Recording(ns)
        dp = NftDataplane(runner)
        members = frozenset(ip(i) for i in range(set_size))
        for m in (HostConfig(ipv6_enabled=False), IPSetUpdate("s:big", members), InSync()):
            dp.on_update(m)
        t0 = time.perf_counter()
        dp.apply()
        load = time.perf_counter() - t0
        driver_times, raw_times = [], []
        for r in range(reps):
            t0 = time.perf_counter()
            dp.on_update(IPSetDeltaUpdate("s:big", added=frozenset({ip(r, "10.200.0.0")})))
            dp.apply()
            driver_times.append(time.perf_counter() - t0)
            other = runner.last.replace(ip(r, "10.200.0.0"), ip(r, "10.201.0.0"))
            raw_times.append(raw_nft(ns, other))
        assert dp.full_applies == 1 and dp.delta_applies == reps
        return {
            "driver": statistics.median(driver_times),
            "raw": statistics.median(raw_times),
            "load": load,
            "script": runner.last.strip(),
        }
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--set-size", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, nft)", file=sys.stderr)
        return 2
    full = bench_full(args.endpoints, args.policies, args.reps)
    delta = bench_delta(args.set_size, max(args.reps, 10))
    print(
        f"nft: {subprocess.run(['nft', '--version'], capture_output=True, text=True).stdout.strip()}"
    )
    print(
        f"full ruleset: {args.endpoints} endpoints, {args.policies} policies, {full['rules']} rules; "
        f"driver render-only {full['render'] * 1000:.0f} ms; delta set preload {delta['load'] * 1000:.0f} ms"
    )
    print(f"delta script: `{delta['script']}`\n")
    print("| operation | driver (ms) | raw nft -f (ms) | ratio |")
    print("|---|---:|---:|---:|")
    for name, r in (
        (f"full apply, {args.endpoints} endpoints / {args.policies} policies", full),
        (f"1 element into a {args.set_size}-member set", delta),
    ):
        print(
            f"| {name} | {r['driver'] * 1000:.1f} | {r['raw'] * 1000:.1f} | {r['driver'] / r['raw']:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
