"""``--once`` end to end without root: embedded sqlite store, FakeNft kernel, real calc graph."""

from __future__ import annotations

import json
import os

import agent_support as s
import pytest

from regionmesh.agent.loop import Agent
from regionmesh.agent.startup import start
from regionmesh.dataplane import names
from regionmesh.dataplane.driver import NftDataplane
from regionmesh.dataplane.fakenft import FakeNft
from regionmesh.datastore import keys
from regionmesh.datastore.sqlite import SqliteDatastore
from regionmesh.errors import ConfigError

A = s.port("aaaaaaaa-0000-4000-8000-00000000000a", "cmp-one", "10.65.1.2", [s.SG_WEB, s.SG_BASE])
B = s.port("bbbbbbbb-0000-4000-8000-00000000000b", "cmp-one", "10.65.1.3", [s.SG_OTHER])
C = s.port("cccccccc-0000-4000-8000-00000000000c", "cmp-two", "10.65.2.2", [s.SG_CLIENT])
TABLE = f"ip {names.TABLE}"


def seed(store: SqliteDatastore) -> None:
    s.apply_docs(
        store,
        [
            s.sg_doc(s.egress_only_sg(s.SG_WEB), "one"),
            s.sg_doc(s.egress_only_sg(s.SG_BASE), "one"),
            s.sg_doc(s.egress_only_sg(s.SG_OTHER), "one"),
            s.sg_doc(s.egress_only_sg(s.SG_CLIENT), "two"),
            s.wep_doc(A, "one"),
            s.wep_doc(B, "one"),
            s.wep_doc(C, "two"),
            s.SEED_GNP,
        ],
    )


def iface(p: object) -> str:
    return "tap" + p.id[:11]  # type: ignore[attr-defined]


def sets_with(fake: FakeNft, element: str) -> list[str]:
    table = fake.tables[("ip", names.TABLE)]
    return [n for n, st in table.sets.items() if element in st.elements]


def run_once(tmp_path: object, store: SqliteDatastore, fake: FakeNft, **params: object) -> Agent:
    cfg = s.felix_cfg(
        os.path.join(str(tmp_path), "felix.cfg"),
        FelixHostname="cmp-one",
        OpenstackRegion="one",
        InterfacePrefix="tap",
        EndpointReportingEnabled="true",
        **params,
    )
    started = start(
        cfg,
        env={},
        store=store,
        dataplane_factory=lambda _c: NftDataplane(fake, None),
        iface_up=lambda name: name == iface(A),
    )
    started.agent.run_once()
    return started.agent


def test_once_programs_local_endpoints_and_reports(
    tmp_path: object, sqlite_datastore: SqliteDatastore
) -> None:
    store = sqlite_datastore
    seed(store)
    fake = FakeNft()
    agent = run_once(tmp_path, store, fake)

    dispatch = fake.map_elements(TABLE, names.TO_WL_DISPATCH)
    assert set(dispatch) == {iface(A), iface(B)}  # C lives on cmp-two
    # The GNP selects A: its ingress chain references the set of SG-client members, which
    # holds C's address although C is in another region on another host.
    assert sets_with(fake, "10.65.2.2"), "the source-SG set must hold the remote VM's IP"
    tw_a = " ".join(fake.chain_rules(TABLE, names.endpoint_chain(iface(A), True)))
    assert "allow-tcp-80" in tw_a or names.policy_chain("gnp/allow-tcp-80", True) in tw_a

    status = store.get("/calico/felix/v2/region-one/host/cmp-one/status")
    assert status is not None and status.lease != 0
    assert json.loads(status.value)["first_update"] is True
    assert store.get("/calico/felix/v2/region-one/host/cmp-one/last_reported_status") is not None
    prefix = "/calico/felix/v2/region-one/host/cmp-one/workload/openstack/openstack-region-one%2f"
    ka = f"{prefix}{A.device_id}/endpoint/{A.id}"
    kb = f"{prefix}{B.device_id}/endpoint/{B.id}"
    assert json.loads(store.get(ka).value) == {"status": "up"}  # type: ignore[union-attr]
    assert json.loads(store.get(kb).value) == {"status": "down"}  # type: ignore[union-attr]
    assert agent.stats.applies == 1


def test_once_restart_replaces_table_and_drops_stale_objects(
    tmp_path: object, sqlite_datastore: SqliteDatastore
) -> None:
    store = sqlite_datastore
    seed(store)
    fake = FakeNft()
    run_once(tmp_path, store, fake)
    assert iface(B) in fake.map_elements(TABLE, names.TO_WL_DISPATCH)
    # While "down", B is deleted and the GNP removed; a restart re-programs from a full sync in
    # one transaction, so B's chains and the GNP's chain are gone and A stays programmed.
    s.delete_doc(store, s.wep_doc(B, "one"))
    s.delete_doc(store, s.SEED_GNP)
    run_once(tmp_path, store, fake)
    dispatch = fake.map_elements(TABLE, names.TO_WL_DISPATCH)
    assert set(dispatch) == {iface(A)}
    table = fake.tables[("ip", names.TABLE)]
    assert names.endpoint_chain(iface(B), True) not in table.chains
    assert names.policy_chain("gnp/allow-tcp-80", True) not in table.chains
    assert not sets_with(fake, "10.65.2.2")


def test_once_with_nothing_keeps_fail_closed(
    tmp_path: object, sqlite_datastore: SqliteDatastore
) -> None:
    fake = FakeNft()
    run_once(tmp_path, sqlite_datastore, fake)
    rules = fake.chain_rules(TABLE, names.TO_WL_DISPATCH)
    assert any("drop" in r for r in rules), rules  # unknown taps are dropped


def test_datastore_felix_configuration_precedence(
    tmp_path: object, sqlite_datastore: SqliteDatastore
) -> None:
    store = sqlite_datastore
    s.apply_docs(
        store,
        [
            {
                "apiVersion": "projectcalico.org/v3",
                "kind": "FelixConfiguration",
                "metadata": {"name": "default"},
                "spec": {"reportingInterval": "7s", "reportingTTL": "21s", "metadataPort": 9999},
            },
            {
                "apiVersion": "projectcalico.org/v3",
                "kind": "FelixConfiguration",
                "metadata": {"name": "node.cmp-one"},
                "spec": {"reportingInterval": "5s"},
            },
        ],
    )
    fake = FakeNft()
    agent = run_once(tmp_path, store, fake, ReportingTTLSecs=15)
    assert agent.config.reporting_interval == 5.0  # node.<host> beats default
    assert agent.config.reporting_ttl == 15.0  # the file beats the datastore
    assert agent.config.metadata_port == 9999  # default beats the built-in default


def test_invalid_region_in_datastore_stops_before_programming(
    tmp_path: object, sqlite_datastore: SqliteDatastore
) -> None:
    # Written raw, as a foreign writer could: the agent must refuse it, not program.
    doc = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "FelixConfiguration",
        "metadata": {"name": "default"},
        "spec": {"openstackRegion": "RegionOne"},
    }
    sqlite_datastore.put(
        keys.resource_key("felixconfigurations", "default"), json.dumps(doc).encode()
    )
    fake = FakeNft()
    cfg = s.felix_cfg(os.path.join(str(tmp_path), "felix.cfg"), FelixHostname="cmp-one")
    with pytest.raises(ConfigError, match=r"'RegionOne' for OpenstackRegion.*DNS-1123"):
        start(
            cfg,
            env={},
            store=sqlite_datastore,
            dataplane_factory=lambda _c: NftDataplane(fake, None),
        )
    assert fake.tables == {}
