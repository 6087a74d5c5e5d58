"""Watching the embedded store: poll the event log of one prefix, woken by in-process writers.

:class:`SqliteWatch` keeps its own connection and the next revision it has to look at; each
poll reads the log from there (a rowid range, at most ``WATCH_BATCH_LIMIT`` rows), expands
``MULTI`` rows from ``events_multi``, reaps due leases through the store, and raises
:class:`~regionmesh.errors.Compacted` when the log no longer reaches back that far.
:class:`Wakeup` lets writers in the same process wake every watcher of a file at once;
watchers in other processes notice within their poll interval. Writing is :mod:`.store`'s job.
"""

from __future__ import annotations

import builtins
import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from regionmesh.datastore.api import EventType, WatchEvent
from regionmesh.datastore.sqlite.schema import (
    MULTI,
    PUT,
    SELECT_CURRENT,
    key_range,
    range_args,
    range_sql,
    translated,
)
from regionmesh.errors import Compacted

if TYPE_CHECKING:
    from regionmesh.datastore.sqlite.store import SqliteDatastore

WATCH_BATCH_LIMIT = 1_000


class Wakeup:
    """A condition for one file that writers only lock when a watcher is waiting on it.

    A write that commits while a watcher is between its poll and its wait is not seen until
    the watcher's next poll (at most ``poll_interval`` later), with or without the lock.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting = 0

    def notify(self) -> None:
        if self._waiting:
            with self._cond:
                self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        with self._cond:
            self._waiting += 1
            try:
                self._cond.wait(timeout)
            finally:
                self._waiting -= 1


_wakeups_lock = threading.Lock()
_wakeups: dict[str, Wakeup] = {}


def wakeup_for(path: str) -> Wakeup:
    with _wakeups_lock:
        wakeup = _wakeups.get(path)
        if wakeup is None:
            wakeup = _wakeups[path] = Wakeup()
        return wakeup


class SqliteWatch:
    """Polls the event log of a :class:`SqliteDatastore` for one prefix.

    It has its own connection (used under a lock by whichever thread calls
    :meth:`next_batch`) and remembers the next revision it has to look at; every revision
    before it was returned or had nothing under the prefix. It raises Compacted when the log
    no longer reaches back that far.
    """

    def __init__(self, store: SqliteDatastore, prefix: str, start_revision: int) -> None:
        self._store = store
        self._lo, self._hi = key_range(prefix)
        self.range_args = range_args(self._lo, self._hi)
        self._next_revision = start_revision
        self._closed = threading.Event()
        self._lock = threading.Lock()
        # A MULTI row matches whatever its key; its events are filtered in events_multi.
        self._query = (
            "SELECT revision, CAST(key AS TEXT), type, value, prev_value FROM events"
            f" WHERE revision >= ? AND (type = {MULTI} OR {range_sql(self._hi)})"
            " ORDER BY revision LIMIT ?"
        )
        self._multi_query = (
            "SELECT CAST(key AS TEXT), type, value, prev_value FROM events_multi"
            f" WHERE revision = ? AND {range_sql(self._hi)} ORDER BY key"
        )
        with translated(store.path):
            self._conn: sqlite3.Connection | None = store._new_conn(register=False)

    def _poll(self) -> builtins.list[WatchEvent]:
        conn = self._conn
        if conn is None:
            return []
        now = self._store.clock()
        if conn.execute("SELECT 1 FROM leases WHERE expires_at <= ? LIMIT 1", (now,)).fetchone():
            self._store._write(lambda c: None)
        events: builtins.list[WatchEvent] = []
        conn.execute("BEGIN")
        try:
            revision = int(conn.execute(SELECT_CURRENT).fetchone()[0])
            if revision < self._next_revision:
                return []
            compacted = conn.execute(
                "SELECT value FROM meta WHERE name = 'compact_revision'"
            ).fetchone()[0]
            if self._next_revision < compacted:
                raise Compacted(
                    f"watch from revision {self._next_revision}: the embedded datastore is "
                    f"compacted up to revision {compacted}",
                    compacted,
                )
            rows = conn.execute(
                self._query, (self._next_revision, *self.range_args, WATCH_BATCH_LIMIT)
            ).fetchall()
            for rev, key, typ, value, prev in rows:
                if typ == MULTI:
                    events.extend(
                        _event(m_typ, m_key, m_value, rev, m_prev)
                        for m_key, m_typ, m_value, m_prev in conn.execute(
                            self._multi_query, (rev, *self.range_args)
                        )
                    )
                else:
                    events.append(_event(typ, key, value, rev, prev))
        finally:
            conn.execute("COMMIT")
        if len(rows) == WATCH_BATCH_LIMIT:
            self._next_revision = rows[-1][0] + 1
        else:
            self._next_revision = revision + 1
        return events

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed.is_set()

    def next_batch(self, timeout: float | None) -> builtins.list[WatchEvent]:
        """Return the next non-empty batch, or ``[]`` on timeout or after close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        wakeup = self._store._wakeup
        while not self._closed.is_set():
            with self._lock, translated(self._store.path):
                batch = self._poll()
            if batch:
                return batch
            wait = self._store.poll_interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                wait = min(wait, remaining)
            wakeup.wait(wait)
        return []

    def __iter__(self) -> Iterator[builtins.list[WatchEvent]]:
        while True:
            batch = self.next_batch(None)
            if not batch:
                return
            yield batch

    def close(self) -> None:
        """Stop the watch (from any thread)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._store._wakeup.notify()
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


def _event(typ: int, key: str, value: bytes | None, rev: int, prev: bytes | None) -> WatchEvent:
    return WatchEvent(EventType.PUT if typ == PUT else EventType.DELETE, key, value, rev, prev)
