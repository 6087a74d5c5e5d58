"""Several etcd endpoints from every configuration source (pure parsing; failover itself is
tested against a real cluster in tests/faults/test_failover.py)."""

from __future__ import annotations

import pytest

from regionmesh.datastore.config import parse_url, resolve_config
from regionmesh.errors import ConfigError
from regionmesh.openstack.config import CalicoOptions, datastore_url


@pytest.mark.parametrize(
    ("etcd_host", "etcd_port", "url"),
    [
        ("10.0.0.1", 2379, "etcd://10.0.0.1:2379"),
        ("10.0.0.1,10.0.0.2, 10.0.0.3", 2379, "etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379"),
        ("e1:2379,e2:2479,e3", 2579, "etcd://e1:2379,e2:2479,e3:2579"),
        ("::1,[fd00::2]:2479,[fd00::3]", 2379, "etcd://[::1]:2379,[fd00::2]:2479,[fd00::3]:2379"),
    ],
)
def test_neutron_etcd_host_lists_every_member(etcd_host: str, etcd_port: int, url: str) -> None:
    got = datastore_url(CalicoOptions(etcd_host=etcd_host, etcd_port=etcd_port))
    assert got == url
    config = parse_url(got, source="neutron.conf")
    assert len(config.endpoints) == url.count(",") + 1


def test_neutron_etcd_host_empty_entry_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"\[calico\] etcd_host.*empty entry"):
        datastore_url(CalicoOptions(etcd_host="10.0.0.1,,10.0.0.2"))


def test_neutron_etcd_host_list_keeps_tls_and_credentials() -> None:
    url = datastore_url(
        CalicoOptions(
            etcd_host="a,b",
            etcd_port=2379,
            etcd_ca_cert_file="/ca.pem",
            etcd_username="u",
            etcd_password="p w",
        )
    )
    assert url == "etcds://u:p%20w@a:2379,b:2379?ca=%2Fca.pem"


def test_etcd_endpoints_env_and_url_forms_agree() -> None:
    env = resolve_config(env={"ETCD_ENDPOINTS": "http://a:1,http://b:2,http://c:3"})
    url = parse_url("etcd://a:1,b:2,c:3", source="--datastore", env={})
    assert env.endpoints == url.endpoints == ["http://a:1", "http://b:2", "http://c:3"]


def test_url_timeout_reaches_the_etcd_client() -> None:
    from regionmesh.datastore import open_datastore

    config = parse_url("etcd://a:1,b:2?timeout=1.5", source="--datastore", env={})
    assert config.timeout == 1.5
    store = open_datastore(config)
    try:
        assert store.timeout == 1.5  # type: ignore[attr-defined]
    finally:
        store.close()
    with pytest.raises(ConfigError, match="timeout='0'"):
        parse_url("etcd://a:1?timeout=0", source="--datastore", env={})
    with pytest.raises(ConfigError, match="timeout='x'"):
        parse_url("etcd://a:1?timeout=x", source="--datastore", env={})
