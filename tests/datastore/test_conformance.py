"""One behaviour suite for every Datastore backend: the embedded SQLite store and real etcd.

The SQLite store is trusted because it passes the same tests as etcd. Each test works under its
own key prefix, so the session-wide etcd needs no wiping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from regionmesh.datastore.api import Datastore, EventType, Watch, WatchEvent
from regionmesh.datastore.sqlite import SqliteDatastore
from regionmesh.errors import (
    AlreadyExists,
    Compacted,
    DatastoreError,
    NotFound,
    RevisionConflict,
)
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


def collect(watch: Watch, count: int, timeout: float = 10.0) -> list[WatchEvent]:
    """Read batches until ``count`` events arrived (or fail after ``timeout``)."""
    events: list[WatchEvent] = []
    deadline = time.monotonic() + timeout
    while len(events) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"watch delivered {len(events)} of {count} events: {events}")
        events.extend(watch.next_batch(remaining))
    return events


def test_fresh_key_create_and_get(store: Datastore, key_prefix: str) -> None:
    key = key_prefix + "k"
    assert store.get(key) is None
    before = store.current_revision()
    rev = store.create(key, b"v1")
    assert rev > before
    assert store.current_revision() == rev
    kv = store.get(key)
    assert kv is not None
    assert (kv.key, kv.value, kv.mod_revision, kv.create_revision, kv.lease) == (
        key,
        b"v1",
        rev,
        rev,
        0,
    )


def test_create_only_if_absent(store: Datastore, key_prefix: str) -> None:
    key = key_prefix + "k"
    rev = store.create(key, b"first")
    with pytest.raises(AlreadyExists):
        store.create(key, b"second")
    kv = store.get(key)
    assert kv is not None and kv.value == b"first" and kv.mod_revision == rev
    assert store.current_revision() == rev  # a refused create writes nothing


def test_update_is_compare_and_swap(store: Datastore, key_prefix: str) -> None:
    key = key_prefix + "k"
    created = store.create(key, b"v1")
    updated = store.update(key, b"v2", revision=created)
    assert updated > created
    kv = store.get(key)
    assert kv is not None
    assert (kv.value, kv.mod_revision, kv.create_revision) == (b"v2", updated, created)
    with pytest.raises(RevisionConflict):
        store.update(key, b"stale", revision=created)
    with pytest.raises(RevisionConflict):
        store.update(key, b"zero", revision=0)
    with pytest.raises(NotFound):
        store.update(key_prefix + "missing", b"x", revision=created)
    with pytest.raises(NotFound):
        store.update(key_prefix + "missing", b"x", revision=0)
    assert store.get(key_prefix + "missing") is None
    kv = store.get(key)
    assert kv is not None and kv.value == b"v2"


def test_put_is_unconditional_and_keeps_create_revision(store: Datastore, key_prefix: str) -> None:
    key = key_prefix + "status"
    first = store.put(key, b"a")
    second = store.put(key, b"b")
    assert second > first
    kv = store.get(key)
    assert kv is not None
    assert (kv.value, kv.mod_revision, kv.create_revision) == (b"b", second, first)


def test_delete_plain_and_compare_and_swap(store: Datastore, key_prefix: str) -> None:
    a, b = key_prefix + "a", key_prefix + "b"
    with pytest.raises(NotFound):
        store.delete(a)
    with pytest.raises(NotFound):
        store.delete(a, revision=5)
    rev_a = store.create(a, b"1")
    rev_b = store.create(b, b"2")
    store.put(a, b"1 again")
    with pytest.raises(RevisionConflict):
        store.delete(a, revision=rev_a)
    assert store.get(a) is not None
    deleted = store.delete(b, revision=rev_b)
    assert deleted > rev_b and store.get(b) is None
    deleted_a = store.delete(a)
    assert deleted_a > deleted and store.get(a) is None
    assert store.current_revision() == deleted_a


def test_delete_prefix_respects_the_boundary(store: Datastore, key_prefix: str) -> None:
    for name in ("a/1", "a/2", "a/3/deep", "ab/1", "b"):
        store.put(key_prefix + name, name.encode())
    assert store.delete_prefix(key_prefix + "a/") == 3
    remaining = [kv.key for kv in store.list(key_prefix).items]
    assert remaining == [key_prefix + "ab/1", key_prefix + "b"]
    assert store.delete_prefix(key_prefix + "nothing/") == 0


def test_list_prefix_boundary_and_order(store: Datastore, key_prefix: str) -> None:
    names = ["a/x", "ab/y", "a/b", "a", "a0/z"]
    for name in names:
        store.put(key_prefix + name, name.encode())
    assert [kv.key for kv in store.list(key_prefix + "a/").items] == [
        key_prefix + "a/b",
        key_prefix + "a/x",
    ]
    every = store.list(key_prefix)
    assert [kv.key for kv in every.items] == sorted(key_prefix + n for n in names)
    assert every.revision == store.current_revision()
    assert store.list(key_prefix + "none/").items == []


def test_list_more_items_than_a_page(store: Datastore, key_prefix: str) -> None:
    expected = {f"{key_prefix}item-{i:04d}": f"value {i}".encode() for i in range(257)}
    for key, value in expected.items():
        store.create(key, value)
    revision = store.current_revision()
    for page_size in (1, 100, 256, 257, 1000):
        result = store.list(key_prefix, page_size=page_size)
        assert result.revision == revision
        assert [kv.key for kv in result.items] == sorted(expected)
        assert {kv.key: kv.value for kv in result.items} == expected


def test_paged_list_is_one_snapshot_while_writes_continue(
    store: Datastore, key_prefix: str
) -> None:
    """Keys are rewritten in key order, generation after generation, while a small-page list
    runs. In any snapshot a lower key has the same or a newer generation than a higher key;
    pages read at different revisions would show an older generation before a newer one."""
    keys = [f"{key_prefix}k{i:03d}" for i in range(120)]
    for key in keys:
        store.put(key, b"0")
    stop = threading.Event()

    def writer() -> None:
        generation = 0
        while not stop.is_set():
            generation += 1
            for key in keys:
                if stop.is_set():
                    return
                store.put(key, str(generation).encode())

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.05)
        results = [store.list(key_prefix, page_size=7) for _ in range(3)]
    finally:
        stop.set()
        thread.join()
    for result in results:
        generations = [int(kv.value) for kv in result.items]
        assert len(generations) == len(keys)
        assert generations == sorted(generations, reverse=True), generations
        assert generations[0] - generations[-1] <= 1
        assert all(kv.mod_revision <= result.revision for kv in result.items)


def test_watch_replays_history_in_order(store: Datastore, key_prefix: str) -> None:
    key, other = key_prefix + "w/k", key_prefix + "other"
    start = store.create(key, b"v1")
    store.put(other, b"not watched")
    updated = store.update(key, b"v2", revision=start)
    deleted = store.delete(key)
    watch = store.watch(key_prefix + "w/", start_revision=start)
    try:
        events = collect(watch, 3)
    finally:
        watch.close()
    assert [(e.type, e.key, e.value, e.mod_revision) for e in events] == [
        (EventType.PUT, key, b"v1", start),
        (EventType.PUT, key, b"v2", updated),
        (EventType.DELETE, key, None, deleted),
    ]
    assert events[1].prev_value == b"v1"
    assert events[2].prev_value == b"v2"


def test_watch_sees_live_writes_in_batches(store: Datastore, key_prefix: str) -> None:
    prefix = key_prefix + "live/"
    watch = store.watch(prefix, start_revision=store.current_revision() + 1)
    try:
        assert watch.next_batch(0.2) == []
        revisions = [store.put(f"{prefix}{i}", b"x") for i in range(5)]
        removed = store.delete_prefix(prefix)
        assert removed == 5
        events = collect(watch, 10)
        assert [e.mod_revision for e in events[:5]] == revisions
        deletes = events[5:]
        assert {e.type for e in deletes} == {EventType.DELETE}
        assert sorted(e.key for e in deletes) == [f"{prefix}{i}" for i in range(5)]
        assert len({e.mod_revision for e in deletes}) == 1  # one revision for the prefix delete
        assert deletes[0].mod_revision == store.current_revision()
        assert watch.next_batch(0.2) == []
    finally:
        watch.close()


def test_watch_from_zero_means_from_now(store: Datastore, key_prefix: str) -> None:
    store.put(key_prefix + "old", b"old")
    watch = store.watch(key_prefix, start_revision=0)
    try:
        rev = store.put(key_prefix + "new", b"new")
        events = collect(watch, 1)
        assert [(e.key, e.mod_revision) for e in events] == [(key_prefix + "new", rev)]
    finally:
        watch.close()


def test_watch_from_a_compacted_revision_raises(store: Datastore, key_prefix: str) -> None:
    first = store.put(key_prefix + "a", b"1")
    store.put(key_prefix + "a", b"2")
    last = store.put(key_prefix + "a", b"3")
    store.compact(last)
    store.compact(last)  # compacting again to the same revision is a no-op
    watch = store.watch(key_prefix, start_revision=first)
    try:
        with pytest.raises(Compacted) as info:
            collect(watch, 1)
        assert info.value.compact_revision >= last
    finally:
        watch.close()
    # From the compaction revision on, watching still works.
    watch = store.watch(key_prefix, start_revision=last + 1)
    try:
        rev = store.put(key_prefix + "b", b"after")
        assert [e.mod_revision for e in collect(watch, 1)] == [rev]
    finally:
        watch.close()


def test_compact_says_whether_it_compacted(store: Datastore, key_prefix: str) -> None:
    """networking-calico's compactor must tell "I compacted" from "someone already did"."""
    first = store.put(key_prefix + "a", b"1")
    second = store.put(key_prefix + "a", b"2")
    store.put(key_prefix + "a", b"3")
    assert store.compact(second) is True
    assert store.compact(second) is False
    assert store.compact(first) is False  # behind the compacted revision: nothing to do
    assert store.compact(store.current_revision()) is True


