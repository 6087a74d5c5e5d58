"""The embedded datastore: a revisioned key-value store in one SQLite file (WAL mode).

Several processes on one machine (CLI, Neutron server, agents) may open the same file. Each
write is one ``BEGIN IMMEDIATE`` transaction that appends one row to an event log and stamps
the keys it touches. The store-wide revision is not a counter of its own: it is the event
log's ``INTEGER PRIMARY KEY``, one row per revision, so SQLite assigns the next revision when
the row is appended and the current one is a seek to the last row; a commit touches two
b-trees (``kv`` and ``events``) and nothing else. A write that changes several keys in one
revision (``delete_prefix``, a lease's expiry or revocation) appends one ``MULTI`` row and puts
its events in ``events_multi``. Watchers poll the log from their next revision (a rowid range)
and are woken at once by writers in the same process. The log is compacted on request and
automatically (keeping ``retain_revisions`` revisions), never dropping the newest revision; a
watch whose position was compacted away raises :class:`~regionmesh.errors.Compacted`.

Leases live in a table with a wall-clock expiry. Expired leases are reaped lazily by whichever
process touches the store next (any write, a read that finds a due lease, or a watcher's poll):
their keys are deleted in one revision, with delete events. Each thread gets its own
connection; ``busy_timeout`` covers contention between processes.

File access: a new store file is created ``0600`` whatever the umask (``0660`` with a group,
see :func:`_create_private`); a user who may not read and write an existing file gets
:class:`~regionmesh.errors.PermissionDenied` naming the file, its mode and owner.

Schema (version 2)::

    meta(name, value)                    'compact_revision'
    kv(key BLOB PK, value, create_revision, mod_revision, lease)     -- WITHOUT ROWID, by key
    events(revision INTEGER PK, key, type, value, prev_value)        -- one row per revision
    events_multi(revision, key, type, value, prev_value)             -- PK (revision, key)
    leases(id PK AUTOINCREMENT, ttl, expires_at)

A fresh store holds one empty ``MULTI`` row at revision 1 (the log is never empty, so the next
rowid is always the next revision). Version 1 files (``events(id, revision, …)`` with an index
on revision and a ``meta.revision`` counter bumped by every write) are migrated on open; the
counter row is removed, so a process still running version 1 code fails its next write instead
of reusing revisions.

What this module does not do: encode resources (``resources.py``), choose a file
(``config.py``), or talk to etcd (``etcd.py``).
"""

from __future__ import annotations

import builtins
import contextlib
import gc
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from regionmesh.datastore.api import EventType, KeyValue, ListResult, WatchEvent
from regionmesh.datastore.keys import prefix_range_end
from regionmesh.errors import (
    AlreadyExists,
    Compacted,
    ConfigError,
    DatastoreError,
    DatastoreUnavailable,
    NotFound,
    PermissionDenied,
    RevisionConflict,
)

T = TypeVar("T")

SCHEMA_VERSION = 2
DEFAULT_BUSY_TIMEOUT = 30.0
DEFAULT_RETAIN_REVISIONS = 10_000
AUTO_COMPACT_EVERY = 1_000
DEFAULT_POLL_INTERVAL = 0.1
WATCH_BATCH_LIMIT = 1_000
REAP_INTERVAL = 0.25

_PUT, _DELETE = 0, 1

_MULTI = 2  # an events row standing for the rows of its revision in events_multi

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL,"
    " create_revision INTEGER NOT NULL, mod_revision INTEGER NOT NULL,"
    " lease INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS kv_by_lease ON kv(lease) WHERE lease != 0",
    "CREATE TABLE IF NOT EXISTS events (revision INTEGER PRIMARY KEY,"
    " key BLOB NOT NULL, type INTEGER NOT NULL, value BLOB, prev_value BLOB)",
    "CREATE TABLE IF NOT EXISTS events_multi (revision INTEGER NOT NULL, key BLOB NOT NULL,"
    " type INTEGER NOT NULL, value BLOB, prev_value BLOB, PRIMARY KEY (revision, key))"
    " WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ttl INTEGER NOT NULL, expires_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases(expires_at)",
    "INSERT OR IGNORE INTO meta(name, value) VALUES ('compact_revision', 0)",
    # Revision 1 of a fresh store: the log is never empty from here on.
    f"INSERT INTO events(revision, key, type) SELECT 1, x'', {_MULTI}"
    " WHERE NOT EXISTS (SELECT 1 FROM events)",
)

