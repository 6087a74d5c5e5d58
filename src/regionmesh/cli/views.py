"""Text views of policy results: explain traces, what-if reports, connectivity matrices/edges.

Pure functions from :mod:`regionmesh.policy` results to strings, shared by the explain
commands (:mod:`.explain_cmds`) and the demo (:mod:`.demo`). SVG/HTML drawing is
:mod:`.graph_render`; computing the results is :mod:`regionmesh.policy`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable

from regionmesh.model import Resource
from regionmesh.openstack.address_groups import describe_mirror_annotations
from regionmesh.policy import DirectionVerdict, FlowVerdict
from regionmesh.policy.connectivity import Connectivity, protocol_name
from regionmesh.policy.trace import TraceStep
from regionmesh.policy.whatif import FlowChange, WhatIf


def rule_note(resources: Iterable[Resource], direction: str, step: TraceStep) -> str | None:
    """What a matched rule stands for when that is not in its selector: for a rule translated
    from an address-group mirror, the group and the remote SG/region it mirrors."""
    if step.policy is None or step.rule_index is None:
        return None
    for res in resources:
        meta = res.metadata
        if (
            res.kind == step.policy.kind
            and meta.name == step.policy.name
            and (getattr(meta, "namespace", "") or "") == step.policy.namespace
        ):
            spec = getattr(res, "spec", None)
            rules = getattr(spec, "ingress" if direction == "ingress" else "egress", None)
            if not rules or step.rule_index >= len(rules):
                return None
            rule_meta = rules[step.rule_index].metadata
            return describe_mirror_annotations(rule_meta.annotations) if rule_meta else None
    return None


def _direction_lines(
    title: str, verdict: DirectionVerdict | None, resources: Iterable[Resource] = ()
) -> list[str]:
    if verdict is None:
        return [f"{title}: not a Calico endpoint, not policed"]
    lines = [f"{title} of {verdict.endpoint}: {verdict.action.upper()}"]
    for step in verdict.trace:
        where = f"[tier {step.tier}] " if step.tier else ""
        note = rule_note(resources, str(verdict.direction), step)
        lines.append(f"  - {where}{step.message}" + (f" ({note})" if note else ""))
    return lines


def _flow_line(verdict: FlowVerdict) -> str:
    f = verdict.flow
    proto = protocol_name(f.protocol)
    src = f"{f.src_ip}" + (f":{f.src_port}" if f.src_port is not None else "")
    dst = f"{f.dst_ip}" + (f":{f.dst_port}" if f.dst_port is not None else "")
    extra = ""
    if f.icmp_type is not None:
        extra = f" type {f.icmp_type}" + (f" code {f.icmp_code}" if f.icmp_code is not None else "")
    return f"{proto}{extra} {src} → {dst}"


def render_explanation(verdict: FlowVerdict, resources: Iterable[Resource] = ()) -> str:
    """The readable explanation of one verdict (used by explain and the demo); with the
    ``resources`` the verdict was computed from, matched rules translated from an address
    group name it."""
    resources = list(resources)
    lines = [
        f"flow:    {_flow_line(verdict)}",
        f"verdict: {'ALLOW' if verdict.allowed else 'DENY'}",
        "",
    ]
    lines += _direction_lines("egress", verdict.egress, resources)
    lines += _direction_lines("ingress", verdict.ingress, resources)
    return "\n".join(lines)


def render_what_if(result: WhatIf) -> str:
    """Text report: changes by region pair, one line per group pair and change."""
    lines = [f"what-if: {', '.join(result.resources_changed) or 'no resources'}"]
    for w in result.warnings:
        lines.append(f"WARNING: {w.message}")
    if not result.changes:
        lines.append("no flow opens or closes")
    for (r1, r2), changes in result.by_region_pair().items():
        lines.append(f"region {r1} → region {r2}:")
        merged: dict[tuple[str, str, str], list[FlowChange]] = {}
        for c in changes:
            merged.setdefault((c.change, c.src_group, c.dst_group), []).append(c)
        for (what, g1, g2), cs in merged.items():
            labels = ", ".join(c.service.label for c in cs)
            src_vms = max(c.src_vms for c in cs)
            dst_vms = max(c.dst_vms for c in cs)
            pairs = max(c.vm_pairs for c in cs)
            lines.append(
                f"  {what.upper():5} {g1} → {g2}  {labels}  "
                f"({src_vms} source VM(s) → {dst_vms} destination VM(s), {pairs} VM pair(s))"
            )
    lines.append(
        f"({result.groups} endpoint groups; {result.pairs_evaluated} of {result.pairs_total} "
        f"group pairs re-evaluated, {result.evaluations} flow evaluations)"
    )
    return "\n".join(lines)


def render_matrix(conn: Connectivity) -> str:
    """Region-by-region table: allowed VM pairs and what is allowed."""
    regions = conn.regions
    cells = conn.matrix()
    lines = ["from \\ to".ljust(12) + "".join(r.ljust(34) for r in regions)]
    for r1 in regions:
        row = r1.ljust(12)
        for r2 in regions:
            c = cells[(r1, r2)]
            what = ", ".join(c.access.labels()) or "-"
            if len(what) > 18:
                what = what[:17] + "…"
            row += f"{c.vm_pairs}/{c.total_pairs} pairs: {what}".ljust(34)
        lines.append(row.rstrip())
    return "\n".join(lines)


def render_edges(conn: Connectivity, *, cross_region_only: bool = False) -> str:
    """One line per allowed group → group edge."""
    lines = []
    for e in conn.edges():
        if cross_region_only and e.src_region == e.dst_region:
            continue
        lines.append(
            f"  {e.src_region}/{e.src_name} → {e.dst_region}/{e.dst_name}: "
            f"{', '.join(e.access.labels())}  ({e.vm_pairs} VM pair(s))"
        )
    return "\n".join(lines) or "  (none)"
