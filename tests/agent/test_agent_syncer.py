"""ResourceSyncer: list-then-watch, invalid values as deletes, compaction recovery (sqlite + etcd)."""

from __future__ import annotations

import agent_support as s

from regionmesh.agent.syncer import ResourceSyncer
from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.datastore.sqlite import SqliteDatastore

P1 = s.port("11111111-aaaa-4bbb-8ccc-000000000001", "cmp-one", "10.65.1.2", [s.SG_WEB])
P2 = s.port("22222222-aaaa-4bbb-8ccc-000000000002", "cmp-two", "10.65.2.2", [s.SG_CLIENT])


def _keys(updates: list) -> list[tuple[str, str | None, str, bool]]:
    return sorted((u.kind, u.namespace, u.name, u.value is not None) for u in updates)


def _poll_until(syncer: ResourceSyncer, want: int, timeout: float = 5.0) -> list:
    got: list = []
    import time

    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += syncer.poll(0.2)
    return got


def _scenario_list_then_watch(store: Datastore) -> None:
    s.apply_docs(store, [s.wep_doc(P1, "one"), s.SEED_GNP])
    store.put("/calico/felix/v2/no-region/host/x/status", b"{}")  # not a resource: ignored
    syncer = ResourceSyncer(store)
    try:
        first = syncer.resync()
        assert _keys(first) == [
            ("GlobalNetworkPolicy", None, "allow-tcp-80", True),
            (
                "WorkloadEndpoint",
                "openstack-region-one",
                s.wep_doc(P1, "one")["metadata"]["name"],
                True,
            ),
        ]
        assert syncer.watching
        # Watch: a create, a delete, and an invalid value (becomes a delete of a known key).
        s.apply_docs(store, [s.wep_doc(P2, "two")])
        s.delete_doc(store, s.SEED_GNP)
        wep1_key = keys.resource_key(
            "workloadendpoints", s.wep_doc(P1, "one")["metadata"]["name"], "openstack-region-one"
        )
        store.put(wep1_key, b'{"kind": "WorkloadEndpoint", "spec": {"ipNetworks": 7}}')
        got = _poll_until(syncer, 3)
        assert _keys(got) == sorted(
            [
                (
                    "WorkloadEndpoint",
                    "openstack-region-two",
                    s.wep_doc(P2, "two")["metadata"]["name"],
                    True,
                ),
                ("GlobalNetworkPolicy", None, "allow-tcp-80", False),
                (
                    "WorkloadEndpoint",
                    "openstack-region-one",
                    s.wep_doc(P1, "one")["metadata"]["name"],
                    False,
                ),
            ]
        )
        # A re-list now finds nothing new (the invalid key is still "absent" to the graph).
        assert syncer.resync() == []
    finally:
        syncer.close()


def test_list_then_watch_sqlite(sqlite_datastore: SqliteDatastore) -> None:
    _scenario_list_then_watch(sqlite_datastore)


def test_list_then_watch_etcd(etcd_datastore: EtcdDatastore) -> None:
    _scenario_list_then_watch(etcd_datastore)


def test_compaction_relists_and_deletes_vanished_keys_sqlite(
    sqlite_datastore: SqliteDatastore,
) -> None:
    store = sqlite_datastore
    s.apply_docs(store, [s.wep_doc(P1, "one"), s.SEED_GNP])
    syncer = ResourceSyncer(store)
    try:
        syncer.resync()
        # The sqlite watch reads lazily: these changes and the compaction happen before it looks.
        s.delete_doc(store, s.SEED_GNP)
        s.apply_docs(store, [s.wep_doc(P2, "two")])
        store.compact(store.current_revision())
        got = syncer.poll(0.5)
        assert syncer.compactions == 1
        assert _keys(got) == sorted(
            [
                ("GlobalNetworkPolicy", None, "allow-tcp-80", False),
                (
                    "WorkloadEndpoint",
                    "openstack-region-two",
                    s.wep_doc(P2, "two")["metadata"]["name"],
                    True,
                ),
            ]
        )
        s.delete_doc(store, s.wep_doc(P1, "one"))  # the new watch works
        assert [u.value for u in _poll_until(syncer, 1)] == [None]
    finally:
        syncer.close()


def test_compaction_relists_etcd(etcd_datastore: EtcdDatastore) -> None:
    store = etcd_datastore
    s.apply_docs(store, [s.wep_doc(P1, "one"), s.SEED_GNP])
    syncer = ResourceSyncer(store)
    try:
        syncer.resync()
        listed_at = syncer.revision
        syncer.close()  # simulate a watch that fell behind: resume it from the old position
        s.delete_doc(store, s.SEED_GNP)
        s.apply_docs(store, [s.wep_doc(P2, "two")])
        store.compact(store.current_revision())
        syncer.mirror.resume(listed_at)
        got = _poll_until(syncer, 2)
        assert syncer.compactions == 1
        assert _keys(got) == sorted(
            [
                ("GlobalNetworkPolicy", None, "allow-tcp-80", False),
                (
                    "WorkloadEndpoint",
                    "openstack-region-two",
                    s.wep_doc(P2, "two")["metadata"]["name"],
                    True,
                ),
            ]
        )
    finally:
        syncer.close()
