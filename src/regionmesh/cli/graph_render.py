"""Draw a :class:`~regionmesh.policy.connectivity.Connectivity` as hand-written SVG or HTML.

Regions are clusters (rounded boxes side by side), displayed groups (security groups, else
label groups) are nodes inside them with their VM count, allowed flows are arrows labelled
with what they allow (``TCP/80``; ``any`` for allow-all); a group that may reach other members
of itself gets a small loop. Cross-region edges are drawn in a strong colour, intra-region ones
in grey. The HTML page is self-contained: the inline SVG, a legend and a table of every edge
(so the content is readable and searchable without the picture). No graphviz, no scripts.
Computing connectivity is :mod:`regionmesh.policy.connectivity`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from regionmesh.policy.connectivity import Connectivity, Edge

__all__ = ["render_html", "render_svg"]

NODE_W = 190
NODE_H = 46
NODE_GAP = 70
CLUSTER_PAD = 30
CLUSTER_GAP = 260
TOP = 70
CROSS = "#c0392b"
LOCAL = "#7f8c8d"


@dataclass(frozen=True, slots=True)
class _Node:
    region: str
    name: str
    vms: int
    x: float
    y: float

    @property
    def cx(self) -> float:
        return self.x + NODE_W / 2

    @property
    def cy(self) -> float:
        return self.y + NODE_H / 2


def _layout(conn: Connectivity) -> tuple[dict[tuple[str, str], _Node], dict[str, tuple[float, float, float, float]], float, float]:  # fmt: skip
    names: dict[str, dict[str, int]] = {}
    for g in conn.groups:
        names.setdefault(g.region, {})
        names[g.region][g.name] = names[g.region].get(g.name, 0) + g.size
    nodes: dict[tuple[str, str], _Node] = {}
    clusters: dict[str, tuple[float, float, float, float]] = {}
    x = 150.0  # room on the left for labels of same-region edges
    max_h = 0.0
    for region in sorted(names):
        y = TOP + CLUSTER_PAD + 30
        for name, vms in sorted(names[region].items()):
            nodes[(region, name)] = _Node(region, name, vms, x + CLUSTER_PAD, y)
            y += NODE_H + NODE_GAP
        h = y - NODE_GAP + CLUSTER_PAD - TOP
        clusters[region] = (x, TOP, NODE_W + 2 * CLUSTER_PAD, h)
        max_h = max(max_h, h)
        x += NODE_W + 2 * CLUSTER_PAD + CLUSTER_GAP
    width = max(x - CLUSTER_GAP + 110, 400)
    return nodes, clusters, width, TOP + max_h + 40


def _label(edge: Edge) -> str:
    text = ", ".join(edge.access.labels())
    return text if len(text) <= 40 else text[:39] + "…"


def _edge_svg(edge: Edge, a: _Node, b: _Node, index: int) -> str:
    cross = edge.src_region != edge.dst_region
    colour = CROSS if cross else LOCAL
    marker = "arrow-cross" if cross else "arrow-local"
    label = escape(_label(edge))
    title = escape(
        f"{edge.src_region}/{edge.src_name} → {edge.dst_region}/{edge.dst_name}: "
        f"{', '.join(edge.access.labels())} ({edge.vm_pairs} VM pairs)"
    )
    if a is b:  # a loop on the right of the node
        x0, y0 = a.x + NODE_W, a.cy - 10
        x1, y1 = a.x + NODE_W, a.cy + 10
        path = f"M{x0},{y0} C{x0 + 60},{y0 - 40} {x1 + 60},{y1 + 40} {x1},{y1}"
        lx, ly = x0 + 50, a.cy + 4
        anchor = "start"
    else:
        if a.cx < b.cx:
            x0, x1 = a.x + NODE_W, b.x
        elif a.cx > b.cx:
            x0, x1 = a.x, b.x + NODE_W
        else:
            x0 = x1 = a.x
        y0, y1 = a.cy + (6 if cross else 0), b.cy + (6 if cross else 0)
        if x0 == x1:  # same cluster: bow out to the left
            bend = 60 + 15 * (index % 4)
            path = f"M{x0},{y0} C{x0 - bend},{y0} {x1 - bend},{y1} {x1},{y1}"
            lx, ly = x0 - bend - 4, (y0 + y1) / 2
            anchor = "end"
        else:
            mx = (x0 + x1) / 2
            bow = 18 * ((index % 3) - 1)
            path = f"M{x0},{y0} C{mx},{y0 + bow} {mx},{y1 + bow} {x1},{y1}"
            lx, ly = mx, (y0 + y1) / 2 + bow - 6
            anchor = "middle"
    return (
        f'<g class="edge{" cross" if cross else ""}"><title>{title}</title>'
        f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2" '
        f'marker-end="url(#{marker})"/>'
        f'<text x="{lx:.0f}" y="{ly:.0f}" text-anchor="{anchor}" class="edge-label" '
        f'fill="{colour}">{label}</text></g>'
    )


def render_svg(conn: Connectivity, *, title: str = "regionmesh connectivity") -> str:
    """A standalone SVG document."""
    nodes, clusters, width, height = _layout(conn)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans, Arial, sans-serif" '
        'font-size="13">',
        "<defs>",
        f'<marker id="arrow-cross" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
        f'markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{CROSS}"/></marker>',
        f'<marker id="arrow-local" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
        f'markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{LOCAL}"/></marker>',
        "</defs>",
        '<rect width="100%" height="100%" fill="#ffffff"/>',
    ]
    if title:
        parts.append(
            f'<text x="20" y="30" font-size="18" font-weight="bold">{escape(title)}</text>'
        )
    for region, (x, y, w, h) in clusters.items():
        parts.append(
            f'<g class="cluster" data-region="{escape(region)}">'
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="14" fill="#eef4fb" '
            f'stroke="#5b8bd0" stroke-width="1.5"/>'
            f'<text x="{x + 14}" y="{y + 24}" font-weight="bold" fill="#2c4f7c">'
            f"region {escape(region)}</text></g>"
        )
    for node in nodes.values():
        parts.append(
            f'<g class="node" data-region="{escape(node.region)}" data-name="{escape(node.name)}">'
            f'<rect x="{node.x}" y="{node.y}" width="{NODE_W}" height="{NODE_H}" rx="8" '
            f'fill="#ffffff" stroke="#34495e" stroke-width="1.2"/>'
            f'<text x="{node.cx}" y="{node.y + 20}" text-anchor="middle" font-weight="bold">'
            f"{escape(node.name if len(node.name) <= 24 else node.name[:23] + '…')}</text>"
            f'<text x="{node.cx}" y="{node.y + 37}" text-anchor="middle" font-size="11" '
            f'fill="#555">{node.vms} VM{"s" if node.vms != 1 else ""}</text></g>'
        )
    for i, edge in enumerate(conn.edges()):
        a = nodes.get((edge.src_region, edge.src_name))
        b = nodes.get((edge.dst_region, edge.dst_name))
        if a is not None and b is not None:
            parts.append(_edge_svg(edge, a, b, i))
    if not conn.groups:
        parts.append('<text x="20" y="90">no workload endpoints</text>')
    parts.append("</svg>")
    return "\n".join(parts)


_CSS = """
body { font-family: DejaVu Sans, Arial, sans-serif; margin: 24px; color: #222; }
.legend { display: flex; gap: 28px; margin: 12px 0 18px; font-size: 14px; }
.legend span.swatch { display: inline-block; width: 28px; height: 0; vertical-align: middle;
  border-top: 3px solid; margin-right: 6px; }
table { border-collapse: collapse; margin-top: 18px; font-size: 14px; }
td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: left; }
th { background: #eef4fb; }
.edge-label { font-size: 12px; }
"""


def render_html(conn: Connectivity, *, title: str = "regionmesh connectivity") -> str:
    """A self-contained HTML page: the SVG, a legend and a table of the edges."""
    rows = []
    for e in conn.edges():
        scope = "cross-region" if e.src_region != e.dst_region else "same region"
        rows.append(
            f"<tr class='{scope.replace(' ', '-')}'><td>{escape(e.src_region)}/"
            f"{escape(e.src_name)}</td><td>{escape(e.dst_region)}/{escape(e.dst_name)}</td>"
            f"<td>{escape(', '.join(e.access.labels()))}</td><td>{e.vm_pairs}</td>"
            f"<td>{scope}</td></tr>"
        )
    table = (
        "<table id='edges'><tr><th>from</th><th>to</th><th>allowed</th><th>VM pairs</th>"
        "<th>scope</th></tr>" + "".join(rows) + "</table>"
        if rows
        else "<p id='edges'>No flow between workload endpoints is allowed.</p>"
    )
    legend = (
        "<div class='legend'>"
        "<div><span class='swatch' style='border-color:#5b8bd0'></span>region (cluster)</div>"
        "<div><span class='swatch' style='border-color:#34495e'></span>"
        "security group / label group (node, with VM count)</div>"
        f"<div><span class='swatch' style='border-color:{CROSS}'></span>"
        "allowed cross-region flow</div>"
        f"<div><span class='swatch' style='border-color:{LOCAL}'></span>"
        "allowed flow within a region</div>"
        "</div>"
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>{legend}{render_svg(conn, title='')}{table}"
        "</body></html>"
    )
