"""Who can reach whom: grouped, exact connectivity between workload endpoints.

Evaluating every VM pair of a cloud is 10^8 flows at 10k VMs, so endpoints are first
partitioned into :class:`VmGroup` s of *equivalent* endpoints: same region/namespace, same
effective label set, same profiles and declared ports, the same other entities sharing their
address, and the same membership in every CIDR any rule mentions. Every input of the verdict
algorithm is then identical for all members, so one representative pair per group pair decides
for all (VMs of the same security groups on the same network form one group).

For a group pair, the destination-port axis of each port protocol (and the type/code axis of
ICMP, linearised as ``type*256+code``) is cut at every boundary a *relevant* rule mentions
(the rules of the policies and profiles applying to the source's egress and the destination's
ingress: port ranges, notPorts, named ports resolved through the endpoints that declare them,
ICMP type/code). The verdict is constant between boundaries, so one probe per interval gives the
exact set of allowed port ranges, as an :class:`Access` (protocol → disjoint intervals).
Protocols probed: TCP, UDP, ICMP of the pair's IP version, every protocol/notProtocol a rule
names, and one representative "other protocol". Flows are probed from source port
:data:`PROBE_SOURCE_PORT` (rules on *source* ports are evaluated at that port only) and between
each group's first address of a common IP version.

Every verdict comes from :func:`regionmesh.policy.evaluate_flow`; this module only chooses what
to ask. Diffing two snapshots is :mod:`regionmesh.policy.whatif`; drawing is the CLI's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from regionmesh.model import WorkloadEndpoint
from regionmesh.model.regions import region_of_namespace
from regionmesh.policy.flows import (
    PROTOCOL_ICMP,
    PROTOCOL_ICMPV6,
    PROTOCOL_TCP,
    PROTOCOL_UDP,
    CompiledRule,
    CompiledSide,
    Flow,
    IPAddress,
    IPNetwork,
    parse_net,
)
from regionmesh.policy.ordering import Direction
from regionmesh.policy.snapshot import Snapshot
from regionmesh.policy.verdicts import evaluate_flow

__all__ = [
    "OTHER_PROTOCOL",
    "PROBE_SOURCE_PORT",
    "Access",
    "Connectivity",
    "Edge",
    "GroupIndex",
    "PairEvaluator",
    "RegionCell",
    "Service",
    "VmGroup",
    "compute_connectivity",
    "first_ips",
    "group_display_name",
    "group_endpoints",
    "intervals_subtract",
    "intervals_union",
    "pair_endpoints",
    "vm_pairs",
    "workload_endpoints",
    "protocol_name",
]

Interval = tuple[int, int]
Intervals = tuple[Interval, ...]
"""Sorted, disjoint, non-adjacent inclusive intervals."""

OTHER_PROTOCOL = -1
"""Access key for "every protocol not probed by name"."""
PROBE_SOURCE_PORT = 40000
PORT_PROTOCOLS = frozenset({6, 17, 132, 136})
ICMP_PROTOCOLS = frozenset({PROTOCOL_ICMP, PROTOCOL_ICMPV6})
PORT_DOMAIN: Interval = (0, 65535)
ICMP_DOMAIN: Interval = (0, 255 * 256 + 255)
_NAMES = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMPv6", 132: "SCTP", 136: "UDPLite"}
_SG_NAME = "sg-name.projectcalico.org/openstack-"
_SG_ID = "sg.projectcalico.org/openstack-"


def protocol_name(protocol: int) -> str:
    """``TCP``/``UDP``/… or ``protocol N`` (``other`` for :data:`OTHER_PROTOCOL`)."""
    if protocol == OTHER_PROTOCOL:
        return "other protocols"
    return _NAMES.get(protocol, f"protocol {protocol}")


def _domain(protocol: int) -> Interval:
    if protocol in PORT_PROTOCOLS:
        return PORT_DOMAIN
    if protocol in ICMP_PROTOCOLS:
        return ICMP_DOMAIN
    return (0, 0)


def intervals_union(items: Iterable[Interval]) -> Intervals:
    """Merge intervals into sorted, disjoint, non-adjacent ones."""
    out: list[list[int]] = []
    for lo, hi in sorted(items):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def intervals_subtract(a: Intervals, b: Intervals) -> Intervals:
    """``a`` minus ``b`` (both normalised)."""
    out: list[Interval] = []
    for lo, hi in a:
        cur = lo
        for blo, bhi in b:
            if bhi < cur or blo > hi:
                continue
            if blo > cur:
                out.append((cur, blo - 1))
            cur = max(cur, bhi + 1)
            if cur > hi:
                break
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


@dataclass(frozen=True, slots=True, order=True)
class Service:
    """A protocol and an inclusive range on its axis (ports, or ``type*256+code`` for ICMP)."""

    protocol: int
    low: int = 0
    high: int = 0

    @property
    def label(self) -> str:
        """``TCP/80``, ``TCP/8000-8080``, ``TCP`` (all ports), ``ICMP type 8``, ``ICMP 8/0``…"""
        name = protocol_name(self.protocol)
        lo, hi = self.low, self.high
        if (lo, hi) == _domain(self.protocol):
            return name
        if self.protocol in ICMP_PROTOCOLS:
            (t1, c1), (t2, c2) = divmod(lo, 256), divmod(hi, 256)
            if c1 == 0 and c2 == 255:
                return f"{name} type {t1}" if t1 == t2 else f"{name} types {t1}-{t2}"
            if t1 == t2:
                return f"{name} {t1}/{c1}" if c1 == c2 else f"{name} {t1}/{c1}-{c2}"
            return f"{name} {t1}/{c1}-{t2}/{c2}"
        return f"{name}/{lo}" if lo == hi else f"{name}/{lo}-{hi}"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        out: dict[str, object] = {"protocol": protocol_name(self.protocol), "label": self.label}
        if self.protocol in PORT_PROTOCOLS:
            out["ports"] = [self.low, self.high]
        elif self.protocol in ICMP_PROTOCOLS and (self.low, self.high) != ICMP_DOMAIN:
            out["icmp"] = [list(divmod(self.low, 256)), list(divmod(self.high, 256))]
        return out


@dataclass(frozen=True, slots=True)
class Access:
    """What one group may send another: allowed intervals per protocol (empty = nothing).

    ``probed`` lists the protocols evaluated by name; any other protocol behaves like the
    representative :data:`OTHER_PROTOCOL` (no relevant rule names it).
    """

    allowed: Mapping[int, Intervals] = field(default_factory=dict)
    probed: frozenset[int] | None = None

    def __bool__(self) -> bool:
        return any(self.allowed.values())

    def _probed(self) -> frozenset[int]:
        return self.probed if self.probed is not None else frozenset(self.allowed)

    def get(self, protocol: int) -> Intervals:
        """Allowed intervals of ``protocol`` (unprobed protocols: as "other protocols")."""
        if protocol in self.allowed:
            return self.allowed[protocol]
        if protocol == OTHER_PROTOCOL or protocol in self._probed():
            return ()
        return (_domain(protocol),) if self.allowed.get(OTHER_PROTOCOL) else ()

    def services(self) -> list[Service]:
        """One :class:`Service` per allowed interval, protocols in a stable order."""
        return [
            Service(p, lo, hi)
            for p in sorted(self.allowed, key=_proto_order)
            for lo, hi in self.allowed[p]
        ]

    def is_everything(self) -> bool:
        """True when every probed protocol is fully allowed (an "allow all")."""
        return (
            bool(self.allowed)
            and OTHER_PROTOCOL in self.allowed
            and all(iv == (_domain(p),) for p, iv in self.allowed.items())
        )

    def labels(self) -> list[str]:
        """Human labels (``any`` for allow-all)."""
        if self.is_everything():
            return ["any"]
        return [s.label for s in self.services()]

    def minus(self, other: Access) -> Access:
        """What ``self`` allows that ``other`` does not."""
        keys = set(self.allowed) | set(other.allowed) | self._probed() | other._probed()
        out: dict[int, Intervals] = {}
        for p in keys:
            rest = intervals_subtract(self.get(p), other.get(p))
            if rest:
                out[p] = rest
        return Access(out, frozenset(keys))

    def union(self, other: Access) -> Access:
        """Everything either allows."""
        keys = set(self.allowed) | set(other.allowed) | self._probed() | other._probed()
        out = {p: intervals_union([*self.get(p), *other.get(p)]) for p in keys}
        return Access({p: iv for p, iv in out.items() if iv}, frozenset(keys))


def _proto_order(p: int) -> tuple[int, int]:
    return (1, 0) if p == OTHER_PROTOCOL else (0, p)


# --------------------------------------------------------------------------- grouping


@dataclass(frozen=True, slots=True)
class VmGroup:
    """Equivalent workload endpoints (see the module docstring)."""

    key: int
    region: str
    """The region (from ``openstack-region-<r>``), or the namespace for other namespaces."""
    name: str
    """Display name: security-group names/ids, else a few labels."""
    members: tuple[WorkloadEndpoint, ...]

    @property
    def size(self) -> int:
        """Number of VMs (endpoints) in the group."""
        return len(self.members)

    @property
    def representative(self) -> WorkloadEndpoint:
        """The member whose flows are evaluated for the group."""
        return self.members[0]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "region": self.region,
            "name": self.name,
            "vms": self.size,
            "members": [f"{m.metadata.namespace}/{m.metadata.name}" for m in self.members[:20]],
        }


def region_label(namespace: str) -> str:
    """The region of a namespace, or the namespace itself."""
    return region_of_namespace(namespace) or namespace


def group_display_name(labels: Mapping[str, str]) -> str:
    """Security groups by name (else id prefix), else up to three plain labels."""
    names = sorted(k[len(_SG_NAME) :] for k in labels if k.startswith(_SG_NAME))
    if not names:
        names = sorted(k[len(_SG_ID) :][:8] for k in labels if k.startswith(_SG_ID))
    if names:
        return "+".join(names)
    plain = sorted(
        f"{k}={v}" if v else k
        for k, v in labels.items()
        if not k.startswith("projectcalico.org/") and "openstack-" not in k
    )
    if not plain:
        return "(no labels)"
    return ",".join(plain[:3]) + (",…" if len(plain) > 3 else "")


def first_ips(ep: WorkloadEndpoint) -> tuple[IPAddress | None, IPAddress | None]:
    v4: IPAddress | None = None
    v6: IPAddress | None = None
    for text in ep.spec.ip_networks:
        try:
            addr = parse_net(text).network_address
        except ValueError:
            continue
        if addr.version == 4 and v4 is None:
            v4 = addr
        elif addr.version == 6 and v6 is None:
            v6 = addr
    return v4, v6


def _rule_sources(snapshot: Snapshot) -> Iterator[CompiledRule]:
    for pol in snapshot.policies:
        for d in (Direction.INGRESS, Direction.EGRESS):
            yield from pol.rules(d)
    for name in snapshot.profiles:
        prof = snapshot.profile_record(name)
        if prof is not None:
            for d in (Direction.INGRESS, Direction.EGRESS):
                yield from prof.rules(d)


class _CidrIndex:
    """Every CIDR rules mention, for "which of them contain this address" lookups."""

    def __init__(self, snapshot: Snapshot) -> None:
        nets: set[IPNetwork] = set()
        for rule in _rule_sources(snapshot):
            for side in (rule.source, rule.destination):
                nets.update(side.nets)
                nets.update(side.not_nets)
        self._by_len: dict[tuple[int, int], set[int]] = defaultdict(set)
        for net in nets:
            self._by_len[(net.version, net.prefixlen)].add(int(net.network_address))

    def containing(self, ip: IPAddress) -> tuple[tuple[int, int], ...]:
        """(prefixlen, network int) of every mentioned CIDR containing ``ip``."""
        value = int(ip)
        bits = 32 if ip.version == 4 else 128
        out: list[tuple[int, int]] = []
        for (version, plen), nets in self._by_len.items():
            if version != ip.version:
                continue
            masked = value & (((1 << plen) - 1) << (bits - plen)) if plen else 0
            if masked in nets:
                out.append((plen, masked))
        return tuple(sorted(out))


class GroupIndex:
    """Signature of each workload endpoint in one snapshot (equal signature ⇒ equivalent)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._cidrs = _CidrIndex(snapshot)

    def signature(self, ep: WorkloadEndpoint) -> tuple[object, ...]:
        """Everything the verdict algorithm reads about ``ep`` (see the module docstring)."""
        snap = self.snapshot
        rec = snap.record_for(ep)
        sig: list[object] = [ep.metadata.namespace, rec.group.gid, tuple(ep.spec.profiles)]
        sig.append(rec.ports)
        for ip in first_ips(ep):
            if ip is None:
                sig.append(None)
                continue
            others = tuple(
                sorted(
                    (r.group.gid, r.ports)
                    for r in snap.entities_at(ip)
                    if r.resource is not ep and r.resource != ep
                )
            )
            sig.append((others, self._cidrs.containing(ip)))
        return tuple(sig)


