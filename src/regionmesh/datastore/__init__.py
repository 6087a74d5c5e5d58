"""regionmesh's datastore: a revisioned key-value layer with two backends.

* :mod:`~regionmesh.datastore.api` — the :class:`Datastore` / :class:`Watch` Protocols and value
  types every backend implements (etcd v3 semantics: revisions, CAS, prefix lists, watches,
  leases).
* :mod:`~regionmesh.datastore.keys` — Calico's key layout.
* :mod:`~regionmesh.datastore.sqlite` — the embedded default (one SQLite file in WAL mode,
  shared by the processes of one machine).
* :mod:`~regionmesh.datastore.etcd` — etcd v3 through etcd3gw (imported only when used).
* :mod:`~regionmesh.datastore.config` — which store a command uses (URL, environment,
  calicoctl config file, default).

:func:`open_datastore` ties them together. Encoding Calico resources into values is left to
``regionmesh.datastore.resources``.
"""

from __future__ import annotations

from regionmesh.datastore.api import Datastore, EventType, KeyValue, ListResult, Watch, WatchEvent
from regionmesh.datastore.config import (
    DEFAULT_SQLITE_PATH,
    DatastoreConfig,
    default_sqlite_path,
    resolve_config,
)
from regionmesh.datastore.sqlite import SqliteDatastore

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "Datastore",
    "DatastoreConfig",
    "EventType",
    "KeyValue",
    "ListResult",
    "SqliteDatastore",
    "Watch",
    "WatchEvent",
    "default_sqlite_path",
    "open_datastore",
    "resolve_config",
]


def open_datastore(config: DatastoreConfig | str | None = None) -> Datastore:
    """Open the store ``config`` describes.

    A string is a datastore URL (as ``--datastore``); None resolves from the environment and
    defaults (:func:`resolve_config`). The caller owns the result and must ``close()`` it.
    """
    if config is None:
        config = resolve_config()
    elif isinstance(config, str):
        config = resolve_config(url=config)
    if config.kind == "sqlite":
        assert config.path is not None
        return SqliteDatastore(config.path, group=config.sqlite_group)
    from regionmesh.datastore.etcd import DEFAULT_TIMEOUT, EtcdDatastore

    return EtcdDatastore(
        config.endpoints,
        ca_cert_file=config.ca_cert_file,
        cert_file=config.cert_file,
        key_file=config.key_file,
        username=config.username,
        password=config.password,
        timeout=config.timeout or DEFAULT_TIMEOUT,
    )
