"""Two Neutron servers of one region (HA) writing concurrently for ``HA_SECONDS`` (60 s).

Each server has its own client on the 3-member cluster and runs the region's
:class:`~regionmesh.openstack.election.Elector` (TTL 4 s, refresh 1 s) plus a writer that keeps
updating the same 20 WorkloadEndpoints by compare-and-swap read-modify-write (each server sets
its own label to its own update count, re-reading on a conflict, as the driver does). During
the run the etcd leader is killed and restarted, and later the master server "crashes"
(abandons its lease). Sampled every 50 ms, at most one server may consider itself master; at the
end every endpoint must carry both servers' last counts (0 lost updates).
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from fault_support import use_test_helpers

from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.errors import DatastoreError, RevisionConflict
from regionmesh.openstack.election import Elector
from regionmesh.testing.etcd_cluster import EtcdCluster

use_test_helpers()
import agent_support as s  # noqa: E402

HA_SECONDS = float(os.environ.get("REGIONMESH_FAULT_HA_SECONDS", "60"))
pytestmark = pytest.mark.timeout(120 + 2 * HA_SECONDS)
KEYS = 20


class Server:
    """One neutron-server: an elector and a CAS writer, each on this server's own client."""

    def __init__(self, name: str, store: EtcdDatastore, keys: list[str]) -> None:
        self.name = name
        self.store = store
        self.keys = keys
        self.elector = Elector(store, "one", name=name, pid=os.getpid(), ttl=4, interval=1)
        self.counts = dict.fromkeys(keys, 0)
        self.conflicts = 0
        self.errors = 0
        self.stop = threading.Event()
        self.label = f"ha-{name}"

    def write_loop(self) -> None:
        i = 0
        while not self.stop.is_set():
            key = self.keys[i % len(self.keys)]
            i += 1
            want = self.counts[key] + 1
            while not self.stop.is_set():
                try:
                    kv = self.store.get(key)
                    assert kv is not None
                    doc = json.loads(kv.value)
                    doc["metadata"]["labels"][self.label] = str(want)
                    self.store.update(key, json.dumps(doc).encode(), revision=kv.mod_revision)
                    self.counts[key] = want
                    break
                except RevisionConflict:
                    self.conflicts += 1
                except DatastoreError:
                    self.errors += 1
                    time.sleep(0.1)


def test_two_neutron_servers_one_master_no_lost_updates(cluster: EtcdCluster) -> None:
    setup = cluster.open()
    keys = []
    for i in range(KEYS):
        doc = s.wep_doc(
            s.port(f"{i:08x}-0000-4000-8000-000000000000", "cmp", f"10.65.1.{i + 2}", []), "one"
        )
        key = (
            "/calico/resources/v3/projectcalico.org/workloadendpoints/"
            f"{doc['metadata']['namespace']}/{doc['metadata']['name']}"
        )
        setup.create(key, json.dumps(doc).encode())
        keys.append(key)
    servers = [Server(n, cluster.open(), keys) for n in ("a", "b")]
    threads = []
    both_masters = 0
    samples = 0
    masters_seen: set[str] = set()
    try:
        for srv in servers:
            threads.append(srv.elector.start())
            t = threading.Thread(target=srv.write_loop, daemon=True)
            t.start()
            threads.append(t)
        started = time.monotonic()
        events: list[str] = []
        killed = crashed = False
        while (elapsed := time.monotonic() - started) < HA_SECONDS:
            flags = [srv.elector.is_master() for srv in servers]
            samples += 1
            both_masters += all(flags)
            masters_seen.update(srv.name for srv, f in zip(servers, flags, strict=True) if f)
            if not killed and elapsed > HA_SECONDS / 3:
                leader = cluster.wait_leader()
                cluster.kill(leader)
                events.append(f"etcd leader {leader} killed at {elapsed:.0f}s")
                cluster.restart(leader, wait=False)
                killed = True
            if not crashed and elapsed > 2 * HA_SECONDS / 3:
                master = next((srv for srv, f in zip(servers, flags, strict=True) if f), None)
                if master is not None:
                    master.elector.abandon()
                    events.append(f"master {master.name} crashed at {elapsed:.0f}s")
                    crashed = True
            time.sleep(0.05)
        for srv in servers:
            srv.stop.set()
            srv.elector.stop()
        for t in threads:
            t.join(timeout=20)
        lost = []
        for key in keys:
            kv = setup.get(key)
            assert kv is not None
            labels = json.loads(kv.value)["metadata"]["labels"]
            for srv in servers:
                if labels.get(srv.label, "0") != str(srv.counts[key]):
                    lost.append((key, srv.name, labels.get(srv.label), srv.counts[key]))
        updates = {srv.name: sum(srv.counts.values()) for srv in servers}
        print(
            f"HA {HA_SECONDS:.0f}s: updates {updates}, conflicts "
            f"{[srv.conflicts for srv in servers]}, errors {[srv.errors for srv in servers]}; "
            f"{'; '.join(events)}; masters seen {sorted(masters_seen)}; samples with two "
            f"masters {both_masters}/{samples}; lost updates {len(lost)}"
        )
        assert lost == []
        assert both_masters == 0
        assert crashed and len(masters_seen) == 2, "the other server never took over"
        assert min(updates.values()) > 0
    finally:
        for srv in servers:
            srv.stop.set()
            srv.elector.stop()
            srv.store.close()
        setup.close()
