"""What-if: which flows a change would open or close, before anything is written.

:func:`what_if` takes the current resources and a proposed change (resources to apply, or to
delete), builds the snapshot before and after, and diffs their grouped connectivity
(:mod:`regionmesh.policy.connectivity`). Endpoints are grouped by their signature in *both*
snapshots, so a group is equivalent before and after; a group pair is only re-evaluated when
something the verdict reads changed for one of its sides (its own resource, the policies applying
to it in either direction, its profiles, the labels at its address, or any tier). Results are
:class:`FlowChange` rows — opened or closed, by region pair, by source group → destination group
and protocol/port range, with VM counts.

:func:`lint_global_policies` warns about GlobalNetworkPolicies whose selectors reach endpoints
in every region without naming one (``projectcalico.org/namespace``): the cluster-scope trap of
landscape.md §3.10. Reading the datastore and printing are the CLI's job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from regionmesh.model import GlobalNetworkPolicy, Resource, WorkloadEndpoint
from regionmesh.model.regions import region_of_namespace
from regionmesh.policy.connectivity import (
    Access,
    GroupIndex,
    PairEvaluator,
    Service,
    VmGroup,
    first_ips,
    group_endpoints,
    pair_endpoints,
    vm_pairs,
    workload_endpoints,
)
from regionmesh.policy.labels import NAMESPACE_LABEL
from regionmesh.policy.ordering import Direction
from regionmesh.policy.snapshot import Snapshot
from regionmesh.selector import ALL, Selector

__all__ = [
    "FlowChange",
    "LintWarning",
    "WhatIf",
    "apply_changes",
    "diff_snapshots",
    "lint_global_policies",
    "what_if",
]

ResourceKey = tuple[str, str, str]


def _key(res: Resource) -> ResourceKey:
    return (res.kind, res.metadata.namespace or "", res.metadata.name)


def apply_changes(
    current: Iterable[Resource], changes: Iterable[Resource], *, delete: bool = False
) -> list[Resource]:
    """``current`` with ``changes`` applied (create or replace by kind/namespace/name), or
    removed when ``delete``. Unchanged resources are the same objects as in ``current``."""
    out: dict[ResourceKey, Resource] = {_key(r): r for r in current}
    for res in changes:
        if delete:
            out.pop(_key(res), None)
        else:
            out[_key(res)] = res
    return list(out.values())


@dataclass(frozen=True, slots=True)
class FlowChange:
    """Flows that open (or close) from one displayed group to another."""

    change: str
    """``open`` or ``close``."""
    src_region: str
    src_group: str
    dst_region: str
    dst_group: str
    service: Service
    src_vms: int
    dst_vms: int
    vm_pairs: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "change": self.change,
            "from": {"region": self.src_region, "group": self.src_group, "vms": self.src_vms},
            "to": {"region": self.dst_region, "group": self.dst_group, "vms": self.dst_vms},
            "service": self.service.to_dict(),
            "vmPairs": self.vm_pairs,
        }

    def describe(self) -> str:
        """One line: ``OPEN  two/sg-b → one/sg-a  TCP/80  (2 VMs → 1 VM, 2 VM pairs)``."""

        def vms(n: int) -> str:
            return f"{n} VM" if n == 1 else f"{n} VMs"

        return (
            f"{self.change.upper():5} {self.src_region}/{self.src_group} → "
            f"{self.dst_region}/{self.dst_group}  {self.service.label}  "
            f"({vms(self.src_vms)} → {vms(self.dst_vms)}, {self.vm_pairs} VM pairs)"
        )


@dataclass(frozen=True, slots=True)
class LintWarning:
    """A GNP selector that reaches every region without naming one."""

    policy: str
    field: str
    selector: str
    regions: tuple[str, ...]

    @property
    def message(self) -> str:
        """The warning sentence."""
        return (
            f"GlobalNetworkPolicy {self.policy}: {self.field} {self.selector!r} reaches "
            f"endpoints in all {len(self.regions)} regions ({', '.join(self.regions)}) without "
            f"naming a region; add {NAMESPACE_LABEL} == 'openstack-region-<r>' to scope it if "
            "that is not intended"
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "policy": self.policy,
            "field": self.field,
            "selector": self.selector,
            "regions": list(self.regions),
            "message": self.message,
        }


@dataclass
class WhatIf:
    """The outcome of a proposed change."""

    changes: list[FlowChange]
    warnings: list[LintWarning]
    groups: int = 0
    pairs_evaluated: int = 0
    pairs_total: int = 0
    evaluations: int = 0
    resources_changed: list[str] = field(default_factory=list)

    def by_region_pair(self) -> dict[tuple[str, str], list[FlowChange]]:
        """Changes grouped by (source region, destination region), sorted."""
        out: dict[tuple[str, str], list[FlowChange]] = defaultdict(list)
        for c in self.changes:
            out[(c.src_region, c.dst_region)].append(c)
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "resources": self.resources_changed,
            "opened": [c.to_dict() for c in self.changes if c.change == "open"],
            "closed": [c.to_dict() for c in self.changes if c.change == "close"],
            "warnings": [w.to_dict() for w in self.warnings],
            "stats": {
                "groups": self.groups,
                "groupPairs": self.pairs_total,
                "groupPairsEvaluated": self.pairs_evaluated,
                "evaluations": self.evaluations,
            },
        }


def _same(a: object, b: object) -> bool:
    return a is b or a == b


class _ChangeDetector:
    """Whether anything the verdict reads about an endpoint differs between two snapshots."""

    def __init__(self, before: Snapshot, after: Snapshot) -> None:
        self.before = before
        self.after = after
        self.tiers_same = before.tier_names == after.tier_names and before.tiers == after.tiers

    def _at_ip(self, snap: Snapshot, ep: WorkloadEndpoint) -> list[object]:
        out: list[object] = []
        for ip in first_ips(ep):
            if ip is None:
                out.append(None)
                continue
            out.append(
                sorted(
                    (r.kind, r.resource.metadata.namespace, r.resource.metadata.name, r.ports)
                    + tuple(sorted(r.labels.items()))
                    for r in snap.entities_at(ip)
                )
            )
        return out

    def unchanged(self, eb: WorkloadEndpoint | None, ea: WorkloadEndpoint | None) -> bool:
        if not self.tiers_same or eb is None or ea is None or not _same(eb, ea):
            return False
        for d in (Direction.INGRESS, Direction.EGRESS):
            pb = [p.policy for _t, ps in self.before.applicable_tiers(eb, d) for p in ps]
            pa = [p.policy for _t, ps in self.after.applicable_tiers(ea, d) for p in ps]
            if len(pb) != len(pa) or not all(_same(x, y) for x, y in zip(pb, pa, strict=True)):
                return False
        for name in eb.spec.profiles:
            if not _same(self.before.profile(name), self.after.profile(name)):
                return False
        return self._at_ip(self.before, eb) == self._at_ip(self.after, ea)


def diff_snapshots(before: Snapshot, after: Snapshot) -> WhatIf:
    """Flows opened and closed going from ``before`` to ``after`` (no lint)."""
    idx_b, idx_a = GroupIndex(before), GroupIndex(after)
    eps_b = {(e.metadata.namespace, e.metadata.name): e for e in workload_endpoints(before)}
    eps_a = {(e.metadata.namespace, e.metadata.name): e for e in workload_endpoints(after)}
    display: dict[tuple[str, str], WorkloadEndpoint] = {**eps_b, **eps_a}

    def joint(ep: WorkloadEndpoint) -> tuple[object, ...]:
        k = (ep.metadata.namespace, ep.metadata.name)
        b, a = eps_b.get(k), eps_a.get(k)
        return (
            idx_b.signature(b) if b is not None else None,
            idx_a.signature(a) if a is not None else None,
        )

    def labels(ep: WorkloadEndpoint) -> dict[str, str]:
        k = (ep.metadata.namespace, ep.metadata.name)
        snap = after if k in eps_a else before
        return dict(snap.labels_of(ep))

    groups = group_endpoints(display.values(), joint, labels)
    detector = _ChangeDetector(before, after)
    changed: dict[int, bool] = {}
    for g in groups:
        k = (g.representative.metadata.namespace, g.representative.metadata.name)
        changed[g.key] = not detector.unchanged(eps_b.get(k), eps_a.get(k))
    ev_b, ev_a = PairEvaluator(before), PairEvaluator(after)

    def access(
        ev: PairEvaluator, eps: dict[tuple[str, str], WorkloadEndpoint], s: VmGroup, d: VmGroup
    ) -> Access:
        pair = pair_endpoints(s, d)
        if pair is None:
            return Access()
        ks = (pair[0].metadata.namespace, pair[0].metadata.name)
        kd = (pair[1].metadata.namespace, pair[1].metadata.name)
        src, dst = eps.get(ks), eps.get(kd)
        if src is None or dst is None:
            return Access()
        return ev.access(src, dst)

    rows: dict[tuple[str, str, str, str, str, Service], list[tuple[VmGroup, VmGroup]]] = (
        defaultdict(list)
    )
    evaluated = 0
    for s in groups:
        for d in groups:
            if not (changed[s.key] or changed[d.key]) or pair_endpoints(s, d) is None:
                continue
            evaluated += 1
            a_b = access(ev_b, eps_b, s, d)
            a_a = access(ev_a, eps_a, s, d)
            for what, delta in (("open", a_a.minus(a_b)), ("close", a_b.minus(a_a))):
                for svc in delta.services():
                    rows[(what, s.region, s.name, d.region, d.name, svc)].append((s, d))
    changes = []
    for (what, r1, n1, r2, n2, svc), pairs in rows.items():
        srcs = {s.key: s.size for s, _ in pairs}
        dsts = {d.key: d.size for _, d in pairs}
        total = sum(vm_pairs(s, d) for s, d in pairs)
        changes.append(
            FlowChange(what, r1, n1, r2, n2, svc, sum(srcs.values()), sum(dsts.values()), total)
        )
    changes.sort(
        key=lambda c: (
            (c.src_region, c.dst_region, c.change != "open", c.src_group, c.dst_group)
            + (c.service.protocol, c.service.low)
        )
    )
    total_pairs = sum(1 for s in groups for d in groups if pair_endpoints(s, d) is not None)
    return WhatIf(
        changes,
        [],
        groups=len(groups),
        pairs_evaluated=evaluated,
        pairs_total=total_pairs,
        evaluations=ev_b.evaluations + ev_a.evaluations,
    )


def _regions_reached(snapshot: Snapshot, selector: Selector) -> set[str]:
    out: set[str] = set()
    for rec in snapshot.members(selector):
        if isinstance(rec.resource, WorkloadEndpoint):
            region = region_of_namespace(rec.resource.metadata.namespace)
            if region is not None:
                out.add(region)
    return out


def lint_global_policies(
    snapshot: Snapshot, policies: Iterable[GlobalNetworkPolicy]
) -> list[LintWarning]:
    """Warn for each selector of ``policies`` (as they are in ``snapshot``) that reaches
    endpoints in every region (two or more) without mentioning ``projectcalico.org/namespace``."""
    all_regions = _regions_reached(snapshot, ALL)
    if len(all_regions) < 2:
        return []
    regions = tuple(sorted(all_regions))
    out: list[LintWarning] = []
    for gnp in policies:
        rec = snapshot.policy("GlobalNetworkPolicy", "", gnp.metadata.name)
        if rec is None:
            continue
        checks: list[tuple[str, str, Selector | None]] = [
            ("spec.selector", gnp.spec.selector or "all()", rec.selector)
        ]
        for d in (Direction.INGRESS, Direction.EGRESS):
            for i, rule in enumerate(rec.rules(d)):
                for side_name, side, raw in (
                    ("source", rule.source, rule.rule.source),
                    ("destination", rule.destination, rule.rule.destination),
                ):
                    if raw.selector or raw.namespace_selector:
                        text = " && ".join(t for t in (raw.namespace_selector, raw.selector) if t)
                        checks.append((f"spec.{d}[{i}].{side_name}.selector", text, side.positive))
        for where, text, selector in checks:
            if selector is None or NAMESPACE_LABEL in text:
                continue
            if _regions_reached(snapshot, selector) >= all_regions:
                out.append(LintWarning(gnp.metadata.name, where, text, regions))
    return out


def what_if(
    current: Sequence[Resource], changes: Sequence[Resource], *, delete: bool = False
) -> WhatIf:
    """Diff connectivity of ``current`` vs ``current`` with ``changes`` applied (or deleted),
    and lint the GlobalNetworkPolicies being applied."""
    before = Snapshot(current)
    after = Snapshot(apply_changes(current, changes, delete=delete))
    result = diff_snapshots(before, after)
    if not delete:
        gnps = [r for r in changes if isinstance(r, GlobalNetworkPolicy)]
        result.warnings = lint_global_policies(after, gnps)
    verb = "delete" if delete else "apply"
    result.resources_changed = [
        f"{verb} {r.kind}({r.metadata.namespace + '/' if r.metadata.namespace else ''}"
        f"{r.metadata.name})"
        for r in changes
    ]
    return result
