"""Shared dataplane scenario: the netns-proof policy (SGs web/client/other) as messages."""

from __future__ import annotations

from regionmesh.dataplane import (
    Action,
    ActivePolicyUpdate,
    HostConfig,
    InSync,
    IPSetUpdate,
    Message,
    PortRange,
    Rule,
    TierInfo,
    WorkloadEndpointUpdate,
)

SET_CLIENT = "s:cK-tpCMrZ8UhW7erk2HQIbUxxxxxxxxxxxxxxxxx"  # Felix-shaped id
POL_WEB = "np/openstack/ossg.default.web"
POL_CLIENT = "np/openstack/ossg.default.client"
POL_OTHER = "np/openstack/ossg.default.other"

IP = {"a": "10.65.1.2", "b": "10.65.1.3", "c": "10.65.2.2", "d": "10.65.1.4", "e": "10.65.1.9"}
TAP = {v: f"tap{v * 8}-{v * 2}" for v in "abcde"}
MAC = {v: f"fa:16:3e:00:00:0{v}" for v in "abcde"}
SG = {"a": POL_WEB, "b": POL_CLIENT, "d": POL_OTHER}

ALLOW_ALL = Rule(Action.ALLOW)


def web_policy() -> ActivePolicyUpdate:
    """Ingress TCP 80 only from set S; egress allow-all."""
    rule = Rule(
        Action.ALLOW, protocol=6, src_ipset_ids=(SET_CLIENT,), dst_ports=(PortRange.single(80),)
    )
    return ActivePolicyUpdate(POL_WEB, (rule,), (ALLOW_ALL,))


def client_policy() -> ActivePolicyUpdate:
    """Ingress TCP 80 from anywhere; egress allow-all."""
    rule = Rule(Action.ALLOW, protocol=6, dst_ports=(PortRange.single(80),))
    return ActivePolicyUpdate(POL_CLIENT, (rule,), (ALLOW_ALL,))


def other_policy() -> ActivePolicyUpdate:
    """No ingress rules (deny all in), egress allow-all."""
    return ActivePolicyUpdate(POL_OTHER, (), (ALLOW_ALL,))


def endpoint(vm: str, policy: str | None = None) -> WorkloadEndpointUpdate:
    """The endpoint of VM ``vm`` in tier default with its SG policy (or none)."""
    pol = SG[vm] if policy is None else policy
    tiers = (TierInfo("default", (pol,), (pol,)),) if pol else ()
    return WorkloadEndpointUpdate(
        f"host1/openstack/{vm}", TAP[vm], MAC[vm], (f"{IP[vm]}/32",), (), tiers
    )


def snapshot(members: tuple[str, ...] = ("b", "c")) -> list[Message]:
    """Host 1 (VMs a, b, d known; e unknown) in contract order, ending with InSync."""
    return [
        HostConfig(ipv6_enabled=False),
        IPSetUpdate(SET_CLIENT, frozenset(IP[v] for v in members)),
        web_policy(),
        client_policy(),
        other_policy(),
        endpoint("a"),
        endpoint("b"),
        endpoint("d"),
        InSync(),
    ]
