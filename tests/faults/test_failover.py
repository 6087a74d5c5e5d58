"""Leader kill, restart and catch-up, unknown write outcomes, and several endpoints everywhere.

Each test runs against a real 3-member cluster (``cluster`` fixture). Figures that matter are
printed (``-s``) and asserted: what was lost or applied twice must be 0.
"""

from __future__ import annotations

import base64
import os
import time

import pytest
from fault_support import wait_for

from regionmesh.agent.agent import datastore_config
from regionmesh.agent.config import load_local, merge
from regionmesh.datastore import open_datastore
from regionmesh.datastore.config import parse_url, resolve_config
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.errors import AlreadyExists, RevisionConflict
from regionmesh.openstack.config import CalicoOptions, datastore_url
from regionmesh.testing.etcd_cluster import EtcdCluster

pytestmark = pytest.mark.timeout(180)


def _versions(store: EtcdDatastore, prefix: str) -> dict[str, int]:
    """key -> etcd version (number of writes since creation) under ``prefix``."""
    b64 = base64.b64encode
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    result = store._post(
        "/kv/range",
        {"key": b64(prefix.encode()).decode(), "range_end": b64(end.encode()).decode()},
    )
    return {
        base64.b64decode(kv["key"]).decode(): int(kv.get("version", 0))
        for kv in result.get("kvs") or []
    }


def test_harness_finds_leader_kills_restarts_and_catches_up(cluster: EtcdCluster) -> None:
    leader = cluster.wait_leader()
    store = cluster.open()
    try:
        store.put("/fault/a", b"1")
        cluster.kill(leader)
        started = time.monotonic()
        store.put("/fault/b", b"2")  # first write through the survivors
        first_write = time.monotonic() - started
        new_leader = cluster.wait_leader(not_=leader)
        for i in range(100):
            store.create(f"/fault/k{i:03d}", f"v{i}".encode())
        cluster.restart(leader)
        # the restarted member serves a linearizable read of everything written without it
        with cluster.open([cluster.member(leader).endpoint]) as only_old:
            got = only_old.list("/fault/")
        assert len(got.items) == 102
        assert only_old is not None
        print(
            f"leader {leader} killed: first write after {first_write:.2f}s, new leader "
            f"{new_leader}; restarted member caught up with 102/102 keys"
        )
        assert first_write < 2 * store.timeout + 1
    finally:
        store.close()


def test_writes_through_leader_kill_lose_nothing_apply_nothing_twice(
    cluster: EtcdCluster,
) -> None:
    leader = cluster.wait_leader()
    order = [cluster.member(leader).endpoint] + [
        m.endpoint for m in cluster.members if m.name != leader
    ]
    store = cluster.open(order)  # the leader is the client's first choice
    try:
        for i in range(20):
            store.create(f"/fault/w{i:03d}", b"v")
        cluster.kill(leader)
        for i in range(20, 60):
            store.create(f"/fault/w{i:03d}", b"v")
        for i in range(60):
            kv = store.get(f"/fault/w{i:03d}")
            assert kv is not None
            store.update(kv.key, b"v2", revision=kv.mod_revision)
        versions = _versions(store, "/fault/")
        missing = [i for i in range(60) if f"/fault/w{i:03d}" not in versions]
        twice = {k: v for k, v in versions.items() if v != 2}
        print(
            f"leader kill during 60 creates + 60 updates: missing {len(missing)}, "
            f"applied twice or not at all {len(twice)}"
        )
        assert missing == [] and twice == {}
    finally:
        store.close()


def test_frozen_leader_write_outcome_is_settled_by_re_reading(cluster: EtcdCluster) -> None:
    """Freezing the leader makes the first write time out (outcome unknown, as measured in
    the reference proof); the client re-reads before retrying and applies each write once."""
    leader = cluster.wait_leader()
    order = [cluster.member(leader).endpoint] + [
        m.endpoint for m in cluster.members if m.name != leader
    ]
    store = EtcdDatastore(order, timeout=1.5)
    try:
        rev = store.create("/fault/u/x", b"0")
        store.create("/fault/u/y", b"y")
        store.create("/fault/u/z", b"z")
        cluster.freeze(leader)
        started = time.monotonic()
        rev = store.update("/fault/u/x", b"1", revision=rev)  # times out on the frozen leader
        took = time.monotonic() - started
        created = store.create("/fault/u/new", b"n")
        store.put("/fault/u/y", b"y2")
        store.delete("/fault/u/z")
        with pytest.raises(AlreadyExists):
            store.create("/fault/u/new", b"other")
        with pytest.raises(RevisionConflict):
            store.update("/fault/u/x", b"stale", revision=rev - 1)
        versions = _versions(store, "/fault/u/")
        print(
            f"frozen leader: first write settled after {took:.2f}s; unknown outcomes settled "
            f"by re-reading: {store.unknown_outcomes}; versions {versions}"
        )
        assert store.unknown_outcomes >= 1
        assert versions == {"/fault/u/x": 2, "/fault/u/y": 2, "/fault/u/new": 1}
        assert created > 0
    finally:
        cluster.thaw(leader)
        store.close()


