"""Pure rendering: names, rule matches per family, chain layout, set types."""

from __future__ import annotations

import pytest

from regionmesh.dataplane import (
    Action,
    ActivePolicyUpdate,
    HostConfig,
    ICMPMatch,
    IPSetType,
    NamedPortMember,
    PortRange,
    Rule,
    TierDefaultAction,
    TierInfo,
    WorkloadEndpointUpdate,
    names,
)
from regionmesh.dataplane.render import (
    endpoint_chain,
    render_table,
    rule_bodies,
    rules_chain,
)
from regionmesh.dataplane.state import DesiredState, IPSetState, member_element
from regionmesh.errors import ValidationError


def known(_: str) -> bool:
    return True


def strip(line: str) -> str:
    return line.split(' comment "', 1)[0]


def test_felix_names() -> None:
    assert names.set_name("s:cK-tpCMrZ8UhW7erk2HQIbUxxxxxxxxxxxxxxxxx", 4) == (
        "cali40s-cK-tpCMrZ8UhW7erk2HQIbU"
    )
    assert names.set_name("s:abc", 6) == "cali60s-abc"
    odd = names.set_name("a set with spaces", 4)
    assert odd.startswith("cali40_") and len(odd) == 31
    assert names.policy_chain("np/openstack/ossg.default.x", True) == (
        "filter-cali-pi-np/openstack/ossg.default.x"
    )
    long_id = "gnp/" + "x" * 300
    chain = names.policy_chain(long_id, False)
    assert chain.startswith("filter-cali-po-_") and len(chain) <= 255
    assert chain == names.policy_chain(long_id, False)  # stable
    assert names.policy_chain("bad:id", True) != names.policy_chain("bad-id", True)


@pytest.mark.parametrize(
    ("rule", "family", "expected"),
    [
        (Rule(Action.ALLOW), 4, [""]),
        (Rule(Action.ALLOW, ip_version=6), 4, []),
        (
            Rule(Action.ALLOW, protocol=6, dst_ports=(PortRange.single(80), PortRange(8000, 8080))),
            4,
            ["meta l4proto 6 th dport { 80, 8000-8080 }"],
        ),
        (Rule(Action.ALLOW, src_nets=("0.0.0.0/0",)), 4, [""]),  # catch-all dropped
        (Rule(Action.ALLOW, src_nets=("10.0.0.0/8",)), 6, []),  # no v6 CIDR: never matches
        (Rule(Action.ALLOW, not_src_nets=("::/0",)), 6, []),  # "not anywhere"
        (
            Rule(Action.DENY, src_nets=("10.1.0.0/16", "10.1.2.3", "fd00::/8")),
            4,
            ["ip saddr 10.1.0.0/16"],  # masked member collapsed away
        ),
        (
            Rule(Action.DENY, not_dst_nets=("10.0.0.1", "10.0.0.3")),
            4,
            ["ip daddr != { 10.0.0.1/32, 10.0.0.3/32 }".replace("/32", "")],
        ),
        (
            Rule(Action.ALLOW, src_ipset_ids=("s:a",), not_dst_ipset_ids=("s:b",)),
            6,
            ["ip6 saddr @cali60s-a ip6 daddr != @cali60s-b"],
        ),
        (
            Rule(
                Action.ALLOW,
                protocol=6,
                dst_ports=(PortRange.single(80),),
                dst_named_port_ipset_ids=("n:http",),
            ),
            4,
            [
                "meta l4proto 6 th dport 80",
                "meta l4proto 6 ip daddr . meta l4proto . th dport @cali40n-http",
            ],
        ),
        (Rule(Action.ALLOW, protocol=1, icmp=ICMPMatch(8)), 4, ["meta l4proto 1 icmp type 8"]),
        (Rule(Action.ALLOW, protocol=1, icmp=ICMPMatch(8)), 6, []),
        (
            Rule(Action.ALLOW, protocol=58, not_icmp=ICMPMatch(128, 0)),
            6,
            ["meta l4proto 58 icmpv6 type . icmpv6 code != { 128 . 0 }"],
        ),
        (Rule(Action.ALLOW, not_protocol=17), 4, ["meta l4proto != 17"]),
    ],
)
def test_rule_bodies(rule: Rule, family: int, expected: list[str]) -> None:
    assert rule_bodies(rule, family, known) == expected


def test_actions_and_fail_closed_on_unknown_set() -> None:
    rules = (
        Rule(Action.ALLOW, protocol=6),
        Rule(Action.DENY, protocol=17),
        Rule(Action.PASS, protocol=1),
        Rule(Action.LOG),
    )
    chain = rules_chain(rules, 4, known)
    assert [strip(r) for r in chain.rules] == [
        "meta l4proto 6 meta mark set mark | 0x10000 return",
        "meta l4proto 17 drop",
        "meta l4proto 1 meta mark set mark | 0x20000 return",
        'log prefix "calico-packet: " level info',
    ]
    broken = rules_chain((Rule(Action.DENY, src_ipset_ids=("s:gone",)),), 4, lambda _: False)
    assert [strip(r) for r in broken.rules] == ["drop"]


def test_rule_validation() -> None:
    with pytest.raises(ValidationError):
        Rule(Action.ALLOW, dst_ports=(PortRange.single(80),))  # ports need tcp/udp/sctp
    with pytest.raises(ValidationError):
        Rule(Action.ALLOW, src_nets=("not-a-net",))
    with pytest.raises(ValidationError):
        WorkloadEndpointUpdate("x", "tap-with-a-way-too-long-name")
    with pytest.raises(ValidationError):
        WorkloadEndpointUpdate("x", "tapx", ipv4_nets=("2001:db8::1/128",))


