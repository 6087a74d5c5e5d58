"""Flows and rule matching, field by field (policy-model.md §2.7).

:class:`Flow` is one connection attempt (addresses, protocol number, ports, ICMP type/code).
:func:`compile_rule` turns a model :class:`~regionmesh.model.Rule` into a :class:`CompiledRule`
once (CIDRs parsed, selectors rewritten per §2.3, ports split into numeric ranges and names);
``CompiledRule.matches(flow, index)`` then ANDs every present field:

* ``ipVersion``, and Felix's per-family rendering: a rule is dropped for a family when one of
  its ``nets``/``notNets`` lists is non-empty without a CIDR of that family, or when a
  ``notNets`` contains that family's catch-all;
* ``protocol``/``notProtocol`` (by number), ``icmp``/``notICMP`` (type, and code if given);
* per side: ``nets``/``notNets``, selectors (address membership is asked of an
  :class:`AddressIndex`, i.e. the snapshot: an address matches a selector when *any* entity
  owning it matches), ``ports``/``notPorts`` with inclusive ranges and *named* ports (resolved
  against endpoints' declared ports with their protocol), ``services`` (Kubernetes Services are
  not modelled here: a side that names one matches nothing).

The source side is always tested against the flow's source address/port and the destination
side against the flow's destination, whichever endpoint the rule is evaluated for. Deciding
which rules run, in which order, is :mod:`regionmesh.policy.verdicts`' job.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from regionmesh.model import EntityRule, ICMPFields, Rule
from regionmesh.model import Protocol as ModelProtocol
from regionmesh.policy.ordering import Direction
from regionmesh.policy.selectors import folded_selector, rule_entity_selectors
from regionmesh.selector import Selector

__all__ = [
    "AddressIndex",
    "CompiledRule",
    "CompiledSide",
    "Flow",
    "IPAddress",
    "IPNetwork",
    "PROTOCOL_ICMP",
    "PROTOCOL_ICMPV6",
    "PROTOCOL_SCTP",
    "PROTOCOL_TCP",
    "PROTOCOL_UDP",
    "compile_rule",
    "parse_net",
    "protocol_number",
    "rule_matches",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PROTOCOL_ICMP = 1
PROTOCOL_TCP = 6
PROTOCOL_UDP = 17
PROTOCOL_ICMPV6 = 58
PROTOCOL_SCTP = 132
_NAMES = {"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPV6": 58, "SCTP": 132, "UDPLITE": 136}


def protocol_number(value: int | str | ModelProtocol) -> int:
    """An IP protocol number from a number, a Calico name (any case here) or a model Protocol."""
    if isinstance(value, ModelProtocol):
        return value.number
    if isinstance(value, int):
        if not 0 <= value <= 255:
            raise ValueError(f"protocol number {value} out of range")
        return value
    if value.isdigit():
        return protocol_number(int(value))
    try:
        return _NAMES[value.upper()]
    except KeyError:
        raise ValueError(f"unknown protocol {value!r}") from None


def parse_net(text: str) -> IPNetwork:
    """A CIDR or bare IP (``/32``/``/128``) as a network; host bits are masked off."""
    return ipaddress.ip_network(text, strict=False)


@dataclass(frozen=True, slots=True)
class Flow:
    """One connection attempt. ``protocol`` is an IP protocol number.

    Ports are meaningful for TCP/UDP/SCTP, ``icmp_type``/``icmp_code`` for ICMP/ICMPv6.
    Build from text with :meth:`make`.
    """

    src_ip: IPAddress
    dst_ip: IPAddress
    protocol: int
    src_port: int | None = None
    dst_port: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None

    def __post_init__(self) -> None:
        if self.src_ip.version != self.dst_ip.version:
            raise ValueError(f"flow mixes IPv{self.src_ip.version} and IPv{self.dst_ip.version}")

    @classmethod
    def make(
        cls,
        src_ip: str | IPAddress,
        dst_ip: str | IPAddress,
        protocol: int | str = PROTOCOL_TCP,
        src_port: int | None = None,
        dst_port: int | None = None,
        icmp_type: int | None = None,
        icmp_code: int | None = None,
    ) -> Flow:
        """Build a flow from strings (``"10.0.0.1"``, ``"TCP"``) or typed values."""
        return cls(
            ipaddress.ip_address(src_ip),
            ipaddress.ip_address(dst_ip),
            protocol_number(protocol),
            src_port,
            dst_port,
            icmp_type,
            icmp_code,
        )

    @property
    def ip_version(self) -> int:
        """4 or 6."""
        return self.src_ip.version

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (absent fields omitted)."""
        out: dict[str, object] = {
            "srcIP": str(self.src_ip),
            "dstIP": str(self.dst_ip),
            "protocol": self.protocol,
        }
        for key, value in (
            ("srcPort", self.src_port),
            ("dstPort", self.dst_port),
            ("icmpType", self.icmp_type),
            ("icmpCode", self.icmp_code),
        ):
            if value is not None:
                out[key] = value
        return out


