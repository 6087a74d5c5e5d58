"""The embedded store's connections, transactions and the Datastore API over them.

:class:`SqliteDatastore` implements :class:`~regionmesh.datastore.api.Datastore` on one SQLite
file (WAL): one connection per thread, every write one ``BEGIN IMMEDIATE`` transaction that
first reaps due leases, reads that pause the cyclic GC while they build big lists, automatic
compaction every ``AUTO_COMPACT_EVERY`` revisions. Lease expiry is measured on ``clock``
(default :func:`time.time`: wall time, which every process sharing the file agrees on; tests
inject a manual clock instead of sleeping). The format is :mod:`.schema`'s, watching
:mod:`.watch`'s; the design is drawn in :mod:`regionmesh.datastore.sqlite`.

Kept whole on purpose (just over 500 lines): one class whose write methods share one
transaction discipline (reap leases, log the event, write the row, compact) that is only
readable in one place.
"""

from __future__ import annotations

import builtins
import contextlib
import gc
import grp
import os
import pwd
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from regionmesh.datastore.api import KeyValue, ListResult
from regionmesh.datastore.sqlite.schema import (
    CREATE,
    DELETE,
    LOG_EVENT,
    PUT,
    SELECT_CURRENT,
    UPSERT,
    check_lease,
    compact_log,
    drop_lease,
    key_range,
    log_deletes,
    migrate,
    range_args,
    range_sql,
    reap_leases,
    translated,
)
from regionmesh.datastore.sqlite.watch import SqliteWatch, wakeup_for
from regionmesh.errors import (
    AlreadyExists,
    ConfigError,
    DatastoreError,
    DatastoreUnavailable,
    NotFound,
    PermissionDenied,
    RevisionConflict,
)

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT = 30.0
DEFAULT_RETAIN_REVISIONS = 10_000
AUTO_COMPACT_EVERY = 1_000
DEFAULT_POLL_INTERVAL = 0.1
REAP_INTERVAL = 0.25


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
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"embedded datastore {path}: ?group={group}: no such group") from None
    mode = 0o660 if group is not None else 0o600
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        if not os.access(path, os.R_OK | os.W_OK):
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
        clock: Callable[[], float] = time.time,
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
        self.clock = clock
        self._local = threading.local()
        self._conns: builtins.list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._watches: builtins.list[SqliteWatch] = []
        self._closed = False
        self._next_reap = 0.0
        self._wakeup = wakeup_for(self.path)
        parent = os.path.dirname(self.path)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise DatastoreUnavailable(
                f"embedded datastore {self.path}: cannot create {parent}: {exc}"
            ) from exc
        _create_private(self.path, group)
        with translated(self.path):
            migrate(self._conn(), self.path)

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
        now = self.clock()
        reap = reap or now >= self._next_reap
        with translated(self.path):
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                if reap:
                    self._next_reap = now + REAP_INTERVAL
                    reap_leases(conn, now)
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._wakeup.notify()
        return result

    def _reap_if_due(self) -> None:
        now = self.clock()
        if now < self._next_reap:
            return
        with translated(self.path):
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
        with translated(self.path):
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
        lo, hi = key_range(prefix)
        items: builtins.list[KeyValue] = []
        extend = items.extend
        with translated(self.path):
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                revision: int = conn.execute(SELECT_CURRENT).fetchone()[0]
                # The key comes back as text (CAST of UTF-8 bytes): no decode call per row.
                cur = conn.execute(
                    "SELECT CAST(key AS TEXT), value, mod_revision, create_revision, lease"
                    f" FROM kv WHERE {range_sql(hi)} ORDER BY kv.key",
                    range_args(lo, hi),
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
        with translated(self.path):
            return int(self._conn().execute(SELECT_CURRENT).fetchone()[0])

    # --- writes ---------------------------------------------------------------------------

    def create(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Write only if absent."""
        k = key.encode()

        def body(conn: sqlite3.Connection) -> int:
            if lease:
                check_lease(conn, lease)
            # The event goes first (its rowid is the revision); if the key exists, the
            # transaction is rolled back with it.
            rev = conn.execute(LOG_EVENT, (k, PUT, value, None)).lastrowid
            assert rev is not None
            if not conn.execute(CREATE, (k, value, rev, rev, lease)).rowcount:
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
                rev = conn.execute(LOG_EVENT, (k, PUT, value, None)).lastrowid
                assert rev is not None
                conn.execute(CREATE, (k, value, rev, rev, 0))
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
                check_lease(conn, lease)
            rev = conn.execute(LOG_EVENT, (k, PUT, value, row[0])).lastrowid
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
                check_lease(conn, lease)
            prev = None if row is None else row[0]
            rev = conn.execute(LOG_EVENT, (k, PUT, value, prev)).lastrowid
            assert rev is not None
            conn.execute(UPSERT, (k, value, rev, rev, lease))
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
            rev = conn.execute(LOG_EVENT, (k, DELETE, None, row[0])).lastrowid
            assert rev is not None
            conn.execute("DELETE FROM kv WHERE key = ?", (k,))
            if rev % AUTO_COMPACT_EVERY == 0:
                self._maybe_auto_compact(conn, rev)
            return rev

        return self._write(body)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix`` in one revision."""
        lo, hi = key_range(prefix)

        def body(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                f"SELECT key, value FROM kv WHERE {range_sql(hi)} ORDER BY key",
                range_args(lo, hi),
            ).fetchall()
            if not rows:
                return 0
            conn.execute(f"DELETE FROM kv WHERE {range_sql(hi)}", range_args(lo, hi))
            rev = log_deletes(conn, rows)
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
                "INSERT INTO leases(ttl, expires_at) VALUES (?, ?)", (ttl, self.clock() + ttl)
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

        return self._write(body)

    def refresh_lease(self, lease: int) -> None:
        """Restart the lease's TTL; NotFound if it is gone."""

        def body(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE leases SET expires_at = ? + ttl WHERE id = ?", (self.clock(), lease)
            )
            if cur.rowcount == 0:
                raise NotFound(f"lease {lease} not found (expired or revoked)")

        self._write(body)

    def revoke_lease(self, lease: int) -> None:
        """Revoke the lease and delete its keys."""

        def body(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM leases WHERE id = ?", (lease,)).fetchone() is None:
                raise NotFound(f"lease {lease} not found (expired or revoked)")
            drop_lease(conn, lease)

        self._write(body)

    def lease_ttl(self, lease: int) -> int:
        """Whole seconds until the lease expires; NotFound if it is gone or already due."""
        self._reap_if_due()
        with translated(self.path):
            row = (
                self._conn()
                .execute("SELECT expires_at FROM leases WHERE id = ?", (lease,))
                .fetchone()
            )
        remaining = None if row is None else row[0] - self.clock()
        if remaining is None or remaining <= 0:
            raise NotFound(f"lease {lease} not found (expired or revoked)")
        return max(1, int(remaining))

    # --- history --------------------------------------------------------------------------

    def compact(self, revision: int) -> bool:
        """Drop events before ``revision``; False if already compacted that far."""

        def body(conn: sqlite3.Connection) -> bool:
            current = int(conn.execute(SELECT_CURRENT).fetchone()[0])
            if revision > current:
                raise DatastoreError(
                    f"cannot compact to revision {revision}: the store is at {current}"
                )
            return compact_log(conn, revision)

        return self._write(body)

    def _maybe_auto_compact(self, conn: sqlite3.Connection, rev: int) -> None:
        if self._retain > 0 and rev % AUTO_COMPACT_EVERY == 0 and rev > self._retain:
            compact_log(conn, rev - self._retain)

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
