"""Node, BGPConfiguration and BGPPeer: strict decoding, calicoctl's validation, derived settings.

Invalid rows name the exact field path they must report and a fragment of the reason.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.model.model_docs import doc

from regionmesh.errors import ValidationError
from regionmesh.model import codec, validation
from regionmesh.model.bgp import (
    BGPConfiguration,
    BGPPeer,
    Node,
    bgp_settings,
    parse_as_number,
    parse_peer_ip,
    peer_applies_to_node,
    peer_selected_nodes,
)


def node(
    name: str = "cmp-one-1", labels: dict[str, str] | None = None, **bgp: Any
) -> dict[str, Any]:
    d = doc("Node", name, bgp=bgp) if bgp else doc("Node", name)
    if labels:
        d["metadata"]["labels"] = labels
    return d


def _problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    res = validation.apply_defaults(codec.decode(document))
    return [(f.path, f.reason) for f in validation.validate(res)]


VALID: list[tuple[str, dict[str, Any]]] = [
    ("node v4 cidr", node(ipv4Address="10.0.0.1/24")),
    ("node v4 bare address", node(ipv4Address="10.0.0.1")),
    ("node v6 only", node(ipv6Address="fd00::1/64")),
    ("node both, AS, RR", node(ipv4Address="10.0.0.1/24", ipv6Address="fd00::1/64", asNumber=64513, routeReflectorClusterID="224.0.0.1")),
    ("node without bgp", node()),
    ("node dotted AS", node(ipv4Address="10.0.0.1/24", asNumber="1.10")),
    ("node subdomain name", node("cmp-1.region-one.example", ipv4Address="10.0.0.1/24")),
    ("node addresses", doc("Node", "n", addresses=[{"address": "10.0.0.1", "type": "InternalIP"}])),
    ("bgpconfig default", doc("BGPConfiguration", "default", nodeToNodeMeshEnabled=False, asNumber=65000, logSeverityScreen="Debug", listenPort=1179)),
    ("bgpconfig node override", doc("BGPConfiguration", "node.cmp-one-1", logSeverityScreen="Warning", listenPort=179, bindMode="NodeIP")),
    ("bgpconfig communities", doc("BGPConfiguration", "default", communities=[{"name": "c1", "value": "64512:100"}], prefixAdvertisements=[{"cidr": "10.1.0.0/16", "communities": ["c1", "64512:200:1"]}])),
    ("bgpconfig restart time", doc("BGPConfiguration", "default", nodeMeshMaxRestartTime="120s", ignoredInterfaces=["eth*"])),
    ("peer global tor", doc("BGPPeer", "tor", peerIP="10.0.0.254", asNumber=64600)),
    ("peer node-specific with port", doc("BGPPeer", "tor-1", node="cmp-one-1", peerIP="10.0.0.254:1179", asNumber="1.1")),
    ("peer v6 with port", doc("BGPPeer", "tor-6", peerIP="[fd00::fe]:179", asNumber=64600)),
    ("peer rr selectors", doc("BGPPeer", "to-rr", nodeSelector="!has(route-reflector)", peerSelector="route-reflector == 'true'")),
]  # fmt: skip

INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("node name upper case", node("CMP1", ipv4Address="10.0.0.1/24"), "metadata.name", "lower case"),
    ("node name underscore", node("cmp_1"), "metadata.name", "lower case"),
    ("node v4 garbage", node(ipv4Address="10.0.0.300/24"), "spec.bgp.ipv4Address", "IPv4"),
    ("node v6 in v4 field", node(ipv4Address="fd00::1/64"), "spec.bgp.ipv4Address", "IPv4"),
    ("node v4 in v6 field", node(ipv6Address="10.0.0.1/24"), "spec.bgp.ipv6Address", "IPv6"),
    ("node v4 bad prefix", node(ipv4Address="10.0.0.1/33"), "spec.bgp.ipv4Address", "IPv4"),
    ("node rr id not ipv4", node(ipv4Address="10.0.0.1/24", routeReflectorClusterID="rr-1"), "spec.bgp.routeReflectorClusterID", "IPv4"),
    ("node empty bgp", doc("Node", "n", bgp={}), "spec.bgp", "should not be empty"),
    ("node address not masked", doc("Node", "n", addresses=[{"address": "10.0.0.1/24"}]), "spec.addresses[0].address", "strictly masked"),
    ("node address type", doc("Node", "n", addresses=[{"address": "10.0.0.1", "type": "Other"}]), "spec.addresses[0].type", "CalicoNodeIP"),
    ("node vxlan mac", doc("Node", "n", vxlanTunnelMACAddr="zz"), "spec.vxlanTunnelMACAddr", "MAC"),
    ("bgpconfig log level case", doc("BGPConfiguration", "default", logSeverityScreen="info"), "spec.logSeverityScreen", "Info"),
    ("bgpconfig listen port 0", doc("BGPConfiguration", "default", listenPort=0), "spec.listenPort", "between 1 and 65535"),
    ("bgpconfig listen port big", doc("BGPConfiguration", "default", listenPort=70000), "spec.listenPort", "between 1 and 65535"),
    ("bgpconfig bind mode", doc("BGPConfiguration", "default", bindMode="All"), "spec.bindMode", "None or NodeIP"),
    ("bgpconfig restart time", doc("BGPConfiguration", "default", nodeMeshMaxRestartTime="2 min"), "spec.nodeMeshMaxRestartTime", "invalid duration"),
    ("bgpconfig ignored iface", doc("BGPConfiguration", "default", ignoredInterfaces=["a" * 16]), "spec.ignoredInterfaces[0]", "1-15"),
    ("bgpconfig node mesh", doc("BGPConfiguration", "node.cmp-one-1", nodeToNodeMeshEnabled=True), "spec.nodeToNodeMeshEnabled", "non default"),
    ("bgpconfig node AS", doc("BGPConfiguration", "node.cmp-one-1", asNumber=65001), "spec.asNumber", "non default"),
    ("bgpconfig node svc ips", doc("BGPConfiguration", "node.x", serviceClusterIPs=[{"cidr": "10.96.0.0/12"}]), "spec.serviceClusterIPs", "non default"),
    ("bgpconfig community value", doc("BGPConfiguration", "default", communities=[{"name": "c1", "value": "1:70000"}], prefixAdvertisements=[{"cidr": "10.0.0.0/8", "communities": ["c1"]}]), "spec.communities[0].value", "community"),
    ("bgpconfig unused communities", doc("BGPConfiguration", "default", communities=[{"name": "c1", "value": "1:1"}]), "spec.communities", "not used"),
    ("bgpconfig unknown community", doc("BGPConfiguration", "default", prefixAdvertisements=[{"cidr": "10.0.0.0/8", "communities": ["nope"]}]), "spec.prefixAdvertisements[0].communities[0]", "name of a community"),
    ("peer bad ip", doc("BGPPeer", "p", peerIP="10.0.0", asNumber=1), "spec.peerIP", "PeerIP value is invalid"),
    ("peer port 0", doc("BGPPeer", "p", peerIP="10.0.0.1:0", asNumber=1), "spec.peerIP", "PeerIP value is invalid"),
    ("peer v6 port without brackets", doc("BGPPeer", "p", peerIP="fd00::1:179x", asNumber=1), "spec.peerIP", "PeerIP value is invalid"),
    ("peer node and nodeSelector", doc("BGPPeer", "p", node="a", nodeSelector="all()", peerIP="10.0.0.1", asNumber=1), "spec.node", "must be empty when NodeSelector"),
    ("peer ip and selector", doc("BGPPeer", "p", peerIP="10.0.0.1", peerSelector="all()"), "spec.peerIP", "must be empty when PeerSelector"),
    ("peer AS and selector", doc("BGPPeer", "p", peerSelector="all()", asNumber=64512), "spec.asNumber", "must be empty when PeerSelector"),
    ("peer ip without AS", doc("BGPPeer", "p", peerIP="10.0.0.1"), "spec.asNumber", "required with peerIP"),
    ("peer neither ip nor selector", doc("BGPPeer", "p", node="a"), "spec", "peerIP or peerSelector"),
    ("peer bad selector", doc("BGPPeer", "p", peerSelector="rr ==", nodeSelector="all()"), "spec.peerSelector", "invalid selector"),
    ("peer bad node name", doc("BGPPeer", "p", node="Host_1", peerIP="10.0.0.1", asNumber=1), "spec.node", "Node name"),
    ("peer reachableBy family", doc("BGPPeer", "p", peerIP="10.0.0.1", asNumber=1, reachableBy="fd00::1"), "spec.reachableBy", "family"),
    ("peer source address", doc("BGPPeer", "p", peerIP="10.0.0.1", asNumber=1, sourceAddress="Any"), "spec.sourceAddress", "UseNodeIP"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "document"), VALID, ids=[v[0] for v in VALID])
def test_valid_documents(label: str, document: dict[str, Any]) -> None:
    assert _problems(document) == []


@pytest.mark.parametrize(
    ("label", "document", "path", "reason"), INVALID, ids=[v[0] for v in INVALID]
)
def test_invalid_documents(label: str, document: dict[str, Any], path: str, reason: str) -> None:
    problems = _problems(document)
    assert any(p == path and reason in r for p, r in problems), problems


DECODE_ERRORS: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown node field", node(ipv4Address="10.0.0.1/24", ipAddress="x"), "spec.bgp.ipAddress", "not recognized"),
    ("AS negative", node(ipv4Address="10.0.0.1/24", asNumber=-1), "spec.bgp.asNumber", "out of range"),
    ("AS too big", node(ipv4Address="10.0.0.1/24", asNumber=2**32), "spec.bgp.asNumber", "out of range"),
    ("AS dotted part too big", doc("BGPPeer", "p", peerIP="10.0.0.1", asNumber="65536.1"), "spec.asNumber", "invalid AS Number format (65536.1)"),
    ("AS three parts", doc("BGPConfiguration", "default", asNumber="1.2.3"), "spec.asNumber", "invalid AS Number format"),
    ("AS boolean", doc("BGPConfiguration", "default", asNumber=True), "spec.asNumber", "number or a string"),
    ("AS float", doc("BGPConfiguration", "default", asNumber=1.5), "spec.asNumber", "number or a string"),
    ("mesh as string", doc("BGPConfiguration", "default", nodeToNodeMeshEnabled="true"), "spec.nodeToNodeMeshEnabled", "boolean"),
    ("listen port as string", doc("BGPConfiguration", "default", listenPort="179"), "spec.listenPort", "integer"),
    ("peer unknown field", doc("BGPPeer", "p", peerIp="10.0.0.1"), "spec.peerIp", "not recognized"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "document", "path", "reason"), DECODE_ERRORS, ids=[v[0] for v in DECODE_ERRORS]
)
def test_strict_decoding(label: str, document: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        codec.decode(document)
    fields = [(f.path, f.reason) for f in info.value.fields]
    assert any(p == path and reason.lower() in r.lower() for p, r in fields), fields


def test_as_number_forms_and_storage_shape() -> None:
    assert parse_as_number(64512) == 64512
    assert parse_as_number("64512") == 64512
    assert parse_as_number("1.10") == 65546
    assert parse_as_number("65535.65535") == 2**32 - 1
    res = codec.decode(node(ipv4Address="10.0.0.1/24", asNumber="1.10"))
    stored = codec.to_storage(res)
    assert stored["spec"] == {"bgp": {"ipv4Address": "10.0.0.1/24", "asNumber": 65546}}
    again = codec.from_storage(stored, resource_version="5")
    assert isinstance(again, Node) and again.spec.bgp is not None
    assert again.spec.bgp.as_number == 65546
    assert str(again.spec.bgp.ipv4_interface) == "10.0.0.1/24"
    assert again.spec.bgp.ipv6_interface is None


def test_node_status_round_trips_and_unknown_stored_fields_are_dropped() -> None:
    stored = {
        "kind": "Node",
        "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "n"},
        "spec": {"bgp": {"ipv4Address": "10.0.0.1/24", "newField": 1}, "futureField": True},
        "status": {"podCIDRs": ["10.244.0.0/24"]},
    }
    res = codec.from_storage(stored, resource_version="3")
    out = codec.to_output(res)
    assert out["spec"] == {"bgp": {"ipv4Address": "10.0.0.1/24"}}
    assert out["status"] == {"podCIDRs": ["10.244.0.0/24"]}


def test_peer_ip_forms() -> None:
    assert parse_peer_ip("10.0.0.1") == ("10.0.0.1", None)
    assert parse_peer_ip("10.0.0.1:1179") == ("10.0.0.1", 1179)
    assert parse_peer_ip("[FD00::1]:179") == ("fd00::1", 179)
    assert parse_peer_ip("fd00::1") == ("fd00::1", None)
    for bad in ("10.0.0.1:0", "10.0.0.1:65536", "[fd00::1]", "host:179", "", "10.0.0.1/32"):
        assert parse_peer_ip(bad) is None, bad


def _res(document: dict[str, Any]) -> Any:
    return codec.decode(document)


def test_effective_settings_follow_confd() -> None:
    n1 = _res(node(ipv4Address="10.0.0.1/24"))
    n2 = _res(node("cmp-one-2", ipv4Address="10.0.0.2/24", asNumber=64999))
    assert bgp_settings(n1, None).as_number == 64512
    assert bgp_settings(n1, None).node_to_node_mesh is True
    assert bgp_settings(n1, None).listen_port == 179
    assert bgp_settings(n1, None).log_severity == "Info"
    default = _res(
        doc(
            "BGPConfiguration",
            "default",
            asNumber=65000,
            nodeToNodeMeshEnabled=False,
            listenPort=1179,
            logSeverityScreen="Debug",
        )
    )
    assert isinstance(default, BGPConfiguration)
    s1 = bgp_settings(n1, default)
    assert (s1.as_number, s1.node_to_node_mesh, s1.listen_port, s1.log_severity) == (
        65000,
        False,
        1179,
        "Debug",
    )
    assert bgp_settings(n2, default).as_number == 64999
    override = _res(doc("BGPConfiguration", "node.cmp-one-1", listenPort=2179))
    assert bgp_settings(n1, default, override).listen_port == 2179
    assert bgp_settings(n1, default, override).log_severity == "Debug"


def test_peer_scope_and_selection() -> None:
    nodes = [
        _res(node("rr-1", {"route-reflector": "true"}, ipv4Address="10.0.0.10/24")),
        _res(node("rr-2", {"route-reflector": "true"}, ipv4Address="10.0.0.11/24")),
        _res(node("cmp-1", {"rack": "r1"}, ipv4Address="10.0.0.1/24")),
    ]
    to_rr = _res(
        doc(
            "BGPPeer",
            "to-rr",
            nodeSelector="!has(route-reflector)",
            peerSelector="route-reflector == 'true'",
        )
    )
    assert isinstance(to_rr, BGPPeer)
    assert peer_applies_to_node(to_rr, "cmp-1", {"rack": "r1"})
    assert not peer_applies_to_node(to_rr, "rr-1", {"route-reflector": "true"})
    assert [n.name for n in peer_selected_nodes(to_rr, nodes)] == ["rr-1", "rr-2"]
    assert [n.name for n in peer_selected_nodes(to_rr, nodes, exclude="rr-1")] == ["rr-2"]
    tor = _res(doc("BGPPeer", "tor", node="cmp-1", peerIP="10.0.0.254", asNumber=64600))
    assert peer_applies_to_node(tor, "cmp-1", {}) and not peer_applies_to_node(tor, "cmp-2", {})
    assert tor.spec.peer_address == ("10.0.0.254", None) and not tor.spec.is_global
    assert peer_selected_nodes(tor, nodes) == []
    everyone = _res(doc("BGPPeer", "all", peerIP="10.0.0.254", asNumber=64600))
    assert everyone.spec.is_global and peer_applies_to_node(everyone, "anything", {})
