"""What only the embedded store has to show: several processes on one file, auto-compaction,
thread safety of CAS, the ``:memory:`` form, file errors, migration of version 1 files, and
the log layout (one row per revision, multi-key revisions in ``events_multi``)."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from regionmesh.datastore import open_datastore
from regionmesh.datastore.api import EventType, KeyValue, WatchEvent
from regionmesh.datastore.sqlite import AUTO_COMPACT_EVERY, WATCH_BATCH_LIMIT, SqliteDatastore
from regionmesh.errors import Compacted, DatastoreUnavailable, RevisionConflict

CHILD = textwrap.dedent(
    """
    import json, sys
    from regionmesh.datastore.sqlite import SqliteDatastore
    store = SqliteDatastore(sys.argv[1])
    def say(obj):
        print(json.dumps(obj), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "put":
            say(store.put(cmd["key"], cmd["value"].encode(), lease=cmd.get("lease", 0)))
        elif op == "get":
            kv = store.get(cmd["key"])
            say(None if kv is None else [kv.value.decode(), kv.mod_revision])
        elif op == "lease":
            say(store.grant_lease(cmd["ttl"]))
        elif op == "watch":
            watch = store.watch(cmd["prefix"], start_revision=cmd["start"])
            say("watching")
            got = []
            while len(got) < cmd["count"]:
                batch = watch.next_batch(10)
                if not batch:
                    break
                got += [[e.type.value, e.key, e.mod_revision] for e in batch]
            say(got)
        elif op == "exit":
            store.close()
            say("bye")
            break
    """
)


class Child:
    """Another process with its own SqliteDatastore on the same file, driven over pipes."""

    def __init__(self, path: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, **cmd: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def read(self) -> object:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "child process died"
        return json.loads(line)

    def call(self, **cmd: object) -> object:
        self.send(**cmd)
        return self.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.call(op="exit")
            self.proc.wait(timeout=10)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "shared.db")


def test_two_processes_see_each_others_writes(db: str) -> None:
    store = SqliteDatastore(db)
    child = Child(db)
    try:
        parent_rev = store.put("/x/parent", b"from parent")
        assert child.call(op="get", key="/x/parent") == ["from parent", parent_rev]
        child_rev = child.call(op="put", key="/x/child", value="from child")
        assert isinstance(child_rev, int) and child_rev == parent_rev + 1
        kv = store.get("/x/child")
        assert kv is not None and (kv.value, kv.mod_revision) == (b"from child", child_rev)
        assert store.current_revision() == child_rev
    finally:
        child.stop()
        store.close()


def test_two_processes_see_each_others_watch_events(db: str) -> None:
    store = SqliteDatastore(db)
    child = Child(db)
    try:
        start = store.current_revision() + 1
        # The child watches; the parent writes.
        child.send(op="watch", prefix="/w/", start=start, count=3)
        assert child.read() == "watching"
        revs = [store.put(f"/w/{i}", b"p") for i in range(2)]
        revs.append(store.delete("/w/0"))
        assert child.read() == [
            ["put", "/w/0", revs[0]],
            ["put", "/w/1", revs[1]],
            ["delete", "/w/0", revs[2]],
        ]
        # The parent watches; the child writes.
        watch = store.watch("/c/", start_revision=store.current_revision() + 1)
        child_rev = child.call(op="put", key="/c/k", value="v")
        batch = watch.next_batch(10)
        assert [(e.type, e.key, e.mod_revision) for e in batch] == [
            (EventType.PUT, "/c/k", child_rev)
        ]
        watch.close()
    finally:
        child.stop()
        store.close()


def test_an_expired_lease_of_another_process_is_reaped_by_a_watcher(db: str) -> None:
    store = SqliteDatastore(db)
    child = Child(db)
    try:
        lease = child.call(op="lease", ttl=1)
        rev = child.call(op="put", key="/l/k", value="v", lease=lease)
        child.stop()
        assert isinstance(rev, int)
        watch = store.watch("/l/", start_revision=rev + 1)
        batch = watch.next_batch(10)
        watch.close()
        assert [(e.type, e.key) for e in batch] == [(EventType.DELETE, "/l/k")]
        assert store.get("/l/k") is None
    finally:
        child.stop()
        store.close()


def test_concurrent_cas_increments_lose_nothing(db: str) -> None:
    store = SqliteDatastore(db)
    store.create("/counter", b"0")
    conflicts = []

    def increment(times: int) -> None:
        done = 0
        while done < times:
            kv = store.get("/counter")
            assert kv is not None
            try:
                store.update("/counter", str(int(kv.value) + 1).encode(), revision=kv.mod_revision)
                done += 1
            except RevisionConflict:
                conflicts.append(1)

    threads = [threading.Thread(target=increment, args=(50,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kv = store.get("/counter")
    assert kv is not None and kv.value == b"200"
    store.close()


def test_the_event_log_is_compacted_automatically(db: str) -> None:
    store = SqliteDatastore(db, retain_revisions=100)
    try:
        first = store.put("/a", b"0")
        for i in range(AUTO_COMPACT_EVERY):
            store.put("/a", str(i).encode())
        watch = store.watch("/", start_revision=first)
        with pytest.raises(Compacted) as info:
            watch.next_batch(1)
        assert info.value.compact_revision > first
        recent = store.watch("/", start_revision=store.current_revision() - 50)
        assert len(recent.next_batch(1)) == 51
        recent.close()
    finally:
        store.close()


def test_an_idle_watch_keeps_its_position_past_compaction(db: str) -> None:
    """A watch that saw nothing for its prefix must not be reported compacted afterwards."""
    store = SqliteDatastore(db)
    try:
        watch = store.watch("/quiet/", start_revision=store.current_revision() + 1)
        for i in range(5):
            store.put(f"/busy/{i}", b"x")
        assert watch.next_batch(0.2) == []
        store.compact(store.current_revision())
        rev = store.put("/quiet/k", b"v")
        assert [e.mod_revision for e in watch.next_batch(5)] == [rev]
        watch.close()
    finally:
        store.close()


def test_memory_store_is_private_and_removed_on_close() -> None:
    store = open_datastore("sqlite:///:memory:")
    assert isinstance(store, SqliteDatastore)
    path = store.path
    store.put("/k", b"v")
    seen = []
    thread = threading.Thread(target=lambda: seen.append(store.get("/k")))
    thread.start()
    thread.join()
    assert seen[0] is not None and seen[0].value == b"v"
    store.close()
    assert not os.path.exists(path)


def test_unwritable_location_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DatastoreUnavailable, match="file"):
        SqliteDatastore(str(blocker / "sub" / "store.db"))


def test_a_locked_database_times_out_as_unavailable(db: str) -> None:
    store = SqliteDatastore(db, busy_timeout=0.2)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(DatastoreUnavailable, match="locked"):
            store.put("/k", b"v")
        assert time.monotonic() - started < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()


# --- schema version 2: the revision is the event log's rowid -----------------------------------

V1_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL,"
    " create_revision INTEGER NOT NULL, mod_revision INTEGER NOT NULL,"
    " lease INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
    "CREATE INDEX kv_by_lease ON kv(lease) WHERE lease != 0",
    "CREATE TABLE events (id INTEGER PRIMARY KEY, revision INTEGER NOT NULL,"
    " key BLOB NOT NULL, type INTEGER NOT NULL, value BLOB, prev_value BLOB)",
    "CREATE INDEX events_by_revision ON events(revision)",
    "CREATE TABLE leases (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ttl INTEGER NOT NULL, expires_at REAL NOT NULL)",
    "CREATE INDEX leases_by_expiry ON leases(expires_at)",
)


def make_v1_file(path: str, revision: int, events: list[tuple[object, ...]]) -> None:
    """A file as schema version 1 left it: a revision counter and one log row per event."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for stmt in V1_SCHEMA:
        conn.execute(stmt)
    conn.execute(
        "INSERT INTO meta VALUES ('revision', ?), ('compact_revision', 2)"
        if events
        else "INSERT INTO meta VALUES ('revision', ?), ('compact_revision', 0)",
        (revision,),
    )
    conn.executemany(
        "INSERT INTO events(revision, key, type, value, prev_value) VALUES (?, ?, ?, ?, ?)",
        events,
    )
    conn.execute("INSERT INTO kv VALUES (?, ?, 4, 4, 0)", (b"/a/x", b"x1"))
    conn.execute("PRAGMA user_version = 1")
    conn.close()


def test_a_version_1_file_is_migrated_on_open(db: str) -> None:
    # Revisions 2-4 put /a/y, /a/z, /a/x; revision 5 deleted /a/y and /a/z (delete_prefix);
    # revision 1 was compacted away.
    make_v1_file(
        db,
        5,
        [
            (2, b"/a/y", 0, b"y", None),
            (3, b"/a/z", 0, b"z", None),
            (4, b"/a/x", 0, b"x1", None),
            (5, b"/a/y", 1, None, b"y"),
            (5, b"/a/z", 1, None, b"z"),
        ],
    )
    store = SqliteDatastore(db)
    try:
        assert store.current_revision() == 5
        kv = store.get("/a/x")
        assert kv is not None and (kv.value, kv.mod_revision, kv.create_revision) == (b"x1", 4, 4)
        watch = store.watch("/a/", start_revision=2)
        events = watch.next_batch(5)
        watch.close()
        assert [(e.type, e.key, e.value, e.mod_revision, e.prev_value) for e in events] == [
            (EventType.PUT, "/a/y", b"y", 2, None),
            (EventType.PUT, "/a/z", b"z", 3, None),
            (EventType.PUT, "/a/x", b"x1", 4, None),
            (EventType.DELETE, "/a/y", None, 5, b"y"),
            (EventType.DELETE, "/a/z", None, 5, b"z"),
        ]
        with pytest.raises(Compacted):
            store.watch("/a/", start_revision=1).next_batch(1)
        assert store.put("/a/x", b"x2") == 6
        assert store.create("/a/new", b"n") == 7
    finally:
        store.close()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "events_by_revision" not in names and "events_v1" not in names
        # Version 1 code bumps this row to get a revision; it is gone, so such a process
        # fails instead of handing out revisions twice.
        bump = conn.execute(
            "UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value"
        ).fetchone()
        assert bump is None
    finally:
        conn.close()


def test_an_unused_version_1_file_is_migrated_on_open(db: str) -> None:
    make_v1_file(db, 1, [])
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM kv")
    store = SqliteDatastore(db)
    try:
        assert store.current_revision() == 1
        assert store.put("/k", b"v") == 2
    finally:
        store.close()


def test_a_newer_schema_is_refused(db: str) -> None:
    SqliteDatastore(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(DatastoreUnavailable, match="newer"):
        SqliteDatastore(db)


def test_a_multi_key_write_is_one_revision_filtered_by_prefix(db: str) -> None:
    store = SqliteDatastore(db)
    try:
        start = store.current_revision() + 1
        for key in ("/m/a/1", "/m/a/2", "/m/b/1", "/other"):
            store.put(key, key.encode())
        lease = store.grant_lease(60)
        store.put("/m/l/1", b"l1", lease=lease)
        store.put("/m/l/2", b"l2", lease=lease)
        assert store.delete_prefix("/m/") == 5  # one revision for five keys
        prefix_rev = store.current_revision()
        assert store.put("/m/again", b"x") == prefix_rev + 1
        # A sub-prefix watch gets only its keys of that revision.
        watch = store.watch("/m/a/", start_revision=start)
        events = watch.next_batch(5)
        watch.close()
        assert [(e.type, e.key, e.mod_revision, e.prev_value) for e in events] == [
            (EventType.PUT, "/m/a/1", start, None),
            (EventType.PUT, "/m/a/2", start + 1, None),
            (EventType.DELETE, "/m/a/1", prefix_rev, b"/m/a/1"),
            (EventType.DELETE, "/m/a/2", prefix_rev, b"/m/a/2"),
        ]
        # Revoking a lease with two keys is one revision too.
        lease = store.grant_lease(60)
        store.put("/r/1", b"1", lease=lease)
        store.put("/r/2", b"2", lease=lease)
        watch = store.watch("/r/", start_revision=store.current_revision() + 1)
        store.revoke_lease(lease)
        revoked = watch.next_batch(5)
        watch.close()
        assert [(e.type, e.key) for e in revoked] == [
            (EventType.DELETE, "/r/1"),
            (EventType.DELETE, "/r/2"),
        ]
        assert {e.mod_revision for e in revoked} == {store.current_revision()}
        # Compacting past a multi-key revision drops its events as well.
        store.compact(store.current_revision())
        with pytest.raises(Compacted):
            store.watch("/m/", start_revision=prefix_rev).next_batch(1)
        with sqlite3.connect(db) as conn:
            left = conn.execute("SELECT min(revision) FROM events_multi").fetchone()[0]
        assert left == store.current_revision()
    finally:
        store.close()


def test_a_watch_replays_more_than_one_batch_in_order(db: str) -> None:
    store = SqliteDatastore(db)
    try:
        start = store.current_revision() + 1
        count = WATCH_BATCH_LIMIT + 50
        for i in range(count):
            store.put(f"/many/{i % 7}", str(i).encode())
            if i % 3 == 0:
                store.put(f"/noise/{i}", b"n")
        watch = store.watch("/many/", start_revision=start)
        events: list[WatchEvent] = []
        while len(events) < count:
            batch = watch.next_batch(5)
            assert batch
            events += batch
        assert watch.next_batch(0.05) == []
        watch.close()
        assert [e.value for e in events] == [str(i).encode() for i in range(count)]
        revisions = [e.mod_revision for e in events]
        assert revisions == sorted(revisions) and len(set(revisions)) == count
    finally:
        store.close()


def test_a_waiting_watcher_is_woken_by_a_write_in_this_process(db: str) -> None:
    store = SqliteDatastore(db, poll_interval=30)
    try:
        watch = store.watch("/wake/", start_revision=0)
        got: list[float] = []

        def wait() -> None:
            watch.next_batch(20)
            got.append(time.monotonic())

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.3)  # the watcher has polled and is waiting
        written = time.monotonic()
        store.put("/wake/k", b"v")
        thread.join(20)
        watch.close()
        assert got and got[0] - written < 5
    finally:
        store.close()


def test_list_items_are_ordinary_key_values_and_gc_is_restored(db: str) -> None:
    store = SqliteDatastore(db)
    try:
        lease = store.grant_lease(60)
        rev = store.put("/kv/é", b"v", lease=lease)
        assert gc.isenabled()
        (item,) = store.list("/kv/").items
        assert gc.isenabled()
        assert type(item) is KeyValue
        assert item == KeyValue("/kv/é", b"v", rev, rev, lease)
        assert hash(item) == hash(KeyValue("/kv/é", b"v", rev, rev, lease))
        with pytest.raises(AttributeError):
            item.value = b"changed"  # type: ignore[misc]
        gc.disable()
        try:
            store.list("/kv/")
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        store.close()