def group_endpoints(
    endpoints: Iterable[WorkloadEndpoint],
    key: Callable[[WorkloadEndpoint], Sequence[object]],
    labels_of: Callable[[WorkloadEndpoint], Mapping[str, str]],
) -> list[VmGroup]:
    """Partition ``endpoints`` by ``key``; groups ordered by region, name, then first member."""
    buckets: dict[tuple[object, ...], list[WorkloadEndpoint]] = {}
    for ep in endpoints:
        buckets.setdefault(tuple(key(ep)), []).append(ep)
    raw = []
    for members in buckets.values():
        members.sort(key=lambda e: (e.metadata.namespace, e.metadata.name))
        first = members[0]
        raw.append(
            (
                region_label(first.metadata.namespace),
                group_display_name(labels_of(first)),
                first.metadata.namespace,
                first.metadata.name,
                tuple(members),
            )
        )
    raw.sort(key=lambda t: t[:4])
    return [VmGroup(i, r, n, m) for i, (r, n, _ns, _nm, m) in enumerate(raw)]


# --------------------------------------------------------------------------- evaluation


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
        for rule in _rule_sources(snapshot):
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
            lo, hi = _domain(proto)
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


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Edge:
    """Allowed access between two displayed groups (groups with one name merged)."""

    src_region: str
    src_name: str
    dst_region: str
    dst_name: str
    access: Access
    src_vms: int
    dst_vms: int
    vm_pairs: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "from": {"region": self.src_region, "group": self.src_name, "vms": self.src_vms},
            "to": {"region": self.dst_region, "group": self.dst_name, "vms": self.dst_vms},
            "allowed": self.access.labels(),
            "vmPairs": self.vm_pairs,
        }


