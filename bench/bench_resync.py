"""Benchmark regionmesh's OpenStack resync against a real etcd.

Run: ``python bench/bench_resync.py [--ports 1000,10000] [--sgs 20]``

For each size N it starts from an empty etcd (started here, data on /dev/shm) and measures:

* **raw puts** (the baseline, same run): one plain ``EtcdDatastore.put`` per key resync would
  write (N WorkloadEndpoints + the SG policies + the DHCP subnet), values pre-encoded;
* **cold resync**: empty datastore, everything is created (datastore list, bulk "Neutron" read,
  translation, re-read of each missing object, one create-only txn per key);
* **steady resync**: run again, everything is correct (one list per kind, no writes).

Neutron's side is the ``reader.NeutronReader`` protocol fed with in-memory records
(:class:`regionmesh.openstack.reader.MemoryNeutron`): the same protocol the real
``neutron_db.NeutronDbSource`` implements, but without a Neutron database, so 10k ports need
no DevStack. The numbers therefore measure regionmesh's compare/translate/etcd path only, not
Neutron's SQL; networking-calico's published figures (PR #13670: ~21 ms/port cold,
~1.2 ms/port steady, DevStack on n2-standard-16) include its DB reads and are shown for
orientation, not as a like-for-like comparison.

Prints a markdown table: ms/port, total seconds, and the ratio to the raw puts of this run.
"""

from __future__ import annotations

import argparse
import json
import time

from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.openstack import translate as t
from regionmesh.openstack.reader import MemoryNeutron
from regionmesh.openstack.resync import resync
from regionmesh.openstack.writer import RegionWriter
from regionmesh.testing.etcd_server import running_etcd

REFERENCE_COLD_MS = 21.0
REFERENCE_STEADY_MS = 1.2


def records(n: int, sgs: int) -> MemoryNeutron:
    """N VM ports on one /16, in ``sgs`` security groups with three rules each."""
    groups = [
        t.NeutronSecurityGroup(
            f"sg-{g:04d}",
            f"group-{g}",
            (
                t.NeutronRule(f"r{g}-1", f"sg-{g:04d}", "egress"),
                t.NeutronRule(f"r{g}-2", f"sg-{g:04d}", "ingress", remote_group_id=f"sg-{g:04d}"),
                t.NeutronRule(
                    f"r{g}-3",
                    f"sg-{g:04d}",
                    "ingress",
                    protocol="tcp",
                    port_range_min=80,
                    port_range_max=80,
                    remote_ip_prefix="10.0.0.0/8",
                ),
            ),
        )  # fmt: skip
        for g in range(sgs)
    ]
    subnet = t.NeutronSubnet(
        "sub-1", "net-1", "10.1.0.0/16", "10.1.0.1", dns_nameservers=("10.1.0.2",)
    )
    ports = [
        t.NeutronPort(
            id=f"{i:08x}-0000-4000-8000-000000000000",
            network_id="net-1",
            device_id=f"vm-{i:06d}",
            device_owner="compute:nova",
            mac_address=f"fa:16:3e:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}",
            host_id=f"cmp-{i % 50:03d}",
            vif_type="tap",
            fixed_ips=(t.FixedIP(f"10.1.{(i >> 8) & 255}.{(i & 255) or 1}", "sub-1", "10.1.0.1"),),
            security_groups=(t.SecurityGroupRef(groups[i % sgs].id, groups[i % sgs].name),),
            project_id="demo",
            network_name="calico",
        )  # fmt: skip
        for i in range(n)
    ]
    return MemoryNeutron(ports, groups, [subnet])


def raw_items(writer: RegionWriter, neutron: MemoryNeutron) -> list[tuple[str, bytes]]:
    """The keys and values resync writes, encoded up front (what the baseline puts)."""
    items: list[tuple[str, bytes]] = []
    for subnet in neutron.subnets():
        items.append((writer.dhcp_subnet_prefix() + subnet.id,
                      json.dumps(t.subnet_to_dhcp_record(subnet)).encode()))  # fmt: skip
    for sg, groups in neutron.security_groups():
        doc = t.security_group_to_policy(sg, region=writer.region, address_groups=groups)
        items.append((writer.policy_key(doc["metadata"]["name"]), json.dumps(doc).encode()))
    for port in neutron.ports():
        doc = t.port_to_workload_endpoint(port, region=writer.region)
        items.append(
            (writer.workload_endpoint_key(doc["metadata"]["name"]), json.dumps(doc).encode())
        )
    return items


def wipe(store: EtcdDatastore) -> None:
    store.delete_prefix("/calico/")


def bench(store: EtcdDatastore, n: int, sgs: int) -> list[tuple[str, float, float, float]]:
    neutron = records(n, sgs)
    writer = RegionWriter(store, "bench")
    wipe(store)
    items = raw_items(writer, neutron)
    t0 = time.perf_counter()
    for key, value in items:
        store.put(key, value)
    raw = time.perf_counter() - t0
    wipe(store)

    t0 = time.perf_counter()
    cold = resync(writer, neutron)
    cold_s = time.perf_counter() - t0
    assert cold.ok, cold.error
    assert cold.phases["endpoints"].created == n, cold.phases["endpoints"]
    t0 = time.perf_counter()
    steady = resync(writer, neutron)
    steady_s = time.perf_counter() - t0
    assert steady.ok and steady.in_sync and steady.phases["endpoints"].correct == n
    wipe(store)
    return [
        ("raw etcd puts (baseline)", raw, raw * 1000 / n, 1.0),
        ("cold resync (all created)", cold_s, cold_s * 1000 / n, cold_s / raw),
        ("steady resync (all correct)", steady_s, steady_s * 1000 / n, steady_s / raw),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", default="1000,10000", help="comma-separated port counts")
    parser.add_argument("--sgs", type=int, default=20, help="security groups")
    args = parser.parse_args()
    sizes = [int(s) for s in args.ports.split(",")]
    with running_etcd() as server:
        store = server.open()
        try:
            bench(store, 200, args.sgs)  # warm-up: connections, etcd's first compactions
            print(
                "| ports | what | total s | ms/port | ratio to raw puts | networking-calico ms/port |"
            )
            print("|---:|---|---:|---:|---:|---:|")
            for n in sizes:
                for what, secs, per_port, ratio in bench(store, n, args.sgs):
                    ref = (
                        f"{REFERENCE_COLD_MS}" if what.startswith("cold")
                        else f"{REFERENCE_STEADY_MS}" if what.startswith("steady") else "–"
                    )  # fmt: skip
                    print(f"| {n} | {what} | {secs:.2f} | {per_port:.3f} | {ratio:.2f} | {ref} |")
        finally:
            store.close()


if __name__ == "__main__":
    main()
