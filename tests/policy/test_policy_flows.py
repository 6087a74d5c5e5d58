"""Rule matching field by field (policy-model.md §2.7; common mistakes §7.6, §7.13–7.15)."""

from typing import Any

import pytest
from tests.policy.builders import R1, R2, gnetset, netset, rule, wep

from regionmesh.model import Rule
from regionmesh.policy import Direction, Flow, Snapshot, rule_matches

WEB = wep(
    "web",
    ["10.0.0.1", "fd00::1"],
    {"app": "web"},
    ports=[
        {"name": "http", "protocol": "TCP", "port": 8080},
        {"name": "dns", "protocol": "UDP", "port": 53},
        {"name": "dns", "protocol": "TCP", "port": 5353},
    ],
)
DB = wep(
    "db", ["10.0.0.2"], {"app": "db"}, ports=[{"name": "http", "protocol": "TCP", "port": 9090}]
)
OTHER_NS = wep("web2", ["10.1.0.1"], {"app": "web"}, ns=R2)
EXT = gnetset("ext", ["198.51.100.0/24"], {"kind": "partner"})
NSSET = netset("nsset", ["203.0.113.0/25"], {"kind": "office"}, ns=R1)
SNAP = Snapshot([WEB, DB, OTHER_NS, EXT, NSSET])


def matches(r: dict[str, Any], flow: Flow, namespace: str = "") -> bool:
    return rule_matches(Rule.model_validate(r), flow, Direction.INGRESS, SNAP, namespace)


def tcp(src: str, dst: str, dport: int = 80, sport: int = 40000) -> Flow:
    return Flow.make(src, dst, "TCP", sport, dport)


def test_protocol_by_name_and_number_and_not_protocol() -> None:
    f = tcp("10.0.0.2", "10.0.0.1")
    assert matches(rule(protocol="TCP"), f)
    assert matches(rule(protocol=6), f)
    assert not matches(rule(protocol="UDP"), f)
    assert not matches(rule(notProtocol="TCP"), f)
    assert matches(rule(notProtocol=17), f)
    assert matches(rule(protocol=47), Flow.make("10.0.0.2", "10.0.0.1", 47))


@pytest.mark.parametrize(
    ("ports", "dport", "expected"),
    [
        ([80], 80, True),
        ([80], 81, False),
        (["80:90"], 80, True),
        (["80:90"], 90, True),
        (["80:90"], 91, False),
        ([22, "1000:2000"], 1500, True),
    ],
)
def test_ports_and_ranges(ports: list[Any], dport: int, expected: bool) -> None:
    r = rule(protocol="TCP", destination={"ports": ports})
    assert matches(r, tcp("10.0.0.2", "10.0.0.1", dport)) is expected
    n = rule(protocol="TCP", destination={"notPorts": ports})
    assert matches(n, tcp("10.0.0.2", "10.0.0.1", dport)) is (not expected)


def test_source_ports() -> None:
    r = rule(protocol="UDP", source={"ports": [53]})
    assert matches(r, Flow.make("10.0.0.2", "10.0.0.1", "UDP", 53, 1000))
    assert not matches(r, Flow.make("10.0.0.2", "10.0.0.1", "UDP", 54, 1000))


def test_named_port_matches_declared_port_and_protocol() -> None:
    r = rule(protocol="TCP", destination={"ports": ["http"]})
    assert matches(r, tcp("10.0.0.2", "10.0.0.1", 8080))
    assert not matches(r, tcp("10.0.0.2", "10.0.0.1", 80))
    # DB declares http as 9090: the name resolves per destination endpoint
    assert matches(r, tcp("10.0.0.1", "10.0.0.2", 9090))
    assert not matches(r, tcp("10.0.0.1", "10.0.0.2", 8080))
    # UDP flow to the TCP named port: protocol must match
    assert not matches(
        rule(protocol="UDP", destination={"ports": ["http"]}),
        Flow.make("10.0.0.2", "10.0.0.1", "UDP", 1, 8080),
    )


def test_named_port_without_rule_protocol_uses_each_declared_protocol() -> None:
    r = rule(destination={"ports": ["dns"]})
    assert matches(r, Flow.make("10.0.0.2", "10.0.0.1", "UDP", 1, 53))
    assert matches(r, Flow.make("10.0.0.2", "10.0.0.1", "TCP", 1, 5353))
    assert not matches(r, Flow.make("10.0.0.2", "10.0.0.1", "TCP", 1, 53))


def test_named_port_limited_by_side_selector() -> None:
    r = rule(protocol="TCP", destination={"selector": "app == 'db'", "ports": ["http"]})
    assert not matches(r, tcp("10.0.0.2", "10.0.0.1", 8080))
    assert matches(r, tcp("10.0.0.1", "10.0.0.2", 9090))


@pytest.mark.parametrize(
    ("icmp_field", "itype", "icode", "expected"),
    [
        ({"type": 8}, 8, 0, True),
        ({"type": 8}, 8, 5, True),  # type without code matches any code
        ({"type": 8}, 0, 0, False),
        ({"type": 3, "code": 1}, 3, 1, True),
        ({"type": 3, "code": 1}, 3, 2, False),
    ],
)
def test_icmp_type_and_code(
    icmp_field: dict[str, int], itype: int, icode: int, expected: bool
) -> None:
    f = Flow.make("10.0.0.2", "10.0.0.1", "ICMP", icmp_type=itype, icmp_code=icode)
    assert matches(rule(protocol="ICMP", icmp=icmp_field), f) is expected
    assert matches(rule(protocol="ICMP", notICMP=icmp_field), f) is (not expected)