def _check_failover(cluster: EtcdCluster, endpoints: list[str], what: str) -> None:
    """The store built from ``endpoints`` keeps working with the first member killed."""
    first = next(m for m in cluster.members if m.endpoint == endpoints[0])
    store = EtcdDatastore(endpoints)
    try:
        store.put(f"/fault/cfg/{what}", b"before")
        cluster.kill(first.name)
        store.put(f"/fault/cfg/{what}", b"after")
        kv = store.get(f"/fault/cfg/{what}")
        assert kv is not None and kv.value == b"after", what
    finally:
        store.close()
        cluster.restart(first.name)


def test_every_component_takes_several_endpoints_and_fails_over(
    cluster: EtcdCluster, tmp_path: object
) -> None:
    ports = [m.client_port for m in cluster.members]
    hostports = [f"127.0.0.1:{p}" for p in ports]
    want = [f"http://{hp}" for hp in hostports]
    configs = {
        "--datastore etcd://a,b,c": parse_url("etcd://" + ",".join(hostports), source="test"),
        "ETCD_ENDPOINTS": resolve_config(env={"ETCD_ENDPOINTS": ",".join(want)}),
        "calicoctl.cfg etcdEndpoints": None,
        "felix.cfg EtcdEndpoints": None,
        "neutron.conf etcd_host list, shared etcd_port": parse_url(
            datastore_url(CalicoOptions(etcd_host="127.0.0.1, localhost", etcd_port=ports[1])),
            source="neutron.conf",
        ),
        "neutron.conf etcd_host host:port list": parse_url(
            datastore_url(CalicoOptions(etcd_host=",".join(hostports), etcd_port=2379)),
            source="neutron.conf",
        ),
    }
    cfgfile = os.path.join(str(tmp_path), "calicoctl.cfg")
    with open(cfgfile, "w") as f:
        f.write(
            "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n"
            f"  datastoreType: etcdv3\n  etcdEndpoints: {','.join(want)}\n"
        )
    configs["calicoctl.cfg etcdEndpoints"] = resolve_config(config_file=cfgfile, env={})
    felix = os.path.join(str(tmp_path), "felix.cfg")
    with open(felix, "w") as f:
        f.write(f"[global]\nFelixHostname = h1\nEtcdEndpoints = {','.join(want)}\n")
    local = load_local(felix, {})
    configs["felix.cfg EtcdEndpoints"] = datastore_config(merge(list(local)), None, {})
    for what, config in configs.items():
        assert config is not None
        if "shared etcd_port" in what:
            assert config.endpoints == [
                f"http://127.0.0.1:{ports[1]}",
                f"http://localhost:{ports[1]}",
            ]
            continue  # two names for one member: shape checked, failover covered below
        assert config.endpoints == want, what
        store = open_datastore(config)
        store.close()
        _check_failover(cluster, config.endpoints, what.split()[0].replace("-", ""))
        print(f"{what}: {len(config.endpoints)} endpoints, survived killing the first")
    wait_for(lambda: len(cluster.running()) == 3, 10, "all members back")


def test_create_many_through_a_frozen_leader_writes_each_key_once(cluster: EtcdCluster) -> None:
    """A batch whose transaction timed out on the frozen leader is re-read, not re-sent blindly."""
    leader = cluster.wait_leader()
    order = [cluster.member(leader).endpoint] + [
        m.endpoint for m in cluster.members if m.name != leader
    ]
    store = EtcdDatastore(order, timeout=1.5)
    try:
        store.create_many([(f"/fault/many/{i:03d}", b"old") for i in range(0, 300, 7)])
        cluster.freeze(leader)
        items = [(f"/fault/many/{i:03d}", b"new") for i in range(300)]
        results = store.create_many(items)
        versions = _versions(store, "/fault/many/")
        created = sum(r is not None for r in results)
        print(
            f"create_many of 300 (43 existing) through a frozen leader: created {created}, "
            f"unknown outcomes settled {store.unknown_outcomes}, keys {len(versions)}, "
            f"written twice {sum(v != 1 for v in versions.values())}"
        )
        assert created == 300 - 43 and len(versions) == 300
        assert all(v == 1 for v in versions.values())
        assert store.unknown_outcomes >= 1
        for i, r in enumerate(results):
            kv = store.get(f"/fault/many/{i:03d}")
            assert kv is not None and kv.value == (b"old" if i % 7 == 0 else b"new")
            assert (r is None) == (i % 7 == 0)
    finally:
        cluster.thaw(leader)
        store.close()