@dataclass(frozen=True, slots=True)
class RegionCell:
    """One cell of the region-by-region matrix."""

    src_region: str
    dst_region: str
    vm_pairs: int
    """VM pairs with some allowed access."""
    total_pairs: int
    access: Access
    """The union of what is allowed between any of the pairs."""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "from": self.src_region,
            "to": self.dst_region,
            "vmPairsAllowed": self.vm_pairs,
            "vmPairs": self.total_pairs,
            "allowed": self.access.labels(),
        }


@dataclass
class Connectivity:
    """Grouped connectivity of one snapshot: groups and the access of each group pair."""

    groups: list[VmGroup]
    access: dict[tuple[int, int], Access]
    """(source key, destination key) → non-empty access."""
    evaluations: int = 0

    @property
    def regions(self) -> list[str]:
        """Regions with at least one group, sorted."""
        return sorted({g.region for g in self.groups})

    def matrix(self) -> dict[tuple[str, str], RegionCell]:
        """Region-by-region cells (every ordered pair of regions)."""
        by_key = {g.key: g for g in self.groups}
        totals: dict[str, int] = defaultdict(int)
        for g in self.groups:
            totals[g.region] += g.size
        allowed_pairs: dict[tuple[str, str], int] = defaultdict(int)
        acc: dict[tuple[str, str], Access] = {}
        for (s, d), a in self.access.items():
            sg, dg = by_key[s], by_key[d]
            cell = (sg.region, dg.region)
            allowed_pairs[cell] += vm_pairs(sg, dg)
            acc[cell] = acc[cell].union(a) if cell in acc else a
        out = {}
        for r1 in self.regions:
            for r2 in self.regions:
                total = totals[r1] * totals[r2] - (totals[r1] if r1 == r2 else 0)
                out[(r1, r2)] = RegionCell(
                    r1, r2, allowed_pairs[(r1, r2)], total, acc.get((r1, r2), Access())
                )
        return out

    def edges(self) -> list[Edge]:
        """Allowed access aggregated by displayed (region, group name) pairs."""
        by_key = {g.key: g for g in self.groups}
        merged: dict[tuple[str, str, str, str], list[tuple[VmGroup, VmGroup, Access]]] = (
            defaultdict(list)
        )
        for (s, d), a in self.access.items():
            sg, dg = by_key[s], by_key[d]
            merged[(sg.region, sg.name, dg.region, dg.name)].append((sg, dg, a))
        out = []
        for (r1, n1, r2, n2), items in sorted(merged.items()):
            total = Access()
            srcs: dict[int, int] = {}
            dsts: dict[int, int] = {}
            pairs = 0
            for sg, dg, a in items:
                total = total.union(a)
                srcs[sg.key] = sg.size
                dsts[dg.key] = dg.size
                pairs += vm_pairs(sg, dg)
            out.append(Edge(r1, n1, r2, n2, total, sum(srcs.values()), sum(dsts.values()), pairs))
        return out

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form: groups, region matrix and edges."""
        return {
            "regions": self.regions,
            "groups": [g.to_dict() for g in self.groups],
            "matrix": [c.to_dict() for c in self.matrix().values()],
            "edges": [e.to_dict() for e in self.edges()],
        }


def workload_endpoints(snapshot: Snapshot) -> list[WorkloadEndpoint]:
    """Every WorkloadEndpoint of ``snapshot``."""
    return [e for e in snapshot.endpoints() if isinstance(e, WorkloadEndpoint)]


def compute_connectivity(snapshot: Snapshot, *, region: str | None = None) -> Connectivity:
    """Grouped connectivity of every workload endpoint (only pairs touching ``region`` when
    given)."""
    index = GroupIndex(snapshot)
    groups = group_endpoints(workload_endpoints(snapshot), index.signature, snapshot.labels_of)
    evaluator = PairEvaluator(snapshot)
    access: dict[tuple[int, int], Access] = {}
    for sg in groups:
        for dg in groups:
            if region is not None and region not in (sg.region, dg.region):
                continue
            pair = pair_endpoints(sg, dg)
            if pair is None:
                continue
            got = evaluator.access(*pair)
            if got:
                access[(sg.key, dg.key)] = got
    if region is not None:
        touching = {k for pair in access for k in pair} | {
            g.key for g in groups if g.region == region
        }
        groups = [g for g in groups if g.key in touching]
    return Connectivity(groups, access, evaluator.evaluations)
