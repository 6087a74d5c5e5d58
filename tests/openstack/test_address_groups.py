"""Address-group mirrors of other regions' security groups (issue 13), without Neutron.

The pure decisions (regionmesh.openstack.address_groups) over MemoryAddressGroups, which
refuses what Neutron refuses; the translation of a rule naming a mirror into a live
cross-region selector, checked through the real write path into a SQLite store and the policy
evaluator (indexed and naive); and the master's watch loop (mirror_worker) following another
region's ports in the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regionmesh.datastore import Datastore, open_datastore
from regionmesh.datastore import keys as dskeys
from regionmesh.errors import DatastoreUnavailable
from regionmesh.model import Resource, codec
from regionmesh.openstack import address_groups as ag
from regionmesh.openstack import sync
from regionmesh.openstack import translate as t
from regionmesh.openstack.layout import calico_document
from regionmesh.openstack.mirror_worker import (
    STALE_FINDING,
    MirrorView,
    MirrorWorker,
    load_view,
    status_key,
)
from regionmesh.openstack.reader import MemoryNeutron
from regionmesh.openstack.security_groups import SG_POLICY_PREFIX
from regionmesh.openstack.writer import RegionWriter
from regionmesh.policy import Flow, Snapshot, evaluate_flow, naive_evaluate_flow

CLIENT = "c11e0000-0000-4000-8000-000000000001"
BATCH = "ba7c0000-0000-4000-8000-000000000002"
WEB = "3eb00000-0000-4000-8000-000000000003"
REF_CLIENT = ag.MirrorRef("two", CLIENT)
REF_BATCH = ag.MirrorRef("two", BATCH)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Datastore]:
    ds = open_datastore(f"sqlite://{tmp_path / 'store.db'}")
    yield ds
    ds.close()


def facts(region: str, ip: str, **groups: str) -> ag.EndpointFacts:
    return ag.EndpointFacts(region, groups, (ip,))


# ----------------------------------------------------------------------------- marking


def test_description_round_trip_and_ownership() -> None:
    text = ag.mirror_description(REF_CLIENT)
    assert CLIENT in text and "region two" in text
    assert ag.parse_mirror(ag.MIRROR_PROJECT, text) == REF_CLIENT
    # the same description in a tenant's project is not ours: never trusted as a mirror
    assert ag.parse_mirror("tenant-project", text) is None
    assert ag.parse_mirror(ag.MIRROR_PROJECT, "an operator's group") is None
    assert ag.parse_mirror(ag.MIRROR_PROJECT, None) is None
    assert SG_POLICY_PREFIX == ag.SG_POLICY_PREFIX


# ----------------------------------------------------------------------------- wanted state


def test_remote_groups_other_regions_only_with_policy_only_groups() -> None:
    eps = [
        facts("two", "10.2.0.5/32", **{CLIENT: "client"}),
        facts("two", "10.2.0.6/32", **{CLIENT: "client", BATCH: "batch"}),
        facts("one", "10.1.0.5/32", **{WEB: "web"}),
        facts("three", "10.3.0.5/32", sg3="db"),
    ]
    empty = ag.MirrorRef("two", "sg-empty")
    got = ag.remote_groups(eps, [empty, ag.MirrorRef("one", WEB)], my_region="one")
    assert set(got) == {REF_CLIENT, REF_BATCH, empty, ag.MirrorRef("three", "sg3")}
    assert got[REF_CLIENT].addresses == {"10.2.0.5/32", "10.2.0.6/32"}
    assert got[REF_BATCH].addresses == {"10.2.0.6/32"}
    assert got[empty].addresses == frozenset() and got[empty].sg_name == ""
    only_two = ag.remote_groups(eps, [], my_region="one", regions=["two"])
    assert set(only_two) == {REF_CLIENT, REF_BATCH}


def test_endpoint_facts_from_a_stored_document() -> None:
    doc = {
        "metadata": {"labels": {f"{t.SG_LABEL_PREFIX}{CLIENT}": "client", "x": "y"}},
        "spec": {"ipNetworks": ["10.2.0.5/32", "fd00::5/128", "10.2.0.5"]},
    }
    got = ag.endpoint_facts("openstack-region-two", doc)
    assert got == ag.EndpointFacts("two", {CLIENT: "client"}, ("10.2.0.5/32", "fd00::5/128"))
    assert ag.endpoint_facts("default", doc) is None


def test_names_are_region_dot_name_and_unambiguous() -> None:
    groups = [
        ag.RemoteGroup(REF_CLIENT, "client", frozenset()),
        ag.RemoteGroup(ag.MirrorRef("two", "abcdef12-x"), "dup", frozenset()),
        ag.RemoteGroup(ag.MirrorRef("two", "12345678-y"), "dup", frozenset()),
        ag.RemoteGroup(ag.MirrorRef("three", "sg9"), "dup", frozenset()),
        ag.RemoteGroup(ag.MirrorRef("two", "sg-nameless"), "", frozenset()),
        ag.RemoteGroup(ag.MirrorRef("two", "sg-known"), "", frozenset()),
    ]
    names = ag.mirror_names(groups, {ag.MirrorRef("two", "sg-known"): "two.kept"})
    assert names[REF_CLIENT] == "two.client"
    assert names[ag.MirrorRef("two", "abcdef12-x")] == "two.dup.abcdef12"
    assert names[ag.MirrorRef("two", "12345678-y")] == "two.dup.12345678"
    assert names[ag.MirrorRef("three", "sg9")] == "three.dup"
    assert names[ag.MirrorRef("two", "sg-nameless")] == "two.sg-nameless"
    assert names[ag.MirrorRef("two", "sg-known")] == "two.kept"


# ----------------------------------------------------------------------------- reconciling


def wanted(**members: list[str]) -> dict[ag.MirrorRef, ag.RemoteGroup]:
    ids = {"client": CLIENT, "batch": BATCH}
    return {
        ag.MirrorRef("two", ids[name]): ag.RemoteGroup(
            ag.MirrorRef("two", ids[name]), name, frozenset(addrs)
        )
        for name, addrs in members.items()
    }


def mirror(backend: ag.MemoryAddressGroups, name: str) -> Any:
    found = [g for g in backend.groups.values() if g.name == name]
    assert len(found) == 1, found
    return found[0]


def test_reconcile_creates_shares_and_applies_only_diffs() -> None:
    backend = ag.MemoryAddressGroups()
    report = ag.reconcile(wanted(client=["10.2.0.5/32", "10.2.0.6/32"], batch=[]), backend)
    assert report.ok and report.counts() == {"create": 2}
    client = mirror(backend, "two.client")
    assert sorted(client.addresses) == ["10.2.0.5/32", "10.2.0.6/32"]
    assert client.shared and client.project_id == ag.MIRROR_PROJECT
    assert ag.parse_mirror(client.project_id, client.description) == REF_CLIENT
    # nothing changed: no call at all
    backend.calls.clear()
    assert (
        ag.reconcile(wanted(client=["10.2.0.5/32", "10.2.0.6/32"], batch=[]), backend).actions == []
    )
    assert backend.calls == []
    # a third member: one add of exactly that address (add_addresses is not idempotent)
    ag.reconcile(wanted(client=["10.2.0.5/32", "10.2.0.6/32", "10.2.0.7/32"], batch=[]), backend)
    assert backend.calls == [f"add {client.id} 10.2.0.7/32"]
    backend.calls.clear()
    ag.reconcile(wanted(client=["10.2.0.5/32", "10.2.0.6/32"], batch=[]), backend)
    assert backend.calls == [f"remove {client.id} 10.2.0.7/32"]


def test_gone_security_group_is_emptied_then_deleted_once_unused() -> None:
    backend = ag.MemoryAddressGroups()
    ag.reconcile(wanted(client=["10.2.0.5/32"], batch=["10.2.0.9/32"]), backend)
    client = mirror(backend, "two.client")
    backend.references[client.id] = 1  # a rule in region one uses it: 409 on delete
    report = ag.reconcile(wanted(batch=["10.2.0.9/32"]), backend)
    assert report.ok
    assert client.id in backend.groups and backend.groups[client.id].addresses == []
    backend.references[client.id] = 0  # the rule is gone
    ag.reconcile(wanted(batch=["10.2.0.9/32"]), backend)
    assert client.id not in backend.groups
    assert mirror(backend, "two.batch").addresses == ["10.2.0.9/32"]


def test_hand_edits_and_deletes_are_restored() -> None:
    backend = ag.MemoryAddressGroups()
    want = wanted(client=["10.2.0.5/32", "10.2.0.6/32"])
    ag.reconcile(want, backend)
    client = mirror(backend, "two.client")
    backend.remove_addresses(client.id, ["10.2.0.6/32"])
    backend.add_addresses(client.id, ["0.0.0.0/0"])
    backend.update(client.id, "renamed", ag.mirror_description(REF_CLIENT) + " (edited)")
    backend.groups[client.id].shared = False
    report = ag.reconcile(want, backend)
    assert report.ok
    restored = backend.groups[client.id]
    assert sorted(restored.addresses) == ["10.2.0.5/32", "10.2.0.6/32"]
    assert restored.name == "two.client" and restored.shared
    assert restored.description == ag.mirror_description(REF_CLIENT)
    del backend.groups[client.id]
    ag.reconcile(want, backend)
    assert sorted(mirror(backend, "two.client").addresses) == ["10.2.0.5/32", "10.2.0.6/32"]


def test_operator_groups_are_never_touched_and_duplicates_removed() -> None:
    backend = ag.MemoryAddressGroups()
    op = backend.add_group(
        "two.client", ag.mirror_description(REF_CLIENT), ["10.9.0.0/16"], project_id="tenant"
    )
    ag.reconcile(wanted(client=["10.2.0.5/32"]), backend)
    assert backend.groups[op].addresses == ["10.9.0.0/16"]  # a tenant's look-alike
    # a second copy in our project (a lost race): deleted when unused
    dup = backend.add_group(
        "two.client", ag.mirror_description(REF_CLIENT), [], project_id=ag.MIRROR_PROJECT
    )
    ag.reconcile(wanted(client=["10.2.0.5/32"]), backend)
    assert dup not in backend.groups
    ours = [g for g in backend.groups.values() if g.project_id == ag.MIRROR_PROJECT]
    assert len(ours) == 1 and ours[0].addresses == ["10.2.0.5/32"]


def test_dry_run_plans_without_calls() -> None:
    backend = ag.MemoryAddressGroups()
    report = ag.reconcile(wanted(client=["10.2.0.5/32"]), backend, dry_run=True)
    assert report.dry_run and [a.op for a in report.actions] == ["create"]
    assert "two.client" in str(report.actions[0]) and backend.groups == {}


class RacingBackend(ag.MemoryAddressGroups):
    """Someone adds the address between our read and our add, once."""

    raced = False

    def add_addresses(self, group_id: str, addresses: Any) -> None:
        if not self.raced:
            self.raced = True
            super().add_addresses(group_id, addresses)
        super().add_addresses(group_id, addresses)


def test_lost_race_is_re_read_and_repaired() -> None:
    backend = RacingBackend()
    ag.reconcile(wanted(client=["10.2.0.5/32"]), backend)
    report = ag.reconcile(wanted(client=["10.2.0.5/32", "10.2.0.6/32"]), backend)
    assert report.ok and backend.raced
    assert sorted(mirror(backend, "two.client").addresses) == ["10.2.0.5/32", "10.2.0.6/32"]


# ----------------------------------------------------------------------------- translation


def mirrored(ref: ag.MirrorRef, *addresses: str) -> ag.MirroredGroup:
    return ag.MirroredGroup(addresses, ref=ref, group_id="ag-client", name="two.client")


WEB_RULE = t.NeutronRule(
    "r-web", WEB, "ingress", protocol="tcp", port_range_min=80, port_range_max=80,
    remote_address_group_id="ag-client",
)  # fmt: skip


def test_mirror_rule_is_a_live_cross_region_selector() -> None:
    got = t.rule_to_calico(WEB_RULE, {"ag-client": mirrored(REF_CLIENT, "10.2.0.5/32")})
    assert got == {
        "action": "Allow",
        "ipVersion": 4,
        "protocol": 6,
        "destination": {"ports": [80]},
        "source": {
            "selector": f"has(sg.projectcalico.org/openstack-{CLIENT}) && "
            "projectcalico.org/namespace == 'openstack-region-two'",
            "namespaceSelector": "all()",
        },
        "metadata": {
            "annotations": {
                ag.ANNOTATION_ADDRESS_GROUP: "ag-client",
                ag.ANNOTATION_ADDRESS_GROUP_NAME: "two.client",
                ag.ANNOTATION_MIRRORS: f"two/{CLIENT}",
            }
        },
    }
    # an emptied mirror (remote SG gone) still selects by label: nobody carries it
    assert t.rule_to_calico(WEB_RULE, {"ag-client": mirrored(REF_CLIENT)}) is not None
    # the same addresses as a plain list (an operator's group): today's CIDR translation
    plain = t.rule_to_calico(WEB_RULE, {"ag-client": ["10.2.0.5/32"]})
    assert plain is not None and plain["source"] == {"nets": ["10.2.0.5/32"]}


def region_two_port(pid: str, ip: str, *sgs: tuple[str, str]) -> t.NeutronPort:
    return t.NeutronPort(
        id=pid, network_id="net2", device_id=f"vm-{pid}", device_owner="compute:nova",
        mac_address="fa:16:3e:00:00:01", host_id="cmp2", vif_type="tap",
        fixed_ips=(t.FixedIP(ip, "s2", "10.2.0.1"),),
        security_groups=tuple(t.SecurityGroupRef(i, n) for i, n in sgs),
    )  # fmt: skip


def load_all(ds: Datastore) -> list[Resource]:
    out: list[Resource] = []
    for plural in ("workloadendpoints", "networkpolicies"):
        for kv in ds.list(dskeys.resource_prefix(plural)).items:
            out.append(codec.decode(json.loads(kv.value)))
    return out


def write_region_two(ds: Datastore, ports: list[t.NeutronPort]) -> None:
    two = RegionWriter(ds, "two")
    neutron = MemoryNeutron(
        ports=ports,
        security_groups=[t.NeutronSecurityGroup(CLIENT, "client", ()),
                         t.NeutronSecurityGroup(BATCH, "batch", ())],
    )  # fmt: skip
    for p in ports:
        sync.sync_port(neutron, two, p.id, [])


def test_mirror_rule_through_the_write_path_allows_exactly_the_remote_sg(
    store: Datastore,
) -> None:
    c1 = region_two_port("c1", "10.2.0.5", (CLIENT, "client"))
    c2 = region_two_port("c2", "10.2.0.6", (CLIENT, "client"))
    b1 = region_two_port("b1", "10.2.0.9", (BATCH, "batch"))
    write_region_two(store, [c1, c2, b1])
    one = RegionWriter(store, "one")
    web_sg = t.NeutronSecurityGroup(WEB, "web", (WEB_RULE,))
    web_port = t.NeutronPort(
        id="w1", network_id="net1", device_id="vm-w1", device_owner="compute:nova",
        mac_address="fa:16:3e:00:00:02", host_id="cmp1", vif_type="tap",
        fixed_ips=(t.FixedIP("10.1.0.10", "s1", "10.1.0.1"),),
        security_groups=(t.SecurityGroupRef(WEB, "web"),),
    )  # fmt: skip
    neutron = MemoryNeutron(
        ports=[web_port], security_groups=[web_sg],
        address_groups={"ag-client": mirrored(REF_CLIENT, "10.2.0.5/32", "10.2.0.6/32")},
    )  # fmt: skip
    sync.sync_port(neutron, one, "w1", [])
    key = one.policy_key(t.policy_name(WEB))
    stored = json.loads(store.get(key).value)  # type: ignore[union-attr]
    assert stored["spec"]["ingress"][0]["source"]["namespaceSelector"] == "all()"
    policy_rev = store.get(key).mod_revision  # type: ignore[union-attr]
    # the stored bytes are networking-calico's layout of the typed resource
    assert stored == calico_document(codec.decode(stored)) | {"metadata": stored["metadata"]}

    def verdict(src_ip: str) -> bool:
        resources = load_all(store)
        snap = Snapshot(resources)
        src = next(e for e in snap.endpoints() if src_ip + "/32" in e.spec.ip_networks)
        dst = next(e for e in snap.endpoints() if "10.1.0.10/32" in e.spec.ip_networks)
        flow = Flow.make(src_ip, "10.1.0.10", "TCP", 40000, 80)
        got = evaluate_flow(snap, src, dst, flow)
        assert got.to_dict() == naive_evaluate_flow(resources, src, dst, flow).to_dict()
        return got.ingress is not None and got.ingress.allowed

    assert verdict("10.2.0.5") and verdict("10.2.0.6")
    assert not verdict("10.2.0.9")  # batch → web: denied
    # a third client VM: allowed at once, region one's policy untouched
    write_region_two(store, [c1, c2, b1, region_two_port("c3", "10.2.0.7", (CLIENT, "client"))])
    assert verdict("10.2.0.7")
    assert store.get(key).mod_revision == policy_rev  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- the master loop


def wait_for(check: Any, timeout: float = 5.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if check():
            return time.monotonic() - t0
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_worker_follows_the_other_regions_ports_within_2s(store: Datastore) -> None:
    c1 = region_two_port("c1", "10.2.0.5", (CLIENT, "client"))
    write_region_two(store, [c1])
    backend = ag.MemoryAddressGroups()
    worker = MirrorWorker(store, "one", lambda: backend, interval=30.0)
    worker.start()
    try:
        wait_for(lambda: any(g.name == "two.client" for g in backend.groups.values()))
        assert mirror(backend, "two.client").addresses == ["10.2.0.5/32"]
        c3 = region_two_port("c3", "10.2.0.7", (CLIENT, "client"))
        write_region_two(store, [c1, c3])
        took = wait_for(lambda: "10.2.0.7/32" in mirror(backend, "two.client").addresses)
        assert took < 2.0
        # the port deleted in region two: gone from the mirror
        sync.delete_port(RegionWriter(store, "two"), {"id": "c3", "device_id": "vm-c3",
                                                       "binding:host_id": "cmp2"})  # fmt: skip
        wait_for(lambda: mirror(backend, "two.client").addresses == ["10.2.0.5/32"], 2.0)
        status = json.loads(store.get(status_key("one")).value)  # type: ignore[union-attr]
        assert status["ok"] and status["mirrors"] == 1  # batch has no port, hence no policy here
        # region one's own ports never make mirrors in region one
        assert not any(g.name.startswith("one.") for g in backend.groups.values())
    finally:
        worker.stop()


class FlakyStore:
    """A store whose reads fail until ``up`` is set (the datastore is unreachable)."""

    def __init__(self, inner: Datastore) -> None:
        self.inner = inner
        self.up = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in ("list", "watch") and not self.up:

            def down(*a: Any, **k: Any) -> Any:
                raise DatastoreUnavailable("etcd is down")

            return down
        return attr


def test_unreachable_store_keeps_the_mirrors_and_reports_them_stale(store: Datastore) -> None:
    write_region_two(store, [region_two_port("c1", "10.2.0.5", (CLIENT, "client"))])
    backend = ag.MemoryAddressGroups()
    ag.reconcile(load_view(store).wanted("one", None), backend)
    before = sorted(mirror(backend, "two.client").addresses)
    flaky = FlakyStore(store)
    worker = MirrorWorker(flaky, "one", lambda: backend, retry=0.05)  # type: ignore[arg-type]
    worker.start()
    try:
        time.sleep(0.3)
        assert sorted(mirror(backend, "two.client").addresses) == before  # never emptied
        assert worker.reconciliations == 0
        flaky.up = True
        finding = dskeys.finding_key("one", STALE_FINDING, "region-one")
        wait_for(lambda: store.get(finding) is not None)
        doc = json.loads(store.get(finding).value)  # type: ignore[union-attr]
        assert "stale" in doc["message"] and doc["stale_seconds"] >= 0.2
    finally:
        worker.stop()


def test_view_ignores_other_kinds_and_namespaces() -> None:
    view = MirrorView()
    assert not view.apply(dskeys.resource_key("globalnetworkpolicies", "x"), b"{}")
    assert not view.apply(dskeys.resource_key("networkpolicies", "p", "default"), b"{}")
    assert view.apply(
        dskeys.resource_key("networkpolicies", f"ossg.default.{CLIENT}", "openstack-region-two"),
        b"{}",
    )
    assert set(view.wanted("one", None)) == {REF_CLIENT}
    assert view.wanted("two", None) == {}


# ----------------------------------------------------------------------------- doctor


def test_doctor_reports_mirrors_that_fell_behind(store: Datastore) -> None:
    from regionmesh.cli.doctor import mirror_findings
    from regionmesh.diagnosis.findings import collect
    from regionmesh.diagnosis.findings import diagnose as engine

    def diagnose(facts: Any) -> list[Any]:  # what `regionmesh doctor` reports
        return engine(facts) + mirror_findings(facts)

    write_region_two(store, [region_two_port("c1", "10.2.0.5", (CLIENT, "client"))])
    backend = ag.MemoryAddressGroups()
    worker = MirrorWorker(store, "one", lambda: backend)
    worker.view = load_view(store)
    worker.reconcile_now()

    def codes(facts: Any) -> list[str]:
        return [f.code for f in diagnose(facts)]

    assert "address-group-mirrors-out-of-date" not in codes(collect(store))
    # region two changes after the mirrors' revision, and nothing reconciles for a minute
    write_region_two(store, [region_two_port("c1", "10.2.0.5", (CLIENT, "client")),
                             region_two_port("c2", "10.2.0.6", (CLIENT, "client"))])  # fmt: skip
    facts = collect(store)
    assert "address-group-mirrors-out-of-date" not in codes(facts)  # within 30 s: fine
    facts.now = facts.now.fromtimestamp(time.time() + 40, facts.now.tzinfo)
    found = [f for f in diagnose(facts) if f.code == "address-group-mirrors-out-of-date"]
    assert len(found) == 1 and "openstack-region-two changed after it" in found[0].message
    # a master that stopped reconciling altogether
    facts.now = facts.now.fromtimestamp(time.time() + 3600, facts.now.tzinfo)
    [gone] = [f for f in diagnose(facts) if f.code == "address-group-mirrors-out-of-date"]
    assert "master is down" in gone.message
