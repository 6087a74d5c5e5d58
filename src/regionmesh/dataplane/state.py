"""The dataplane's desired state: what the messages have said so far, kept by the driver.

:class:`DesiredState` holds the host config, the IP sets (:class:`IPSetState`: member elements
per family, CIDR counts that decide ``flags interval``), the active policies and profiles and
the local endpoints. :func:`member_element` turns one IP-set member of a message into the nft
element text stored here. :class:`~regionmesh.dataplane.driver.NftDataplane` fills this state in
``on_update``; :mod:`.render` reads it to build table models and :mod:`.tables` writes the
elements into nft scripts. Nothing here renders chains, diffs or runs nft.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from regionmesh.dataplane.messages import (
    ActivePolicyUpdate,
    ActiveProfileUpdate,
    HostConfig,
    IPSetType,
    Member,
    NamedPortMember,
    WorkloadEndpointUpdate,
)
from regionmesh.dataplane.tables import SetModel, collapse, interval_element

__all__ = ["FAMILIES", "DesiredState", "IPSetState", "member_element"]

FAMILIES = (4, 6)


def member_element(member: Member) -> tuple[int, str]:
    """Normalise one IP-set member to (family, nft element text); ValueError if malformed."""
    if isinstance(member, NamedPortMember):
        addr = ipaddress.ip_address(member.addr)
        if not (0 <= member.protocol <= 255 and 0 <= member.port <= 65535):
            raise ValueError(f"bad named-port member {member!r}")
        return addr.version, f"{addr} . {member.protocol} . {member.port}"
    if "/" not in member:
        addr = ipaddress.ip_address(member)
        return addr.version, str(addr)
    net = ipaddress.ip_network(member, strict=False)
    return net.version, interval_element(net)


@dataclass(slots=True)
class IPSetState:
    """Current members of one IP set, as element text per family (CIDRs counted per family)."""

    type: IPSetType
    members: dict[int, set[str]] = field(default_factory=lambda: {4: set(), 6: set()})
    cidrs: dict[int, int] = field(default_factory=lambda: {4: 0, 6: 0})

    def add(self, family: int, element: str) -> bool:
        """Add one element; True if it was not there."""
        members = self.members[family]
        if element in members:
            return False
        members.add(element)
        if "/" in element:
            self.cidrs[family] += 1
        return True

    def discard(self, family: int, element: str) -> bool:
        """Remove one element; True if it was there."""
        members = self.members[family]
        if element not in members:
            return False
        members.remove(element)
        if "/" in element:
            self.cidrs[family] -= 1
        return True

    def interval(self, family: int) -> bool:
        """Whether this family's set needs ``flags interval`` (a real CIDR is present)."""
        return self.type is IPSetType.NET and self.cidrs[family] > 0

    def nft_type(self, family: int) -> str:
        """The nft set type."""
        addr = "ipv4_addr" if family == 4 else "ipv6_addr"
        if self.type is IPSetType.NAMED_PORT:
            return f"{addr} . inet_proto . inet_service"
        return addr

    def elements(self, family: int) -> set[str]:
        """The set's elements as written to nft (interval sets: collapsed, no overlaps)."""
        members = self.members[family]
        if not self.interval(family):
            return set(members)
        return {interval_element(n) for n in collapse(ipaddress.ip_network(m) for m in members)}

    def model(self, family: int) -> SetModel:
        """The set as a :class:`SetModel`."""
        return SetModel(self.nft_type(family), self.interval(family), self.elements(family))


@dataclass(slots=True)
class DesiredState:
    """Everything the messages have said so far (the driver's single source of truth)."""

    config: HostConfig = field(default_factory=HostConfig)
    ipsets: dict[str, IPSetState] = field(default_factory=dict)
    policies: dict[str, ActivePolicyUpdate] = field(default_factory=dict)
    profiles: dict[str, ActiveProfileUpdate] = field(default_factory=dict)
    endpoints: dict[str, WorkloadEndpointUpdate] = field(default_factory=dict)

    def families(self) -> tuple[int, ...]:
        """IP versions rendered on this host."""
        return FAMILIES if self.config.ipv6_enabled else (4,)
