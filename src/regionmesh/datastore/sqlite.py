"""The embedded datastore: a revisioned key-value store in one SQLite file (WAL mode).

Several processes on one machine (CLI, Neutron server, agents) may open the same file. Each
write is one ``BEGIN IMMEDIATE`` transaction that bumps a store-wide revision counter, stamps
the keys it touches and appends one row per change to an event log; watchers poll that log
(cheaply: one indexed query) and are woken at once by writers in the same process. The log is
compacted on request and automatically (keeping ``retain_revisions`` revisions); a watch whose
position was compacted away raises :class:`~regionmesh.errors.Compacted`.

Leases live in a table with a wall-clock expiry. Expired leases are reaped lazily by whichever
process touches the store next (any write, a read that finds a due lease, or a watcher's poll):
their keys are deleted in one revision, with delete events. Each thread gets its own
connection; ``busy_timeout`` covers contention between processes.

Schema (version 1)::

    meta(name, value)                    'revision', 'compact_revision'
    kv(key BLOB PK, value, create_revision, mod_revision, lease)     -- WITHOUT ROWID, by key
    events(id PK, revision, key, type, value, prev_value)            -- the watch log
    leases(id PK AUTOINCREMENT, ttl, expires_at)

What this module does not do: encode resources (``resources.py``), choose a file
(``config.py``), or talk to etcd (``etcd.py``).
"""

from __future__ import annotations

import builtins
import contextlib
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from regionmesh.datastore.api import EventType, KeyValue, ListResult, WatchEvent
from regionmesh.datastore.keys import prefix_range_end
from regionmesh.errors import (
    AlreadyExists,
    Compacted,
    DatastoreError,
    DatastoreUnavailable,
    NotFound,
    RevisionConflict,
)

T = TypeVar("T")

SCHEMA_VERSION = 1
DEFAULT_BUSY_TIMEOUT = 30.0
DEFAULT_RETAIN_REVISIONS = 10_000
AUTO_COMPACT_EVERY = 1_000
DEFAULT_POLL_INTERVAL = 0.1
WATCH_BATCH_LIMIT = 1_000
REAP_INTERVAL = 0.25

_PUT, _DELETE = 0, 1

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL,"
    " create_revision INTEGER NOT NULL, mod_revision INTEGER NOT NULL,"
    " lease INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS kv_by_lease ON kv(lease) WHERE lease != 0",
    "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, revision INTEGER NOT NULL,"
    " key BLOB NOT NULL, type INTEGER NOT NULL, value BLOB, prev_value BLOB)",
    "CREATE INDEX IF NOT EXISTS events_by_revision ON events(revision)",
    "CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ttl INTEGER NOT NULL, expires_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases(expires_at)",
    "INSERT OR IGNORE INTO meta(name, value) VALUES ('revision', 1), ('compact_revision', 0)",
)


# In-process wake-ups: writers notify every watcher of the same file at once; watchers in
# other processes notice within their poll interval.
_wakeups_lock = threading.Lock()
_wakeups: dict[str, threading.Condition] = {}


def _wakeup_for(path: str) -> threading.Condition:
    with _wakeups_lock:
        cond = _wakeups.get(path)
        if cond is None:
            cond = _wakeups[path] = threading.Condition()
        return cond


def _range(prefix: str) -> tuple[bytes, bytes | None]:
    lo = prefix.encode()
    return lo, prefix_range_end(lo)


def _range_sql(hi: bytes | None) -> str:
    return "key >= ? AND key < ?" if hi is not None else "key >= ?"


def _range_args(lo: bytes, hi: bytes | None) -> tuple[bytes, ...]:
    return (lo, hi) if hi is not None else (lo,)


