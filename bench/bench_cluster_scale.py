"""Scale benchmarks on a real 3-member etcd cluster (started here, data on /dev/shm).

Run: ``python bench/bench_cluster_scale.py [--regions 10] [--ports 10000] [--propagation 200]``

Every figure is a ratio against raw etcd measured in the same run:

* **cold write of a region's ports** — N WorkloadEndpoint values (what a cold resync writes)
  through ``create_many`` (batched create-only transactions, ≤ 128 keys each) vs the per-key
  create-only transaction the resync uses today vs one raw ``put`` per key (baseline; measured
  on a sample of ``--sample`` keys, per key);
* **all regions at once** — ``--regions`` writers in parallel threads, each ``create_many`` of
  its own region's N ports; ms per port over the whole run;
* **cold resync today** — ``openstack.resync.resync`` of one region of N ports (in-memory
  Neutron), per port, against the same raw put baseline;
* **agent cold start** — an agent (fake nftables) on a host that must see every region's
  endpoints: seconds from start to its first apply, and its RSS growth;
* **end-to-end propagation** — ``--propagation`` label changes on a local endpoint: etcd write →
  the agent's nft change applied (a new chain appears), median / p99, vs the same watch event
  delivered to a bare client watch in the same run.

Prints markdown tables. What was stored is checked (counts) so a fast wrong run cannot pass.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import threading
import time

from regionmesh.agent.agent import start
from regionmesh.dataplane import names
from regionmesh.dataplane.driver import NftDataplane
from regionmesh.dataplane.fakenft import FakeNft
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.openstack import translate as t
from regionmesh.openstack.resync import MemoryNeutron, resync
from regionmesh.openstack.writer import RegionWriter
from regionmesh.testing.etcd_cluster import running_cluster

SG = "a7734e61-b545-452d-a3cd-0189cbd9747a"


def ports(region: int, n: int, local_host: str | None = None) -> list[t.NeutronPort]:
    return [
        t.NeutronPort(
            id=f"{region:02d}{i:06x}-0000-4000-8000-000000000000",
            network_id="net-1",
            device_id=f"vm-{region}-{i:06d}",
            device_owner="compute:nova",
            mac_address=f"fa:16:3e:{region:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}",
            host_id=local_host if (local_host and i < 5) else f"cmp-{i % 200:03d}",
            vif_type="tap",
            fixed_ips=(
                t.FixedIP(f"10.{region}.{(i >> 8) & 255}.{(i & 255) or 1}", "sub-1", "10.0.0.1"),
            ),
            security_groups=(t.SecurityGroupRef(f"sg-{region}-{i % 1000:04d}", "g"),),
            project_id="demo",
            network_name="calico",
        )
        for i in range(n)
    ]


def wep_items(
    region: int, plist: list[t.NeutronPort], writer: RegionWriter
) -> list[tuple[str, bytes]]:
    out = []
    for p in plist:
        doc = t.port_to_workload_endpoint(p, region=f"r{region}")
        out.append(
            (writer.workload_endpoint_key(doc["metadata"]["name"]), json.dumps(doc).encode())
        )
    return out


def policy_items(region: int, writer: RegionWriter, count: int) -> list[tuple[str, bytes]]:
    out = []
    for g in range(count):
        sg = t.NeutronSecurityGroup(
            f"sg-{region}-{g:04d}",
            f"g{g}",
            (t.NeutronRule(f"r{region}-{g}", f"sg-{region}-{g:04d}", "egress"),),
        )
        doc = t.security_group_to_policy(sg, region=f"r{region}")
        out.append((writer.policy_key(doc["metadata"]["name"]), json.dumps(doc).encode()))
    return out


def gnp(name: str, selector: str) -> tuple[str, bytes]:
    doc = {
        "kind": "GlobalNetworkPolicy",
        "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": name},
        "spec": {
            "selector": selector,
            "types": ["Ingress"],
            "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}}],
        },
    }
    return f"/calico/resources/v3/projectcalico.org/globalnetworkpolicies/{name}", json.dumps(
        doc
    ).encode()


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--regions", type=int, default=10)
    ap.add_argument("--ports", type=int, default=10_000)
    ap.add_argument("--sample", type=int, default=2_000)
    ap.add_argument("--propagation", type=int, default=200)
    ap.add_argument("--gnps", type=int, default=1_000)
    args = ap.parse_args()
    n = args.ports
    with running_cluster() as cluster:
        store = cluster.open()
        print(f"# 3-member etcd cluster, {args.regions} regions x {n} ports\n")
        # --- baseline: raw put per key (sample), per-key create txn (sample), create_many
        w0 = RegionWriter(store, "r0")
        items0 = wep_items(0, ports(0, n), w0)
        sample = items0[: args.sample]
        t0 = time.perf_counter()
        for k, v in sample:
            store.put("/bench/raw" + k, v)
        raw_per_key = (time.perf_counter() - t0) / len(sample)
        t0 = time.perf_counter()
        for k, v in sample:
            store.create("/bench/txn" + k, v)
        txn_per_key = (time.perf_counter() - t0) / len(sample)
        store.delete_prefix("/bench/")
        t0 = time.perf_counter()
        res = store.create_many(items0)
        many_s = time.perf_counter() - t0
        assert (
            all(r is not None for r in res)
            and len(store.list(w0.workload_endpoint_prefix()).items) == n
        )
        store.delete_prefix("/calico/")
        neutron = MemoryNeutron(ports(0, n), [], [])
        t0 = time.perf_counter()
        cold = resync(RegionWriter(store, "r0"), neutron)
        cold_s = time.perf_counter() - t0
        assert cold.ok and cold.phases["endpoints"].created == n, cold.error
        t0 = time.perf_counter()
        steady = resync(RegionWriter(store, "r0"), neutron)
        steady_s = time.perf_counter() - t0
        assert steady.ok and steady.in_sync
        store.delete_prefix("/calico/")
        rows = [
            ("raw put per key (baseline)", raw_per_key * 1000, 1.0),
            (
                "create-only txn per key (resync today)",
                txn_per_key * 1000,
                txn_per_key / raw_per_key,
            ),
            (
                f"create_many, {n} ports in batches of 128",
                many_s * 1000 / n,
                many_s / n / raw_per_key,
            ),
            (f"cold resync today, {n} ports", cold_s * 1000 / n, cold_s / n / raw_per_key),
            (f"steady resync, {n} ports", steady_s * 1000 / n, steady_s / n / raw_per_key),
        ]
        print("| one region | ms/port | ratio to raw put |\n|---|---:|---:|")
        for name, ms, ratio in rows:
            print(f"| {name} | {ms:.3f} | {ratio:.2f} |")

        # --- all regions at once (plus their SG policies and the GNPs)
        writers = [RegionWriter(cluster.open(), f"r{r}") for r in range(args.regions)]
        region_items = [
            wep_items(r, ports(r, n, local_host="bench-host" if r == 0 else None), writers[r])
            + policy_items(r, writers[r], 1000)
            for r in range(args.regions)
        ]
        times: list[float] = [0.0] * args.regions

        def load(r: int) -> None:
            t1 = time.perf_counter()
            out = writers[r].ds.create_many(region_items[r])
            times[r] = time.perf_counter() - t1
            assert all(x is not None for x in out)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=load, args=(r,)) for r in range(args.regions)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        all_s = time.perf_counter() - t0
        store.create_many(
            [
                gnp(f"bench-{g:04d}", f"has(sg.projectcalico.org/openstack-sg-0-{g:04d})")
                for g in range(args.gnps)
            ]
        )
        total = sum(len(x) for x in region_items)
        listed = len(store.list("/calico/resources/v3/projectcalico.org/workloadendpoints/").items)
        assert listed == args.regions * n, listed
        print(
            f"\n| all {args.regions} regions at once (create_many, parallel) | value |\n|---|---:|\n"
            f"| keys written (WEPs + SG policies) | {total} |\n"
            f"| wall time | {all_s:.1f} s |\n"
            f"| ms per key overall | {all_s * 1000 / total:.3f} |\n"
            f"| ratio to one raw put per key | {all_s / total / raw_per_key:.2f} |\n"
            f"| slowest region | {max(times):.1f} s |"
        )
        for w in writers:
            w.ds.close()

        # --- agent cold start on a host that sees everything, then propagation
        import tempfile

        cfgdir = tempfile.mkdtemp()
        cfg = os.path.join(cfgdir, "felix.cfg")
        with open(cfg, "w") as f:
            f.write(
                f"[global]\nFelixHostname = bench-host\nOpenstackRegion = r0\nInterfacePrefix = tap\nEtcdEndpoints = {cluster.etcd_endpoints}\n"
            )
        fake = FakeNft()
        before = rss_mb()
        t0 = time.perf_counter()
        started = start(cfg, env={}, dataplane_factory=lambda _c: NftDataplane(fake, None))
        agent = started.agent
        stop = threading.Event()
        th = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        th.start()
        while agent.stats.applies == 0:
            time.sleep(0.01)
            if time.perf_counter() - t0 > 1800:
                raise SystemExit("agent did not apply within 30 min")
        cold_start = time.perf_counter() - t0
        grown = rss_mb() - before
        print(
            f"\n| agent cold start, {listed} endpoints, {args.regions * 1000} SG policies, {args.gnps} GNPs | value |\n|---|---:|\n"
            f"| start → first apply | {cold_start:.1f} s |\n| RSS growth | {grown:.0f} MB |"
        )
        # propagation: a GNP selecting a local endpoint's SG → its chain appears in FakeNft
        bare = EtcdDatastore(cluster.endpoints)
        watch = bare.watch(
            "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/",
            start_revision=bare.current_revision() + 1,
        )
        bare_lat: list[float] = []
        agent_lat: list[float] = []
        local_sg = "sg-0-0000"
        for i in range(args.propagation):
            key, value = gnp(f"prop-{i:04d}", f"has(sg.projectcalico.org/openstack-{local_sg})")
            chain = names.policy_chain(f"gnp/prop-{i:04d}", True)
            t1 = time.perf_counter()
            store.put(key, value)
            got_bare = got_agent = None
            while got_bare is None or got_agent is None:
                if got_bare is None and any(e.key == key for e in watch.next_batch(0.0005)):
                    got_bare = time.perf_counter() - t1
                table = fake.tables.get(("ip", names.TABLE))
                if got_agent is None and table is not None and chain in table.chains:
                    got_agent = time.perf_counter() - t1
                if time.perf_counter() - t1 > 60:
                    raise SystemExit(f"change {i} not propagated in 60 s")
                time.sleep(0.0005)
            bare_lat.append(got_bare)
            agent_lat.append(got_agent)

        def pct(v: list[float], q: float) -> float:
            return sorted(v)[min(len(v) - 1, int(q * len(v)))] * 1000

        print(
            f"\n| propagation over {args.propagation} changes | median ms | p99 ms |\n|---|---:|---:|\n"
            f"| bare client watch (baseline) | {statistics.median(bare_lat) * 1000:.1f} | {pct(bare_lat, 0.99):.1f} |\n"
            f"| agent: etcd write → nft change applied | {statistics.median(agent_lat) * 1000:.1f} | {pct(agent_lat, 0.99):.1f} |\n"
            f"| agent minus baseline (median) | {(statistics.median(agent_lat) - statistics.median(bare_lat)) * 1000:.1f} | |"
        )
        watch.close()
        bare.close()
        stop.set()
        th.join(timeout=30)
        started.close()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
