"""Project-wide pytest fixtures: real etcd servers and per-test isolation helpers.

Markers (declared in pyproject): ``etcd`` (needs a real etcd), ``root`` (nftables / network
namespaces), ``neutron`` (a real neutron-server + MariaDB). Any test that uses one of the etcd
fixtures below is marked ``etcd`` automatically, so ``pytest -m "not etcd"`` deselects them.
A fixture whose component is missing FAILS the test with a clear message; nothing here skips.

Fixtures for other test packages (agent, openstack, cli…):

``etcd_server`` (session)
    A plain etcd on free loopback ports (tmp data dir on /dev/shm), an
    :class:`regionmesh.testing.etcd_server.EtcdServer`: ``.endpoint`` (``http://127.0.0.1:P``),
    ``.url`` (``etcd://127.0.0.1:P``, usable as ``--datastore`` / ``REGIONMESH_DATASTORE``),
    ``.config()``, ``.open()`` (a regionmesh ``EtcdDatastore``), ``.wipe()``.
``etcd_tls_server`` (session)
    Same, TLS with client-certificate auth; ``.url`` is ``etcds://…?ca=…&cert=…&key=…`` and
    ``.ca_cert_file``/``.cert_file``/``.key_file`` are set.
``etcd_auth_server`` (session)
    Same, with etcd authentication on: user ``.username`` (root) / ``.password``.
``clean_etcd`` (function)
    ``etcd_server`` with every key deleted before the test (for tests that use Calico's absolute
    key layout and must not see other tests' keys).
``etcd_datastore`` (function)
    An open ``EtcdDatastore`` on ``clean_etcd``, closed after the test.
``sqlite_datastore`` (function)
    An open embedded ``SqliteDatastore`` in the test's ``tmp_path``.
``key_prefix`` (function)
    A unique key prefix (``/regionmesh-test/<id>/``) for tests that only need their own keys.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.datastore.sqlite import SqliteDatastore
from regionmesh.testing.etcd_server import EtcdNotAvailable, EtcdServer, start_etcd

ETCD_FIXTURES = frozenset(
    {"etcd_server", "etcd_tls_server", "etcd_auth_server", "clean_etcd", "etcd_datastore"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses an etcd fixture with ``etcd``."""
    for item in items:
        if ETCD_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.etcd)


@contextlib.contextmanager
def _etcd(**kwargs: bool) -> Iterator[EtcdServer]:
    try:
        server = start_etcd(**kwargs)
    except EtcdNotAvailable as exc:
        pytest.fail(f"cannot start the test etcd server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """A plain-HTTP etcd for the whole session."""
    with _etcd() as server:
        yield server


@pytest.fixture(scope="session")
def etcd_tls_server() -> Iterator[EtcdServer]:
    """An etcd that requires TLS client certificates."""
    with _etcd(tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def etcd_auth_server() -> Iterator[EtcdServer]:
    """An etcd with authentication enabled (root user + password)."""
    with _etcd(auth=True) as server:
        yield server


@pytest.fixture
def clean_etcd(etcd_server: EtcdServer) -> EtcdServer:
    """``etcd_server``, emptied before the test."""
    etcd_server.wipe()
    return etcd_server


@pytest.fixture
def etcd_datastore(clean_etcd: EtcdServer) -> Iterator[EtcdDatastore]:
    """A regionmesh EtcdDatastore on an emptied etcd."""
    store = clean_etcd.open()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def sqlite_datastore(tmp_path: object) -> Iterator[SqliteDatastore]:
    """An embedded store in the test's temporary directory."""
    store = SqliteDatastore(f"{tmp_path}/regionmesh.db")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses."""
    return f"/regionmesh-test/{uuid.uuid4().hex[:12]}/"
