"""ResourceClient.sync / sync_json / restore: the one desired-state write path, on both backends.

Conformance style: every test runs against the embedded SQLite store and a real etcd, each
under its own key prefix.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from regionmesh.datastore.api import Datastore, KeyValue
from regionmesh.datastore.resource_client import (
    CALICOCTL_LAYOUT,
    ResourceClient,
    SyncOutcome,
    restore,
    sync_json,
)
from regionmesh.datastore.sqlite import SqliteDatastore
from regionmesh.errors import AlreadyExists, RevisionConflict, ValidationError
from regionmesh.model import Resource, codec
from regionmesh.testing.etcd_server import EtcdServer


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def store(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Datastore]:
    """The backend under test."""
    ds: Datastore
    if request.param == "sqlite":
        ds = SqliteDatastore(f"{tmp_path}/store.db")
    else:
        server: EtcdServer = request.getfixturevalue("etcd_server")
        ds = server.open()
    try:
        yield ds
    finally:
        ds.close()


def policy(selector: str = "all()", labels: dict[str, str] | None = None) -> Resource:
    return codec.decode(
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "NetworkPolicy",
            "metadata": {"name": "p1", "namespace": "ns1", "labels": labels or {}},
            "spec": {"selector": selector, "ingress": [{"action": "Allow"}]},
        }
    )


def client(store: Datastore, uids: list[str] | None = None) -> ResourceClient:
    it = iter(uids or [f"uid-{i}" for i in range(10)])
    return ResourceClient(store, new_uid=lambda: next(it), now=lambda: "2025-01-02T03:04:05Z")


def stored(store: Datastore, key: str) -> dict[str, Any]:
    kv = store.get(key)
    assert kv is not None
    doc: dict[str, Any] = json.loads(kv.value)
    return doc


def test_create_if_absent_then_unchanged_writes_nothing(store: Datastore, key_prefix: str) -> None:
    key = key_prefix + "np"
    rc = client(store)
    first = rc.sync(key, policy())
    assert first.outcome == SyncOutcome.CREATED and first.previous is None
    kv = store.get(key)
    assert kv is not None and first.revision == kv.mod_revision
    doc = stored(store, key)
    assert doc["metadata"]["uid"] == "uid-0"
    assert doc["metadata"]["creationTimestamp"] == "2025-01-02T03:04:05Z"
    assert kv.value == CALICOCTL_LAYOUT.dumps(doc)  # calicoctl's compact, sorted layout
    again = rc.sync(key, policy())
    assert again.outcome == "unchanged" and again.revision == 0 and not again.wrote
    assert store.get(key) == kv  # no write at all: same mod revision


def test_update_keeps_uid_and_creation_timestamp(store: Datastore, key_prefix: str) -> None:
    key = key_prefix + "np"
    rc = client(store)
    rc.sync(key, policy())
    later = ResourceClient(store, new_uid=lambda: "other", now=lambda: "2030-01-01T00:00:00Z")
    result = later.sync(key, policy(selector="has(a)", labels={"x": "y"}))
    assert result.outcome == SyncOutcome.UPDATED
    assert result.previous is not None and result.revision > result.previous.mod_revision
    doc = stored(store, key)
    assert doc["metadata"]["uid"] == "uid-0"
    assert doc["metadata"]["creationTimestamp"] == "2025-01-02T03:04:05Z"
    assert doc["metadata"]["labels"] == {"x": "y"} and doc["spec"]["selector"] == "has(a)"


def test_delete_and_absent(store: Datastore, key_prefix: str) -> None:
    key = key_prefix + "np"
    rc = client(store)
    rc.sync(key, policy())
    gone = rc.sync(key, None)
    assert gone.outcome == SyncOutcome.DELETED and gone.previous is not None
    assert store.get(key) is None
    assert rc.sync(key, None).outcome == SyncOutcome.ABSENT


def test_an_invalid_resource_is_refused_before_any_write(store: Datastore, key_prefix: str) -> None:
    key = key_prefix + "np"
    with pytest.raises(ValidationError, match="selector"):
        client(store).sync(key, policy(selector="has(("))
    assert store.get(key) is None


class _Racing:
    """A store on which another writer changes ``key`` right after each of the first
    ``races`` reads of it (so the CAS that follows the read fails)."""

    def __init__(self, inner: Datastore, key: str, races: int) -> None:
        self.inner = inner
        self.key = key
        self.races = races
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, key: str) -> KeyValue | None:
        kv = self.inner.get(key)
        if key == self.key and self.reads < self.races:
            self.reads += 1
            self.inner.put(key, json.dumps({"concurrent": self.reads}).encode())
        return kv


def test_cas_retries_after_a_concurrent_writer(store: Datastore, key_prefix: str) -> None:
    key = key_prefix + "np"
    racing = _Racing(store, key, races=2)
    result = client(racing).sync(key, policy())  # type: ignore[arg-type]
    assert racing.reads == 2  # two attempts lost the race, the third wrote
    assert result.outcome == SyncOutcome.UPDATED  # over the concurrent writer's value
    assert stored(store, key)["spec"]["selector"] == "all()"


def test_cas_gives_up_after_bounded_attempts(store: Datastore, key_prefix: str) -> None:
    key = key_prefix + "np"
    racing = _Racing(store, key, races=100)
    with pytest.raises(RevisionConflict, match="attempts"):
        client(racing).sync(key, policy())  # type: ignore[arg-type]
    assert racing.reads == 5


def test_with_a_known_revision_there_is_one_attempt(store: Datastore, key_prefix: str) -> None:
    key = key_prefix + "np"
    rc = client(store)
    rc.sync(key, policy())
    seen = store.get(key)
    store.put(key, b"{}")  # another writer, after our read
    with pytest.raises(RevisionConflict):
        rc.sync(key, policy(selector="has(b)"), current=seen)
    assert stored(store, key) == {}  # the newer value is kept
    with pytest.raises(AlreadyExists):
        rc.sync(key, policy(), current=None)  # "it was absent when I listed"


def test_restore_undoes_a_sync_but_never_clobbers(store: Datastore, key_prefix: str) -> None:
    key = key_prefix + "np"
    rc = client(store)
    created = rc.sync(key, policy())
    restore(store, created)
    assert store.get(key) is None
    rc.sync(key, policy())
    before = store.get(key)
    updated = rc.sync(key, policy(selector="has(c)"))
    restore(store, updated)
    after = store.get(key)
    assert after is not None and before is not None and after.value == before.value
    deleted = rc.sync(key, None)
    restore(store, deleted)
    assert stored(store, key) == json.loads(before.value)
    moved = rc.sync(key, policy(selector="has(d)"))
    store.put(key, b'{"someone": "else"}')
    with pytest.raises(RevisionConflict):
        restore(store, moved)
    assert stored(store, key) == {"someone": "else"}


def test_sync_json_records(store: Datastore, key_prefix: str) -> None:
    key = key_prefix + "rec"
    record = {"cidr": "10.0.0.0/24", "gateway_ip": None}
    assert sync_json(store, key, record).outcome == SyncOutcome.CREATED
    kv = store.get(key)
    assert kv is not None and kv.value == json.dumps(record).encode()
    assert sync_json(store, key, dict(record)).outcome == SyncOutcome.UNCHANGED
    assert store.get(key) == kv
    assert sync_json(store, key, {**record, "cidr": "10.0.1.0/24"}).outcome == "updated"
    assert sync_json(store, key, None).outcome == SyncOutcome.DELETED
    assert sync_json(store, key, None).outcome == SyncOutcome.ABSENT