class AddressIndex(TypingProtocol):
    """What rule matching needs to know about the entities that own addresses."""

    def address_matches(self, selector: Selector, ip: IPAddress) -> bool:
        """True if some endpoint or network set owning ``ip`` matches ``selector``."""
        ...

    def named_port_matches(
        self, selector: Selector | None, name: str, ip: IPAddress, protocol: int, port: int
    ) -> bool:
        """True if an endpoint owning ``ip`` and matching ``selector`` (every endpoint when None)
        declares a port called ``name`` with this protocol number and port."""
        ...


def _icmp_matches(icmp: ICMPFields, flow: Flow) -> bool:
    if flow.icmp_type is None or icmp.type is None or flow.icmp_type != icmp.type:
        return False
    return icmp.code is None or flow.icmp_code == icmp.code


@dataclass(frozen=True, slots=True)
class CompiledSide:
    """One rule side ready for matching."""

    nets: tuple[IPNetwork, ...]
    not_nets: tuple[IPNetwork, ...]
    has_nets: bool
    positive: Selector | None
    negative: Selector | None
    folded: Selector | None
    port_ranges: tuple[tuple[int, int], ...]
    port_names: tuple[str, ...]
    has_ports: bool
    not_port_ranges: tuple[tuple[int, int], ...]
    not_port_names: tuple[str, ...]
    uses_services: bool

    @classmethod
    def build(cls, er: EntityRule, namespace: str) -> CompiledSide:
        """Compile ``er`` for a policy in ``namespace`` (``""`` for GNPs and profiles)."""
        positive, negative = rule_entity_selectors(er, namespace)
        return cls(
            nets=tuple(parse_net(n) for n in er.nets),
            not_nets=tuple(parse_net(n) for n in er.not_nets),
            has_nets=bool(er.nets),
            positive=positive,
            negative=negative,
            folded=folded_selector(positive, negative),
            port_ranges=tuple((p.min, p.max) for p in er.ports if not p.name),
            port_names=tuple(p.name for p in er.ports if p.name),
            has_ports=bool(er.ports),
            not_port_ranges=tuple((p.min, p.max) for p in er.not_ports if not p.name),
            not_port_names=tuple(p.name for p in er.not_ports if p.name),
            uses_services=er.services is not None,
        )

    def _port_in(
        self,
        ranges: Sequence[tuple[int, int]],
        names: Sequence[str],
        ip: IPAddress,
        protocol: int,
        port: int,
        index: AddressIndex,
    ) -> bool:
        for low, high in ranges:
            if low <= port <= high:
                return True
        for name in names:
            if index.named_port_matches(self.folded, name, ip, protocol, port):
                return True
        return False

    def matches(self, ip: IPAddress, port: int | None, protocol: int, index: AddressIndex) -> bool:
        """True if an address/port satisfies every field of this side."""
        if self.uses_services:
            return False
        if self.has_nets and not any(ip in net for net in self.nets):
            return False
        if self.not_nets and any(ip in net for net in self.not_nets):
            return False
        if self.folded is not None:
            if not index.address_matches(self.folded, ip):
                return False
        elif self.negative is not None and index.address_matches(self.negative, ip):
            return False
        if self.has_ports:
            if port is None or not self._port_in(
                self.port_ranges, self.port_names, ip, protocol, port, index
            ):
                return False
        if (self.not_port_ranges or self.not_port_names) and port is not None:
            if self._port_in(self.not_port_ranges, self.not_port_names, ip, protocol, port, index):
                return False
        return True


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with everything pre-parsed; evaluate with :meth:`matches`."""

    rule: Rule
    action: str
    ip_version: int | None
    protocol: int | None
    not_protocol: int | None
    icmp: ICMPFields | None
    not_icmp: ICMPFields | None
    source: CompiledSide
    destination: CompiledSide
    families: frozenset[int]
    """IP versions Felix renders this rule for (after the nets/notNets family rules)."""

    def matches(self, flow: Flow, index: AddressIndex) -> bool:
        """True if every field of the rule matches ``flow``."""
        if flow.ip_version not in self.families:
            return False
        if self.protocol is not None and flow.protocol != self.protocol:
            return False
        if self.not_protocol is not None and flow.protocol == self.not_protocol:
            return False
        if self.icmp is not None and not _icmp_matches(self.icmp, flow):
            return False
        if self.not_icmp is not None and _icmp_matches(self.not_icmp, flow):
            return False
        if not self.source.matches(flow.src_ip, flow.src_port, flow.protocol, index):
            return False
        return self.destination.matches(flow.dst_ip, flow.dst_port, flow.protocol, index)


def _families(rule: Rule) -> frozenset[int]:
    """IP versions the rule exists in after Felix's per-family filtering."""
    versions = {4, 6} if rule.ip_version is None else {rule.ip_version}
    lists = (
        rule.source.nets,
        rule.source.not_nets,
        rule.destination.nets,
        rule.destination.not_nets,
    )
    kept = set()
    for version in versions:
        catch_all = "0.0.0.0/0" if version == 4 else "::/0"
        dropped = False
        for cidrs in lists:
            nets = [parse_net(c) for c in cidrs]
            if nets and not any(n.version == version for n in nets):
                dropped = True
        for cidrs in (rule.source.not_nets, rule.destination.not_nets):
            if any(str(parse_net(c)) == catch_all for c in cidrs):
                dropped = True
        if not dropped:
            kept.add(version)
    return frozenset(kept)


def compile_rule(rule: Rule, namespace: str) -> CompiledRule:
    """Pre-parse ``rule`` of a policy in ``namespace`` (``""`` for GNPs and profiles)."""
    return CompiledRule(
        rule=rule,
        action=rule.action,
        ip_version=rule.ip_version,
        protocol=rule.protocol.number if rule.protocol is not None else None,
        not_protocol=rule.not_protocol.number if rule.not_protocol is not None else None,
        icmp=rule.icmp,
        not_icmp=rule.not_icmp,
        source=CompiledSide.build(rule.source, namespace),
        destination=CompiledSide.build(rule.destination, namespace),
        families=_families(rule),
    )


def rule_matches(
    rule: Rule | CompiledRule,
    flow: Flow,
    direction: Direction | str,
    index: AddressIndex,
    namespace: str = "",
) -> bool:
    """True if ``rule`` (of a policy in ``namespace``) matches ``flow``.

    ``direction`` is the rule list the rule belongs to; matching itself does not depend on it
    (the source side always tests the flow's source), it is checked for validity only.
    """
    Direction(direction)
    compiled = rule if isinstance(rule, CompiledRule) else compile_rule(rule, namespace)
    return compiled.matches(flow, index)
