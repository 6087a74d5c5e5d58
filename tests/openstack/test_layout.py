"""The typed write path stores exactly networking-calico's bytes.

``test_translate.py`` pins the translators' documents to networking-calico's output (key order
included). These tests prove that the typed, validated resources the write path stores
(``workload_endpoint`` / ``network_policy`` laid out by ``openstack.layout``) encode to the very
same bytes, and that RegionWriter stores ``json.dumps`` of the document with server metadata,
as networking-calico's ``datamodel_v3.put`` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_translate import ADDRESS_GROUPS, FULL_PORT, RULE_TABLE

from regionmesh.datastore import Datastore, open_datastore
from regionmesh.openstack import translate as t
from regionmesh.openstack.layout import NETWORKING_CALICO_LAYOUT, calico_document
from regionmesh.openstack.writer import RegionWriter

SG = "5b4d1c3e-0000-4000-8000-000000000001"

PORTS = [
    FULL_PORT,
    t.NeutronPort(id="p1", network_id="net", device_id="vm", device_owner="compute:nova",
                  mac_address="fa:16:3e:00:00:01", host_id="cmp1", vif_type="tap"),
    t.NeutronPort(id="p2", network_id="net", device_id="vm", device_owner="compute:nova",
                  mac_address="fa:16:3e:00:00:02", host_id="cmp1", vif_type="tap",
                  fixed_ips=(t.FixedIP("2001:db8::5", "s6", None),),
                  allowed_address_pairs=("10.9.0.0/16",)),
]  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Datastore]:
    ds = open_datastore(f"sqlite://{tmp_path / 'store.db'}")
    yield ds
    ds.close()


@pytest.mark.parametrize("port", PORTS, ids=[p.id for p in PORTS])
def test_typed_endpoint_encodes_to_the_networking_calico_bytes(port: t.NeutronPort) -> None:
    document = t.port_to_workload_endpoint(port, region="one")
    typed = t.workload_endpoint(port, region="one")
    assert json.dumps(calico_document(typed)) == json.dumps(document)


def test_typed_policy_encodes_to_the_networking_calico_bytes() -> None:
    rules = [neutron for _, neutron, calico in RULE_TABLE if calico is not None]
    for direction in ("ingress", "egress"):
        picked = tuple(
            t.NeutronRule(**{**_fields(r), "id": f"{direction}-{i}", "direction": direction})
            for i, r in enumerate(rules)
        )
        spec = t.policy_spec(SG, picked, ADDRESS_GROUPS)
        document = t.policy_document(SG, spec, region="one")
        typed = t.network_policy(SG, spec, region="one")
        assert json.dumps(calico_document(typed)) == json.dumps(document), direction


def _fields(rule: t.NeutronRule) -> dict[str, Any]:
    return {f: getattr(rule, f) for f in rule.__slots__}  # type: ignore[attr-defined]


def test_the_writer_stores_json_dumps_of_the_document_with_server_metadata(
    store: Datastore,
) -> None:
    w = RegionWriter(store, "one", new_uid=lambda: "u-1", now=lambda: "2024-01-01T00:00:00Z")
    document = t.port_to_workload_endpoint(FULL_PORT, region="one")
    key = w.workload_endpoint_key(document["metadata"]["name"])
    assert w.sync(key, t.workload_endpoint(FULL_PORT, region="one")).outcome == "created"
    expected = t.with_server_metadata(
        document, None, new_uid=lambda: "u-1", now=lambda: "2024-01-01T00:00:00Z"
    )
    kv = store.get(key)
    assert kv is not None and kv.value == json.dumps(expected).encode()
    assert NETWORKING_CALICO_LAYOUT.dumps(expected) == kv.value
