"""Strict decoding (policy-model.md §3.1 step 1): unknown fields, wrong types, paths, kinds."""

from typing import Any

import pytest
import yaml
from tests.model.model_docs import SEED_YAML, doc, gnp_rule, np_rule, wep

from regionmesh.errors import ValidationError
from regionmesh.model import (
    GlobalNetworkPolicy,
    NetworkPolicy,
    Port,
    Protocol,
    WorkloadEndpoint,
    codec,
    validation,
)


def test_seed_document_decodes_and_validates() -> None:
    res = codec.decode(yaml.safe_load(SEED_YAML))
    assert isinstance(res, GlobalNetworkPolicy)
    assert res.name == "allow-tcp-80"
    rule = res.spec.ingress[0]
    assert rule.protocol == Protocol("TCP")
    assert rule.destination.ports == [Port.single(80)]
    assert rule.source.selector.startswith("has(sg.projectcalico.org/openstack-85cc")
    assert validation.validate(res) == []
    validation.check(validation.apply_defaults(res))


BAD_DECODES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown spec field", doc("GlobalNetworkPolicy", "p", bogus=1), "spec.bogus",
     "not recognized or is in the wrong location: bogus"),
    ("unknown top-level field", {**doc("Tier", "t"), "status": {}}, "status", "not recognized"),
    ("unknown metadata field", {**doc("Tier", "t"), "metadata": {"name": "t", "colour": "x"}},
     "metadata.colour", "not recognized"),
    ("NP namespaceSelector", doc("NetworkPolicy", "p", "ns", namespaceSelector="all()"),
     "spec.namespaceSelector", "not recognized"),
    ("NP doNotTrack", doc("NetworkPolicy", "p", "ns", doNotTrack=True), "spec.doNotTrack",
     "not recognized"),
    ("NP preDNAT", doc("NetworkPolicy", "p", "ns", preDNAT=True), "spec.preDNAT", "not recognized"),
    ("NP applyOnForward", doc("NetworkPolicy", "p", "ns", applyOnForward=True),
     "spec.applyOnForward", "not recognized"),
    ("order as string", doc("GlobalNetworkPolicy", "p", order="10"), "spec.order", "number"),
    ("selector as number", doc("GlobalNetworkPolicy", "p", selector=1), "spec.selector", "string"),
    ("types not a list", doc("GlobalNetworkPolicy", "p", types="Ingress"), "spec.types", "list"),
    ("doNotTrack as string", doc("GlobalNetworkPolicy", "p", doNotTrack="true"),
     "spec.doNotTrack", "boolean"),
    ("label value number", {**doc("Tier", "t"), "metadata": {"name": "t", "labels": {"a": 1}}},
     "metadata.labels.a", "string"),
    ("protocol 256", gnp_rule(protocol=256), "spec.ingress[0].protocol", "out of range"),
    ("ipVersion string", gnp_rule(ipVersion="4"), "spec.ingress[0].ipVersion", "integer"),
    ("port 70000", gnp_rule(protocol="TCP", destination={"ports": [80, 70000]}),
     "spec.ingress[0].destination.ports[1]", "out of range"),
    ("inverted range", gnp_rule(protocol="TCP", source={"notPorts": ["90:80"]}),
     "spec.ingress[0].source.notPorts[0]",
     "minimum port number (90) is greater than maximum port number (80) in port range"),
    ("bad port name", gnp_rule(protocol="TCP", destination={"ports": ["a/b"]}),
     "spec.ingress[0].destination.ports[0]", "invalid name for named port"),
    ("unknown rule field", gnp_rule(direction="egress", port=80), "spec.egress[0].port",
     "not recognized"),
    ("snake_case is not a JSON name", gnp_rule(ip_version=4), "spec.ingress[0].ip_version",
     "not recognized"),
    ("icmp type string", gnp_rule(protocol="ICMP", icmp={"type": "8"}),
     "spec.ingress[0].icmp.type", "integer"),
    ("bad timestamp", {**doc("Tier", "t"), "metadata": {"name": "t", "creationTimestamp": "now"}},
     "metadata.creationTimestamp", "RFC 3339"),
    ("WEP spec unknown field", wep(qos=1), "spec.qos", "not recognized"),
    ("Felix unknown parameter", doc("FelixConfiguration", "default", noSuchParameter=True),
     "spec.noSuchParameter", "not recognized"),
    ("Felix duration", doc("FelixConfiguration", "default", reportingInterval="30"),
     "spec.reportingInterval", "invalid duration"),
    ("Felix bool", doc("FelixConfiguration", "default", endpointReportingEnabled="true"),
     "spec.endpointReportingEnabled", "boolean"),
    ("NP rule in NP with unknown", np_rule(source={"namespaceSelector": "all()", "x": 1}),
     "spec.ingress[0].source.x", "not recognized"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "document", "path", "fragment"), BAD_DECODES,
                         ids=[c[0] for c in BAD_DECODES])  # fmt: skip
