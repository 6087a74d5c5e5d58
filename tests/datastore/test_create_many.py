"""``Datastore.create_many`` on both backends: per-key outcomes, create-only safety, batching.

Run against SQLite and the session etcd (the same fixture as the conformance suite); the etcd
client is given ``max_txn_ops=7`` in one test so batches and their fallbacks are exercised
with few keys.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from regionmesh.datastore.api import Datastore, EventType
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.datastore.sqlite import SqliteDatastore
from regionmesh.testing.etcd_server import EtcdServer


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def store(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Datastore]:
    ds: Datastore
    if request.param == "sqlite":
        ds = SqliteDatastore(f"{tmp_path}/store.db")
    else:
        server: EtcdServer = request.getfixturevalue("etcd_server")
        ds = EtcdDatastore([server.endpoint], max_txn_ops=7)
    try:
        yield ds
    finally:
        ds.close()


def test_create_many_creates_absent_keys(store: Datastore, key_prefix: str) -> None:
    items = [(f"{key_prefix}k{i:03d}", f"v{i}".encode()) for i in range(30)]
    before = store.current_revision()
    results = store.create_many(items)
    assert len(results) == 30
    assert all(isinstance(r, int) and r > before for r in results)
    listing = store.list(key_prefix)
    assert [(kv.key, kv.value) for kv in listing.items] == items
    for kv, rev in zip(listing.items, results, strict=True):
        assert kv.mod_revision == kv.create_revision == rev


def test_create_many_leaves_existing_keys_alone(store: Datastore, key_prefix: str) -> None:
    existing = {f"{key_prefix}k{i:03d}" for i in (0, 5, 6, 13, 29)}
    for key in sorted(existing):
        store.create(key, b"old")
    before = {kv.key: kv.mod_revision for kv in store.list(key_prefix).items}
    items = [(f"{key_prefix}k{i:03d}", b"new") for i in range(30)]
    results = store.create_many(items)
    for (key, _), rev in zip(items, results, strict=True):
        kv = store.get(key)
        assert kv is not None
        if key in existing:
            assert rev is None, key
            assert kv.value == b"old" and kv.mod_revision == before[key], key
        else:
            assert rev is not None and kv.value == b"new" and kv.mod_revision == rev, key


def test_create_many_duplicate_key_created_once(store: Datastore, key_prefix: str) -> None:
    key = key_prefix + "dup"
    results = store.create_many([(key, b"a"), (key_prefix + "x", b"x"), (key, b"b")])
    assert results[0] is not None and results[1] is not None and results[2] is None
    kv = store.get(key)
    assert kv is not None and kv.value == b"a"


def test_create_many_empty(store: Datastore) -> None:
    before = store.current_revision()
    assert store.create_many([]) == []
    assert store.current_revision() == before


def test_create_many_watch_sees_every_key_once(store: Datastore, key_prefix: str) -> None:
    start = store.current_revision() + 1
    items = [(f"{key_prefix}w{i:02d}", b"v") for i in range(20)]
    store.create_many(items)
    watch = store.watch(key_prefix, start_revision=start)
    try:
        events = []
        while len(events) < 20:
            batch = watch.next_batch(10)
            assert batch, f"only {len(events)} events"
            events.extend(batch)
        assert sorted(e.key for e in events) == [k for k, _ in items]
        assert all(e.type is EventType.PUT and e.prev_value is None for e in events)
        assert watch.next_batch(0.3) == []
    finally:
        watch.close()
