"""Exact access between two endpoint groups: cut the port/type axes at every rule boundary,
probe one flow per interval through :func:`regionmesh.policy.evaluate_flow`.

Grouping is :mod:`regionmesh.policy.grouping`; the result shapes are
:mod:`regionmesh.policy.access`; the cloud-wide matrix is :mod:`regionmesh.policy.connectivity`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from regionmesh.model import WorkloadEndpoint
from regionmesh.policy.access import (
    ICMP_PROTOCOLS,
    OTHER_PROTOCOL,
    PORT_PROTOCOLS,
    PROBE_SOURCE_PORT,
    Access,
    Interval,
    Intervals,
    intervals_union,
    protocol_domain,
)
from regionmesh.policy.flows import (
    PROTOCOL_ICMP,
    PROTOCOL_ICMPV6,
    PROTOCOL_TCP,
    PROTOCOL_UDP,
    CompiledRule,
    CompiledSide,
    Flow,
    IPAddress,
)
from regionmesh.policy.grouping import (
    VmGroup,
    first_ips,
    rule_sources,
)
from regionmesh.policy.ordering import Direction
from regionmesh.policy.snapshot import Snapshot
from regionmesh.policy.verdicts import evaluate_flow


@dataclass
class _Bounds:
    cuts: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    protocols: set[int] = field(default_factory=set)
    hopeless: bool = False


class PairEvaluator:
    """The exact :class:`Access` between two endpoints of one snapshot (see module docstring)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.evaluations = 0
        """How many ``evaluate_flow`` calls were made (for statistics)."""
        self._rules_cache: dict[tuple[object, ...], tuple[CompiledRule, ...]] = {}
        named: dict[str, set[tuple[int, int]]] = defaultdict(set)
        mentioned: set[int] = set()
        for rec in snapshot.entities():
            for name, proto, port in rec.ports:
                named[name].add((proto, port))
        self._named = named
        for rule in rule_sources(snapshot):
            for p in (rule.protocol, rule.not_protocol):
                if p is not None:
                    mentioned.add(p)
        candidates = [47, 50, 4, 41, 253, 254, 143, 99]
        self.other_protocol = next(p for p in candidates if p not in mentioned)

    def _rule_bounds(self, rule: CompiledRule, out: _Bounds) -> None:
        for p in (rule.protocol, rule.not_protocol):
            if p is not None:
                out.protocols.add(p)
        port_protos = [rule.protocol] if rule.protocol is not None else sorted(PORT_PROTOCOLS)
        side = rule.destination
        for lo, hi in (*side.port_ranges, *side.not_port_ranges):
            for p in port_protos:
                out.cuts[p].update((lo, hi + 1))
        for name in (*side.port_names, *side.not_port_names):
            for proto, port in self._named.get(name, ()):
                out.cuts[proto].update((port, port + 1))
        icmp_protos = [rule.protocol] if rule.protocol is not None else sorted(ICMP_PROTOCOLS)
        for fields in (rule.icmp, rule.not_icmp):
            if fields is None or fields.type is None:
                continue
            base = fields.type * 256
            for p in icmp_protos:
                if fields.code is None:
                    out.cuts[p].update((base, base + 256))
                else:
                    out.cuts[p].update((base + fields.code, base + fields.code + 1))

    def _rules(self, ep: WorkloadEndpoint, direction: Direction) -> tuple[CompiledRule, ...]:
        """Every rule that can decide for ``ep`` in ``direction`` (its policies and profiles)."""
        snap = self.snapshot
        key = (snap.record_for(ep).group.gid, tuple(ep.spec.profiles), direction)
        hit = self._rules_cache.get(key)
        if hit is None:
            found: list[CompiledRule] = []
            for _tier, policies in snap.applicable_tiers(ep, direction):
                for pol in policies:
                    found.extend(pol.rules(direction))
            for name in ep.spec.profiles:
                prof = snap.profile_record(name)
                if prof is not None:
                    found.extend(prof.rules(direction))
            hit = tuple(found)
            self._rules_cache[key] = hit
        return hit

    def _side_excludes(self, side: CompiledSide, ip: IPAddress) -> bool:
        """True when ``side`` can match no flow with this address, whatever the ports and
        protocol (a conservative test: False means "may match")."""
        if side.uses_services:
            return True
        if side.has_nets and not any(ip in net for net in side.nets):
            return True
        if side.not_nets and any(ip in net for net in side.not_nets):
            return True
        return side.folded is not None and not self.snapshot.address_matches(side.folded, ip)

    def _pair_bounds(
        self, src: WorkloadEndpoint, dst: WorkloadEndpoint, sip: IPAddress, dip: IPAddress
    ) -> _Bounds:
        """Cuts of the rules that may match some flow of this pair (rules whose peer side
        excludes the pair's other address can never match it, so their ports do not matter)."""
        bounds = _Bounds()
        version = sip.version
        allows = {Direction.EGRESS: False, Direction.INGRESS: False}
        for direction, ep in ((Direction.EGRESS, src), (Direction.INGRESS, dst)):
            for rule in self._rules(ep, direction):
                if (
                    version in rule.families
                    and not self._side_excludes(rule.source, sip)
                    and not self._side_excludes(rule.destination, dip)
                ):
                    self._rule_bounds(rule, bounds)
                    allows[direction] = allows[direction] or rule.action == "Allow"
        # a side only allows through a matching Allow rule: none left means nothing passes
        bounds.hopeless = not (allows[Direction.EGRESS] and allows[Direction.INGRESS])
        return bounds

    def access(self, src: WorkloadEndpoint, dst: WorkloadEndpoint) -> Access:
        """Everything ``src`` may open towards ``dst`` (first addresses of a common family)."""
        s4, s6 = first_ips(src)
        d4, d6 = first_ips(dst)
        if s4 is not None and d4 is not None:
            sip, dip, icmp = s4, d4, PROTOCOL_ICMP
        elif s6 is not None and d6 is not None:
            sip, dip, icmp = s6, d6, PROTOCOL_ICMPV6
        else:
            return Access()
        bounds = self._pair_bounds(src, dst, sip, dip)
        if bounds.hopeless:
            return Access()
        protocols = {PROTOCOL_TCP, PROTOCOL_UDP, icmp, *bounds.protocols}
        allowed: dict[int, Intervals] = {}
        for proto in sorted(protocols):
            lo, hi = protocol_domain(proto)
            points = sorted({lo, *(c for c in bounds.cuts.get(proto, ()) if lo < c <= hi)})
            got: list[Interval] = []
            for i, point in enumerate(points):
                end = points[i + 1] - 1 if i + 1 < len(points) else hi
                if self._allowed(src, dst, sip, dip, proto, point):
                    got.append((point, end))
            if got:
                allowed[proto] = intervals_union(got)
        if self._allowed(src, dst, sip, dip, self.other_protocol, 0):
            allowed[OTHER_PROTOCOL] = ((0, 0),)
        return Access(allowed, frozenset(protocols))

    def _allowed(
        self,
        src: WorkloadEndpoint,
        dst: WorkloadEndpoint,
        sip: IPAddress,
        dip: IPAddress,
        proto: int,
        point: int,
    ) -> bool:
        if proto in PORT_PROTOCOLS:
            flow = Flow(sip, dip, proto, PROBE_SOURCE_PORT, point)
        elif proto in ICMP_PROTOCOLS:
            flow = Flow(sip, dip, proto, None, None, point // 256, point % 256)
        else:
            flow = Flow(sip, dip, proto)
        self.evaluations += 1
        return evaluate_flow(self.snapshot, src, dst, flow).allowed


def pair_endpoints(src: VmGroup, dst: VmGroup) -> tuple[WorkloadEndpoint, WorkloadEndpoint] | None:
    """The representative pair of two groups (two distinct members within one group)."""
    if src.key == dst.key:
        if src.size < 2:
            return None
        return src.members[0], src.members[1]
    return src.representative, dst.representative


def vm_pairs(src: VmGroup, dst: VmGroup) -> int:
    """Number of distinct (source VM, destination VM) pairs between two groups."""
    return src.size * (src.size - 1) if src.key == dst.key else src.size * dst.size
