"""Defaulting (§2.6), the stored value (§4.2), from_storage and to_output."""

import json
from typing import Any

import pytest
import yaml
from tests.model.model_docs import SEED_YAML, doc, wep

from regionmesh.errors import ValidationError
from regionmesh.model import (
    GlobalNetworkPolicy,
    NetworkPolicy,
    Tier,
    WorkloadEndpoint,
    codec,
    split_workload_endpoint_name,
    validation,
    workload_endpoint_name,
)

ALLOW = {"action": "Allow"}


@pytest.mark.parametrize(
    ("spec", "types"),
    [
        ({}, ["Ingress"]),
        ({"ingress": [ALLOW]}, ["Ingress"]),
        ({"egress": [ALLOW]}, ["Egress"]),
        ({"ingress": [ALLOW], "egress": [ALLOW]}, ["Ingress", "Egress"]),
        ({"egress": [ALLOW], "types": ["Ingress"]}, ["Ingress"]),  # explicit types win
        ({"types": ["Ingress", "Egress"]}, ["Ingress", "Egress"]),
    ],
)
@pytest.mark.parametrize("kind", ["GlobalNetworkPolicy", "NetworkPolicy"])
def test_policy_types_default_from_rules(kind: str, spec: dict[str, Any], types: list[str]) -> None:
    res = validation.apply_defaults(codec.decode(doc(kind, "p", **spec)))
    assert isinstance(res, GlobalNetworkPolicy | NetworkPolicy)
    assert res.spec.types == types
    assert res.spec.tier == "default"
    assert res.metadata.labels["projectcalico.org/tier"] == "default"


def test_defaults_namespace_tier_label_and_tier_action() -> None:
    np = validation.apply_defaults(codec.decode(doc("NetworkPolicy", "p", tier="security")),
                                   default_namespace="openstack-region-r1")  # fmt: skip
    assert np.namespace == "openstack-region-r1"
    assert np.metadata.labels == {"projectcalico.org/tier": "security"}
    gnp = validation.apply_defaults(codec.decode(doc("GlobalNetworkPolicy", "p")))
    assert gnp.namespace == ""
    tier = validation.apply_defaults(codec.decode(doc("Tier", "t", order=10)))
    assert isinstance(tier, Tier) and tier.spec.default_action == "Deny"
    assert codec.to_storage(tier)["spec"] == {"order": 10, "defaultAction": "Deny"}


def test_defaults_do_not_touch_the_input_and_are_idempotent() -> None:
    original = codec.decode(doc("GlobalNetworkPolicy", "p"))
    once = validation.apply_defaults(original)
    assert original.spec.types == [] and original.metadata.labels == {}
    assert validation.apply_defaults(once) == once


def test_workload_endpoint_defaults_labels_and_name() -> None:
    document = wep()
    del document["metadata"]["name"]
    res = validation.apply_defaults(codec.decode(document))
    assert res.name == "felix--host--1-openstack-instance--1-DEADBEEF--1234--5678"
    assert res.metadata.labels["projectcalico.org/namespace"] == "openstack-region-r1"
    assert res.metadata.labels["projectcalico.org/orchestrator"] == "openstack"
    assert validation.validate(res) == []


def test_workload_endpoint_name_escaping() -> None:
    name = workload_endpoint_name("felix-host-1", "openstack", "instance-1", "DEADBEEF-1234-5678")
    assert name == "felix--host--1-openstack-instance--1-DEADBEEF--1234--5678"
    assert split_workload_endpoint_name(name) == ["felix-host-1", "openstack", "instance-1",
                                                  "DEADBEEF-1234-5678"]  # fmt: skip
    assert split_workload_endpoint_name(workload_endpoint_name("a--b", "o", "w", "e")) == [
        "a--b", "o", "w", "e"]  # fmt: skip


ROUND_TRIP_DOCS = [
    yaml.safe_load(SEED_YAML),
    doc("NetworkPolicy", "ossg.default.sg1", "openstack-region-r1",
        ingress=[{"action": "Allow", "ipVersion": 4, "protocol": "47"}], egress=[],
        selector="has(sg.projectcalico.org/openstack-sg1)"),
    doc("GlobalNetworkPolicy", "p", order=100.5, preDNAT=True, applyOnForward=True,
        ingress=[{"action": "Deny", "protocol": "UDP", "source": {"ports": ["1:2", "dns"], "nets": ["10.0.0.0/8"]},
                  "icmp": None, "metadata": {"annotations": {"a": "b"}}}]),
    wep(),
    doc("FelixConfiguration", "default", endpointReportingEnabled=True, interfacePrefix="tap", reportingInterval="30s"),
    doc("ClusterInformation", "default", clusterGUID="abc", clusterType="openstack", datastoreReady=False),
    doc("HostEndpoint", "h", node="n", interfaceName="eth0", ports=[{"name": "ssh", "protocol": "TCP", "port": 22}]),
    doc("Profile", "p", labelsToApply={"a": "b"}, egress=[{"action": "Allow"}]),
    doc("NetworkSet", "s", "ns", nets=["10.0.0.1/24"]),
    doc("GlobalNetworkSet", "s", nets=["fd00::/8"]),
    doc("Tier", "t", order=1),
]  # fmt: skip


