"""The calculation-graph → dataplane contract: the only messages the dataplane understands.

Modelled on Felix's ``proto`` messages (``felix/proto/felixbackend.proto``). Every message is a
frozen, slotted dataclass holding values already resolved to dataplane terms: IP-set ids instead
of selectors, protocol numbers instead of names, port ranges instead of named ports (named ports
become IP sets of ``(addr, protocol, port)`` members). This module only describes and checks
the *shape* of single messages; rendering them is :mod:`regionmesh.dataplane.render`, and
checking the *order* of a message stream is :class:`regionmesh.dataplane.recording.RecordingDataplane`.

Ordering contract (what the sender, i.e. the calc graph's event sequencer, guarantees)
-------------------------------------------------------------------------------------
Within and across batches, references always arrive before the things that reference them:

1. ``HostConfig`` first (it may be re-sent at any time; a change re-renders everything);
2. ``IPSetUpdate`` (full) before any ``IPSetDeltaUpdate`` for the same id and before any policy
   or profile whose rules name that id;
3. ``ActivePolicyUpdate`` / ``ActiveProfileUpdate`` before any ``WorkloadEndpointUpdate`` that
   lists the policy/profile;
4. ``WorkloadEndpointUpdate`` last.

Removals go in the reverse order: an endpoint stops referencing a policy (update or
``WorkloadEndpointRemove``) before ``ActivePolicyRemove``; a policy stops referencing an IP set
before ``IPSetRemove``. ``InSync`` is sent once, after the first complete snapshot; the
dataplane touches the kernel only after it. A message for an id replaces the previous one for
that id completely (no merging), except ``IPSetDeltaUpdate`` which edits the members.

The driver survives violations (it fails closed: an endpoint naming an unknown policy drops
traffic, a rule naming an unknown IP set matches nothing); ``RecordingDataplane`` turns them
into test failures.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from regionmesh.errors import FieldError, ValidationError


class Action(StrEnum):
    """What a matching rule does (policy-model.md §2.5)."""

    ALLOW = "allow"
    DENY = "deny"
    PASS = "pass"  # "next-tier" in Felix
    LOG = "log"


class TierDefaultAction(StrEnum):
    """What happens at the end of a tier when no policy decided (Felix: anything but Pass = Deny)."""

    DENY = "Deny"
    PASS = "Pass"


class EndpointToHostAction(StrEnum):
    """``DefaultEndpointToHostAction``: VM→host traffic after the VM's egress policy allowed it."""

    DROP = "DROP"
    RETURN = "RETURN"
    ACCEPT = "ACCEPT"


class IPSetType(StrEnum):
    """Felix's IP-set types that a workload dataplane needs."""

    NET = "hash:net"  # members are addresses or CIDRs (v4 and/or v6)
    NAMED_PORT = "hash:ip,port"  # members are NamedPortMember


@dataclass(frozen=True, slots=True, order=True)
class NamedPortMember:
    """One member of a named-port IP set: a host address, an IP protocol number and a port."""

    addr: str
    protocol: int
    port: int


Member = str | NamedPortMember


@dataclass(frozen=True, slots=True)
class PortRange:
    """An inclusive port range; a single port has ``first == last``."""

    first: int
    last: int

    @classmethod
    def single(cls, port: int) -> PortRange:
        """The range holding only ``port``."""
        return cls(port, port)

    def __post_init__(self) -> None:
        if not (0 <= self.first <= self.last <= 65535):
            raise ValidationError(
                [FieldError("ports", (self.first, self.last), "need 0 <= first <= last <= 65535")],
                "PortRange",
            )


