"""RegionWriter against a real store (the embedded SQLite backend in a tmp file)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from regionmesh.datastore import Datastore, open_datastore
from regionmesh.datastore import keys as dskeys
from regionmesh.openstack import translate as t
from regionmesh.openstack.writer import RegionWriter


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Datastore]:
    ds = open_datastore(f"sqlite://{tmp_path / 'store.db'}")
    yield ds
    ds.close()


PORT = t.NeutronPort(
    id="port-1",
    network_id="net",
    device_id="vm-1",
    device_owner="compute:nova",
    mac_address="fa:16:3e:00:00:01",
    host_id="cmp1",
    vif_type="tap",
    fixed_ips=(t.FixedIP("10.1.0.5", "s", "10.1.0.1"),),
)


def test_sync_resource_create_update_unchanged_delete(store: Datastore) -> None:
    uids = iter(["uid-a", "uid-b"])
    w = RegionWriter(store, "one", new_uid=lambda: next(uids), now=lambda: "2024-05-01T00:00:00Z")
    doc = t.port_to_workload_endpoint(PORT, region="one")
    key = w.workload_endpoint_key(doc["metadata"]["name"])
    assert key == (
        "/calico/resources/v3/projectcalico.org/workloadendpoints/openstack-region-one/"
        "cmp1-openstack-vm--1-port--1"
    )
    assert w.sync_resource(key, doc) == "created"
    rev = store.get(key)
    assert rev is not None
    assert w.sync_resource(key, doc) == "unchanged"
    assert store.get(key) == rev  # no write at all
    moved = t.port_to_workload_endpoint(
        t.NeutronPort(**{**_fields(PORT), "fixed_ips": (t.FixedIP("10.1.0.6", "s", None),)}),
        region="one",
    )
    assert w.sync_resource(key, moved) == "updated"
    stored = json.loads(store.get(key).value)  # type: ignore[union-attr]
    assert stored["metadata"]["uid"] == "uid-a"  # kept across updates
    assert stored["spec"]["ipNetworks"] == ["10.1.0.6/32"]
    assert w.sync_resource(key, None) == "deleted"
    assert w.sync_resource(key, None) == "absent"


def _fields(port: t.NeutronPort) -> dict[str, object]:
    return {f: getattr(port, f) for f in port.__slots__}  # type: ignore[attr-defined]


def test_corrupt_value_is_overwritten(store: Datastore) -> None:
    w = RegionWriter(store, "one")
    doc = t.port_to_workload_endpoint(PORT, region="one")
    key = w.workload_endpoint_key(doc["metadata"]["name"])
    store.put(key, b"{not json")
    assert w.sync_resource(key, doc) == "updated"
    assert json.loads(store.get(key).value)["spec"] == doc["spec"]  # type: ignore[union-attr]


def test_dhcp_subnet_records(store: Datastore) -> None:
    w = RegionWriter(store, "two")
    record = t.subnet_to_dhcp_record(t.NeutronSubnet("sub-1", "net", "10.2.0.0/16", "10.2.0.1"))
    assert w.sync_dhcp_subnet("sub-1", record) == "created"
    kv = store.get("/calico/dhcp/v2/region-two/subnet/sub-1")
    assert kv is not None and json.loads(kv.value) == record
    assert w.sync_dhcp_subnet("sub-1", record) == "unchanged"
    assert w.sync_dhcp_subnet("sub-1", None) == "deleted"


@pytest.mark.parametrize(
    ("first", "second", "refused"),
    [
        ("10.1.0.0/16", "10.1.200.0/24", True),
        ("10.1.200.0/24", "10.1.0.0/16", True),
        ("10.1.0.0/16", "10.2.0.0/16", False),
        ("10.1.0.0/16", "2001:db8::/64", False),
    ],
)
def test_claim_subnet_across_regions(
    store: Datastore, first: str, second: str, refused: bool
) -> None:
    one, two = RegionWriter(store, "one"), RegionWriter(store, "two")
    assert one.claim_subnet("s1", first, "n1") is None
    overlap = two.claim_subnet("s2", second, "n2")
    if refused:
        assert overlap is not None
        assert (overlap.other_region, overlap.other_subnet_id, overlap.other_cidr) == (
            "one",
            "s1",
            first,
        )
        msg = overlap.message()
        assert "region one" in msg and "s1" in msg and first in msg and second in msg
        assert store.get(two.subnet_registry_key("s2")) is None  # withdrawn
    else:
        assert overlap is None
        assert store.get(two.subnet_registry_key("s2")) is not None
    # overlapping subnets inside one region are Neutron's business, not refused here
    assert one.claim_subnet("s3", first, "n3") is None


def test_claim_subnet_race_later_claim_loses(store: Datastore) -> None:
    """Both claims are written before either check: only the later one withdraws."""
    one, two = RegionWriter(store, "one"), RegionWriter(store, "two")
    store.create(one.subnet_registry_key("a"), json.dumps({"cidr": "10.5.0.0/16"}).encode())
    store.create(two.subnet_registry_key("b"), json.dumps({"cidr": "10.5.1.0/24"}).encode())
    assert one.claim_subnet("a", "10.5.0.0/16", "n") is None
    overlap = two.claim_subnet("b", "10.5.1.0/24", "n")
    assert overlap is not None and overlap.other_subnet_id == "a"


def test_networking_calico_dhcp_records_count_as_claims(store: Datastore) -> None:
    store.put(
        dskeys.subnet_key("legacy", "old-subnet"),
        json.dumps(
            {"network_id": "n", "cidr": "10.9.0.0/16", "host_routes": [], "gateway_ip": None}
        ).encode(),
    )
    overlap = RegionWriter(store, "one").claim_subnet("new", "10.9.3.0/24", "n")
    assert overlap is not None and overlap.other_region == "legacy"


def test_heartbeats_and_findings(store: Datastore) -> None:
    one = RegionWriter(store, "one")
    lease = store.grant_lease(30)
    store.put(dskeys.felix_status_key("one", "cmp1"), b'{"time":"x"}', lease=lease)
    store.put(dskeys.felix_last_reported_status_key("one", "cmp9"), b"{}")  # not live
    store.put(dskeys.felix_status_key("two", "cmp2"), b"{}", lease=lease)
    store.put(dskeys.endpoint_status_key("one", "cmp1", "openstack-region-one/vm", "p"), b"{}")
    assert one.live_hosts() == ["cmp1"]
    assert one.heartbeat_regions("cmp2") == ["two"]
    assert one.heartbeat_regions("cmp1") == ["one"]
    assert one.heartbeat_regions("nowhere") == []
    one.record_finding("region-mismatch", "cmp2", "msg", host="cmp2")
    [finding] = one.findings("region-mismatch")
    assert finding["host"] == "cmp2" and finding["region"] == "one" and finding["message"] == "msg"
    assert store.get("/calico/regionmesh/v1/findings/region-one/region-mismatch/cmp2") is not None
