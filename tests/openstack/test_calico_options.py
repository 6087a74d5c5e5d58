"""Tests for regionmesh.openstack.config: [calico] options, region validation, datastore URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_config import cfg

from regionmesh.errors import ConfigError
from regionmesh.openstack.config import CalicoOptions, datastore_url, load_options


def conf_from(tmp_path: Path, body: str) -> cfg.ConfigOpts:
    path = tmp_path / "neutron.conf"
    path.write_text(body)
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(path)], project="neutron")
    return conf


def test_defaults_and_values(tmp_path: Path) -> None:
    opts = load_options(conf_from(tmp_path, "[calico]\n"))
    assert opts == CalicoOptions()
    opts = load_options(
        conf_from(
            tmp_path,
            "[calico]\nopenstack_region = us-east-1\netcd_host = etcd.local\netcd_port = 1234\n",
        )
    )
    assert opts.openstack_region == "us-east-1"
    assert datastore_url(opts) == "etcd://etcd.local:1234"


@pytest.mark.parametrize("region", ["RegionOne", "us/east", "my_region", "a" * 47, "-x", "x-"])
def test_invalid_region_names_option_value_and_rule(tmp_path: Path, region: str) -> None:
    conf = conf_from(tmp_path, f"[calico]\nopenstack_region = {region}\n")
    with pytest.raises(ConfigError) as info:
        load_options(conf)
    msg = str(info.value)
    assert "[calico] openstack_region" in msg
    assert repr(region) in msg
    assert "DNS-1123" in msg


@pytest.mark.parametrize("region", ["region1", "one", "a" * 46, "x-y-z"])
def test_valid_regions(tmp_path: Path, region: str) -> None:
    conf = conf_from(tmp_path, f"[calico]\nopenstack_region = {region}\n")
    assert load_options(conf).openstack_region == region


@pytest.mark.parametrize(
    ("opts", "url"),
    [
        (CalicoOptions(), "etcd://127.0.0.1:2379"),
        (CalicoOptions(datastore="etcd://10.0.0.1:1,10.0.0.2:2", etcd_host="x"),
         "etcd://10.0.0.1:1,10.0.0.2:2"),
        (CalicoOptions(etcd_host="::1", etcd_port=2379), "etcd://[::1]:2379"),
        (CalicoOptions(etcd_ca_cert_file="/ca.pem"), "etcds://127.0.0.1:2379?ca=%2Fca.pem"),
        (CalicoOptions(etcd_ca_cert_file="/c", etcd_cert_file="/crt", etcd_key_file="/k"),
         "etcds://127.0.0.1:2379?ca=%2Fc&cert=%2Fcrt&key=%2Fk"),
        (CalicoOptions(etcd_username="root", etcd_password="p@ss:w/rd"),
         "etcd://root:p%40ss%3Aw%2Frd@127.0.0.1:2379"),
    ],
)  # fmt: skip
def test_datastore_url(opts: CalicoOptions, url: str) -> None:
    assert datastore_url(opts) == url


@pytest.mark.parametrize(
    ("opts", "fragment"),
    [
        (CalicoOptions(etcd_cert_file="/crt"), "etcd_key_file"),
        (CalicoOptions(etcd_password="pw"), "etcd_username"),
        (CalicoOptions(etcd_host=""), "etcd_host"),
    ],
)
def test_datastore_url_refuses_half_configs(opts: CalicoOptions, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        datastore_url(opts)


def test_urls_are_understood_by_the_datastore(tmp_path: Path) -> None:
    """What datastore_url builds, regionmesh.datastore parses back into the same settings."""
    from regionmesh.datastore.config import parse_url

    for name in ("ca.pem", "crt.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    opts = CalicoOptions(
        etcd_host="10.0.0.9",
        etcd_port=2399,
        etcd_ca_cert_file=str(tmp_path / "ca.pem"),
        etcd_cert_file=str(tmp_path / "crt.pem"),
        etcd_key_file=str(tmp_path / "key.pem"),
        etcd_username="neutron",
        etcd_password="s3cr:t@",
    )
    config = parse_url(datastore_url(opts), source="[calico]", env={})
    assert config.kind == "etcd"
    assert config.endpoints == ["https://10.0.0.9:2399"]
    assert (config.ca_cert_file, config.cert_file, config.key_file) == (
        str(tmp_path / "ca.pem"),
        str(tmp_path / "crt.pem"),
        str(tmp_path / "key.pem"),
    )
    assert (config.username, config.password) == ("neutron", "s3cr:t@")
    plain = parse_url(datastore_url(CalicoOptions()), source="[calico]", env={})
    assert plain.endpoints == ["http://127.0.0.1:2379"] and plain.username is None


def test_compaction_options_as_networking_calico_names_them(tmp_path: Path) -> None:
    opts = load_options(conf_from(tmp_path, "[calico]\n"))
    assert (opts.etcd_compaction_period_mins, opts.etcd_compaction_min_revisions) == (60, 1000)
    opts = load_options(
        conf_from(
            tmp_path,
            "[calico]\netcd_compaction_period_mins = 0\netcd_compaction_min_revisions = 50\n",
        )
    )
    assert (opts.etcd_compaction_period_mins, opts.etcd_compaction_min_revisions) == (0, 50)
    with pytest.raises(ValueError):
        load_options(conf_from(tmp_path, "[calico]\netcd_compaction_period_mins = -1\n"))
