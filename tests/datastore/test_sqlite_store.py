"""What only the embedded store has to show: several processes on one file, auto-compaction,
thread safety of CAS, the ``:memory:`` form and file errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from regionmesh.datastore import open_datastore
from regionmesh.datastore.api import EventType
from regionmesh.datastore.sqlite import AUTO_COMPACT_EVERY, SqliteDatastore
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
    import sqlite3

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
