"""The validator (policy-model.md §3): one valid and one or more invalid rows per rule.

Every invalid row names the field path it must report and a fragment of the reason.
"""

from typing import Any

import pytest
from tests.model.model_docs import doc, gnp_rule, np_rule, wep

from regionmesh.errors import ValidationError
from regionmesh.model import codec, validation

SG = "sg.projectcalico.org/openstack-85cc3048-abc3-43cc-89b3-377341426ac5"
LONG = "a" * 254


def meta(document: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """``document`` with extra metadata fields."""
    document["metadata"].update(fields)
    return document


def _validate(document: dict[str, Any]) -> list[tuple[str, str]]:
    res = validation.apply_defaults(codec.decode(document))
    return [(f.path, f.reason) for f in validation.validate(res)]


VALID: list[tuple[str, dict[str, Any]]] = [
    # §3.2 names
    ("gnp one dot", doc("GlobalNetworkPolicy", "tier1.allow")),
    ("gnp 253 chars", doc("GlobalNetworkPolicy", "a" * 253)),
    ("np ossg name", doc("NetworkPolicy", "ossg.default.85cc3048-abc3", "openstack-region-r1")),
    ("np knp name", doc("NetworkPolicy", "knp.default.allow.web", "ns")),
    ("tier label", doc("Tier", "security", order=100)),
    ("profile subdomain", doc("Profile", "a.b.c")),
    ("gns subdomain", doc("GlobalNetworkSet", "a.b-c", nets=["10.0.0.1/24"])),
    # §3.3 labels and annotations
    ("labels", meta(doc("GlobalNetworkSet", "s"), labels={SG: "web", "a.b/C_d.e": "", "x": "Y-1.z_0"})),
    ("annotation upper case key", meta(doc("Tier", "t"), annotations={"Example.COM/Key": "v" * 1000})),
    ("profile labelsToApply", doc("Profile", "p", labelsToApply={"pcns.role": "db"})),
    # §3.4 selectors
    ("empty selector", doc("GlobalNetworkPolicy", "p", selector="")),
    ("namespaceSelector global alone", gnp_rule(source={"namespaceSelector": "global()"})),
    ("namespaceSelector global spaced", gnp_rule(source={"namespaceSelector": "global( )"})),
    ("np rule namespaceSelector all", np_rule(source={"namespaceSelector": "all()", "selector": "a == 'b'"})),
    ("gnp namespaceSelector", doc("GlobalNetworkPolicy", "p", namespaceSelector="has(x)")),
    ("selector 1024 chars", doc("GlobalNetworkPolicy", "p", selector="a == '" + "x" * 1017 + "'")),
    # §3.5 rules
    ("all actions", doc("GlobalNetworkPolicy", "p", ingress=[{"action": a} for a in ("Allow", "Deny", "Log", "Pass")])),
    ("numeric protocol", gnp_rule(protocol=47)),
    ("digit-string protocol", gnp_rule(protocol="132", destination={"ports": [80]})),
    ("udp port range", gnp_rule(protocol="UDP", destination={"ports": ["1:65535"], "notPorts": [53]})),
    ("sctp source ports", gnp_rule(protocol="SCTP", source={"ports": [9]})),
    ("named port without protocol (HEAD)", gnp_rule(destination={"ports": ["http"]})),
    ("named port with tcp", gnp_rule(protocol="TCP", destination={"ports": ["https", "my-port1"]})),
    ("icmp type code", gnp_rule(protocol="ICMP", icmp={"type": 8, "code": 0}, ipVersion=4)),
    ("icmp by number", gnp_rule(protocol=58, icmp={"type": 128})),
    ("notICMP", gnp_rule(protocol="ICMPv6", notICMP={"type": 254}, ipVersion=6)),
    ("icmp code 255", gnp_rule(protocol="ICMP", icmp={"type": 3, "code": 255})),
    ("notProtocol with ports? no: ports need protocol", gnp_rule(notProtocol="UDP")),
    ("strict cidrs", gnp_rule(source={"nets": ["10.0.0.0/8", "10.1.2.3"]}, destination={"notNets": ["192.168.0.0/16"]}, ipVersion=4)),
    ("v6 cidrs", gnp_rule(source={"nets": ["fd00::/64"]}, ipVersion=6)),
    ("services in ingress source", doc("NetworkPolicy", "p", "ns", ingress=[{"action": "Allow", "source": {"services": {"name": "svc"}}}])),
    ("services in egress destination gnp", gnp_rule("egress", destination={"services": {"name": "svc", "namespace": "ns"}})),
    ("http", gnp_rule(protocol="TCP", http={"methods": ["GET", "PUT"], "paths": [{"exact": "/a"}, {"prefix": "/b/"}]})),
    ("rule annotations", gnp_rule(metadata={"annotations": {"note": "x"}})),
    ("serviceAccounts", gnp_rule(source={"serviceAccounts": {"names": ["sa-1"], "selector": "app == 'x'"}})),
    # policy spec
    ("types both", doc("GlobalNetworkPolicy", "p", types=["Ingress", "Egress"])),
    ("order float negative", doc("GlobalNetworkPolicy", "p", order=-1.5)),
    ("performance hint", doc("GlobalNetworkPolicy", "p", performanceHints=["AssumeNeededOnEveryNode"])),
    ("doNotTrack+applyOnForward", doc("GlobalNetworkPolicy", "p", doNotTrack=True, applyOnForward=True)),
    ("preDNAT ingress only", doc("GlobalNetworkPolicy", "p", preDNAT=True, applyOnForward=True, ingress=[{"action": "Deny"}])),
    ("1024 rules", doc("GlobalNetworkPolicy", "p", ingress=[{"action": "Allow"}] * 1024)),
    # tiers
    ("default tier", doc("Tier", "default", order=1000000, defaultAction="Deny")),
    ("pass tier", doc("Tier", "t", order=5, defaultAction="Pass")),
    ("kube-admin", doc("Tier", "kube-admin", order=1000, defaultAction="Pass")),
    # endpoints
    ("networking-calico wep", wep()),
    ("k8s wep", doc("WorkloadEndpoint", "node1-k8s-pod--a-eth0", "ns", node="node1", orchestrator="k8s", pod="pod-a", endpoint="eth0", ports=[{"name": "http", "protocol": "TCP", "port": 80}])),
    ("hep", doc("HostEndpoint", "h1", node="h1", interfaceName="eth0", expectedIPs=["10.0.0.1", "fd00::1"], profiles=["p1"])),
    ("hep star", doc("HostEndpoint", "h1", node="h1", interfaceName="*")),
    # sets and config
    ("networkset", doc("NetworkSet", "s", "ns", nets=["10.0.0.1/24", "fd00::/8"])),
    ("felix config", doc("FelixConfiguration", "default", reportingInterval="30s", reportingTTL="1m30s", endpointReportingEnabled=True, interfacePrefix="cali,tap", openstackRegion="r1", metadataPort=8775, nftablesMode="Enabled", defaultEndpointToHostAction="Drop", logSeverityScreen="Info", iptablesMarkMask=0xFFFF0000)),
    ("cluster info", doc("ClusterInformation", "default", clusterGUID="abc", clusterType="openstack", datastoreReady=True)),
]  # fmt: skip


@pytest.mark.parametrize(("case", "document"), VALID, ids=[c[0] for c in VALID])
def test_valid(case: str, document: dict[str, Any]) -> None:
    assert _validate(document) == []


INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    # §3.2 names
    ("empty name", doc("GlobalNetworkPolicy", ""), "metadata.name", "lower case alphanumeric"),
    ("gnp two dots", doc("GlobalNetworkPolicy", "a.b.c"), "metadata.name", "at most one '.'"),
    ("gnp upper case", doc("GlobalNetworkPolicy", "Allow"), "metadata.name", "lower case"),
    ("gnp too long", doc("GlobalNetworkPolicy", LONG), "metadata.name", "name is too long by 1 bytes"),
    ("np bad special", doc("NetworkPolicy", "ossg.other.x", "ns"), "metadata.name", "lower case"),
    ("tier dot", doc("Tier", "a.b"), "metadata.name", "lower case"),
    ("tier too long", doc("Tier", "a" * 64), "metadata.name", "too long by 1 bytes"),
    ("profile underscore", doc("Profile", "a_b"), "metadata.name", "lower case"),
    ("namespace on cluster kind", doc("GlobalNetworkSet", "s", "ns"), "metadata.namespace", "not namespaced"),
    ("bad namespace", doc("NetworkSet", "s", "Bad_NS"), "metadata.namespace", "DNS-1123 label"),
    # §3.3 labels / annotations
    ("label key two slashes", meta(doc("Tier", "t"), labels={"a/b/c": "x"}), "metadata.labels", "qualified name"),
    ("label prefix upper", meta(doc("Tier", "t"), labels={"A.com/b": "x"}), "metadata.labels", "prefix part"),
    ("label name too long", meta(doc("Tier", "t"), labels={"a" * 64: "x"}), "metadata.labels", "no more than 63"),
    ("label value too long", meta(doc("Tier", "t"), labels={"a": "x" * 64}), "metadata.labels", "no more than 63"),
    ("label value bad char", meta(doc("Tier", "t"), labels={"a": "x y"}), "metadata.labels", "valid label value"),
    ("label value trailing dash", meta(doc("Tier", "t"), labels={"a": "x-"}), "metadata.labels", "valid label value"),
    ("empty prefix", meta(doc("Tier", "t"), labels={"/a": "x"}), "metadata.labels", "prefix part must be non-empty"),
    ("annotation bad key", meta(doc("Tier", "t"), annotations={"a b": "x"}), "metadata.annotations", "invalid annotation key"),
    ("annotations too big", meta(doc("Tier", "t"), annotations={"a": "x" * (256 * 1024)}), "metadata.annotations", "no more than 262144"),
    ("labelsToApply", doc("Profile", "p", labelsToApply={"a": "b c"}), "spec.labelsToApply", "valid label value"),
    ("networkset namespace label", meta(doc("NetworkSet", "s", "ns"), labels={"projectcalico.org/namespace": "x"}), "metadata.labels", "projectcalico.org/namespace is not a valid label name"),
    ("rule annotation key", gnp_rule(metadata={"annotations": {"-x": "y"}}), "spec.ingress[0].metadata.annotations", "invalid annotation key"),
    # §3.4 selectors
    ("bad policy selector", doc("GlobalNetworkPolicy", "p", selector="a =="), "spec.selector", "invalid selector"),
    ("selector newline", doc("GlobalNetworkPolicy", "p", selector="a == 'b'\n"), "spec.selector", "invalid selector"),
    ("bad sa selector", doc("NetworkPolicy", "p", "ns", serviceAccountSelector="has("), "spec.serviceAccountSelector", "invalid selector"),
    ("bad gnp namespaceSelector", doc("GlobalNetworkPolicy", "p", namespaceSelector="!"), "spec.namespaceSelector", "invalid selector"),
    ("global in policy selector", doc("GlobalNetworkPolicy", "p", selector="global()"), "spec.selector", "global()"),
    ("global in gnp namespaceSelector", doc("GlobalNetworkPolicy", "p", namespaceSelector="global()"), "spec.namespaceSelector", "global()"),
    ("global in sa selector", doc("GlobalNetworkPolicy", "p", serviceAccountSelector="global()"), "spec.serviceAccountSelector", "global()"),
    ("global in rule selector", gnp_rule(source={"selector": "global()"}), "spec.ingress[0].source.selector", "global()"),
    ("global combined", gnp_rule(destination={"namespaceSelector": "global() && a == 'b'"}), "spec.ingress[0].destination.namespaceSelector", "cannot be combined"),
    ("bad notSelector", gnp_rule(source={"notSelector": "a = 'b'"}), "spec.ingress[0].source.notSelector", "invalid selector"),
    ("bad rule sa selector", gnp_rule(source={"serviceAccounts": {"selector": "&&"}}), "spec.ingress[0].source.serviceAccounts.selector", "invalid selector"),
    ("selector too long", doc("GlobalNetworkPolicy", "p", selector="a == '" + "x" * 1018 + "'"), "spec.selector", "too long"),
    # §3.5 rules: action, ipVersion, protocol
    ("missing action", doc("GlobalNetworkPolicy", "p", ingress=[{}]), "spec.ingress[0].action", "action is required"),
    ("lower-case action", gnp_rule(action="allow"), "spec.ingress[0].action", "must be one of Allow, Deny, Log, Pass"),
    ("ipVersion 5", gnp_rule(ipVersion=5), "spec.ingress[0].ipVersion", "4 or 6"),
    ("protocol lower case", gnp_rule(protocol="tcp"), "spec.ingress[0].protocol", "protocol name invalid"),
    ("protocol 0", gnp_rule(protocol=0), "spec.ingress[0].protocol", "protocol number invalid"),
    ("protocol '256'", gnp_rule(protocol="256"), "spec.ingress[0].protocol", "protocol name invalid"),
    ("notProtocol bad", gnp_rule(notProtocol="Tcp"), "spec.ingress[0].notProtocol", "protocol name invalid"),
    # ports
    ("port 0", gnp_rule(protocol="TCP", destination={"ports": [0]}), "spec.ingress[0].destination.ports[0]", "port range invalid, port number must be between 1 and 65535"),
    ("range from 0", gnp_rule(protocol="TCP", source={"notPorts": ["0:80"]}), "spec.ingress[0].source.notPorts[0]", "port range invalid"),
    ("port name with dash range", gnp_rule(protocol="TCP", destination={"ports": ["80-90"]}), "spec.ingress[0].destination.ports[0]", "IANA service name"),
    ("port name upper", gnp_rule(protocol="TCP", destination={"ports": ["HTTP"]}), "spec.ingress[0].destination.ports[0]", "IANA"),
    ("port name underscore", gnp_rule(protocol="TCP", destination={"ports": ["my_port"]}), "spec.ingress[0].destination.ports[0]", "IANA"),
    ("port name too long", gnp_rule(protocol="TCP", destination={"ports": ["a" * 16]}), "spec.ingress[0].destination.ports[0]", "IANA"),
    ("port name double dash", gnp_rule(protocol="TCP", destination={"ports": ["a--b"]}), "spec.ingress[0].destination.ports[0]", "IANA"),
    ("ports with ICMP", gnp_rule(protocol="ICMP", destination={"ports": [80]}), "spec.ingress[0].protocol", "rules that specify ports must set protocol to TCP or UDP or SCTP"),
    ("ports with UDPLite", gnp_rule(protocol="UDPLite", destination={"ports": [80]}), "spec.ingress[0].protocol", "TCP or UDP or SCTP"),
    ("ports with protocol 47", gnp_rule(protocol=47, source={"ports": [80]}), "spec.ingress[0].protocol", "TCP or UDP or SCTP"),
    ("numeric port without protocol", gnp_rule(destination={"ports": [80]}), "spec.ingress[0].protocol", "rules with numeric port or port range must set protocol"),
    ("range without protocol (notProtocol doesn't count)", gnp_rule(notProtocol="TCP", destination={"notPorts": ["1:2"]}), "spec.ingress[0].protocol", "numeric port"),
    ("named port with ICMP", gnp_rule(protocol="ICMP", destination={"ports": ["http"]}), "spec.ingress[0].protocol", "TCP or UDP or SCTP"),
    # ICMP
    ("icmp type 255", gnp_rule(protocol="ICMP", icmp={"type": 255}), "spec.ingress[0].icmp.type", "between 0 and 254"),
    ("icmp code 256", gnp_rule(protocol="ICMP", icmp={"type": 3, "code": 256}), "spec.ingress[0].icmp.code", "between 0 and 255"),
    ("icmp code without type", gnp_rule(protocol="ICMP", icmp={"code": 1}), "spec.ingress[0].icmp.code", "ICMP code specified without an ICMP type"),
    ("icmp without protocol", gnp_rule(icmp={"type": 8}), "spec.ingress[0].icmp", "ICMP or ICMPv6"),
    ("icmp with TCP", gnp_rule(protocol="TCP", icmp={"type": 8}), "spec.ingress[0].icmp", "ICMP or ICMPv6"),
    ("notICMP without protocol", gnp_rule(notICMP={"type": 8}), "spec.ingress[0].notICMP", "ICMP or ICMPv6"),
    ("ICMP with ipVersion 6", gnp_rule(protocol="ICMP", ipVersion=6), "spec.ingress[0].protocol", "IPv6"),
    ("ICMPv6 with ipVersion 4", gnp_rule(notProtocol="ICMPv6", ipVersion=4), "spec.ingress[0].notProtocol", "IPv4"),
    # CIDRs
    ("host bits", gnp_rule(source={"nets": ["10.0.0.1/24"]}), "spec.ingress[0].source.nets[0]", "strictly masked"),
    ("not a cidr", gnp_rule(destination={"notNets": ["10.0.0.0/33"]}), "spec.ingress[0].destination.notNets[0]", "invalid CIDR"),
    ("netmask form", gnp_rule(source={"nets": ["10.0.0.0/255.0.0.0"]}), "spec.ingress[0].source.nets[0]", "invalid CIDR"),
    ("mixed families", gnp_rule(source={"nets": ["10.0.0.0/8"]}, destination={"nets": ["fd00::/8"]}), "spec.ingress[0]", "both IPv4 and IPv6"),
    ("ipVersion mismatch", gnp_rule(ipVersion=6, source={"nets": ["10.0.0.0/8"]}), "spec.ingress[0].ipVersion", "doesn't match CIDR version"),
    ("catch-all notNets", gnp_rule(source={"notNets": ["0.0.0.0/0"]}), "spec.ingress[0].source.notNets[0]", "catch-all"),
    ("catch-all v6 notNets", gnp_rule(destination={"notNets": ["::/0"]}), "spec.ingress[0].destination.notNets[0]", "catch-all"),
    # services
    ("services without name", np_rule(source={"services": {"namespace": "ns"}}), "spec.ingress[0].source.services.name", "must specify a name"),
    ("services with selector", np_rule(source={"services": {"name": "s"}, "selector": "a == 'b'"}), "spec.ingress[0].source.services", "cannot be combined"),
    ("services with nets", np_rule("egress", destination={"services": {"name": "s"}, "nets": ["10.0.0.0/8"]}), "spec.egress[0].destination.services", "cannot be combined"),
    ("services with destination ports", np_rule("egress", protocol="TCP", destination={"services": {"name": "s"}, "ports": [80]}), "spec.egress[0].destination.services", "destination ports"),
    ("services in ingress destination", np_rule(destination={"services": {"name": "s"}}), "spec.ingress[0].destination.services", "source of ingress rules"),
    ("services in egress source", np_rule("egress", source={"services": {"name": "s"}}), "spec.egress[0].source.services", "destination of egress rules"),
    ("gnp services without namespace", gnp_rule(source={"services": {"name": "s"}}), "spec.ingress[0].source.services.namespace", "must specify a namespace"),
    # http
    ("http on deny", gnp_rule(action="Deny", http={"methods": ["GET"]}), "spec.ingress[0].http", "only allowed on Allow"),
    ("http with UDP", gnp_rule(protocol="UDP", http={"methods": ["GET"]}), "spec.ingress[0].http", "protocol TCP"),
    ("http in egress", gnp_rule("egress", http={"methods": ["GET"]}), "spec.egress[0].http", "not allowed in egress"),
    ("http duplicate methods", gnp_rule(http={"methods": ["GET", "GET"]}), "spec.ingress[0].http.methods[1]", "unique"),
    ("http path both", gnp_rule(http={"paths": [{"exact": "/a", "prefix": "/b"}]}), "spec.ingress[0].http.paths[0]", "exactly one"),
    ("http path no slash", gnp_rule(http={"paths": [{"prefix": "a"}]}), "spec.ingress[0].http.paths[0]", "start with '/'"),
    ("http path query", gnp_rule(http={"paths": [{"exact": "/a?b"}]}), "spec.ingress[0].http.paths[0]", "'?'"),
    # policy spec
    ("bad type", doc("GlobalNetworkPolicy", "p", types=["ingress"]), "spec.types[0]", "Ingress or Egress"),
    ("duplicate type", doc("GlobalNetworkPolicy", "p", types=["Egress", "Egress"]), "spec.types[1]", "'Egress' type specified more than once"),
    ("bad hint", doc("GlobalNetworkPolicy", "p", performanceHints=["Fast"]), "spec.performanceHints[0]", "AssumeNeededOnEveryNode"),
    ("duplicate hint", doc("GlobalNetworkPolicy", "p", performanceHints=["AssumeNeededOnEveryNode"] * 2), "spec.performanceHints[1]", "unique"),
    ("bad tier name", doc("GlobalNetworkPolicy", "p", tier="Tier_1"), "spec.tier", "DNS-1123"),
    ("too many rules", doc("GlobalNetworkPolicy", "p", egress=[{"action": "Allow"}] * 1025), "spec.egress", "at most 1024"),
    ("preDNAT and doNotTrack", doc("GlobalNetworkPolicy", "p", preDNAT=True, doNotTrack=True, applyOnForward=True), "spec.preDNAT", "cannot both be true"),
    ("doNotTrack without applyOnForward", doc("GlobalNetworkPolicy", "p", doNotTrack=True), "spec.applyOnForward", "doNotTrack"),
    ("preDNAT without applyOnForward", doc("GlobalNetworkPolicy", "p", preDNAT=True), "spec.applyOnForward", "preDNAT"),
    ("preDNAT with egress", doc("GlobalNetworkPolicy", "p", preDNAT=True, applyOnForward=True, egress=[{"action": "Allow"}]), "spec.egress", "preDNAT policy cannot have egress rules"),
    ("preDNAT Egress type", doc("GlobalNetworkPolicy", "p", preDNAT=True, applyOnForward=True, types=["Egress"]), "spec.types", "'Egress' type"),
    ("profile rule checked", doc("Profile", "p", egress=[{"action": "Nope"}]), "spec.egress[0].action", "must be one of"),
    # tiers
    ("tier action", doc("Tier", "t", defaultAction="Allow"), "spec.defaultAction", "Deny or Pass"),
    ("default tier order", doc("Tier", "default", order=5), "spec.order", "order 1000000"),
    ("default tier pass", doc("Tier", "default", defaultAction="Pass"), "spec.defaultAction", "defaultAction Deny"),
    ("kube-baseline order", doc("Tier", "kube-baseline", order=1), "spec.order", "10000000"),
    # endpoints
    ("wep name mismatch", wep(name="felix-host-1-openstack-instance-1-DEADBEEF-1234-5678"), "metadata.name", "expected name felix--host--1-openstack-instance--1-DEADBEEF--1234--5678"),
    ("wep missing node", wep(node=""), "spec.node", "must specify node"),
    ("wep missing endpoint", wep(endpoint=""), "spec.endpoint", "must specify endpoint"),
    ("wep bad ipNetworks", wep(ipNetworks=["10.0.0.1/32/32"]), "spec.ipNetworks[0]", "invalid CIDR"),
    ("wep bad gateway family", wep(ipv4Gateway="fd00::1"), "spec.ipv4Gateway", "IPv4"),
    ("wep bad nat", wep(ipNATs=[{"internalIP": "10.0.0.1", "externalIP": "x"}]), "spec.ipNATs[0].externalIP", "invalid IP"),
    ("wep nat outside networks", wep(ipNATs=[{"internalIP": "10.0.0.1", "externalIP": "172.24.4.10"}]), "spec.ipNATs[0].internalIP", "NAT is not in the endpoint networks"),
    ("wep bad mac", wep(mac="fa:16:3e"), "spec.mac", "MAC"),
    ("wep bad interface", wep(interfaceName="tap-much-too-long-name"), "spec.interfaceName", "1-15"),
    ("wep bad profile", wep(profiles=["Bad_Profile"]), "spec.profiles[0]", "subdomain"),
    ("wep bad port", wep(ports=[{"name": "http", "protocol": "ICMP", "port": 0}]), "spec.ports[0].protocol", "TCP, UDP or SCTP"),
    ("wep port 0", wep(ports=[{"name": "http", "protocol": "TCP", "port": 0}]), "spec.ports[0].port", "between 1 and 65535"),
    ("wep negative qos", wep(qosControls={"egressBandwidth": -1}), "spec.qosControls.egressBandwidth", "negative"),
    ("hep nothing", doc("HostEndpoint", "h", node="n"), "spec", "interfaceName or expectedIPs"),
    ("hep no node", doc("HostEndpoint", "h", interfaceName="eth0"), "spec.node", "must specify node"),
    ("hep bad ip", doc("HostEndpoint", "h", node="n", expectedIPs=["10.0.0.0/8"]), "spec.expectedIPs[0]", "invalid IP"),
    # sets
    ("networkset bad cidr", doc("GlobalNetworkSet", "s", nets=["10.0.0.300"]), "spec.nets[0]", "invalid CIDR"),
    # felix configuration
    ("felix region", doc("FelixConfiguration", "default", openstackRegion="Region_1"), "spec.openstackRegion", "DNS-1123"),
    ("felix region too long", doc("FelixConfiguration", "default", openstackRegion="r" * 47), "spec.openstackRegion", "47 characters"),
    ("felix port", doc("FelixConfiguration", "default", metadataPort=70000), "spec.metadataPort", "port number"),
    ("felix nftables mode", doc("FelixConfiguration", "default", nftablesMode="on"), "spec.nftablesMode", "Enabled, Disabled, Auto"),
    ("felix action", doc("FelixConfiguration", "default", defaultEndpointToHostAction="DROP"), "spec.defaultEndpointToHostAction", "Drop, Accept, Return"),
    ("felix negative duration", doc("FelixConfiguration", "default", reportingTTL="-1s"), "spec.reportingTTL", "negative"),
    ("felix interface prefix", doc("FelixConfiguration", "default", interfacePrefix="cali,,tap"), "spec.interfacePrefix", "interface name prefixes"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "document", "path", "fragment"), INVALID, ids=[c[0] for c in INVALID]
)
def test_invalid(case: str, document: dict[str, Any], path: str, fragment: str) -> None:
    errors = _validate(document)
    matching = [reason for p, reason in errors if p == path]
    assert matching, errors
    assert any(fragment in reason for reason in matching), errors