@dataclass(frozen=True, slots=True)
class ICMPMatch:
    """An ICMP (or ICMPv6) type, optionally with a code; no code matches any code."""

    type: int
    code: int | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One policy/profile rule, resolved to dataplane terms; every present field is ANDed.

    ``*_nets`` hold CIDRs or bare addresses of either family: when rendering one family the
    other family's entries are ignored, and a rule whose non-empty net list has no entry of the
    family is not rendered for it (policy-model.md §2.7). ``*_ipset_ids`` are ANDed (each is one
    selector); ``dst_named_port_ipset_ids`` are ORed with ``dst_ports`` as in Felix.
    ``ip_version`` limits the rule to one family. ``rule_id`` is only used in comments.
    """

    action: Action
    ip_version: int | None = None
    protocol: int | None = None
    not_protocol: int | None = None
    src_nets: tuple[str, ...] = ()
    not_src_nets: tuple[str, ...] = ()
    dst_nets: tuple[str, ...] = ()
    not_dst_nets: tuple[str, ...] = ()
    src_ipset_ids: tuple[str, ...] = ()
    not_src_ipset_ids: tuple[str, ...] = ()
    dst_ipset_ids: tuple[str, ...] = ()
    not_dst_ipset_ids: tuple[str, ...] = ()
    src_ports: tuple[PortRange, ...] = ()
    not_src_ports: tuple[PortRange, ...] = ()
    dst_ports: tuple[PortRange, ...] = ()
    not_dst_ports: tuple[PortRange, ...] = ()
    dst_named_port_ipset_ids: tuple[str, ...] = ()
    not_dst_named_port_ipset_ids: tuple[str, ...] = ()
    icmp: ICMPMatch | None = None
    not_icmp: ICMPMatch | None = None
    rule_id: str = ""

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        if self.ip_version not in (None, 4, 6):
            errors.append(FieldError("ip_version", self.ip_version, "must be 4, 6 or None"))
        for name in ("protocol", "not_protocol"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 255:
                errors.append(FieldError(name, value, "protocol number must be 0-255"))
        ported = bool(
            self.src_ports
            or self.not_src_ports
            or self.dst_ports
            or self.not_dst_ports
            or self.dst_named_port_ipset_ids
            or self.not_dst_named_port_ipset_ids
        )
        if ported and self.protocol not in (6, 17, 132, 136):
            errors.append(
                FieldError(
                    "protocol", self.protocol, "ports need protocol TCP, UDP, SCTP or UDPLite"
                )
            )
        if (self.icmp or self.not_icmp) and self.protocol not in (1, 58):
            errors.append(FieldError("protocol", self.protocol, "icmp needs protocol 1 or 58"))
        for name in ("src_nets", "not_src_nets", "dst_nets", "not_dst_nets"):
            for net in getattr(self, name):
                try:
                    ipaddress.ip_network(net, strict=False)
                except ValueError:
                    errors.append(FieldError(name, net, "not an IP address or CIDR"))
        if errors:
            raise ValidationError(errors, "Rule")

    def ipset_ids(self) -> frozenset[str]:
        """Every IP-set id this rule references."""
        return frozenset(
            self.src_ipset_ids
            + self.not_src_ipset_ids
            + self.dst_ipset_ids
            + self.not_dst_ipset_ids
            + self.dst_named_port_ipset_ids
            + self.not_dst_named_port_ipset_ids
        )


def _check_members(set_id: str, kind: IPSetType, members: frozenset[Member]) -> None:
    bad: list[FieldError] = []
    for m in members:
        if kind is IPSetType.NET:
            if not isinstance(m, str):
                bad.append(FieldError("members", m, "a hash:net member is an address or CIDR"))
        elif not isinstance(m, NamedPortMember):
            bad.append(FieldError("members", m, "a hash:ip,port member is a NamedPortMember"))
    if bad:
        raise ValidationError(bad[:5], f"IP set {set_id}")


@dataclass(frozen=True, slots=True)
class IPSetUpdate:
    """Create an IP set or replace all its members."""

    id: str
    members: frozenset[Member]
    type: IPSetType = IPSetType.NET

    def __post_init__(self) -> None:
        _check_members(self.id, self.type, self.members)


@dataclass(frozen=True, slots=True)
class IPSetDeltaUpdate:
    """Add and remove members of an existing IP set (removals are applied first)."""

    id: str
    added: frozenset[Member] = frozenset()
    removed: frozenset[Member] = frozenset()


@dataclass(frozen=True, slots=True)
class IPSetRemove:
    """The IP set is no longer used by any active rule."""

    id: str


@dataclass(frozen=True, slots=True)
class _RulesUpdate:
    """The shape shared by policy and profile updates: an id and rules per direction."""

    id: str
    inbound_rules: tuple[Rule, ...] = ()
    outbound_rules: tuple[Rule, ...] = ()

    def ipset_ids(self) -> frozenset[str]:
        """Every IP-set id the rules reference."""
        return frozenset().union(*(r.ipset_ids() for r in self.inbound_rules + self.outbound_rules))


@dataclass(frozen=True, slots=True)
class ActivePolicyUpdate(_RulesUpdate):
    """A policy that selects at least one local endpoint; ``id`` e.g. ``np/<ns>/<name>``."""


@dataclass(frozen=True, slots=True)
class ActivePolicyRemove:
    """The policy no longer applies to any local endpoint."""

    id: str


@dataclass(frozen=True, slots=True)
class ActiveProfileUpdate(_RulesUpdate):
    """A profile used by at least one local endpoint."""


@dataclass(frozen=True, slots=True)
class ActiveProfileRemove:
    """The profile is no longer used by any local endpoint."""

    id: str


@dataclass(frozen=True, slots=True)
class TierInfo:
    """One tier of an endpoint: policies applying to it per direction, in evaluation order.

    A direction with no policies skips the tier entirely (no end-of-tier drop).
    """

    name: str
    ingress_policies: tuple[str, ...] = ()
    egress_policies: tuple[str, ...] = ()
    default_action: TierDefaultAction = TierDefaultAction.DENY


@dataclass(frozen=True, slots=True, order=True)
class NatMapping:
    """One floating IP of an endpoint (Felix ``NatInfo``): ``external`` is DNATed to ``internal``.

    Both are bare addresses of the same family (``spec.ipNATs[].internalIP/externalIP``).
    """

    internal: str
    external: str

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        versions: list[int] = []
        for name in ("internal", "external"):
            value = getattr(self, name)
            try:
                versions.append(ipaddress.ip_address(value).version)
            except ValueError:
                errors.append(FieldError(name, value, "not an IP address"))
        if not errors and versions[0] != versions[1]:
            errors.append(FieldError("external", self.external, "family differs from internal"))
        if errors:
            raise ValidationError(errors, "NatMapping")

    @property
    def version(self) -> int:
        """4 or 6."""
        return ipaddress.ip_address(self.internal).version


@dataclass(frozen=True, slots=True)
class WorkloadEndpointUpdate:
    """A local workload endpoint (VM port): its tap, addresses and ordered policy.

    ``ipv4_nets``/``ipv6_nets`` are the port's addresses (fixed IPs and allowed address
    pairs), normally /32 and /128; they get routes to the tap and are the only sources the VM
    may send from. ``admin_up=False`` renders a chain that drops everything.
    ``ipv4_nats``/``ipv6_nats`` are its floating IPs (``spec.ipNATs``): the host DNATs each
    external address to the internal one, SNATs the VM's hairpin traffic to its own floating
    IP, and routes the external address to the tap.
    """

    id: str
    name: str  # interface name, e.g. "tap" + port_id[:11]
    mac: str | None = None
    ipv4_nets: tuple[str, ...] = ()
    ipv6_nets: tuple[str, ...] = ()
    tiers: tuple[TierInfo, ...] = ()
    profile_ids: tuple[str, ...] = ()
    admin_up: bool = True
    ipv4_nats: tuple[NatMapping, ...] = ()
    ipv6_nats: tuple[NatMapping, ...] = ()

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        if not 1 <= len(self.name) <= 15 or not all(
            c.isascii() and (c.isalnum() or c in "-_.") for c in self.name
        ):
            errors.append(FieldError("name", self.name, "not a valid interface name"))
        for fam, nets in ((4, self.ipv4_nets), (6, self.ipv6_nets)):
            for net in nets:
                try:
                    ok = ipaddress.ip_network(net, strict=False).version == fam
                except ValueError:
                    ok = False
                if not ok:
                    errors.append(FieldError(f"ipv{fam}_nets", net, f"not an IPv{fam} CIDR"))
        for fam, nats in ((4, self.ipv4_nats), (6, self.ipv6_nats)):
            for nat in nats:
                if not isinstance(nat, NatMapping) or nat.version != fam:
                    errors.append(FieldError(f"ipv{fam}_nats", nat, f"not an IPv{fam} NatMapping"))
        if errors:
            raise ValidationError(errors, f"WorkloadEndpoint {self.id}")

    def policy_ids(self) -> frozenset[str]:
        """Every policy id named by any tier, either direction."""
        return frozenset(p for t in self.tiers for p in t.ingress_policies + t.egress_policies)


@dataclass(frozen=True, slots=True)
class WorkloadEndpointRemove:
    """The endpoint is gone from this host."""

    id: str


@dataclass(frozen=True, slots=True)
class HostConfig:
    """Agent settings the dataplane needs (Felix config names in the comments)."""

    interface_prefixes: tuple[str, ...] = ("tap",)  # InterfacePrefix
    default_endpoint_to_host_action: EndpointToHostAction = EndpointToHostAction.DROP
    metadata_addr: str | None = "127.0.0.1"  # MetadataAddr; None = no metadata DNAT
    metadata_port: int = 8775  # MetadataPort
    ipv6_enabled: bool = True  # Ipv6Support

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        if not self.interface_prefixes or not all(
            p and p.isascii() and p.isalnum() for p in self.interface_prefixes
        ):
            errors.append(FieldError("interface_prefixes", self.interface_prefixes, "bad prefix"))
        if self.metadata_addr is not None:
            try:
                if ipaddress.ip_address(self.metadata_addr).version != 4:
                    raise ValueError
            except ValueError:
                errors.append(
                    FieldError("metadata_addr", self.metadata_addr, "not an IPv4 address")
                )
        if not 0 < self.metadata_port <= 65535:
            errors.append(FieldError("metadata_port", self.metadata_port, "must be 1-65535"))
        if errors:
            raise ValidationError(errors, "HostConfig")


@dataclass(frozen=True, slots=True)
class InSync:
    """The sender has delivered a complete snapshot; the dataplane may now program the kernel."""


Message = (
    HostConfig
    | IPSetUpdate
    | IPSetDeltaUpdate
    | IPSetRemove
    | ActivePolicyUpdate
    | ActivePolicyRemove
    | ActiveProfileUpdate
    | ActiveProfileRemove
    | WorkloadEndpointUpdate
    | WorkloadEndpointRemove
    | InSync
)
