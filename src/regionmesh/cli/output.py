"""Printing resources the way calicoctl does: tables (default/wide), YAML, JSON, names.

Works on the output dictionaries of :func:`regionmesh.model.codec.to_output` (camelCase, as
printed), so it needs no knowledge of the model classes. No datastore access here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from regionmesh.cli import bgp_output
from regionmesh.model.kinds import API_VERSION, KindInfo


def _get(d: Mapping[str, Any], path: str) -> Any:
    cur: Any = d
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _join(values: Any) -> str:
    if not values:
        return ""
    return ",".join(str(v) for v in values)


def cell(doc: Mapping[str, Any], column: str, *, cluster_as: str | None = None) -> str:
    """The text of one table cell for a resource's output dict.

    ``cluster_as`` is the default AS number shown for Nodes without their own (see
    :mod:`.bgp_output`).
    """
    if bgp_output.handles(doc, column):
        return bgp_output.bgp_cell(doc, column, cluster_as=cluster_as)
    spec = doc.get("spec") or {}
    md = doc.get("metadata") or {}
    match column:
        case "NAME":
            return str(md.get("name", ""))
        case "NAMESPACE":
            return str(md.get("namespace", ""))
        case "TIER":
            return str(spec.get("tier") or "default")
        case "ORDER":
            order = spec.get("order")
            return "" if order is None else f"{order:g}" if isinstance(order, float) else str(order)
        case "SELECTOR":
            return str(spec.get("selector", ""))
        case "DEFAULTACTION":
            return str(spec.get("defaultAction") or "Deny")
        case "WORKLOAD":
            return str(spec.get("workload", ""))
        case "NODE":
            return str(spec.get("node", ""))
        case "NETWORKS":
            return _join(spec.get("ipNetworks"))
        case "INTERFACE":
            return str(spec.get("interfaceName", ""))
        case "PROFILES":
            return _join(spec.get("profiles"))
        case "NATS":
            return _join(
                f"{n.get('internalIP')}<->{n.get('externalIP')}" for n in spec.get("ipNATs") or []
            )
        case "IPS":
            return _join(spec.get("expectedIPs"))
        case "NETS":
            return _join(spec.get("nets"))
    return str(_get(doc, column.lower()) or "")


def table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by three spaces (calicoctl's tabwriter look)."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        parts = [c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append("   ".join(parts).rstrip())
    return "\n".join(lines) + "\n"


def render_table(
    info: KindInfo,
    docs: Sequence[Mapping[str, Any]],
    *,
    wide: bool,
    with_namespace: bool,
    cluster_as: str | None = None,
) -> str:
    """The default (``ps``) or wide table for a list of one kind."""
    columns = list(info.wide_columns if wide else info.columns)
    if info.namespaced and with_namespace:
        columns.insert(0, "NAMESPACE")
    rows = [columns] + [[cell(d, c, cluster_as=cluster_as) for c in columns] for d in docs]
    return table(rows)


def as_list(info: KindInfo, docs: Sequence[Mapping[str, Any]], revision: int) -> dict[str, Any]:
    """A typed ``<Kind>List`` document, as calicoctl prints lists in YAML/JSON."""
    return {
        "apiVersion": API_VERSION,
        "kind": f"{info.kind}List",
        "items": list(docs),
        "metadata": {"resourceVersion": str(revision)},
    }


def dump_yaml(obj: Any) -> str:
    """YAML in block style with keys in the order given."""
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True)


def dump_json(obj: Any) -> str:
    """Indented JSON, as calicoctl prints it."""
    return json.dumps(obj, indent=2) + "\n"