def test_endpoint_chain_layout() -> None:
    ep = WorkloadEndpointUpdate(
        "e1",
        "tap12345678-ab",
        ipv4_nets=("10.0.0.5/32",),
        tiers=(
            TierInfo("admin", ("p1",), (), TierDefaultAction.PASS),
            TierInfo("default", ("p2", "p3"), ("p2",)),
        ),
        profile_ids=("prof",),
    )
    tw = [strip(r) for r in endpoint_chain(ep, 4, True, known, known).rules]
    assert tw == [
        "ct state established,related accept",
        "ct state invalid drop",
        "meta mark set mark & 0xfffcffff",
        "meta mark set mark & 0xfffdffff",  # start of tier admin
        "meta mark & 0x20000 == 0 jump filter-cali-pi-p1",
        "meta mark & 0x10000 == 0x10000 return",
        # no end-of-tier drop: tier admin's default action is Pass
        "meta mark set mark & 0xfffdffff",
        "meta mark & 0x20000 == 0 jump filter-cali-pi-p2",
        "meta mark & 0x10000 == 0x10000 return",
        "meta mark & 0x20000 == 0 jump filter-cali-pi-p3",
        "meta mark & 0x10000 == 0x10000 return",
        "meta mark & 0x20000 == 0 drop",  # end of tier default
        "jump filter-cali-pri-prof",
        "meta mark & 0x10000 == 0x10000 return",
        "drop",
    ]
    fw = [strip(r) for r in endpoint_chain(ep, 4, False, known, known).rules]
    assert fw[3] == "ip saddr != 10.0.0.5 drop"  # anti-spoofing
    assert "jump filter-cali-po-p1" not in " ".join(fw)  # tier admin has no egress policy
    assert "meta mark & 0x20000 == 0 jump filter-cali-po-p2" in fw
    fw6 = [strip(r) for r in endpoint_chain(ep, 6, False, known, known).rules]
    assert fw6[3] == "drop"  # no IPv6 address: nothing may leave over v6
    missing = [strip(r) for r in endpoint_chain(ep, 4, True, lambda p: p != "p3", known).rules]
    assert missing[-1] == "drop" and "filter-cali-pri-prof" not in " ".join(missing)
    down = WorkloadEndpointUpdate("e2", "tapdown", admin_up=False, tiers=ep.tiers)
    assert [strip(r) for r in endpoint_chain(down, 4, True, known, known).rules][-1] == "drop"


def test_set_types() -> None:
    hosts = IPSetState(IPSetType.NET)
    for m in ("10.0.0.1", "10.0.0.2/32", "2001:db8::1"):
        hosts.add(*member_element(m))
    assert hosts.model(4).type == "ipv4_addr" and not hosts.model(4).interval
    assert hosts.model(4).elements == {"10.0.0.1", "10.0.0.2"}
    assert hosts.model(6).elements == {"2001:db8::1"}
    hosts.add(*member_element("10.0.0.0/24"))
    model = hosts.model(4)
    assert model.interval and model.elements == {"10.0.0.0/24"}  # masked members dropped
    assert not hosts.model(6).interval
    hosts.discard(*member_element("10.0.0.0/24"))
    assert not hosts.interval(4)
    named = IPSetState(IPSetType.NAMED_PORT)
    named.add(*member_element(NamedPortMember("10.0.0.1", 6, 8080)))
    assert named.model(4).type == "ipv4_addr . inet_proto . inet_service"
    assert named.model(4).elements == {"10.0.0.1 . 6 . 8080"}


def test_full_table_static_parts() -> None:
    state = DesiredState(config=HostConfig(metadata_addr="10.64.0.1", metadata_port=8775))
    t = render_table(state, 4)
    nat = [strip(r) for r in t.chains["nat-cali-PREROUTING"].rules]
    assert nat == [
        f"jump {names.FIP_DNAT}",  # floating IPs first, as Felix
        'iifname "tap*" ip daddr 169.254.169.254 tcp dport 80 dnat to 10.64.0.1:8775',
    ]
    to_host = [strip(r) for r in t.chains[names.WL_TO_HOST].rules]
    assert to_host[0] == "ip daddr 10.64.0.1 tcp dport 8775 accept"
    assert to_host[-2:] == [f"jump {names.FROM_WL_DISPATCH}", "drop"]
    for dispatch in (names.FROM_WL_DISPATCH, names.TO_WL_DISPATCH):
        assert strip(t.chains[dispatch].rules[-1]) == "counter drop"  # unknown interface
    assert t.chains["filter-FORWARD"].hook and "hook forward" in t.chains["filter-FORWARD"].hook
    v6 = render_table(state, 6)
    assert [strip(r) for r in v6.chains["nat-cali-PREROUTING"].rules] == [
        f"jump {names.FIP_DNAT}"  # no metadata DNAT in v6
    ]
    accept = DesiredState(config=HostConfig(default_endpoint_to_host_action="ACCEPT"))  # type: ignore[arg-type]
    assert strip(render_table(accept, 4).chains[names.WL_TO_HOST].rules[-1]) == "accept"
    pol = ActivePolicyUpdate("p", (Rule(Action.ALLOW),))
    state.policies["p"] = pol
    assert "filter-cali-pi-p" in render_table(state, 4).chains