# Version 1 -> 2: one events row per revision (several events of a revision move to
# events_multi), the revision counter row goes (its value is the newest revision, which keeps a
# row), the revision index goes with the old table.
_MIGRATE_FROM_V1 = (
    "ALTER TABLE events RENAME TO events_v1",
    _SCHEMA[3],
    _SCHEMA[4],
    "INSERT INTO events(revision, key, type, value, prev_value)"
    " SELECT revision, key, type, value, prev_value FROM events_v1"
    " GROUP BY revision HAVING count(*) = 1",
    "INSERT INTO events_multi(revision, key, type, value, prev_value)"
    " SELECT revision, key, type, value, prev_value FROM events_v1 WHERE revision IN"
    " (SELECT revision FROM events_v1 GROUP BY revision HAVING count(*) > 1)",
    f"INSERT INTO events(revision, key, type) SELECT revision, x'', {_MULTI} FROM events_v1"
    " GROUP BY revision HAVING count(*) > 1",
    f"INSERT OR IGNORE INTO events(revision, key, type) SELECT value, x'', {_MULTI} FROM meta"
    " WHERE name = 'revision'",
    "DROP TABLE events_v1",
    "DELETE FROM meta WHERE name = 'revision'",
)

_SELECT_CURRENT = "SELECT max(revision) FROM events"
# Appends the event of a single-key write; its rowid (``lastrowid``) is the new revision.
_LOG = "INSERT INTO events(key, type, value, prev_value) VALUES (?, ?, ?, ?)"
_CREATE = (
    "INSERT INTO kv(key, value, create_revision, mod_revision, lease)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING"
)
_UPSERT = (
    "INSERT INTO kv(key, value, create_revision, mod_revision, lease)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
    " mod_revision = excluded.mod_revision, lease = excluded.lease"
)


# In-process wake-ups: writers notify every watcher of the same file at once; watchers in
# other processes notice within their poll interval.
class _Wakeup:
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
_wakeups: dict[str, _Wakeup] = {}


def _wakeup_for(path: str) -> _Wakeup:
    with _wakeups_lock:
        wakeup = _wakeups.get(path)
        if wakeup is None:
            wakeup = _wakeups[path] = _Wakeup()
        return wakeup


def _range(prefix: str) -> tuple[bytes, bytes | None]:
    lo = prefix.encode()
    return lo, prefix_range_end(lo)


def _range_sql(hi: bytes | None) -> str:
    return "key >= ? AND key < ?" if hi is not None else "key >= ?"


def _range_args(lo: bytes, hi: bytes | None) -> tuple[bytes, ...]:
    return (lo, hi) if hi is not None else (lo,)