@contextlib.contextmanager
def _translated(path: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise DatastoreUnavailable(f"embedded datastore {path}: {exc}") from exc


class SqliteDatastore:
    """A :class:`~regionmesh.datastore.api.Datastore` backed by one SQLite file.

    ``path`` ``":memory:"`` gives a private store in a temporary file that is removed on
    :meth:`close` (several connections must see the same data, which SQLite's own in-memory
    databases cannot do across threads with WAL).
    """

    def __init__(
        self,
        path: str,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        retain_revisions: int = DEFAULT_RETAIN_REVISIONS,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self._tmpdir: str | None = None
        if path == ":memory:":
            self._tmpdir = tempfile.mkdtemp(prefix="regionmesh-sqlite-")
            path = os.path.join(self._tmpdir, "store.db")
        self.path = os.path.abspath(path)
        self._busy_timeout = busy_timeout
        self._retain = retain_revisions
        self.poll_interval = poll_interval
        self._local = threading.local()
        self._conns: builtins.list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._watches: builtins.list[SqliteWatch] = []
        self._closed = False
        self._next_reap = 0.0
        self._wakeup = _wakeup_for(self.path)
        parent = os.path.dirname(self.path)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise DatastoreUnavailable(
                f"embedded datastore {self.path}: cannot create {parent}: {exc}"
            ) from exc
        with _translated(self.path):
            conn = self._conn()
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise DatastoreUnavailable(
                    f"embedded datastore {self.path} has schema version {version}, "
                    f"newer than this regionmesh understands ({SCHEMA_VERSION})"
                )
            if version < SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for stmt in _SCHEMA:
                        conn.execute(stmt)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise

    # --- connections and transactions ---------------------------------------------------

    def _new_conn(self, *, register: bool = True) -> sqlite3.Connection:
        if self._closed:
            raise DatastoreError(f"embedded datastore {self.path} is closed")
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if register:  # watches close their own connection
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._new_conn()
        return conn

    def _write(self, body: Callable[[sqlite3.Connection], T], *, reap: bool = False) -> T:
        """Run ``body`` in one BEGIN IMMEDIATE transaction, reaping due leases first.

        Leases are looked at most every ``REAP_INTERVAL`` seconds per store object (or when
        ``reap`` is set), so an expired lease's keys go at most that much later.
        """
        now = time.time()
        reap = reap or now >= self._next_reap
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                if reap:
                    self._next_reap = now + REAP_INTERVAL
                    _reap_leases(conn, now)
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise DatastoreUnavailable(f"embedded datastore {self.path}: {exc}") from exc
        with self._wakeup:
            self._wakeup.notify_all()
        return result

    def _reap_if_due(self) -> None:
        now = time.time()
        if now < self._next_reap:
            return
        with _translated(self.path):
            due = (
                self._conn()
                .execute("SELECT 1 FROM leases WHERE expires_at <= ? LIMIT 1", (now,))
                .fetchone()
            )
        if due is not None:
            self._write(lambda conn: None, reap=True)
        else:
            self._next_reap = now + REAP_INTERVAL

    # --- reads ----------------------------------------------------------------------------

    def get(self, key: str) -> KeyValue | None:
        """Return the key, or None."""
        self._reap_if_due()
        with _translated(self.path):
            row = (
                self._conn()
                .execute(
                    "SELECT value, mod_revision, create_revision, lease FROM kv WHERE key = ?",
                    (key.encode(),),
                )
                .fetchone()
            )
        if row is None:
            return None
        return KeyValue(key, bytes(row[0]), row[1], row[2], row[3])

    def list(self, prefix: str, *, page_size: int = 1000) -> ListResult:
        """Return all keys under ``prefix`` from one read transaction (one snapshot)."""
        self._reap_if_due()
        lo, hi = _range(prefix)
        items: builtins.list[KeyValue] = []
        with _translated(self.path):
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                revision = _meta(conn, "revision")
                cur = conn.execute(
                    "SELECT key, value, mod_revision, create_revision, lease FROM kv"
                    f" WHERE {_range_sql(hi)} ORDER BY key",
                    _range_args(lo, hi),
                )
                while rows := cur.fetchmany(max(page_size, 1)):
                    items.extend(map(_row_to_kv, rows))
            finally:
                conn.execute("COMMIT")
        return ListResult(items, revision)

    def current_revision(self) -> int:
        """Return the store revision."""
        with _translated(self.path):
            return _meta(self._conn(), "revision")

    # --- writes ---------------------------------------------------------------------------

    def create(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Write only if absent."""
        k = key.encode()

        def body(conn: sqlite3.Connection) -> int:
            _check_lease(conn, lease)
            rev = _bump(conn)  # rolled back with the transaction if the key exists
            inserted = conn.execute(
                "INSERT INTO kv(key, value, create_revision, mod_revision, lease)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
                (k, value, rev, rev, lease),
            ).rowcount
            if not inserted:
                raise AlreadyExists(f"key already exists: {key}")
            _log(conn, rev, k, _PUT, value, None)
            self._maybe_auto_compact(conn, rev)
            return rev

        return self._write(body)

    def update(self, key: str, value: bytes, *, revision: int, lease: int = 0) -> int:
        """CAS write on mod_revision."""
        k = key.encode()

        def body(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT value, mod_revision FROM kv WHERE key = ?", (k,)).fetchone()
            if row is None:
                raise NotFound(f"key does not exist: {key}")
            if row[1] != revision:
                raise RevisionConflict(
                    f"update conflict on {key}: expected revision {revision}, found {row[1]}"
                )
            _check_lease(conn, lease)
            rev = _bump(conn)
            conn.execute(
                "UPDATE kv SET value = ?, mod_revision = ?, lease = ? WHERE key = ?",
                (value, rev, lease, k),
            )
            _log(conn, rev, k, _PUT, value, row[0])
            self._maybe_auto_compact(conn, rev)
            return rev

        return self._write(body)

    def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Unconditional write."""
        k = key.encode()

        def body(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (k,)).fetchone()
            _check_lease(conn, lease)
            rev = _bump(conn)
            conn.execute(
                "INSERT INTO kv(key, value, create_revision, mod_revision, lease)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
                " mod_revision = excluded.mod_revision, lease = excluded.lease",
                (k, value, rev, rev, lease),
            )
            _log(conn, rev, k, _PUT, value, None if row is None else row[0])
            self._maybe_auto_compact(conn, rev)
            return rev

        return self._write(body)

    def delete(self, key: str, *, revision: int | None = None) -> int:
        """Delete one key, CAS when ``revision`` is given."""
        k = key.encode()

        def body(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT value, mod_revision FROM kv WHERE key = ?", (k,)).fetchone()
            if row is None:
                raise NotFound(f"key does not exist: {key}")
            if revision is not None and row[1] != revision:
                raise RevisionConflict(
                    f"delete conflict on {key}: expected revision {revision}, found {row[1]}"
                )
            rev = _bump(conn)
            conn.execute("DELETE FROM kv WHERE key = ?", (k,))
            _log(conn, rev, k, _DELETE, None, row[0])
            self._maybe_auto_compact(conn, rev)
            return rev

        return self._write(body)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix`` in one revision."""
        lo, hi = _range(prefix)

        def body(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                f"SELECT key, value FROM kv WHERE {_range_sql(hi)} ORDER BY key",
                _range_args(lo, hi),
            ).fetchall()
            if not rows:
                return 0
            rev = _bump(conn)
            conn.execute(f"DELETE FROM kv WHERE {_range_sql(hi)}", _range_args(lo, hi))
            conn.executemany(
                "INSERT INTO events(revision, key, type, value, prev_value) VALUES (?, ?, ?, ?, ?)",
                [(rev, k, _DELETE, None, v) for k, v in rows],
            )
            self._maybe_auto_compact(conn, rev)
            return len(rows)

        return self._write(body)

    # --- leases ---------------------------------------------------------------------------

    def grant_lease(self, ttl: int) -> int:
        """Create a lease expiring ``ttl`` seconds from now."""
        if ttl < 1:
            raise DatastoreError(f"lease TTL must be at least 1 second, got {ttl}")

        def body(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO leases(ttl, expires_at) VALUES (?, ?)", (ttl, time.time() + ttl)
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

        return self._write(body)

    def refresh_lease(self, lease: int) -> None:
        """Restart the lease's TTL; NotFound if it is gone."""

        def body(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE leases SET expires_at = ? + ttl WHERE id = ?", (time.time(), lease)
            )
            if cur.rowcount == 0:
                raise NotFound(f"lease {lease} not found (expired or revoked)")

        self._write(body)

    def revoke_lease(self, lease: int) -> None:
        """Revoke the lease and delete its keys."""

        def body(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM leases WHERE id = ?", (lease,)).fetchone() is None:
                raise NotFound(f"lease {lease} not found (expired or revoked)")
            _drop_lease(conn, lease)

        self._write(body)

    # --- history --------------------------------------------------------------------------

    def compact(self, revision: int) -> None:
        """Drop events before ``revision``."""

        def body(conn: sqlite3.Connection) -> None:
            current = _meta(conn, "revision")
            if revision > current:
                raise DatastoreError(
                    f"cannot compact to revision {revision}: the store is at {current}"
                )
            _compact(conn, revision)

        self._write(body)

    def _maybe_auto_compact(self, conn: sqlite3.Connection, rev: int) -> None:
        if self._retain > 0 and rev % AUTO_COMPACT_EVERY == 0 and rev > self._retain:
            _compact(conn, rev - self._retain)

    def watch(self, prefix: str, *, start_revision: int) -> SqliteWatch:
        """Watch keys under ``prefix`` from ``start_revision`` (0: from now)."""
        if start_revision <= 0:
            start_revision = self.current_revision() + 1
        watch = SqliteWatch(self, prefix, start_revision)
        with self._conns_lock:
            self._watches = [w for w in self._watches if not w.closed] + [watch]
        return watch

    def close(self) -> None:
        """Close every connection and watch; remove a ``:memory:`` store's file."""
        with self._conns_lock:
            watches, self._watches = self._watches, []
        for watch in watches:
            watch.close()
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> SqliteDatastore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteDatastore({self.path!r})"


class SqliteWatch:
    """Polls the event log of a :class:`SqliteDatastore` for one prefix.

    It has its own connection (used under a lock by whichever thread calls
    :meth:`next_batch`), remembers the last event id it returned and the revision it has seen
    up to, and raises Compacted when the log no longer reaches back that far.
    """

    def __init__(self, store: SqliteDatastore, prefix: str, start_revision: int) -> None:
        self._store = store
        self._lo, self._hi = _range(prefix)
        self._next_revision = start_revision
        self._last_id = 0
        self._closed = threading.Event()
        self._lock = threading.Lock()
        with _translated(store.path):
            self._conn: sqlite3.Connection | None = store._new_conn(register=False)

    def _poll(self) -> builtins.list[WatchEvent]:
        conn = self._conn
        if conn is None:
            return []
        now = time.time()
        if conn.execute("SELECT 1 FROM leases WHERE expires_at <= ? LIMIT 1", (now,)).fetchone():
            self._store._write(lambda c: None)
        conn.execute("BEGIN")
        try:
            revision = _meta(conn, "revision")
            if revision < self._next_revision:
                return []
            compacted = _meta(conn, "compact_revision")
            if self._next_revision < compacted:
                raise Compacted(
                    f"watch from revision {self._next_revision}: the embedded datastore is "
                    f"compacted up to revision {compacted}",
                    compacted,
                )
            rows = conn.execute(
                "SELECT id, revision, key, type, value, prev_value FROM events"
                f" WHERE id > ? AND revision >= ? AND {_range_sql(self._hi)}"
                " ORDER BY id LIMIT ?",
                (
                    self._last_id,
                    self._next_revision,
                    *_range_args(self._lo, self._hi),
                    WATCH_BATCH_LIMIT,
                ),
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        if len(rows) == WATCH_BATCH_LIMIT:
            self._last_id = rows[-1][0]
            self._next_revision = rows[-1][1]
        else:
            if rows:
                self._last_id = rows[-1][0]
            self._next_revision = revision + 1
        return [
            WatchEvent(
                EventType.PUT if typ == _PUT else EventType.DELETE,
                bytes(key).decode(),
                None if value is None else bytes(value),
                rev,
                None if prev is None else bytes(prev),
            )
            for _, rev, key, typ, value, prev in rows
        ]

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed.is_set()

    def next_batch(self, timeout: float | None) -> builtins.list[WatchEvent]:
        """Return the next non-empty batch, or ``[]`` on timeout or after close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        wakeup = self._store._wakeup
        while not self._closed.is_set():
            with self._lock, _translated(self._store.path):
                batch = self._poll()
            if batch:
                return batch
            wait = self._store.poll_interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                wait = min(wait, remaining)
            with wakeup:
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
        wakeup = self._store._wakeup
        with wakeup:
            wakeup.notify_all()
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


_new = object.__new__
_set_key: Callable[[KeyValue, object], None] = vars(KeyValue)["key"].__set__
_set_value: Callable[[KeyValue, object], None] = vars(KeyValue)["value"].__set__
_set_mod: Callable[[KeyValue, object], None] = vars(KeyValue)["mod_revision"].__set__
_set_create: Callable[[KeyValue, object], None] = vars(KeyValue)["create_revision"].__set__
_set_lease: Callable[[KeyValue, object], None] = vars(KeyValue)["lease"].__set__


def _row_to_kv(row: tuple[bytes, bytes, int, int, int]) -> KeyValue:
    """Build a KeyValue from a kv row without the frozen dataclass ``__init__``.

    Lists build one object per key, and the frozen ``__init__`` (``object.__setattr__`` per
    field) is a large part of a list's cost; setting the slots directly gives the same object.
    """
    kv: KeyValue = _new(KeyValue)
    _set_key(kv, row[0].decode())
    _set_value(kv, row[1])
    _set_mod(kv, row[2])
    _set_create(kv, row[3])
    _set_lease(kv, row[4])
    return kv


# --- helpers that run inside a transaction ----------------------------------------------------


def _meta(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return int(row[0])


def _bump(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value"
    ).fetchone()
    return int(row[0])


def _log(
    conn: sqlite3.Connection,
    rev: int,
    key: bytes,
    typ: int,
    value: bytes | None,
    prev: bytes | None,
) -> None:
    conn.execute(
        "INSERT INTO events(revision, key, type, value, prev_value) VALUES (?, ?, ?, ?, ?)",
        (rev, key, typ, value, prev),
    )


def _check_lease(conn: sqlite3.Connection, lease: int) -> None:
    if lease and conn.execute("SELECT 1 FROM leases WHERE id = ?", (lease,)).fetchone() is None:
        raise NotFound(f"lease {lease} not found (expired or revoked)")


def _drop_lease(conn: sqlite3.Connection, lease: int) -> None:
    rows = conn.execute(
        "SELECT key, value FROM kv WHERE lease = ? ORDER BY key", (lease,)
    ).fetchall()
    if rows:
        rev = _bump(conn)
        conn.execute("DELETE FROM kv WHERE lease = ?", (lease,))
        conn.executemany(
            "INSERT INTO events(revision, key, type, value, prev_value) VALUES (?, ?, ?, ?, ?)",
            [(rev, k, _DELETE, None, v) for k, v in rows],
        )
    conn.execute("DELETE FROM leases WHERE id = ?", (lease,))


def _reap_leases(conn: sqlite3.Connection, now: float) -> None:
    for (lease,) in conn.execute(
        "SELECT id FROM leases WHERE expires_at <= ? ORDER BY expires_at", (now,)
    ).fetchall():
        _drop_lease(conn, lease)


def _compact(conn: sqlite3.Connection, revision: int) -> None:
    if revision <= _meta(conn, "compact_revision"):
        return
    conn.execute("DELETE FROM events WHERE revision < ?", (revision,))
    conn.execute("UPDATE meta SET value = ? WHERE name = 'compact_revision'", (revision,))