def test_strict_decoding_rejects(
    case: str, document: dict[str, Any], path: str, fragment: str
) -> None:
    with pytest.raises(ValidationError) as info:
        codec.decode(document, where="f.yaml#0")
    paths = {f.path: f.reason for f in info.value.fields}
    assert path in paths, info.value
    assert fragment in paths[path]
    assert info.value.where.startswith("f.yaml#0 ")
    assert document["kind"] in info.value.where


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({**doc("GlobalNetworkPolicy"), "apiVersion": "projectcalico.org/v2"},
         "unknown resource type (GlobalNetworkPolicy) and/or version (projectcalico.org/v2)"),
        ({**doc("GlobalNetworkPolicy"), "kind": "Gnp"},
         "unknown resource type (Gnp) and/or version (projectcalico.org/v3)"),
        ({**doc("GlobalNetworkPolicy"), "kind": "List"}, "unknown resource type (List)"),
        ({"kind": "Tier", "metadata": {"name": "t"}}, "unknown resource type (Tier) and/or version ()"),
    ],
)  # fmt: skip
def test_unknown_kind_or_version(document: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        codec.decode(document)
    assert fragment in str(info.value)


def test_error_message_shape() -> None:
    with pytest.raises(ValidationError) as info:
        codec.decode(gnp_rule(protocol=256), where="p.yaml#3")
    text = str(info.value)
    assert text.startswith(
        "p.yaml#3 GlobalNetworkPolicy(p): error with field spec.ingress[0].protocol"
    )
    with pytest.raises(ValidationError) as info:
        codec.decode(doc("GlobalNetworkPolicy", "p", order="1", bogus=1))
    assert "error with the following fields:" in str(info.value)
    assert len(info.value.fields) == 2


def test_networking_calico_endpoint_with_allowed_ips_is_accepted() -> None:
    res = codec.decode(wep(allowedIps=["10.65.0.9/32"], ipNetworks=["10.65.0.2/32", "10.65.0.9/32"],
                           ipNATs=[{"internalIP": "10.65.0.2", "externalIP": "172.24.4.10"}],
                           ipv4Gateway="10.65.0.1",
                           qosControls={"egressBandwidth": 1000000, "egressBurst": 4294967296}))  # fmt: skip
    assert isinstance(res, WorkloadEndpoint)
    assert res.spec.allowed_ips == ["10.65.0.9/32"]
    assert res.spec.ip_nats[0].external_ip == "172.24.4.10"
    assert res.spec.qos_controls is not None and res.spec.qos_controls.egress_burst == 4294967296
    assert validation.validate(res) == []


def test_networking_calico_security_group_policy_is_accepted() -> None:
    sg = "85cc3048-abc3-43cc-89b3-377341426ac5"
    document = doc(
        "NetworkPolicy",
        f"ossg.default.{sg}",
        "openstack-region-r1",
        ingress=[
            {"action": "Allow", "ipVersion": 4,
             "source": {"selector": f"has(sg.projectcalico.org/openstack-{sg})"}},
            {"action": "Allow", "ipVersion": 4, "protocol": 6, "destination": {"ports": ["22:23"]},
             "source": {"nets": ["0.0.0.0/0"]}},
            {"action": "Allow", "ipVersion": 4, "protocol": "47"},
            {"action": "Allow", "ipVersion": 6, "protocol": "ICMPv6", "icmp": {"type": 128}},
        ],
        egress=[{"action": "Allow", "ipVersion": 4}, {"action": "Allow", "ipVersion": 6}],
        selector=f"has(sg.projectcalico.org/openstack-{sg})",
    )  # fmt: skip
    res = codec.decode(document)
    assert isinstance(res, NetworkPolicy)
    assert res.spec.types == []
    assert res.spec.ingress[2].protocol == Protocol(47)
    assert validation.validate(res) == []


def test_python_construction_by_attribute_name() -> None:
    from regionmesh.model import EntityRule, GlobalNetworkPolicySpec, ObjectMeta, Rule

    res = GlobalNetworkPolicy(
        metadata=ObjectMeta(name="p"),
        spec=GlobalNetworkPolicySpec(
            ingress=[Rule(action="Allow", protocol=Protocol("TCP"),
                          destination=EntityRule(ports=[Port.single(443), "8000:8080"]))]  # type: ignore[list-item]
        ),
    )  # fmt: skip
    assert res.spec.ingress[0].destination.ports[1] == Port.range(8000, 8080)
    assert codec.to_storage(res)["spec"] == {
        "ingress": [
            {"action": "Allow", "protocol": "TCP", "destination": {"ports": [443, "8000:8080"]}}
        ]
    }