def test_every_problem_is_reported_at_once() -> None:
    document = doc(
        "GlobalNetworkPolicy",
        "Bad",
        selector="a ==",
        ingress=[{"action": "allow", "protocol": "tcp", "destination": {"ports": [0]}}],
    )
    with pytest.raises(ValidationError) as info:
        validation.check(codec.decode(document), where="f.yaml#1")
    paths = [f.path for f in info.value.fields]
    assert paths[:1] == ["metadata.name"]
    assert {"spec.selector", "spec.ingress[0].action", "spec.ingress[0].protocol",
            "spec.ingress[0].destination.ports[0]"} <= set(paths)  # fmt: skip
    text = str(info.value)
    assert text.startswith("f.yaml#1 GlobalNetworkPolicy(Bad): error with the following fields:")
    assert "spec.ingress[0].destination.ports[0] = '0' (port range invalid" in text


def test_validate_does_not_require_defaults_except_namespace() -> None:
    res = codec.decode(doc("NetworkPolicy", "p"))
    assert [f.path for f in validation.validate(res)] == ["metadata.namespace"]
    assert validation.validate(validation.apply_defaults(res)) == []


def test_every_kind_names_registered_checks() -> None:
    from regionmesh.model.kind_checks import KIND_CHECKS
    from regionmesh.model.kinds import KINDS

    assert {info.checks for info in KINDS.values()} <= set(KIND_CHECKS)
    assert KINDS["ClusterInformation"].checks == "name_only"
