"""Calico's key layout (policy-model.md §4.1, openstack-driver.md §1.2), as table tests."""

from __future__ import annotations

import pytest

from regionmesh.datastore import keys
from regionmesh.datastore.keys import EndpointStatusKey, FelixStatusKey


@pytest.mark.parametrize(
    ("plural", "name", "namespace", "key"),
    [
        (
            "networkpolicies",
            "ossg.default.1234",
            "openstack-region-r1",
            "/calico/resources/v3/projectcalico.org/networkpolicies/openstack-region-r1/ossg.default.1234",
        ),
        (
            "globalnetworkpolicies",
            "default.allow-dns",
            None,
            "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/default.allow-dns",
        ),
        (
            "clusterinformations",
            "default",
            None,
            "/calico/resources/v3/projectcalico.org/clusterinformations/default",
        ),
    ],
)
def test_resource_keys_round_trip(plural: str, name: str, namespace: str | None, key: str) -> None:
    assert keys.resource_key(plural, name, namespace) == key
    assert keys.parse_resource_key(key) == (plural, namespace, name)
    assert key.startswith(keys.resource_prefix(plural, namespace))


def test_resource_prefixes_end_with_a_slash() -> None:
    base = "/calico/resources/v3/projectcalico.org/"
    assert keys.resource_prefix("workloadendpoints") == base + "workloadendpoints/"
    assert (
        keys.resource_prefix("workloadendpoints", "openstack-region-a")
        == base + "workloadendpoints/openstack-region-a/"
    )


@pytest.mark.parametrize(
    "key",
    [
        "/calico/felix/v2/no-region/host/h/status",
        "/calico/resources/v3/projectcalico.org/tiers",
        "/calico/resources/v3/projectcalico.org/a/b/c/d",
        "/calico/resources/v3/projectcalico.org/a//c",
        "/calico/resources/v3/other.org/tiers/default",
    ],
)
def test_other_keys_are_not_resource_keys(key: str) -> None:
    assert keys.parse_resource_key(key) is None


@pytest.mark.parametrize(("bad"), ["", "a/b"])
def test_segments_with_slashes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        keys.resource_key("tiers", bad)


def test_felix_status_keys_follow_the_region() -> None:
    assert keys.felix_status_key("east", "cmp1") == "/calico/felix/v2/region-east/host/cmp1/status"
    assert keys.felix_status_key(None, "cmp1") == "/calico/felix/v2/no-region/host/cmp1/status"
    assert (
        keys.felix_last_reported_status_key("east", "cmp1")
        == "/calico/felix/v2/region-east/host/cmp1/last_reported_status"
    )
    assert keys.round_trip_key("east") == "/calico/felix/v2/region-east/host/round-trip-check"
    assert keys.felix_hosts_prefix("east") == "/calico/felix/v2/region-east/host/"
    assert keys.parse_felix_status_key(keys.felix_status_key("east", "cmp1")) == FelixStatusKey(
        "region-east", "cmp1", last=False
    )
    assert keys.parse_felix_status_key(
        "/calico/felix/v2/no-region/host/h/last_reported_status"
    ) == FelixStatusKey("no-region", "h", last=True)
    assert keys.parse_felix_status_key(keys.round_trip_key("east")) is None


def test_endpoint_status_key_escapes_the_workload_id() -> None:
    workload = keys.workload_id("openstack-region-east", "dev%1")
    key = keys.endpoint_status_key("east", "cmp1", workload, "port-1")
    assert key == (
        "/calico/felix/v2/region-east/host/cmp1/workload/openstack/"
        "openstack-region-east%2fdev%251/endpoint/port-1"
    )
    assert keys.parse_endpoint_status_key(key) == EndpointStatusKey(
        "region-east", "cmp1", "openstack", "openstack-region-east/dev%1", "port-1"
    )
    assert keys.parse_endpoint_status_key(keys.felix_status_key("east", "cmp1")) is None


def test_dhcp_subnet_keys() -> None:
    assert keys.subnet_dir("asia-central") == "/calico/dhcp/v2/region-asia-central/subnet"
    assert keys.subnet_key(None, "s1") == "/calico/dhcp/v2/no-region/subnet/s1"
    assert keys.legacy_subnet_key("s1") == "/calico/dhcp/v1/subnet/s1"
    assert keys.parse_subnet_key("/calico/dhcp/v2/region-a/subnet/s1") == ("region-a", "s1")
    assert keys.parse_subnet_key("/calico/dhcp/v1/subnet/s1") == (None, "s1")
    assert keys.parse_subnet_key("/calico/dhcp/v2/region-a/other/s1") is None


def test_election_and_compaction_keys() -> None:
    assert keys.neutron_election_key("r1") == "/calico/openstack/v2/region-r1/neutron_election"
    assert keys.neutron_election_key(None) == "/calico/openstack/v2/no-region/neutron_election"
    assert keys.LEGACY_NEUTRON_ELECTION_KEY == "/calico/openstack/v1/neutron_election"
    assert keys.COMPACTION_TRIGGER_KEY == "/calico/compaction/v1/trigger"
    assert keys.COMPACTION_LAST_KEY == "/calico/compaction/v1/last"
    assert keys.compaction_trigger_key() == "/calico/compaction/v1/trigger"
    assert keys.compaction_last_key() == "/calico/compaction/v1/last"
    assert keys.round_trip_key("r1") == "/calico/felix/v2/region-r1/host/round-trip-check"


@pytest.mark.parametrize(
    ("prefix", "end"),
    [(b"/a/", b"/a0"), (b"a\xff", b"b"), (b"\xff\xff", None), (b"", None)],
)
def test_prefix_range_end(prefix: bytes, end: bytes | None) -> None:
    assert keys.prefix_range_end(prefix) == end
