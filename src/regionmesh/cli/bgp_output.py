"""Table cells of the BGP kinds, as calicoctl prints them (``get nodes -o wide``, bgppeers, bgpconfig).

Works on :func:`regionmesh.model.codec.to_output` dictionaries like :mod:`.output`, which calls
:func:`bgp_cell` for these kinds' columns. The only outside fact a cell needs is the cluster's
default AS number (calicoctl's ``{{config "asnumber"}}``), which the caller reads from
BGPConfiguration ``default`` with :func:`default_as_number`; nothing here reads the datastore.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regionmesh.model.bgp import DEFAULT_AS_NUMBER

__all__ = ["BGP_KINDS", "bgp_cell", "default_as_number", "handles"]

BGP_KINDS = frozenset({"Node", "BGPConfiguration", "BGPPeer"})
_COLUMNS = {
    "Node": frozenset({"ASN", "IPV4", "IPV6"}),
    "BGPConfiguration": frozenset({"LOGSEVERITY", "MESHENABLED", "ASNUMBER"}),
    "BGPPeer": frozenset({"PEERIP", "NODE", "ASN"}),
}


def handles(doc: Mapping[str, Any], column: str) -> bool:
    """True when ``column`` of this document is a BGP-kind cell (see :func:`bgp_cell`)."""
    return column in _COLUMNS.get(str(doc.get("kind", "")), frozenset())


def default_as_number(default_config: Mapping[str, Any] | None) -> str:
    """The cluster AS for a node without its own: BGPConfiguration ``default``'s, else 64512."""
    spec = (default_config or {}).get("spec") or {}
    value = spec.get("asNumber")
    return str(value) if value is not None else str(DEFAULT_AS_NUMBER)


def bgp_cell(doc: Mapping[str, Any], column: str, *, cluster_as: str | None = None) -> str:
    """One cell of a Node/BGPConfiguration/BGPPeer row (calicoctl's templates).

    Node ``ASN`` is the node's own AS, or ``(<cluster AS>)`` in parentheses when it inherits
    one, and empty when the node has no BGP section; BGPPeer ``NODE`` is the node, else the
    nodeSelector, else ``(global)``; unset BGPConfiguration values print as ``-``.
    """
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Node":
        bgp = spec.get("bgp")
        if not isinstance(bgp, Mapping):
            return ""
        if column == "ASN":
            if bgp.get("asNumber") is not None:
                return str(bgp["asNumber"])
            return f"({cluster_as or DEFAULT_AS_NUMBER})"
        return str(bgp.get("ipv4Address" if column == "IPV4" else "ipv6Address") or "")
    if kind == "BGPPeer":
        if column == "PEERIP":
            return str(spec.get("peerIP") or "")
        if column == "NODE":
            return str(spec.get("node") or spec.get("nodeSelector") or "(global)")
        return str(spec.get("asNumber") or 0)
    if column == "LOGSEVERITY":
        return str(spec.get("logSeverityScreen") or "")
    if column == "MESHENABLED":
        mesh = spec.get("nodeToNodeMeshEnabled")
        return "-" if mesh is None else ("true" if mesh else "false")
    value = spec.get("asNumber")
    return "-" if value is None else str(value)