@contextlib.contextmanager
def _translated(path: str) -> Iterator[None]:
    """SQLite's operational failures (cannot open, locked, disk I/O, full) are an unavailable
    store; a file that is not a SQLite database is a (non-retryable) DatastoreError. Anything
    else (ProgrammingError, IntegrityError, ...) is a bug here and keeps its own type."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise DatastoreUnavailable(f"embedded datastore {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        if type(exc) is not sqlite3.DatabaseError:
            raise
        raise DatastoreError(f"embedded datastore {path} is not usable: {exc}") from exc


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a list builds its objects.

    A big list allocates a row tuple and a ``KeyValue`` per key, none of them in a cycle, yet
    every few hundred allocations trigger a collection that walks the young objects, and the
    older generations get walked again and again as the list grows: that is about a third of
    a 100 000-key list. Collection resumes afterwards (unless something else had switched it
    off before), so nothing is lost, only postponed.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _create_private(path: str, group: str | None) -> None:
    """Create the store file ``0600`` (``0660`` and owned by ``group`` when given), whatever
    the umask, before SQLite opens it; SQLite gives its ``-wal``/``-shm`` files the same mode.
    An existing file is left as it is, but must be readable and writable by this user.

    ``0660`` rather than ``0640`` for a group: in WAL mode every reader writes the ``-shm``
    index, so a read-only group member could not open the store at all.
    """
    gid = -1
    if group is not None:
        import grp

        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"embedded datastore {path}: ?group={group}: no such group") from None
    mode = 0o660 if group is not None else 0o600
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        if not os.access(path, os.R_OK | os.W_OK):
            import pwd

            st = os.stat(path)
            try:
                owner = pwd.getpwuid(st.st_uid).pw_name
            except KeyError:
                owner = str(st.st_uid)
            try:
                me = pwd.getpwuid(os.geteuid()).pw_name
            except KeyError:
                me = str(os.geteuid())
            raise PermissionDenied(
                f"embedded datastore {path}: permission denied for user {me}: the file is mode "
                f"{st.st_mode & 0o777:04o}, owned by {owner}; this command needs read and write "
                "access to it (run it as that user, or give the file a group with "
                "?group=GROUP when it is created and add this user to the group)",
                key=path,
                user=me,
                operation="read and write",
            ) from None
        return
    except PermissionError as exc:
        raise PermissionDenied(
            f"embedded datastore {path}: cannot create the file: {exc.strerror}",
            key=path,
            operation="create",
        ) from exc
    try:
        os.fchmod(fd, mode)
        if gid >= 0:
            os.fchown(fd, -1, gid)
    except OSError as exc:
        os.close(fd)
        os.unlink(path)
        raise ConfigError(
            f"embedded datastore {path}: cannot give the file to group {group}: {exc.strerror}"
        ) from exc
    os.close(fd)


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
        group: str | None = None,
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
        _create_private(self.path, group)
        with _translated(self.path):
            self._migrate(self._conn())

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Create the schema in a new file, or bring an older one up to this version."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise DatastoreUnavailable(
                f"embedded datastore {self.path} has schema version {version}, "
                f"newer than this regionmesh understands ({SCHEMA_VERSION})"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated the file while we waited for the lock.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                for stmt in _MIGRATE_FROM_V1 if version == 1 else ():
                    conn.execute(stmt)
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
        if self._closed:
            raise DatastoreError(f"embedded datastore {self.path} is closed")
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
        with _translated(self.path):
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
        self._wakeup.notify()
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
        return KeyValue(key, row[0], row[1], row[2], row[3])

    def list(self, prefix: str, *, page_size: int = 1000) -> ListResult:
        """Return all keys under ``prefix`` from one read transaction (one snapshot).

        Rows are fetched ``page_size`` at a time; every page comes from the same snapshot.
        """
        self._reap_if_due()
        lo, hi = _range(prefix)
        items: builtins.list[KeyValue] = []
        extend = items.extend
        with _translated(self.path):
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                revision: int = conn.execute(_SELECT_CURRENT).fetchone()[0]
                # The key comes back as text (CAST of UTF-8 bytes): no decode call per row.
                cur = conn.execute(
                    "SELECT CAST(key AS TEXT), value, mod_revision, create_revision, lease"
                    f" FROM kv WHERE {_range_sql(hi)} ORDER BY kv.key",
                    _range_args(lo, hi),
                )
                fetch, size = cur.fetchmany, max(page_size, 1)
                with _gc_paused():
                    while rows := fetch(size):
                        extend(map(KeyValue._make, rows))
            finally:
                conn.execute("COMMIT")
        return ListResult(items, revision)

    def current_revision(self) -> int:
        """Return the store revision."""
        with _translated(self.path):
            return int(self._conn().execute(_SELECT_CURRENT).fetchone()[0])

    # --- writes ---------------------------------------------------------------------------

    def create(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Write only if absent."""
        k = key.encode()

        def body(conn: sqlite3.Connection) -> int:
            if lease:
                _check_lease(conn, lease)
            # The event goes first (its rowid is the revision); if the key exists, the
            # transaction is rolled back with it.
            rev = conn.execute(_LOG, (k, _PUT, value, None)).lastrowid
            assert rev is not None
            if not conn.execute(_CREATE, (k, value, rev, rev, lease)).rowcount:
                raise AlreadyExists(f"key already exists: {key}")
            if rev % AUTO_COMPACT_EVERY == 0:
                self._maybe_auto_compact(conn, rev)
            return rev

        return self._write(body)

    def create_many(self, items: Sequence[tuple[str, bytes]]) -> builtins.list[int | None]:
        """Create each key only if absent, all in one transaction; its revision, or None."""
        pairs = [(key.encode(), value) for key, value in items]

        def body(conn: sqlite3.Connection) -> builtins.list[int | None]:
            out: builtins.list[int | None] = []
            exists = "SELECT 1 FROM kv WHERE key = ?"
            for k, value in pairs:
                if conn.execute(exists, (k,)).fetchone() is not None:
                    out.append(None)
                    continue
                rev = conn.execute(_LOG, (k, _PUT, value, None)).lastrowid
                assert rev is not None
                conn.execute(_CREATE, (k, value, rev, rev, 0))
                out.append(rev)
                if rev % AUTO_COMPACT_EVERY == 0:
                    self._maybe_auto_compact(conn, rev)
            return out

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
            if lease:
                _check_lease(conn, lease)
            rev = conn.execute(_LOG, (k, _PUT, value, row[0])).lastrowid
            assert rev is not None
            conn.execute(
                "UPDATE kv SET value = ?, mod_revision = ?, lease = ? WHERE key = ?",
                (value, rev, lease, k),
            )
            if rev % AUTO_COMPACT_EVERY == 0:
                self._maybe_auto_compact(conn, rev)
            return rev

        return self._write(body)

    def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Unconditional write."""
        k = key.encode()

        def body(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (k,)).fetchone()
            if lease:
                _check_lease(conn, lease)
            prev = None if row is None else row[0]
            rev = conn.execute(_LOG, (k, _PUT, value, prev)).lastrowid
            assert rev is not None
            conn.execute(_UPSERT, (k, value, rev, rev, lease))
            if rev % AUTO_COMPACT_EVERY == 0:
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
            rev = conn.execute(_LOG, (k, _DELETE, None, row[0])).lastrowid
            assert rev is not None
            conn.execute("DELETE FROM kv WHERE key = ?", (k,))
            if rev % AUTO_COMPACT_EVERY == 0:
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
            conn.execute(f"DELETE FROM kv WHERE {_range_sql(hi)}", _range_args(lo, hi))
            rev = _log_deletes(conn, rows)
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

    def lease_ttl(self, lease: int) -> int:
        """Whole seconds until the lease expires; NotFound if it is gone or already due."""
        self._reap_if_due()
        with _translated(self.path):
            row = (
                self._conn()
                .execute("SELECT expires_at FROM leases WHERE id = ?", (lease,))
                .fetchone()
            )
        remaining = None if row is None else row[0] - time.time()
        if remaining is None or remaining <= 0:
            raise NotFound(f"lease {lease} not found (expired or revoked)")
        return max(1, int(remaining))

    # --- history --------------------------------------------------------------------------

    def compact(self, revision: int) -> bool:
        """Drop events before ``revision``; False if already compacted that far."""

        def body(conn: sqlite3.Connection) -> bool:
            current = int(conn.execute(_SELECT_CURRENT).fetchone()[0])
            if revision > current:
                raise DatastoreError(
                    f"cannot compact to revision {revision}: the store is at {current}"
                )
            return _compact(conn, revision)

        return self._write(body)

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
    :meth:`next_batch`) and remembers the next revision it has to look at; every revision
    before it was returned or had nothing under the prefix. It raises Compacted when the log
    no longer reaches back that far.
    """

    def __init__(self, store: SqliteDatastore, prefix: str, start_revision: int) -> None:
        self._store = store
        self._lo, self._hi = _range(prefix)
        self._range_args = _range_args(self._lo, self._hi)
        self._next_revision = start_revision
        self._closed = threading.Event()
        self._lock = threading.Lock()
        # A MULTI row matches whatever its key; its events are filtered in events_multi.
        self._query = (
            "SELECT revision, CAST(key AS TEXT), type, value, prev_value FROM events"
            f" WHERE revision >= ? AND (type = {_MULTI} OR {_range_sql(self._hi)})"
            " ORDER BY revision LIMIT ?"
        )
        self._multi_query = (
            "SELECT CAST(key AS TEXT), type, value, prev_value FROM events_multi"
            f" WHERE revision = ? AND {_range_sql(self._hi)} ORDER BY key"
        )
        with _translated(store.path):
            self._conn: sqlite3.Connection | None = store._new_conn(register=False)

    def _poll(self) -> builtins.list[WatchEvent]:
        conn = self._conn
        if conn is None:
            return []
        now = time.time()
        if conn.execute("SELECT 1 FROM leases WHERE expires_at <= ? LIMIT 1", (now,)).fetchone():
            self._store._write(lambda c: None)
        events: builtins.list[WatchEvent] = []
        conn.execute("BEGIN")
        try:
            revision = int(conn.execute(_SELECT_CURRENT).fetchone()[0])
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
                self._query, (self._next_revision, *self._range_args, WATCH_BATCH_LIMIT)
            ).fetchall()
            for rev, key, typ, value, prev in rows:
                if typ == _MULTI:
                    events.extend(
                        _event(m_typ, m_key, m_value, rev, m_prev)
                        for m_key, m_typ, m_value, m_prev in conn.execute(
                            self._multi_query, (rev, *self._range_args)
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
    return WatchEvent(EventType.PUT if typ == _PUT else EventType.DELETE, key, value, rev, prev)


# --- helpers that run inside a transaction ----------------------------------------------------


def _log_deletes(conn: sqlite3.Connection, rows: builtins.list[tuple[bytes, bytes]]) -> int:
    """Log the deletion of ``rows`` (key, previous value; sorted by key) in one revision."""
    if len(rows) == 1:
        ((key, prev),) = rows
        rev = conn.execute(_LOG, (key, _DELETE, None, prev)).lastrowid
    else:
        rev = conn.execute(_LOG, (b"", _MULTI, None, None)).lastrowid
        conn.executemany(
            "INSERT INTO events_multi(revision, key, type, value, prev_value)"
            " VALUES (?, ?, ?, ?, ?)",
            [(rev, key, _DELETE, None, prev) for key, prev in rows],
        )
    assert rev is not None
    return rev


def _check_lease(conn: sqlite3.Connection, lease: int) -> None:
    if conn.execute("SELECT 1 FROM leases WHERE id = ?", (lease,)).fetchone() is None:
        raise NotFound(f"lease {lease} not found (expired or revoked)")


def _drop_lease(conn: sqlite3.Connection, lease: int) -> None:
    rows = conn.execute(
        "SELECT key, value FROM kv WHERE lease = ? ORDER BY key", (lease,)
    ).fetchall()
    if rows:
        conn.execute("DELETE FROM kv WHERE lease = ?", (lease,))
        _log_deletes(conn, rows)
    conn.execute("DELETE FROM leases WHERE id = ?", (lease,))


def _reap_leases(conn: sqlite3.Connection, now: float) -> None:
    for (lease,) in conn.execute(
        "SELECT id FROM leases WHERE expires_at <= ? ORDER BY expires_at", (now,)
    ).fetchall():
        _drop_lease(conn, lease)


def _compact(conn: sqlite3.Connection, revision: int) -> bool:
    """Drop the events before ``revision`` (at most the current one, so the newest survives);
    False when the log was already compacted at or past it."""
    compacted = conn.execute("SELECT value FROM meta WHERE name = 'compact_revision'").fetchone()
    if revision <= compacted[0]:
        return False
    conn.execute("DELETE FROM events WHERE revision < ?", (revision,))
    conn.execute("DELETE FROM events_multi WHERE revision < ?", (revision,))
    conn.execute("UPDATE meta SET value = ? WHERE name = 'compact_revision'", (revision,))
    return True
