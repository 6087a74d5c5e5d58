"""Table tests for regionmesh.openstack.translate (pure; no Neutron, no etcd)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from regionmesh.errors import TranslationError, ValidationError
from regionmesh.openstack import translate as t
from regionmesh.openstack.translate import (
    FixedIP,
    FloatingIP,
    HostRoute,
    NeutronPort,
    NeutronRule,
    NeutronSecurityGroup,
    NeutronSubnet,
    ProjectInfo,
    SecurityGroupRef,
)

SG = "5b4d1c3e-0000-4000-8000-000000000001"
SG2 = "5b4d1c3e-0000-4000-8000-000000000002"


# ------------------------------------------------------------------------------- names, labels


@pytest.mark.parametrize(
    ("value", "max_len", "expected"),
    [
        ("Dan's Project", 63, "Dan_s_Project"),
        ("_-+.934abc%_-", 63, "934abc"),
        ("web", 27, "web"),
        ("", 63, ""),
        ("---", 63, ""),
        ("a" * 40, 27, "a" * 27),
        ("abcdefghijklmnopqrstuvwxyz-_x", 27, "abcdefghijklmnopqrstuvwxyz"),  # cut, then strip
        ("é-name", 63, "name"),
    ],
)
def test_sanitize_label_value(value: str, max_len: int, expected: str) -> None:
    assert t.sanitize_label_value(value, max_len) == expected


def test_endpoint_name_escapes_every_dash() -> None:
    port = NeutronPort(
        id="DEADBEEF-1234-5678",
        network_id="n",
        device_id="instance-1",
        device_owner="compute:nova",
        mac_address="00:11:22:33:44:55",
    )
    assert (
        t.endpoint_name("felix-host-1", port)
        == "felix--host--1-openstack-instance--1-DEADBEEF--1234--5678"
    )
    assert t.workload_endpoint_name("a", "b", "c", "d") == "a-b-c-d"


@pytest.mark.parametrize(
    ("owner", "host", "vif", "migrating_to", "hosts"),
    [
        ("compute:nova", "cmp1", "tap", None, ("cmp1",)),
        ("compute:az1", "cmp1", "binding_failed", None, ("cmp1",)),
        ("kuryr:container", "cmp1", "tap", None, ("cmp1",)),
        ("compute:nova", "cmp1", "unbound", None, ()),
        ("compute:nova", "", "unbound", None, ()),
        ("compute:nova", "cmp1", "unbound", "cmp2", ("cmp1", "cmp2")),
        ("compute:nova", "cmp1", "tap", "cmp2", ("cmp1", "cmp2")),
        ("network:dhcp", "cmp1", "tap", None, ()),
        ("", "cmp1", "tap", None, ()),
    ],
)
def test_endpoint_hosts(
    owner: str, host: str, vif: str, migrating_to: str | None, hosts: tuple[str, ...]
) -> None:
    port = NeutronPort(
        id="p",
        network_id="n",
        device_id="d",
        device_owner=owner,
        mac_address="m",
        host_id=host,
        vif_type=vif,
        migrating_to=migrating_to,
    )
    assert t.endpoint_hosts(port) == hosts


FULL_PORT = NeutronPort(
    id="DEADBEEF-1234-5678",
    network_id="calico-network-id",
    device_id="instance-1",
    device_owner="compute:nova",
    mac_address="00:11:22:33:44:55",
    host_id="felix-host-1",
    vif_type="tap",
    fixed_ips=(
        FixedIP("10.65.0.2", "subnet-id-10.65.0--24", "10.65.0.1"),
        FixedIP("10.65.0.3", "subnet-id-10.65.0--24", "10.65.0.1"),
        FixedIP("2001:db8:a41:2::12", "subnet-v6", "2001:db8:a41:2::1"),
    ),
    allowed_address_pairs=("10.65.0.7", "2001:db8:a41:2::99", "10.66.0.0/24"),
    security_groups=(SecurityGroupRef(SG, "My SG!"), SecurityGroupRef(SG2, "")),
    floating_ips=(FloatingIP("10.65.0.2", "192.168.0.1"),),
    project_id="jane3",
    project=ProjectInfo("Jane's Project", "gibson"),
    network_name="calico network",
    dns_fqdn="vm1.example.org.",
)


def test_full_workload_endpoint_matches_networking_calico_bytes() -> None:
    doc = t.port_to_workload_endpoint(FULL_PORT, region="one")
    expected = {
        "kind": "WorkloadEndpoint",
        "apiVersion": "projectcalico.org/v3",
        "metadata": {
            "name": "felix--host--1-openstack-instance--1-DEADBEEF--1234--5678",
            "namespace": "openstack-region-one",
            "labels": {
                f"sg.projectcalico.org/openstack-{SG}": "My_SG",
                "sg-name.projectcalico.org/openstack-My_SG": SG,
                f"sg.projectcalico.org/openstack-{SG2}": "",
                "projectcalico.org/namespace": "openstack-region-one",
                "projectcalico.org/orchestrator": "openstack",
                "projectcalico.org/openstack-project-id": "jane3",
                "projectcalico.org/openstack-project-name": "Jane_s_Project",
                "projectcalico.org/openstack-project-parent-id": "gibson",
                "projectcalico.org/openstack-network-name": "calico_network",
            },
            "annotations": {
                "openstack.projectcalico.org/network-id": "calico-network-id",
                "openstack.projectcalico.org/fqdn": "vm1.example.org.",
            },
        },
        "spec": {
            "orchestrator": "openstack",
            "workload": "instance-1",
            "node": "felix-host-1",
            "endpoint": "DEADBEEF-1234-5678",
            "interfaceName": "tapDEADBEEF-12",
            "mac": "00:11:22:33:44:55",
            "ipv4Gateway": "10.65.0.1",
            "ipv6Gateway": "2001:db8:a41:2::1",
            "ipNetworks": [
                "10.65.0.2/32",
                "10.65.0.3/32",
                "2001:db8:a41:2::12/128",
                "10.65.0.7/32",
                "2001:db8:a41:2::99/128",
                "10.66.0.0/24",
            ],
            "allowedIps": ["10.65.0.7/32", "2001:db8:a41:2::99/128", "10.66.0.0/24"],
            "ipNATs": [{"internalIP": "10.65.0.2", "externalIP": "192.168.0.1"}],
        },
    }
    assert doc == expected
    # byte order: the same JSON text networking-calico's json.dumps produces
    assert json.dumps(doc) == json.dumps(expected)
    assert len(doc["spec"]["interfaceName"]) == 14


def test_minimal_workload_endpoint() -> None:
    port = NeutronPort(
        id="p1",
        network_id="net",
        device_id="vm",
        device_owner="compute:nova",
        mac_address="fa:16:3e:00:00:01",
        host_id="cmp1",
        vif_type="tap",
    )
    doc = t.port_to_workload_endpoint(port, region=None)
    assert doc["metadata"]["namespace"] == "openstack"
    assert doc["metadata"]["labels"] == {
        "projectcalico.org/namespace": "openstack",
        "projectcalico.org/orchestrator": "openstack",
    }
    assert doc["metadata"]["annotations"] == {"openstack.projectcalico.org/network-id": "net"}
    assert doc["spec"]["ipNetworks"] == [] and doc["spec"]["allowedIps"] == []
    assert "ipNATs" not in doc["spec"] and "ipv4Gateway" not in doc["spec"]
    # destination side of a live migration
    dest = t.port_to_workload_endpoint(port, region="two", host="cmp2")
    assert dest["metadata"]["name"] == "cmp2-openstack-vm-p1"
    assert dest["spec"]["node"] == "cmp2"


def test_unbound_port_has_no_endpoint() -> None:
    port = NeutronPort(
        id="p", network_id="n", device_id="d", device_owner="compute:x", mac_address="m"
    )
    with pytest.raises(TranslationError, match="binding:host_id"):
        t.port_to_workload_endpoint(port, region="one")


def test_long_sg_name_label_fits_63() -> None:
    port = NeutronPort(
        id="p", network_id="n", device_id="d", device_owner="compute:x", mac_address="m",
        host_id="h", vif_type="tap",
        security_groups=(SecurityGroupRef(SG, "x" * 100),),
    )  # fmt: skip
    labels = t.port_to_workload_endpoint(port, region="one")["metadata"]["labels"]
    name_keys = [k for k in labels if k.startswith("sg-name.")]
    assert len(name_keys) == 1 and len(name_keys[0]) == 63


# ------------------------------------------------------------------------------- rules


def rule(**kw: Any) -> NeutronRule:
    base: dict[str, Any] = {"id": "r1", "security_group_id": SG, "direction": "ingress"}
    base.update(kw)
    return NeutronRule(**base)


RULE_TABLE: list[tuple[str, NeutronRule, dict[str, Any] | None]] = [
    ("any v4", rule(), {"action": "Allow", "ipVersion": 4}),
    ("any v6 egress", rule(direction="egress", ethertype="IPv6"), {"action": "Allow", "ipVersion": 6}),
    ("protocol any", rule(protocol="any"), {"action": "Allow", "ipVersion": 4}),
    ("protocol 0", rule(protocol=0), {"action": "Allow", "ipVersion": 4}),
    ("protocol -1", rule(protocol=-1), {"action": "Allow", "ipVersion": 4}),
    ("protocol '0'", rule(protocol="0"), {"action": "Allow", "ipVersion": 4}),
    ("tcp 80 ingress", rule(protocol="tcp", port_range_min=80, port_range_max=80),
     {"action": "Allow", "ipVersion": 4, "protocol": 6, "destination": {"ports": [80]}}),
    ("tcp range ingress from net",
     rule(protocol="tcp", port_range_min=1000, port_range_max=2000, remote_ip_prefix="10.0.0.0/8"),
     {"action": "Allow", "ipVersion": 4, "protocol": 6, "destination": {"ports": ["1000:2000"]},
      "source": {"nets": ["10.0.0.0/8"]}}),
    ("udp egress to net", rule(direction="egress", protocol="udp", port_range_min=53,
                               port_range_max=53, remote_ip_prefix="10.1.2.3/32"),
     {"action": "Allow", "ipVersion": 4, "protocol": 17,
      "destination": {"nets": ["10.1.2.3/32"], "ports": [53]}}),
    ("egress ports only", rule(direction="egress", protocol="sctp", port_range_min=5,
                               port_range_max=6),
     {"action": "Allow", "ipVersion": 4, "protocol": 132, "destination": {"ports": ["5:6"]}}),
    ("numeric protocol string", rule(protocol="47"),
     {"action": "Allow", "ipVersion": 4, "protocol": "47"}),
    ("numeric protocol int", rule(protocol=47), {"action": "Allow", "ipVersion": 4, "protocol": 47}),
    ("named protocol gre", rule(protocol="gre"), {"action": "Allow", "ipVersion": 4, "protocol": 47}),
    ("tcp as number 6 with ports", rule(protocol="6", port_range_min=22, port_range_max=22),
     {"action": "Allow", "ipVersion": 4, "protocol": "6", "destination": {"ports": [22]}}),
    ("icmp type code", rule(protocol="icmp", port_range_min=8, port_range_max=0),
     {"action": "Allow", "ipVersion": 4, "protocol": "ICMP", "icmp": {"type": 8, "code": 0}}),
    ("icmp type only", rule(protocol="icmp", port_range_min=3),
     {"action": "Allow", "ipVersion": 4, "protocol": "ICMP", "icmp": {"type": 3}}),
    ("icmp any (-1)", rule(protocol="icmp", port_range_min=-1, port_range_max=-1),
     {"action": "Allow", "ipVersion": 4, "protocol": "ICMP"}),
    ("icmp with IPv6 (legacy)", rule(protocol="icmp", ethertype="IPv6", port_range_min=128),
     {"action": "Allow", "ipVersion": 6, "protocol": "ICMPv6", "icmp": {"type": 128}}),
    ("ipv6-icmp", rule(protocol="ipv6-icmp", ethertype="IPv6", port_range_min=135, port_range_max=0),
     {"action": "Allow", "ipVersion": 6, "protocol": "ICMPv6", "icmp": {"type": 135, "code": 0}}),
    ("legacy icmpv6 keeps type/code", rule(protocol="icmpv6", ethertype="IPv6", port_range_min=1,
                                            port_range_max=4),
     {"action": "Allow", "ipVersion": 6, "protocol": "ICMPv6", "icmp": {"type": 1, "code": 4}}),
    ("numeric 58 keeps type/code", rule(protocol=58, ethertype="IPv6", port_range_min=2),
     {"action": "Allow", "ipVersion": 6, "protocol": "ICMPv6", "icmp": {"type": 2}}),
    ("numeric '1' keeps type/code", rule(protocol="1", port_range_min=0, port_range_max=0),
     {"action": "Allow", "ipVersion": 4, "protocol": "ICMP", "icmp": {"type": 0, "code": 0}}),
    ("remote group ingress", rule(remote_group_id=SG2),
     {"action": "Allow", "ipVersion": 4,
      "source": {"selector": f"has(sg.projectcalico.org/openstack-{SG2})"}}),
    ("remote group egress tcp", rule(direction="egress", protocol="tcp", port_range_min=443,
                                     port_range_max=443, remote_group_id=SG2),
     {"action": "Allow", "ipVersion": 4, "protocol": 6,
      "destination": {"selector": f"has(sg.projectcalico.org/openstack-{SG2})", "ports": [443]}}),
    ("prefix normalised (host bits)", rule(remote_ip_prefix="10.1.2.3/8"),
     {"action": "Allow", "ipVersion": 4, "source": {"nets": ["10.0.0.0/8"]}}),
    ("anywhere v4", rule(remote_ip_prefix="0.0.0.0/0"),
     {"action": "Allow", "ipVersion": 4, "source": {"nets": ["0.0.0.0/0"]}}),
    ("v6 prefix", rule(ethertype="IPv6", remote_ip_prefix="2001:db8::/32"),
     {"action": "Allow", "ipVersion": 6, "source": {"nets": ["2001:db8::/32"]}}),
    ("address group -> its v4 CIDRs", rule(remote_address_group_id="ag1"),
     {"action": "Allow", "ipVersion": 4, "source": {"nets": ["10.9.0.0/16", "192.0.2.7/32"]}}),
    ("address group -> its v6 CIDRs", rule(direction="egress", ethertype="IPv6",
                                           remote_address_group_id="ag1"),
     {"action": "Allow", "ipVersion": 6, "destination": {"nets": ["2001:db8:1::/48"]}}),
    ("address group without v4 CIDRs allows nothing", rule(remote_address_group_id="ag6only"), None),
    ("empty address group allows nothing", rule(remote_address_group_id="agempty"), None),
]  # fmt: skip

ADDRESS_GROUPS = {
    "ag1": ["10.9.0.0/16", "2001:db8:1::/48", "192.0.2.7/32", "10.9.0.0/16"],
    "ag6only": ["2001:db8:2::/48"],
    "agempty": [],
}


@pytest.mark.parametrize(("case", "neutron", "calico"), RULE_TABLE, ids=[r[0] for r in RULE_TABLE])
def test_rule_translation(case: str, neutron: NeutronRule, calico: dict[str, Any] | None) -> None:
    got = t.rule_to_calico(neutron, ADDRESS_GROUPS)
    assert got == calico
    if got is not None:
        assert json.dumps(got) == json.dumps(calico)  # key order too


BAD_RULES: list[tuple[str, NeutronRule, str, str]] = [
    ("unknown address group", rule(remote_address_group_id="nope"), "remote_address_group_id", "not known"),
    ("address group + prefix", rule(remote_address_group_id="ag1", remote_ip_prefix="10.0.0.0/8"),
     "remote_address_group_id", "both"),
    ("unknown protocol name", rule(protocol="quic"), "protocol", "unknown IP protocol name"),
    ("protocol 256", rule(protocol=256), "protocol", "0-255"),
    ("protocol 300 string", rule(protocol="300"), "protocol", "0-255"),
    ("bad direction", rule(direction="sideways"), "direction", "ingress or egress"),
    ("bad ethertype", rule(ethertype="IPX"), "ethertype", "IPv4 or IPv6"),
    ("min without max", rule(protocol="tcp", port_range_min=80), "port_range_min", "both"),
    ("max without min", rule(protocol="tcp", port_range_max=80), "port_range_min", "both"),
    ("min > max", rule(protocol="tcp", port_range_min=90, port_range_max=80), "port_range_min",
     "invalid port range"),
    ("port 0", rule(protocol="udp", port_range_min=0, port_range_max=10), "port_range_min",
     "invalid port range"),
    ("ports without protocol", rule(port_range_min=80, port_range_max=80), "protocol", "TCP, UDP or SCTP"),
    ("ports with dccp", rule(protocol="dccp", port_range_min=80, port_range_max=80), "protocol",
     "TCP, UDP or SCTP"),
    ("ports with udplite", rule(protocol="udplite", port_range_min=1, port_range_max=2), "protocol",
     "TCP, UDP or SCTP"),
    ("icmp code without type", rule(protocol="icmp", port_range_max=3), "port_range_max", "without"),
    ("icmp type 255", rule(protocol="icmp", port_range_min=255), "port_range_min", "0-254"),
    ("icmpv6 with IPv4", rule(protocol="icmpv6", port_range_min=1), "protocol", "IPv4"),
    ("number 1 with IPv6", rule(protocol=1, ethertype="IPv6"), "protocol", "IPv6"),
    ("v6 prefix in v4 rule", rule(remote_ip_prefix="2001:db8::/32"), "remote_ip_prefix", "IPv6 prefix"),
    ("garbage prefix", rule(remote_ip_prefix="10.0.0.0/33"), "remote_ip_prefix", ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "neutron", "path", "reason"), BAD_RULES, ids=[r[0] for r in BAD_RULES]
)
def test_rule_refused(case: str, neutron: NeutronRule, path: str, reason: str) -> None:
    with pytest.raises(TranslationError) as info:
        t.rule_to_calico(neutron, ADDRESS_GROUPS)
    err = info.value
    assert isinstance(err, ValidationError)
    assert err.fields[0].path == path
    assert reason in err.fields[0].reason
    assert f"rule {neutron.id}" in str(err)


def test_default_security_group_policy() -> None:
    rules = (
        rule(id="a", ethertype="IPv4", remote_group_id=SG),
        rule(id="b", ethertype="IPv6", remote_group_id=SG),
        rule(id="c", direction="egress", ethertype="IPv4"),
        rule(id="d", direction="egress", ethertype="IPv6"),
        rule(id="other", security_group_id=SG2, direction="egress"),  # another SG's rule: ignored
    )
    doc = t.security_group_to_policy(NeutronSecurityGroup(SG, "default", rules), region="one")
    selector = f"has(sg.projectcalico.org/openstack-{SG})"
    assert doc == {
        "kind": "NetworkPolicy",
        "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": f"ossg.default.{SG}", "namespace": "openstack-region-one"},
        "spec": {
            "ingress": [
                {"action": "Allow", "ipVersion": 4, "source": {"selector": selector}},
                {"action": "Allow", "ipVersion": 6, "source": {"selector": selector}},
            ],
            "egress": [{"action": "Allow", "ipVersion": 4}, {"action": "Allow", "ipVersion": 6}],
            "selector": selector,
        },
    }
    assert "types" not in doc["spec"] and "order" not in doc["spec"]


def test_numeric_protocol_string_round_trips_and_matches_like_the_number() -> None:
    """``--protocol 47`` is stored as ``"47"`` (networking-calico's bytes); the model keeps the
    string through decode/encode, validation accepts it and policy evaluation reads it as 47."""
    from regionmesh.model import codec
    from regionmesh.model.validation import validate
    from regionmesh.policy.flows import Flow, compile_rule

    rules = (
        rule(id="g", protocol="47"),
        rule(id="t", protocol="6", port_range_min=22, port_range_max=22),
    )
    doc = t.security_group_to_policy(NeutronSecurityGroup(SG, "gre", rules), region="one")
    assert [r["protocol"] for r in doc["spec"]["ingress"]] == ["47", "6"]
    resource = codec.decode(doc)
    assert validate(resource) == []
    stored = codec.to_storage(resource)
    assert json.dumps(stored["spec"], sort_keys=True) == json.dumps(doc["spec"], sort_keys=True)
    gre, ssh = resource.spec.ingress  # type: ignore[attr-defined]
    assert (
        gre.protocol
        == codec.decode(
            {
                **doc,
                "spec": {**doc["spec"], "ingress": [{**doc["spec"]["ingress"][0], "protocol": 47}]},
            }
        )
        .spec.ingress[0]
        .protocol
    )  # type: ignore[attr-defined]

    class NoAddresses:
        def address_matches(self, selector: object, ip: object) -> bool:
            return False

        def named_port_matches(self, *args: object) -> bool:
            return False

    index = NoAddresses()
    assert compile_rule(gre, "openstack-region-one").matches(
        Flow.make("10.0.0.1", "10.0.0.2", 47), index
    )
    assert not compile_rule(gre, "x").matches(Flow.make("10.0.0.1", "10.0.0.2", 6, 1, 22), index)
    assert compile_rule(ssh, "x").matches(Flow.make("10.0.0.1", "10.0.0.2", 6, 1, 22), index)
    assert not compile_rule(ssh, "x").matches(Flow.make("10.0.0.1", "10.0.0.2", 6, 1, 23), index)


def test_policy_fails_closed_on_any_bad_rule() -> None:
    rules = (
        rule(id="good", protocol="tcp", port_range_min=22, port_range_max=22),
        rule(id="bad1", remote_address_group_id="unknown"),
        rule(id="bad2", protocol="nonsense"),
    )
    with pytest.raises(TranslationError) as info:
        t.security_group_to_policy(NeutronSecurityGroup(SG, "web", rules), region="one")
    assert [f.path for f in info.value.fields] == ["remote_address_group_id", "protocol"]
    # an empty address group drops just that rule (allows nothing), never "allow any"
    spec = t.policy_spec(SG, (rule(id="x", remote_address_group_id="agempty"),), ADDRESS_GROUPS)
    assert spec["ingress"] == []
    # the partial spec leaves out exactly the bad rules
    partial, errors = t.policy_spec_partial(SG, rules, ADDRESS_GROUPS)
    assert partial["ingress"] == [
        {"action": "Allow", "ipVersion": 4, "protocol": 6, "destination": {"ports": [22]}}
    ]
    assert [e.fields[0].path for e in errors] == ["remote_address_group_id", "protocol"]


# ------------------------------------------------------------------------------- subnets


@pytest.mark.parametrize(
    ("subnet", "record"),
    [
        (
            NeutronSubnet("s1", "net1", "10.65.0.0/24", "10.65.0.1"),
            {"network_id": "net1", "cidr": "10.65.0.0/24", "host_routes": [], "gateway_ip": "10.65.0.1"},
        ),
        (
            NeutronSubnet(
                "s2", "net1", "10.65.1.0/24", None,
                host_routes=(HostRoute("10.0.0.0/8", "10.65.1.254"),),
                dns_nameservers=("8.8.8.8", "1.1.1.1"),
            ),
            {"network_id": "net1", "cidr": "10.65.1.0/24",
             "host_routes": [{"destination": "10.0.0.0/8", "nexthop": "10.65.1.254"}],
             "gateway_ip": None, "dns_servers": ["8.8.8.8", "1.1.1.1"]},
        ),
        (
            NeutronSubnet("s3", "net1", "2001:db8::/64", "2001:db8::1", ipv6_ra_mode="slaac",
                          ipv6_address_mode="slaac"),
            {"network_id": "net1", "cidr": "2001:db8::/64", "host_routes": [],
             "gateway_ip": "2001:db8::1", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"},
        ),
        (  # only one of the two v6 modes: neither is written
            NeutronSubnet("s4", "net1", "2001:db8:1::/64", None, ipv6_address_mode="slaac"),
            {"network_id": "net1", "cidr": "2001:db8:1::/64", "host_routes": [], "gateway_ip": None},
        ),
        (NeutronSubnet("s5", "net1", "10.9.0.0/16", enable_dhcp=False), None),
    ],
)  # fmt: skip
def test_subnet_record(subnet: NeutronSubnet, record: dict[str, Any] | None) -> None:
    got = t.subnet_to_dhcp_record(subnet)
    assert got == record
    if record is not None:
        assert json.dumps(got) == json.dumps(record)


@pytest.mark.parametrize(
    ("cidr", "others", "hits"),
    [
        ("10.1.200.0/24", ["10.1.0.0/16"], ["10.1.0.0/16"]),
        ("10.1.0.0/16", ["10.1.200.0/24", "10.2.0.0/16"], ["10.1.200.0/24"]),
        ("10.2.0.0/16", ["10.1.0.0/16"], []),
        ("10.1.0.0/16", ["2001:db8::/32"], []),
        ("2001:db8:1::/64", ["2001:db8::/32"], ["2001:db8::/32"]),
    ],
)
def test_overlapping(cidr: str, others: list[str], hits: list[str]) -> None:
    assert t.overlapping(cidr, others) == hits


def test_server_metadata_kept_from_existing() -> None:
    doc = t.port_to_workload_endpoint(FULL_PORT, region="one")
    fresh = t.with_server_metadata(
        doc, None, new_uid=lambda: "u-1", now=lambda: "2024-01-01T00:00:00Z"
    )
    assert list(fresh["metadata"])[:4] == ["name", "namespace", "creationTimestamp", "uid"]
    assert fresh["metadata"]["uid"] == "u-1"
    again = t.with_server_metadata(
        doc, fresh, new_uid=lambda: "u-2", now=lambda: "2025-01-01T00:00:00Z"
    )
    assert again["metadata"]["uid"] == "u-1"
    assert again["metadata"]["creationTimestamp"] == "2024-01-01T00:00:00Z"
    assert t.same_content(fresh, again)
    changed = t.port_to_workload_endpoint(FULL_PORT, region="one", host="other")
    assert not t.same_content(fresh, changed)
    assert t.same_content(None, None) and not t.same_content(fresh, None)