def test_nets_not_nets_and_bare_ip() -> None:
    f = tcp("192.0.2.7", "10.0.0.1")
    assert matches(rule(source={"nets": ["192.0.2.0/24"]}), f)
    assert matches(rule(source={"nets": ["10.9.9.9", "192.0.2.7"]}), f)
    assert not matches(rule(source={"nets": ["192.0.2.8"]}), f)
    assert not matches(rule(source={"notNets": ["192.0.2.0/24"]}), f)
    assert matches(rule(source={"notNets": ["192.0.3.0/24"]}), f)
    assert matches(rule(destination={"nets": ["10.0.0.1/32"]}), f)


def test_ip_version() -> None:
    v4 = tcp("10.0.0.2", "10.0.0.1")
    v6 = tcp("fd00::2", "fd00::1")
    assert matches(rule(ipVersion=4), v4)
    assert not matches(rule(ipVersion=4), v6)
    assert matches(rule(ipVersion=6), v6)
    assert matches(rule(), v6)


def test_rule_with_only_v6_cidrs_never_matches_v4_even_in_not_nets() -> None:
    v4 = tcp("10.0.0.2", "10.0.0.1")
    assert not matches(rule(source={"notNets": ["fd00:dead::/64"]}), v4)
    assert not matches(rule(source={"nets": ["fd00::/8"]}), v4)
    assert matches(rule(source={"notNets": ["fd00:dead::/64"]}), tcp("fd00::2", "fd00::1"))


def test_not_nets_catch_all_drops_the_rule_for_that_family() -> None:
    assert not matches(rule(source={"notNets": ["0.0.0.0/0"]}), tcp("10.0.0.2", "10.0.0.1"))


def test_selector_matches_endpoint_ips_and_network_set_nets() -> None:
    assert matches(rule(source={"selector": "app == 'db'"}), tcp("10.0.0.2", "10.0.0.1"))
    assert not matches(rule(source={"selector": "app == 'db'"}), tcp("10.0.0.3", "10.0.0.1"))
    assert matches(rule(source={"selector": "kind == 'partner'"}), tcp("198.51.100.9", "10.0.0.1"))
    assert matches(rule(source={"selector": "all()"}), tcp("203.0.113.5", "10.0.0.1"))
    assert not matches(rule(source={"selector": "all()"}), tcp("192.0.2.1", "10.0.0.1"))


def test_np_rule_empty_side_matches_external_addresses() -> None:
    assert matches(rule(protocol="TCP"), tcp("192.0.2.1", "10.0.0.1"), namespace=R1)
    assert matches(rule(source={"nets": ["192.0.2.0/24"]}), tcp("192.0.2.1", "10.0.0.1"), R1)


def test_np_not_selector_alone_restricts_to_the_namespace() -> None:
    r = rule(source={"notSelector": "app == 'db'"})
    assert not matches(r, tcp("192.0.2.1", "10.0.0.1"), namespace=R1)  # external: no longer
    assert not matches(r, tcp("10.1.0.1", "10.0.0.1"), namespace=R1)  # other namespace
    assert not matches(r, tcp("10.0.0.2", "10.0.0.1"), namespace=R1)  # the excluded one
    assert matches(r, tcp("10.0.0.1", "10.0.0.1"), namespace=R1)  # same namespace, not db
    # GNP: "address not in the notSelector set" - external addresses do match
    assert matches(r, tcp("192.0.2.1", "10.0.0.1"))
    assert not matches(r, tcp("10.0.0.2", "10.0.0.1"))


def test_np_rule_selector_only_sees_its_namespace_unless_namespace_selector() -> None:
    f = tcp("10.1.0.1", "10.0.0.1")  # web2 in region two
    assert not matches(rule(source={"selector": "app == 'web'"}), f, namespace=R1)
    assert matches(rule(source={"selector": "app == 'web'"}), f)  # GNP
    r = rule(source={"selector": "app == 'web'", "namespaceSelector": "all()"})
    assert matches(r, f, namespace=R1)
    # namespaceSelector by name does not work for OpenStack VMs (no pcns.* labels), §7.7
    by_name = rule(source={"namespaceSelector": f"projectcalico.org/name == '{R2}'"})
    assert not matches(by_name, f, namespace=R1)


def test_namespace_selector_global_matches_non_namespaced_entities() -> None:
    r = rule(source={"namespaceSelector": "global()"})
    assert matches(r, tcp("198.51.100.1", "10.0.0.1"), namespace=R1)  # GlobalNetworkSet
    assert not matches(r, tcp("203.0.113.1", "10.0.0.1"), namespace=R1)  # NetworkSet
    assert not matches(r, tcp("10.0.0.2", "10.0.0.1"), namespace=R1)  # workload


def test_services_match_nothing() -> None:
    r = rule(source={"services": {"name": "svc", "namespace": "default"}})
    assert not matches(r, tcp("10.0.0.2", "10.0.0.1"))


def test_flow_rejects_mixed_families() -> None:
    with pytest.raises(ValueError):
        Flow.make("10.0.0.1", "fd00::1")