def test_lease_ttl_counts_down_and_ends_with_not_found(store: Datastore) -> None:
    lease = store.grant_lease(30)
    assert 25 <= store.lease_ttl(lease) <= 30
    short = store.grant_lease(2)
    assert 1 <= store.lease_ttl(short) <= 2
    store.revoke_lease(lease)
    with pytest.raises(NotFound):
        store.lease_ttl(lease)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            store.lease_ttl(short)
        except NotFound:
            break
        time.sleep(0.2)
    else:
        pytest.fail("an expired lease still reports a TTL")


def test_compact_to_a_future_revision_is_refused(store: Datastore) -> None:
    with pytest.raises(DatastoreError):
        store.compact(store.current_revision() + 100)


def test_lease_expiry_deletes_keys_with_delete_events(store: Datastore, key_prefix: str) -> None:
    lease = store.grant_lease(2)
    assert lease > 0
    key = key_prefix + "leased"
    start = store.create(key, b"alive", lease=lease)
    store.put(key_prefix + "kept", b"no lease")
    kv = store.get(key)
    assert kv is not None and kv.lease == lease
    watch = store.watch(key_prefix, start_revision=start + 1)
    try:
        events = collect(watch, 2, timeout=15)
    finally:
        watch.close()
    assert events[0].key == key_prefix + "kept"
    assert (events[1].type, events[1].key, events[1].prev_value) == (
        EventType.DELETE,
        key,
        b"alive",
    )
    assert store.get(key) is None
    assert store.get(key_prefix + "kept") is not None
    with pytest.raises(NotFound):
        store.refresh_lease(lease)
    with pytest.raises(NotFound):
        store.put(key_prefix + "late", b"x", lease=lease)


