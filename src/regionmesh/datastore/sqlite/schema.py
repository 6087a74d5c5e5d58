"""The embedded store's file format: schema, migration, SQL and the in-transaction helpers.

The tables (version 2) are drawn in :mod:`regionmesh.datastore.sqlite`. This module holds their
DDL (:data:`SCHEMA`), the version 1 → 2 migration (:func:`migrate`), the statements shared by
writers and watchers, the prefix-range helpers, :func:`translated` (sqlite3 errors →
:class:`~regionmesh.errors.DatastoreUnavailable`) and the helpers that run inside a write
transaction (logging deletes, leases, compaction). Connections, transactions and the public
API are :mod:`.store`'s; polling the log is :mod:`.watch`'s.
"""

from __future__ import annotations

import builtins
import contextlib
import sqlite3
from collections.abc import Iterator

from regionmesh.datastore.keys import prefix_range_end
from regionmesh.errors import DatastoreError, DatastoreUnavailable, NotFound

SCHEMA_VERSION = 2

PUT, DELETE = 0, 1

MULTI = 2  # an events row standing for the rows of its revision in events_multi

SCHEMA = (
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
    f"INSERT INTO events(revision, key, type) SELECT 1, x'', {MULTI}"
    " WHERE NOT EXISTS (SELECT 1 FROM events)",
)

# Version 1 -> 2: one events row per revision (several events of a revision move to
# events_multi), the revision counter row goes (its value is the newest revision, which keeps a
# row), the revision index goes with the old table.
MIGRATE_FROM_V1 = (
    "ALTER TABLE events RENAME TO events_v1",
    SCHEMA[3],
    SCHEMA[4],
    "INSERT INTO events(revision, key, type, value, prev_value)"
    " SELECT revision, key, type, value, prev_value FROM events_v1"
    " GROUP BY revision HAVING count(*) = 1",
    "INSERT INTO events_multi(revision, key, type, value, prev_value)"
    " SELECT revision, key, type, value, prev_value FROM events_v1 WHERE revision IN"
    " (SELECT revision FROM events_v1 GROUP BY revision HAVING count(*) > 1)",
    f"INSERT INTO events(revision, key, type) SELECT revision, x'', {MULTI} FROM events_v1"
    " GROUP BY revision HAVING count(*) > 1",
    f"INSERT OR IGNORE INTO events(revision, key, type) SELECT value, x'', {MULTI} FROM meta"
    " WHERE name = 'revision'",
    "DROP TABLE events_v1",
    "DELETE FROM meta WHERE name = 'revision'",
)

SELECT_CURRENT = "SELECT max(revision) FROM events"
# Appends the event of a single-key write; its rowid (``lastrowid``) is the new revision.
LOG_EVENT = "INSERT INTO events(key, type, value, prev_value) VALUES (?, ?, ?, ?)"
CREATE = (
    "INSERT INTO kv(key, value, create_revision, mod_revision, lease)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING"
)
UPSERT = (
    "INSERT INTO kv(key, value, create_revision, mod_revision, lease)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
    " mod_revision = excluded.mod_revision, lease = excluded.lease"
)


def key_range(prefix: str) -> tuple[bytes, bytes | None]:
    lo = prefix.encode()
    return lo, prefix_range_end(lo)


def range_sql(hi: bytes | None) -> str:
    return "key >= ? AND key < ?" if hi is not None else "key >= ?"


def range_args(lo: bytes, hi: bytes | None) -> tuple[bytes, ...]:
    return (lo, hi) if hi is not None else (lo,)


@contextlib.contextmanager
def translated(path: str) -> Iterator[None]:
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


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Create the schema in a new file, or bring an older one up to this version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise DatastoreUnavailable(
            f"embedded datastore {path} has schema version {version}, "
            f"newer than this regionmesh understands ({SCHEMA_VERSION})"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated the file while we waited for the lock.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            for stmt in MIGRATE_FROM_V1 if version == 1 else ():
                conn.execute(stmt)
            for stmt in SCHEMA:
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# --- helpers that run inside a transaction ----------------------------------------------------


def log_deletes(conn: sqlite3.Connection, rows: builtins.list[tuple[bytes, bytes]]) -> int:
    """Log the deletion of ``rows`` (key, previous value; sorted by key) in one revision."""
    if len(rows) == 1:
        ((key, prev),) = rows
        rev = conn.execute(LOG_EVENT, (key, DELETE, None, prev)).lastrowid
    else:
        rev = conn.execute(LOG_EVENT, (b"", MULTI, None, None)).lastrowid
        conn.executemany(
            "INSERT INTO events_multi(revision, key, type, value, prev_value)"
            " VALUES (?, ?, ?, ?, ?)",
            [(rev, key, DELETE, None, prev) for key, prev in rows],
        )
    assert rev is not None
    return rev


def check_lease(conn: sqlite3.Connection, lease: int) -> None:
    if conn.execute("SELECT 1 FROM leases WHERE id = ?", (lease,)).fetchone() is None:
        raise NotFound(f"lease {lease} not found (expired or revoked)")


def drop_lease(conn: sqlite3.Connection, lease: int) -> None:
    rows = conn.execute(
        "SELECT key, value FROM kv WHERE lease = ? ORDER BY key", (lease,)
    ).fetchall()
    if rows:
        conn.execute("DELETE FROM kv WHERE lease = ?", (lease,))
        log_deletes(conn, rows)
    conn.execute("DELETE FROM leases WHERE id = ?", (lease,))


def reap_leases(conn: sqlite3.Connection, now: float) -> None:
    for (lease,) in conn.execute(
        "SELECT id FROM leases WHERE expires_at <= ? ORDER BY expires_at", (now,)
    ).fetchall():
        drop_lease(conn, lease)


def compact_log(conn: sqlite3.Connection, revision: int) -> bool:
    """Drop the events before ``revision`` (at most the current one, so the newest survives);
    False when the log was already compacted at or past it."""
    compacted = conn.execute("SELECT value FROM meta WHERE name = 'compact_revision'").fetchone()
    if revision <= compacted[0]:
        return False
    conn.execute("DELETE FROM events WHERE revision < ?", (revision,))
    conn.execute("DELETE FROM events_multi WHERE revision < ?", (revision,))
    conn.execute("UPDATE meta SET value = ? WHERE name = 'compact_revision'", (revision,))
    return True