@pytest.mark.parametrize("document", ROUND_TRIP_DOCS, ids=lambda d: str(d["kind"]))
@pytest.mark.parametrize("defaulted", [False, True], ids=["as-written", "defaulted"])
def test_storage_round_trip(document: dict[str, Any], defaulted: bool) -> None:
    res = codec.decode(document)
    if defaulted:
        res = validation.apply_defaults(res)
    stored = codec.to_storage(res)
    assert "resourceVersion" not in stored["metadata"]
    stored = json.loads(json.dumps(stored))  # what etcd gives back
    back = codec.from_storage(stored, resource_version="42")
    assert back.metadata.resource_version == "42"
    expected = res.model_copy(
        update={"metadata": res.metadata.model_copy(update={"resource_version": "42"})}
    )
    assert back == expected
    assert codec.to_storage(back) == stored  # byte-for-byte the same value again


def test_networking_calico_policy_is_stored_exactly_as_written() -> None:
    value = {
        "kind": "NetworkPolicy",
        "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "ossg.default.sg1", "namespace": "openstack-region-r1",
                     "creationTimestamp": "2026-08-22T10:00:00Z", "uid": "5f0c"},
        "spec": {"ingress": [{"action": "Allow", "ipVersion": 6, "protocol": 6,
                              "destination": {"ports": [22]}}],
                 "egress": [], "selector": "has(sg.projectcalico.org/openstack-sg1)"},
    }  # fmt: skip
    res = codec.from_storage(value, resource_version="7")
    assert isinstance(res, NetworkPolicy) and res.spec.types == []
    assert codec.to_storage(res) == value  # no types, no tier, no annotation added
    assert "types" not in codec.to_output(res)["spec"]


def test_stored_policy_value_shape() -> None:
    res = validation.apply_defaults(codec.decode(doc(
        "NetworkPolicy", "allow-db", "openstack-region-r1", order=100, selector="app == 'db'",
        ingress=[{"action": "Allow", "protocol": "TCP", "source": {"selector": "app == 'web'"},
                  "destination": {"ports": ["5432"]}}])))  # fmt: skip
    stored = codec.to_storage(res)
    assert stored == {
        "kind": "NetworkPolicy",
        "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "allow-db", "namespace": "openstack-region-r1",
                     "labels": {"projectcalico.org/tier": "default"},
                     "annotations": {"projectcalico.org/metadata": '{"name":"allow-db"}'}},
        "spec": {"tier": "default", "order": 100, "selector": "app == 'db'", "types": ["Ingress"],
                 "ingress": [{"action": "Allow", "protocol": "TCP",
                              "source": {"selector": "app == 'web'"},
                              "destination": {"ports": [5432]}}]},
    }  # fmt: skip
    assert json.dumps(stored["spec"]["order"]) == "100"


def test_from_storage_undoes_calico_name_conventions() -> None:
    value = codec.to_storage(
        validation.apply_defaults(codec.decode(doc("GlobalNetworkPolicy", "web")))
    )
    value["metadata"]["name"] = "default.web"  # v3.30/3.31 stored the tier-prefixed name
    assert codec.from_storage(value, resource_version="1").name == "web"
    old = {"kind": "GlobalNetworkPolicy", "apiVersion": "projectcalico.org/v3",
           "metadata": {"name": "default.web"}, "spec": {}}  # fmt: skip
    assert codec.from_storage(old, resource_version="1").name == "web"  # ≤ v3.29, no annotation


def test_from_storage_is_lenient_about_unknown_fields_but_not_types() -> None:
    value = {"kind": "WorkloadEndpoint", "apiVersion": "projectcalico.org/v3",
             "metadata": {"name": "n-o-w-e", "namespace": "ns", "newField": 1},
             "spec": {"node": "n", "futureThing": {"x": 1}}}  # fmt: skip
    res = codec.from_storage(value, resource_version="3")
    assert isinstance(res, WorkloadEndpoint) and res.spec.node == "n"
    with pytest.raises(ValidationError) as info:
        codec.from_storage({**value, "spec": {"node": 1}}, resource_version="3")
    assert info.value.fields[0].path == "spec.node"
    with pytest.raises(ValidationError, match="unknown resource type"):
        codec.from_storage({"kind": "Nope"}, resource_version="3")


def test_to_output_is_what_calicoctl_prints() -> None:
    res = codec.from_storage(
        codec.to_storage(validation.apply_defaults(codec.decode(yaml.safe_load(SEED_YAML)))),
        resource_version="99",
    )
    out = codec.to_output(res)
    assert out["metadata"]["resourceVersion"] == "99"
    assert "annotations" not in out["metadata"]
    egress_rule = codec.to_output(codec.decode(doc("GlobalNetworkPolicy", "p", egress=[ALLOW])))
    assert egress_rule["spec"]["egress"] == [{"action": "Allow", "source": {}, "destination": {}}]
