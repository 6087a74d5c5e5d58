"""The etcd leader is SIGKILLed in the middle of a cold Neutron resync of 10,000 ports.

Neutron is :class:`~regionmesh.openstack.resync.MemoryNeutron` (in memory; the same interface
as the real database source). The client starts on the leader. The resync must complete (the
backend fails over and settles writes whose outcome the kill made unknown), or else be resumed
by the next master (a second resync, as a newly elected server runs). Afterwards etcd must hold
exactly Neutron's state, checked key by key: 0 missing, 0 stale, 0 extra, 0 duplicates, and no
key written twice (etcd ``version`` 1).
"""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

from regionmesh.openstack import translate as t
from regionmesh.openstack.resync import MemoryNeutron, resync
from regionmesh.openstack.writer import RegionWriter
from regionmesh.testing.etcd_cluster import EtcdCluster

pytestmark = pytest.mark.timeout(300)

PORTS = int(os.environ.get("REGIONMESH_FAULT_RESYNC_PORTS", "10000"))
REGION = "one"


def _neutron(n: int) -> MemoryNeutron:
    sgs = [
        t.NeutronSecurityGroup(
            f"sg-{g:04d}",
            f"group-{g}",
            (
                t.NeutronRule(f"r{g}-1", f"sg-{g:04d}", "egress"),
                t.NeutronRule(f"r{g}-2", f"sg-{g:04d}", "ingress", remote_group_id=f"sg-{g:04d}"),
            ),
        )
        for g in range(20)
    ]
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
            security_groups=(t.SecurityGroupRef(sgs[i % 20].id, sgs[i % 20].name),),
            project_id="demo",
            network_name="calico",
        )
        for i in range(n)
    ]
    subnet = t.NeutronSubnet("sub-1", "net-1", "10.1.0.0/16", "10.1.0.1")
    return MemoryNeutron(ports, sgs, [subnet])


def _range(cluster: EtcdCluster, prefix: str) -> list[dict[str, object]]:
    """Every kv under ``prefix`` with its etcd ``version`` (raw gateway, paged)."""
    b64 = base64.b64encode
    end = (prefix[:-1] + chr(ord(prefix[-1]) + 1)).encode()
    out: list[dict[str, object]] = []
    with cluster.open() as store:
        start = prefix.encode()
        while True:
            res = store._post(
                "/kv/range",
                {"key": b64(start).decode(), "range_end": b64(end).decode(), "limit": 2000},
            )
            kvs = res.get("kvs") or []
            out.extend(kvs)
            if not res.get("more") or not kvs:
                return out
            start = base64.b64decode(kvs[-1]["key"]) + b"\0"


def test_leader_killed_mid_resync_etcd_ends_exactly_as_neutron(cluster: EtcdCluster) -> None:
    neutron = _neutron(PORTS)
    leader = cluster.wait_leader()
    order = [cluster.member(leader).endpoint] + [
        m.endpoint for m in cluster.members if m.name != leader
    ]
    store = cluster.open(order)
    killed_at: list[int] = []

    def progress(kind: str, done: int, total: int) -> None:
        if kind == "endpoints" and done == total // 2 and not killed_at:
            cluster.kill(leader)
            killed_at.append(done)

    try:
        writer = RegionWriter(store, REGION)
        t0 = time.monotonic()
        first = resync(writer, neutron, progress=progress)
        took = time.monotonic() - t0
        assert killed_at, "the leader was not killed during the endpoints phase"
        resumed = None
        if not first.ok:
            resumed = resync(RegionWriter(cluster.open(), REGION), neutron)
            assert resumed.ok, resumed.error

        # --- key by key
        prefix = writer.workload_endpoint_prefix()
        stored = _range(cluster, prefix)
        by_key = {base64.b64decode(str(kv["key"])).decode(): kv for kv in stored}
        expected = {}
        for port in neutron.ports():
            doc = t.port_to_workload_endpoint(port, region=REGION)
            expected[writer.workload_endpoint_key(doc["metadata"]["name"])] = doc
        missing = sorted(set(expected) - set(by_key))
        extra = sorted(set(by_key) - set(expected))
        stale, twice, port_ids = [], [], []
        for key, kv in by_key.items():
            doc = json.loads(base64.b64decode(str(kv["value"])))
            port_ids.append(
                doc["metadata"]["labels"].get("projectcalico.org/openstack-port-id")
                or doc["spec"].get("endpoint")
            )
            want = expected.get(key)
            if want is not None and (
                doc["spec"] != want["spec"]
                or doc["metadata"]["labels"] != want["metadata"]["labels"]
            ):
                stale.append(key)
            if int(str(kv.get("version", 0))) != 1:
                twice.append(key)
        duplicates = len(port_ids) - len(set(port_ids))
        check = resync(RegionWriter(cluster.open(), REGION), neutron, dry_run=True)
        print(
            f"{PORTS} ports, leader {leader} killed after {killed_at[0]} endpoint writes: first "
            f"resync ok={first.ok} in {took:.1f}s ({first.error or 'no error'}); resumed: "
            f"{resumed is not None}; unknown outcomes settled {store.unknown_outcomes}; "
            f"missing {len(missing)}, stale {len(stale)}, extra {len(extra)}, duplicates "
            f"{duplicates}, written twice {len(twice)}; dry-run in sync {check.in_sync}"
        )
        assert (missing, stale, extra, duplicates, twice) == ([], [], [], 0, [])
        assert check.ok and check.in_sync
    finally:
        store.close()
