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
see :func:`.store._create_private`); a user who may not read and write an existing file gets
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

Modules: :mod:`.schema` (tables, migration, in-transaction helpers), :mod:`.store`
(:class:`SqliteDatastore`: connections, transactions, the API; lease expiry on an injectable
``clock``) and :mod:`.watch` (:class:`SqliteWatch`, in-process wake-ups).

What this package does not do: encode resources (``resources.py``), choose a file
(``config.py``), or talk to etcd (``etcd.py``).
"""

from regionmesh.datastore.sqlite.schema import SCHEMA_VERSION
from regionmesh.datastore.sqlite.store import (
    AUTO_COMPACT_EVERY,
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_RETAIN_REVISIONS,
    REAP_INTERVAL,
    SqliteDatastore,
)
from regionmesh.datastore.sqlite.watch import WATCH_BATCH_LIMIT, SqliteWatch

__all__ = [
    "AUTO_COMPACT_EVERY",
    "DEFAULT_BUSY_TIMEOUT",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_RETAIN_REVISIONS",
    "REAP_INTERVAL",
    "SCHEMA_VERSION",
    "WATCH_BATCH_LIMIT",
    "SqliteDatastore",
    "SqliteWatch",
]
