"""What only the etcd backend has to show, against real etcd servers: TLS with client
certificates, username/password auth (and token renewal), several endpoints with failover, and
connection errors translated into DatastoreUnavailable."""

from __future__ import annotations

import time

import pytest

from regionmesh.datastore import open_datastore
from regionmesh.datastore.api import EventType
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.errors import DatastoreError, DatastoreUnavailable, NotFound
from regionmesh.testing.etcd_server import EtcdServer, free_port

pytestmark = pytest.mark.etcd


def _roundtrip(store: EtcdDatastore, prefix: str) -> None:
    rev = store.create(prefix + "k", b"v")
    assert [kv.key for kv in store.list(prefix).items] == [prefix + "k"]
    watch = store.watch(prefix, start_revision=rev)
    try:
        batch = watch.next_batch(10)
    finally:
        watch.close()
    assert [(e.type, e.key, e.mod_revision) for e in batch] == [(EventType.PUT, prefix + "k", rev)]
    lease = store.grant_lease(30)
    store.put(prefix + "leased", b"x", lease=lease)
    store.refresh_lease(lease)
    store.revoke_lease(lease)
    assert store.get(prefix + "leased") is None


def test_tls_with_client_certificates_via_url(etcd_tls_server: EtcdServer, key_prefix: str) -> None:
    assert etcd_tls_server.url.startswith("etcds://")
    store = open_datastore(etcd_tls_server.url)
    assert isinstance(store, EtcdDatastore)
    try:
        _roundtrip(store, key_prefix)
    finally:
        store.close()


def test_tls_without_a_client_certificate_is_refused(
    etcd_tls_server: EtcdServer, key_prefix: str
) -> None:
    store = EtcdDatastore([etcd_tls_server.endpoint], ca_cert_file=etcd_tls_server.ca_cert_file)
    try:
        with pytest.raises(DatastoreUnavailable):
            store.get(key_prefix + "k")
    finally:
        store.close()


def test_tls_with_an_unknown_ca_is_refused(etcd_tls_server: EtcdServer, key_prefix: str) -> None:
    # The server's own certificate is not a CA: verification must fail.
    assert etcd_tls_server.cert_file is not None and etcd_tls_server.key_file is not None
    store = EtcdDatastore(
        [etcd_tls_server.endpoint],
        ca_cert_file=etcd_tls_server.cert_file,
        cert_file=etcd_tls_server.cert_file,
        key_file=etcd_tls_server.key_file,
    )
    try:
        with pytest.raises(DatastoreUnavailable):
            store.get(key_prefix + "k")
    finally:
        store.close()


def test_username_and_password(etcd_auth_server: EtcdServer, key_prefix: str) -> None:
    store = open_datastore(etcd_auth_server.config())
    assert isinstance(store, EtcdDatastore)
    try:
        _roundtrip(store, key_prefix)
    finally:
        store.close()


def test_username_and_password_in_the_url(etcd_auth_server: EtcdServer, key_prefix: str) -> None:
    url = (
        f"etcd://{etcd_auth_server.username}:{etcd_auth_server.password}"
        f"@127.0.0.1:{etcd_auth_server.client_port}"
    )
    store = open_datastore(url)
    try:
        store.put(key_prefix + "k", b"v")
        assert store.get(key_prefix + "k") is not None
    finally:
        store.close()


def test_an_expired_token_is_renewed(etcd_auth_server: EtcdServer, key_prefix: str) -> None:
    store = etcd_auth_server.open()
    try:
        store.put(key_prefix + "k", b"1")
        # Simulate the server forgetting the token (it expires after --auth-token-ttl).
        for client in store._clients:
            client.session.headers["Authorization"] = "expired-token"
        assert store.put(key_prefix + "k", b"2") > 0
        for client in store._clients:
            client.session.headers["Authorization"] = "expired-token"
        _roundtrip(store, key_prefix + "again/")
    finally:
        store.close()


def test_wrong_password_and_no_credentials_are_errors(
    etcd_auth_server: EtcdServer, key_prefix: str
) -> None:
    wrong = EtcdDatastore([etcd_auth_server.endpoint], username="root", password="wrong")
    anonymous = EtcdDatastore([etcd_auth_server.endpoint])
    try:
        with pytest.raises(DatastoreError, match="authentication"):
            wrong.get(key_prefix + "k")
        with pytest.raises(DatastoreError) as info:
            anonymous.put(key_prefix + "k", b"v")
        assert not isinstance(info.value, DatastoreUnavailable)
    finally:
        wrong.close()
        anonymous.close()


def test_failover_to_the_next_endpoint(etcd_server: EtcdServer, key_prefix: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    store = EtcdDatastore([dead, etcd_server.endpoint], timeout=2)
    try:
        rev = store.create(key_prefix + "k", b"v")  # a refused connection is safe to retry
        kv = store.get(key_prefix + "k")
        assert kv is not None and kv.mod_revision == rev
        watch = store.watch(key_prefix, start_revision=rev)
        try:
            assert [e.key for e in watch.next_batch(10)] == [key_prefix + "k"]
        finally:
            watch.close()
    finally:
        store.close()


def test_no_reachable_endpoint_is_unavailable(key_prefix: str) -> None:
    dead = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    store = EtcdDatastore(dead, timeout=2)
    try:
        started = time.monotonic()
        with pytest.raises(DatastoreUnavailable, match="cannot reach etcd"):
            store.get(key_prefix + "k")
        with pytest.raises(DatastoreUnavailable):
            store.create(key_prefix + "k", b"v")
        watch = store.watch(key_prefix, start_revision=5)
        with pytest.raises(DatastoreUnavailable, match="could not be re-established"):
            watch.next_batch(30)
        watch.close()
        assert time.monotonic() - started < 20
    finally:
        store.close()


def test_an_unknown_lease_is_not_found(etcd_server: EtcdServer, key_prefix: str) -> None:
    store = etcd_server.open()
    try:
        with pytest.raises(NotFound):
            store.put(key_prefix + "k", b"v", lease=123456789)
        with pytest.raises(NotFound):
            store.refresh_lease(123456789)
        with pytest.raises(NotFound):
            store.revoke_lease(123456789)
    finally:
        store.close()


def test_keys_are_utf8_and_values_binary(etcd_server: EtcdServer, key_prefix: str) -> None:
    store = etcd_server.open()
    try:
        key = key_prefix + "ünïcode/ключ"
        value = bytes(range(256))
        store.put(key, value)
        kv = store.get(key)
        assert kv is not None and kv.value == value and kv.key == key
        assert [k.key for k in store.list(key_prefix + "ünïcode/").items] == [key]
    finally:
        store.close()
