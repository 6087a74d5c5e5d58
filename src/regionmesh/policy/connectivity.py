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

Every verdict comes from :func:`regionmesh.policy.evaluate_flow`. The parts live in
:mod:`regionmesh.policy.access` (intervals, services, Access), :mod:`regionmesh.policy.grouping`
(VmGroup, GroupIndex) and :mod:`regionmesh.policy.pair_evaluation` (PairEvaluator); this module
holds the results (Edge, RegionCell, Connectivity), :func:`compute_connectivity`, and re-exports
the parts' public names. Diffing two snapshots is :mod:`regionmesh.policy.whatif`; drawing is the CLI's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from regionmesh.model import WorkloadEndpoint
from regionmesh.policy.access import (
    OTHER_PROTOCOL,
    PROBE_SOURCE_PORT,
    Access,
    Service,
    intervals_subtract,
    intervals_union,
    protocol_name,
)
from regionmesh.policy.grouping import (
    GroupIndex,
    VmGroup,
    first_ips,
    group_display_name,
    group_endpoints,
)
from regionmesh.policy.pair_evaluation import (
    PairEvaluator,
    pair_endpoints,
    vm_pairs,
)
from regionmesh.policy.snapshot import Snapshot

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