def test_refreshed_lease_keeps_its_keys(store: Datastore, key_prefix: str) -> None:
    lease = store.grant_lease(2)
    store.put(key_prefix + "k", b"v", lease=lease)
    for _ in range(3):
        time.sleep(1.0)
        store.refresh_lease(lease)
    assert store.get(key_prefix + "k") is not None
    store.revoke_lease(lease)


def test_revoke_deletes_keys_at_once(store: Datastore, key_prefix: str) -> None:
    lease = store.grant_lease(60)
    start = store.put(key_prefix + "a", b"1", lease=lease)
    store.put(key_prefix + "b", b"2", lease=lease)
    store.revoke_lease(lease)
    assert store.list(key_prefix).items == []
    watch = store.watch(key_prefix, start_revision=start)
    try:
        events = collect(watch, 4)
    finally:
        watch.close()
    assert [e.type for e in events] == [EventType.PUT] * 2 + [EventType.DELETE] * 2
    with pytest.raises(NotFound):
        store.revoke_lease(lease)


def test_close_from_another_thread_ends_iteration(store: Datastore, key_prefix: str) -> None:
    watch = store.watch(key_prefix, start_revision=store.current_revision() + 1)
    seen: list[WatchEvent] = []
    finished = threading.Event()

    def consume() -> None:
        for batch in watch:
            seen.extend(batch)
        finished.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    store.put(key_prefix + "x", b"1")
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [e.key for e in seen] == [key_prefix + "x"]
    watch.close()
    assert finished.wait(5), "iteration did not end after close()"
    watch.close()  # idempotent
    assert watch.next_batch(0.1) == []
