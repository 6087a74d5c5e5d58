"""The ML2 hooks' decisions (regionmesh.openstack.sync) over MemoryNeutron and a real SQLite store.

No Neutron: the same NeutronReader protocol the DB reader implements, fed with records; the
datastore is the embedded backend in a tmp file. The hooks in mech_driver.py are one call each
into these functions (the real-neutron e2e test covers that glue).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regionmesh.datastore import Datastore, open_datastore
from regionmesh.datastore import keys as dskeys
from regionmesh.datastore.api import EventType
from regionmesh.errors import DatastoreUnavailable, TranslationError
from regionmesh.openstack import sync
from regionmesh.openstack import translate as t
from regionmesh.openstack.reader import MemoryNeutron
from regionmesh.openstack.writer import RegionWriter

SG = t.NeutronSecurityGroup(
    "sg-web", "web", (t.NeutronRule("r1", "sg-web", "ingress", protocol="tcp",
                                    port_range_min=80, port_range_max=80),),
)  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Datastore]:
    ds = open_datastore(f"sqlite://{tmp_path / 'store.db'}")
    yield ds
    ds.close()


def port(host: str = "cmp1", **changes: Any) -> t.NeutronPort:
    fields: dict[str, Any] = {
        "id": "port-1", "network_id": "net", "device_id": "vm-1",
        "device_owner": "compute:nova", "mac_address": "fa:16:3e:00:00:01",
        "host_id": host, "vif_type": "tap",
        "fixed_ips": (t.FixedIP("10.1.0.5", "s", "10.1.0.1"),),
        "security_groups": (t.SecurityGroupRef("sg-web", "web"),),
    }  # fmt: skip
    fields.update(changes)
    return t.NeutronPort(**fields)


def hook_dict(p: t.NeutronPort) -> dict[str, Any]:
    """The API-shaped port dict a hook gets (the fields sync looks at)."""
    profile = {"migrating_to": p.migrating_to} if p.migrating_to else {}
    return {"id": p.id, "device_id": p.device_id, "binding:host_id": p.host_id,
            "binding:profile": profile}  # fmt: skip


def wep_key(w: RegionWriter, host: str, device: str = "vm-1") -> str:
    return w.workload_endpoint_key(t.workload_endpoint_name(host, "openstack", device, "port-1"))


def weps(store: Datastore) -> list[str]:
    prefix = dskeys.resource_prefix("workloadendpoints")
    return sorted(kv.key[len(prefix) :] for kv in store.list(prefix).items)


def test_create_writes_the_policy_before_the_endpoint(store: Datastore) -> None:
    w = RegionWriter(store, "one")
    reader = MemoryNeutron([port()], [SG])
    watch = store.watch(dskeys.RESOURCES_PREFIX, start_revision=store.current_revision() + 1)
    report = sync.sync_port(reader, w, "port-1", [hook_dict(port())])
    assert not report.failures
    assert weps(store) == ["openstack-region-one/cmp1-openstack-vm--1-port--1"]
    stored = json.loads(store.get(wep_key(w, "cmp1")).value)  # type: ignore[union-attr]
    assert t.same_content(stored, t.port_to_workload_endpoint(port(), region="one"))
    events = []
    while len(events) < 2:
        events += watch.next_batch(5.0)
    watch.close()
    assert [e.type for e in events] == [EventType.PUT, EventType.PUT]
    assert "/networkpolicies/" in events[0].key and "/workloadendpoints/" in events[1].key
    again = sync.sync_port(reader, w, "port-1", [hook_dict(port())])
    assert set(again.outcomes.values()) == {"unchanged"}


def test_host_change_deletes_the_old_name(store: Datastore) -> None:
    w = RegionWriter(store, "one")
    sync.sync_port(MemoryNeutron([port()], [SG]), w, "port-1", [hook_dict(port())])
    moved = port("cmp2")
    report = sync.sync_port(
        MemoryNeutron([moved], [SG]), w, "port-1", [hook_dict(port()), hook_dict(moved)]
    )
    assert report.outcomes[wep_key(w, "cmp1")] == "deleted"
    assert report.outcomes[wep_key(w, "cmp2")] == "created"
    assert weps(store) == ["openstack-region-one/cmp2-openstack-vm--1-port--1"]


def test_device_id_change_deletes_the_old_name(store: Datastore) -> None:
    w = RegionWriter(store, "one")
    sync.sync_port(MemoryNeutron([port()], [SG]), w, "port-1", [hook_dict(port())])
    renamed = port(device_id="vm-2")
    sync.sync_port(
        MemoryNeutron([renamed], [SG]), w, "port-1", [hook_dict(port()), hook_dict(renamed)]
    )
    assert weps(store) == ["openstack-region-one/cmp1-openstack-vm--2-port--1"]


def test_live_migration_writes_both_hosts_then_drops_the_source(store: Datastore) -> None:
    w = RegionWriter(store, "one")
    migrating = port("cmp1", migrating_to="cmp2")
    sync.sync_port(MemoryNeutron([migrating], [SG]), w, "port-1", [hook_dict(migrating)])
    assert weps(store) == [
        "openstack-region-one/cmp1-openstack-vm--1-port--1",
        "openstack-region-one/cmp2-openstack-vm--1-port--1",
    ]
    done = port("cmp2")
    sync.sync_port(
        MemoryNeutron([done], [SG]), w, "port-1", [hook_dict(migrating), hook_dict(done)]
    )
    assert weps(store) == ["openstack-region-one/cmp2-openstack-vm--1-port--1"]


def test_unbound_or_gone_port_removes_its_endpoints(store: Datastore) -> None:
    w = RegionWriter(store, "one")
    sync.sync_port(MemoryNeutron([port()], [SG]), w, "port-1", [hook_dict(port())])
    unbound = port(vif_type="unbound")
    sync.sync_port(
        MemoryNeutron([unbound], [SG]), w, "port-1", [hook_dict(port()), hook_dict(unbound)]
    )
    assert weps(store) == []
    sync.sync_port(MemoryNeutron([port()], [SG]), w, "port-1", [hook_dict(port())])
    sync.sync_port(MemoryNeutron([], [SG]), w, "port-1", [hook_dict(port())])  # gone
    assert weps(store) == []


def test_port_delete_removes_every_candidate_name(store: Datastore) -> None:
    w = RegionWriter(store, "one")
    migrating = port("cmp1", migrating_to="cmp2")
    sync.sync_port(MemoryNeutron([migrating], [SG]), w, "port-1", [hook_dict(migrating)])
    report = sync.delete_port(w, hook_dict(migrating))
    assert set(report.outcomes.values()) == {"deleted"} and len(report.outcomes) == 2
    assert weps(store) == []
    assert store.get(w.policy_key("ossg.default.sg-web")) is not None  # the SG stays


def test_security_group_update_and_delete(store: Datastore) -> None:
    w = RegionWriter(store, "one")
    key = w.policy_key("ossg.default.sg-web")
    assert sync.sync_security_group(MemoryNeutron([], [SG]), w, "sg-web").outcomes == {
        key: "created"
    }
    wider = t.NeutronSecurityGroup(
        "sg-web", "web", (*SG.rules, t.NeutronRule("r2", "sg-web", "egress"))
    )
    sync.sync_security_group(MemoryNeutron([], [wider]), w, "sg-web")
    stored = json.loads(store.get(key).value)  # type: ignore[union-attr]
    assert stored["spec"]["egress"] == [{"action": "Allow", "ipVersion": 4}]
    report = sync.sync_security_group(MemoryNeutron([], []), w, "sg-web")
    assert report.outcomes == {key: "deleted"} and store.get(key) is None


def test_untranslatable_rule_is_left_out_and_recorded(store: Datastore) -> None:
    w = RegionWriter(store, "one")
    bad = t.NeutronSecurityGroup(
        "sg-web", "web", (*SG.rules, t.NeutronRule("r9", "sg-web", "ingress", protocol="quic"))
    )
    sync.sync_security_group(MemoryNeutron([], [bad]), w, "sg-web")
    stored = json.loads(store.get(w.policy_key("ossg.default.sg-web")).value)  # type: ignore[union-attr]
    assert len(stored["spec"]["ingress"]) == 1  # fail closed: only the good rule
    [finding] = w.findings(dskeys.UNTRANSLATABLE_SG_FINDING)
    assert finding["subject"] == "sg-web" and "quic" in finding["message"]


def test_a_translation_the_model_refuses_raises_and_writes_nothing(store: Datastore) -> None:
    w = RegionWriter(store, "one")
    broken = port(mac_address="not-a-mac")
    with pytest.raises(TranslationError) as info:
        sync.sync_port(MemoryNeutron([broken], [SG]), w, "port-1", [hook_dict(broken)])
    assert "port port-1" in str(info.value) and "spec.mac" in str(info.value)
    assert store.list("/calico/").items == []  # not even the policy


def test_a_failed_write_is_reported_and_the_rest_still_happens(store: Datastore) -> None:
    w = RegionWriter(store, "one")

    class Flaky(RegionWriter):
        def sync(self, key: str, resource: Any) -> Any:
            if "/networkpolicies/" in key:
                raise DatastoreUnavailable("etcd is away")
            return super().sync(key, resource)

    flaky = Flaky(store, "one")
    report = sync.sync_port(MemoryNeutron([port()], [SG]), flaky, "port-1", [hook_dict(port())])
    assert list(report.failures) == [w.policy_key("ossg.default.sg-web")]
    assert report.outcomes == {wep_key(w, "cmp1"): "created"}


def test_subnet_record_and_claim(store: Datastore) -> None:
    w = RegionWriter(store, "one")
    subnet = t.NeutronSubnet("sub-1", "net", "10.1.0.0/24", "10.1.0.1")
    assert w.claim_subnet("sub-1", subnet.cidr, subnet.network_id) is None
    assert sync.sync_subnet(w, subnet).outcomes == {dskeys.subnet_key("one", "sub-1"): "created"}
    off = t.NeutronSubnet("sub-1", "net", "10.1.0.0/24", enable_dhcp=False)
    assert sync.sync_subnet(w, off).outcomes == {dskeys.subnet_key("one", "sub-1"): "deleted"}
    sync.sync_subnet(w, subnet)
    sync.delete_subnet(w, "sub-1")
    assert store.get(dskeys.subnet_key("one", "sub-1")) is None
    assert store.get(w.subnet_registry_key("sub-1")) is None


def test_region_mismatch_finding(store: Datastore) -> None:
    one = RegionWriter(store, "one")
    assert sync.region_mismatch(one, "cmp2") is None  # no heartbeat anywhere
    store.put(dskeys.felix_status_key("two", "cmp2"), b'{"first_update": true}')
    message = sync.region_mismatch(one, "cmp2")
    assert message is not None and "region two" in message and "OpenstackRegion=one" in message
    [finding] = one.findings(dskeys.REGION_MISMATCH_FINDING)
    assert finding["host_regions"] == ["two"] and finding["server_region"] == "one"
