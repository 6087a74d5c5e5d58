"""resync() against real stores (SQLite file and etcd), Neutron given as in-memory records."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

from regionmesh.datastore import Datastore, open_datastore
from regionmesh.datastore import keys as dskeys
from regionmesh.openstack import translate as t
from regionmesh.openstack.reader import MemoryNeutron
from regionmesh.openstack.resync import Scope, resync
from regionmesh.openstack.writer import RegionWriter
from regionmesh.testing.etcd_server import EtcdServer

WEP = "/calico/resources/v3/projectcalico.org/workloadendpoints/"
NP = "/calico/resources/v3/projectcalico.org/networkpolicies/"


@pytest.fixture(params=["sqlite", "etcd"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Datastore]:
    if request.param == "sqlite":
        ds = open_datastore(f"sqlite://{tmp_path / 'store.db'}")
    else:
        server: EtcdServer = request.getfixturevalue("clean_etcd")
        ds = server.open()
    yield ds
    ds.close()


SG_A = t.NeutronSecurityGroup(
    "sg-a", "web",
    (t.NeutronRule("r1", "sg-a", "ingress", protocol="tcp", port_range_min=80,
                   port_range_max=80, remote_group_id="sg-a"),
     t.NeutronRule("r2", "sg-a", "egress")),
)  # fmt: skip
SG_B = t.NeutronSecurityGroup("sg-b", "db", (t.NeutronRule("r3", "sg-b", "egress"),))
SUBNETS = [
    t.NeutronSubnet("sub-1", "net-1", "10.1.0.0/24", "10.1.0.1"),
    t.NeutronSubnet("sub-2", "net-2", "10.1.1.0/24", "10.1.1.1"),
    t.NeutronSubnet("sub-off", "net-2", "10.1.2.0/24", None, enable_dhcp=False),
]


def port(
    i: int, net: str = "net-1", sub: str = "sub-1", sgs: tuple[str, ...] = ("sg-a",)
) -> t.NeutronPort:
    base = "10.1.0" if sub == "sub-1" else "10.1.1"
    return t.NeutronPort(
        id=f"port-{i}", network_id=net, device_id=f"vm-{i}", device_owner="compute:nova",
        mac_address=f"fa:16:3e:00:00:{i:02x}", host_id=f"cmp{i % 2}", vif_type="tap",
        fixed_ips=(t.FixedIP(f"{base}.{10 + i}", sub, f"{base}.1"),),
        security_groups=tuple(t.SecurityGroupRef(s, "web" if s == "sg-a" else "db") for s in sgs),
        network_name=net,
    )  # fmt: skip


def neutron() -> MemoryNeutron:
    ports = [port(i) for i in range(4)] + [
        port(i, "net-2", "sub-2", ("sg-b",)) for i in range(4, 6)
    ]
    ports.append(t.NeutronPort("dhcp-port", "net-1", "dhcp", "network:dhcp", "fa:16:3e:00:00:99"))
    return MemoryNeutron(ports, [SG_A, SG_B], SUBNETS)


def snapshot(store: Datastore) -> dict[str, tuple[bytes, int]]:
    return {kv.key: (kv.value, kv.mod_revision) for kv in store.list("/calico/").items}


def counts(result: object) -> dict[str, tuple[int, int, int, int]]:
    return {
        k: (p.created, p.updated, p.deleted, p.correct)
        for k, p in result.phases.items()  # type: ignore[attr-defined]
    }


def test_cold_then_steady(store: Datastore) -> None:
    w = RegionWriter(store, "one")
    first = resync(w, neutron())
    assert first.ok, first.error
    assert counts(first) == {
        "subnets": (2, 0, 0, 0),
        "policies": (2, 0, 0, 0),
        "endpoints": (6, 0, 0, 0),
    }
    for phase in first.phases.values():
        assert phase.total_ms >= phase.etcd_read_ms
    wep_key = w.workload_endpoint_key(t.endpoint_name("cmp1", port(1)))
    stored = json.loads(store.get(wep_key).value)  # type: ignore[union-attr]
    expected = t.port_to_workload_endpoint(port(1), region="one")
    assert t.same_content(stored, expected) and stored["metadata"]["uid"]
    assert json.loads(store.get(dskeys.subnet_key("one", "sub-1")).value)["cidr"] == "10.1.0.0/24"  # type: ignore[union-attr]
    assert store.get(dskeys.subnet_key("one", "sub-off")) is None
    before = snapshot(store)
    second = resync(w, neutron())
    assert second.in_sync
    assert counts(second) == {
        "subnets": (0, 0, 0, 2),
        "policies": (0, 0, 0, 2),
        "endpoints": (0, 0, 0, 6),
    }
    assert snapshot(store) == before  # steady state writes nothing


def test_drift_dry_run_then_repair(store: Datastore) -> None:
    w = RegionWriter(store, "one")
    resync(w, neutron())
    ns = "openstack-region-one"
    # corrupt one endpoint, change another's labels, delete a third, add a stray one
    k0 = w.workload_endpoint_key(t.endpoint_name("cmp0", port(0)))
    k1 = w.workload_endpoint_key(t.endpoint_name("cmp1", port(1)))
    k2 = w.workload_endpoint_key(t.endpoint_name("cmp0", port(2)))
    store.put(k0, b"{not json")
    doc1 = json.loads(store.get(k1).value)  # type: ignore[union-attr]
    uid1 = doc1["metadata"]["uid"]
    doc1["metadata"]["labels"]["sg.projectcalico.org/openstack-evil"] = ""
    store.put(k1, json.dumps(doc1).encode())
    store.delete(k2)
    stray = f"{WEP}{ns}/cmp9-openstack-vm--9-port--9"
    store.put(stray, b'{"kind": "WorkloadEndpoint"}')
    store.delete(w.policy_key("ossg.default.sg-b"))
    store.put(w.policy_key("ossg.default.gone"), b"{}")
    operator = w.policy_key("allow-ops")  # an operator's policy in the namespace: never touched
    store.put(operator, b'{"kind": "NetworkPolicy"}')
    store.put(dskeys.subnet_key("one", "sub-stale"), b"{}")
    # other regions' and the unregioned namespace's data: never touched
    others = {
        f"{WEP}openstack-region-two/cmp0-openstack-vm--0-port--0": b"{}",
        f"{WEP}openstack/cmp0-openstack-vm--0-port--x": b"{}",
        f"{NP}openstack-region-two/ossg.default.sg-x": b"{}",
        f"{NP}openstack/ossg.default.sg-y": b"{}",
        dskeys.subnet_key("two", "sub-x"): b"{}",
        dskeys.subnet_key(None, "sub-y"): b"{}",
    }
    for key, value in others.items():
        store.put(key, value)
    before = snapshot(store)

    dry = resync(w, neutron(), dry_run=True)
    assert dry.ok and not dry.in_sync
    assert snapshot(store) == before  # nothing written
    plan = {(k, c.action, c.name) for k, p in dry.phases.items() for c in p.changes}
    assert plan == {
        ("endpoints", "update", k0.rsplit("/", 1)[1]),
        ("endpoints", "update", k1.rsplit("/", 1)[1]),
        ("endpoints", "create", k2.rsplit("/", 1)[1]),
        ("endpoints", "delete", stray.rsplit("/", 1)[1]),
        ("policies", "create", "ossg.default.sg-b"),
        ("policies", "delete", "ossg.default.gone"),
        ("subnets", "delete", "sub-stale"),
    }

    real = resync(w, neutron())
    assert real.ok
    assert {(k, c.action, c.name) for k, p in real.phases.items() for c in p.changes} == plan
    assert all(c.done for p in real.phases.values() for c in p.changes)
    assert json.loads(store.get(k1).value)["metadata"]["uid"] == uid1  # type: ignore[union-attr]
    assert store.get(stray) is None and store.get(operator) is not None
    for key, value in others.items():
        kv = store.get(key)
        assert kv is not None and kv.value == value, key
    assert resync(w, neutron()).in_sync


def test_write_after_the_datastore_read_wins(store: Datastore) -> None:
    """A key changed between the datastore read and the repair: the CAS fails, it is kept."""
    w = RegionWriter(store, "one")
    resync(w, neutron())
    key = w.workload_endpoint_key(t.endpoint_name("cmp1", port(1)))
    store.put(key, b"{corrupt")

    class Racing(MemoryNeutron):
        def ports(self, **kw: Collection[str] | None) -> list[t.NeutronPort]:  # type: ignore[override]
            store.put(key, b'{"written": "by the driver, after resync read the store"}')
            return super().ports(**kw)

    base = neutron()
    racing = Racing(
        base.port_records.values(), base.sg_records.values(), base.subnet_records.values()
    )
    result = resync(w, racing, Scope(port="port-1"))
    phase = result.phases["endpoints"]
    assert phase.conflicts == 1 and phase.updated == 0
    assert store.get(key).value.startswith(b'{"written"')  # type: ignore[union-attr]


def test_scoped_resync_touches_only_its_scope(store: Datastore) -> None:
    w = RegionWriter(store, "one")
    resync(w, neutron())
    k1 = w.workload_endpoint_key(t.endpoint_name("cmp1", port(1)))
    k3 = w.workload_endpoint_key(t.endpoint_name("cmp1", port(3)))
    k5 = w.workload_endpoint_key(t.endpoint_name("cmp1", port(5, "net-2", "sub-2")))
    for key in (k1, k3, k5):
        store.delete(key)
    store.delete(w.policy_key("ossg.default.sg-b"))
    by_port = resync(w, neutron(), Scope(port="port-1"))
    assert set(by_port.phases) == {"policies", "endpoints"}
    assert store.get(k1) is not None and store.get(k3) is None
    assert store.get(w.policy_key("ossg.default.sg-b")) is None  # not port-1's group
    by_net = resync(w, neutron(), Scope(network="net-2"))
    assert by_net.phases["endpoints"].created == 1 and store.get(k5) is not None
    assert store.get(w.policy_key("ossg.default.sg-b")) is not None
    assert store.get(k3) is None
    by_subnet = resync(w, neutron(), Scope(subnet="sub-1"))
    assert by_subnet.phases["endpoints"].created == 1 and store.get(k3) is not None
    store.delete(w.policy_key("ossg.default.sg-a"))
    by_sg = resync(w, neutron(), Scope(security_group="sg-a"))
    assert set(by_sg.phases) == {"policies"} and by_sg.phases["policies"].created == 1
    assert resync(w, neutron()).in_sync


def test_unregioned_server_stays_in_the_openstack_namespace(store: Datastore) -> None:
    store.put(f"{WEP}openstack-region-one/cmp0-openstack-vm--0-port--0", b"{}")
    w = RegionWriter(store, None)
    result = resync(w, neutron())
    assert result.phases["endpoints"].created == 6
    assert store.get(f"{WEP}openstack-region-one/cmp0-openstack-vm--0-port--0") is not None
    assert all(
        "/openstack/" in kv.key for kv in store.list(WEP).items if "region-one" not in kv.key
    )
    assert w.regioned_namespaces() == ["openstack-region-one"]


def test_scope_allows_one_filter() -> None:
    with pytest.raises(ValueError, match="at most one"):
        Scope(network="n", port="p")
    assert (
        Scope().describe() == "all" and Scope(security_group="x").describe() == "security-group x"
    )


def test_batched_creates_fall_back_per_key_when_another_writer_created_them(
    store: Datastore,
) -> None:
    """Keys created by another writer between the datastore read and the bulk create: the
    batch's compare fails for them, each is then tried on its own (a conflict, left as the
    other writer made it); every other key is created as the per-key path would."""
    w = RegionWriter(store, "one")
    base = neutron()
    resync(w, base)
    names = sorted(
        kv.key[len(w.workload_endpoint_prefix()) :]
        for kv in store.list(w.workload_endpoint_prefix()).items
    )
    assert len(names) == 6
    store.delete_prefix(w.workload_endpoint_prefix())
    taken = {names[1]: b'{"written": "by another writer"}', names[4]: b"{}"}

    class Racing(MemoryNeutron):
        def port(self, port_id: str) -> t.NeutronPort | None:
            # the first re-read (after the datastore read, before the batch) lets the race in
            for name, value in taken.items():
                key = w.workload_endpoint_key(name)
                if store.get(key) is None:
                    store.create(key, value)
            return super().port(port_id)

    racing = Racing(
        base.port_records.values(), base.sg_records.values(), base.subnet_records.values()
    )
    result = resync(w, racing)
    assert result.ok, result.error
    phase = result.phases["endpoints"]
    assert (phase.created, phase.conflicts, phase.errors) == (4, 2, 0)
    by_name = {c.name: c for c in phase.changes}
    assert [c.action for c in phase.changes] == ["create"] * 6
    for name in names:
        value = store.get(w.workload_endpoint_key(name)).value  # type: ignore[union-attr]
        if name in taken:
            assert value == taken[name]
            assert by_name[name].conflict and not by_name[name].done
        else:
            doc = json.loads(value)
            assert by_name[name].done and not by_name[name].conflict
            assert doc["metadata"]["uid"] and doc["metadata"]["creationTimestamp"]
            assert doc["kind"] == "WorkloadEndpoint"


def test_batched_creates_store_the_per_key_bytes(store: Datastore) -> None:
    """The bulk create writes exactly what one create through ``sync_document`` writes."""
    from regionmesh.datastore.resource_client import ResourceClient
    from regionmesh.openstack import endpoints

    doc = endpoints.endpoint_document(port(1), region="one", host="cmp1")
    fixed = {"now": lambda: "2026-01-01T00:00:00Z", "new_uid": lambda: "u-1"}
    a = RegionWriter(store, "one").resources
    client = ResourceClient(store, layout=a.layout, **fixed)  # type: ignore[arg-type]
    k1, k2 = "/test/batched/a", "/test/batched/b"
    client.sync_document(k1, doc, current=None)
    [synced] = client.create_documents([(k2, doc)])
    assert synced is not None and synced.outcome == "created"
    assert store.get(k1).value == store.get(k2).value  # type: ignore[union-attr]
    assert client.create_documents([(k2, doc)]) == [None]  # present: left to the caller
