"""Who this host peers with: Calico's BGP topology rules as a pure function.

Inputs are small frozen dataclasses (:class:`NodeBGP`, :class:`BGPSettings`, :class:`PeerSpec`)
that :mod:`.daemon` builds from the v3 ``Node``, ``BGPConfiguration`` and ``BGPPeer``
resources; :func:`compute_peerings` returns one :class:`Peering` per BGP session (and address
family) the local node must have. Rules (Calico's confd, routing-security-reliability.md §1.3):

* **Mesh** (``nodeToNodeMeshEnabled``, default on): a session with every other node that has an
  address of the same family — across regions, the network is flat — except when either side
  is a route reflector (has ``routeReflectorClusterID``).
* **BGPPeer** applies to the local node when its ``node`` names it, or its ``nodeSelector``
  matches the node's labels, or it has neither (*global*). It then gives a session with
  ``peerIP`` (``asNumber`` or the local AS), or with every other node ``peerSelector`` selects.
* **Reverse peerings** (symmetry): a node *selected* by a BGPPeer's ``peerSelector`` also peers
  with every node the BGPPeer applies to, so a route reflector gets sessions to its clients.
* A route reflector treats a peer node that is not in its cluster as ``rr client``.
* Between two nodes exactly one side connects: the one with the higher address; the other is
  ``passive`` (as Calico does). Sessions to a ``peerIP`` are active.
* One session per peer address: an explicit BGPPeer wins over the mesh for the same address.

Nothing here talks to BIRD or the datastore; validating the resources is the model's job.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from regionmesh.errors import ConfigError
from regionmesh.selector import Selector, SelectorError, parse

DEFAULT_AS = 64512
MESH = "node-to-node mesh"
GLOBAL = "global"
NODE_SPECIFIC = "node specific"
_PREFIX = {MESH: "Mesh", GLOBAL: "Global", NODE_SPECIFIC: "Node"}
TYPE_BY_PREFIX = {v: k for k, v in _PREFIX.items()}


@dataclass(frozen=True, slots=True)
class NodeBGP:
    """A node's BGP-relevant facts (``Node.spec.bgp`` plus labels)."""

    name: str
    ipv4: str | None = None  # CIDR, as ``spec.bgp.ipv4Address``
    ipv6: str | None = None
    asn: int | None = None
    rr_cluster_id: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def address(self, family: int) -> str | None:
        """The bare address of ``family`` (4 or 6), or None."""
        cidr = self.ipv4 if family == 4 else self.ipv6
        return cidr.split("/", 1)[0] if cidr else None


@dataclass(frozen=True, slots=True)
class BGPSettings:
    """The effective ``BGPConfiguration`` (``default`` merged with ``node.<name>``)."""

    asn: int = DEFAULT_AS
    mesh: bool = True
    listen_port: int = 179


@dataclass(frozen=True, slots=True)
class PeerSpec:
    """One ``BGPPeer``: where it applies (``node``/``node_selector``) and whom it peers with."""

    name: str
    node: str | None = None
    node_selector: str | None = None
    peer_ip: str | None = None
    peer_selector: str | None = None
    asn: int | None = None


@dataclass(frozen=True, slots=True)
class Peering:
    """One BGP session of the local node, for one address family."""

    name: str  # BIRD protocol name, e.g. Mesh_10_0_0_2
    peer_type: str  # MESH, GLOBAL or NODE_SPECIFIC
    family: int  # 4 or 6
    address: str
    local_address: str
    local_as: int
    peer_as: int
    passive: bool = False
    rr_client: bool = False
    peer_node: str | None = None  # None for a peerIP peer
    source: str = ""  # "mesh" or the BGPPeer's name


def protocol_name(peer_type: str, address: str) -> str:
    """Calico's naming: ``Mesh_`` / ``Global_`` / ``Node_`` + the address with ``.``/``:`` as ``_``."""
    return f"{_PREFIX[peer_type]}_{address.replace('.', '_').replace(':', '_')}"


def _higher(mine: str, theirs: str) -> bool:
    """Whether our address is the higher one (then we are passive: the peer connects)."""
    a, b = ipaddress.ip_address(mine), ipaddress.ip_address(theirs)
    return (a.version, int(a)) > (b.version, int(b))


def _selector(text: str | None, where: str) -> Selector | None:
    if text is None or not text.strip():
        return None
    try:
        return parse(text)
    except SelectorError as exc:
        raise ConfigError(f"{where}: invalid selector {text!r}: {exc}") from exc


def _applies(spec: PeerSpec, node: NodeBGP, selector: Selector | None) -> bool:
    if spec.node:
        return spec.node == node.name
    if selector is not None:
        return selector.evaluate(node.labels)
    return spec.node_selector is None or not spec.node_selector.strip()


def _type(spec: PeerSpec) -> str:
    has_scope = bool(spec.node) or bool(spec.node_selector and spec.node_selector.strip())
    return NODE_SPECIFIC if has_scope else GLOBAL


def compute_peerings(
    local: NodeBGP,
    nodes: Iterable[NodeBGP],
    settings: BGPSettings,
    peers: Iterable[PeerSpec] = (),
) -> list[Peering]:
    """Every session ``local`` must have, sorted by (family, address).

    ``nodes`` may include ``local`` (it is skipped). Raises :class:`ConfigError` for a BGPPeer
    whose selector does not parse (naming the BGPPeer).
    """
    others = sorted((n for n in nodes if n.name != local.name), key=lambda n: n.name)
    local_as = local.asn or settings.asn
    chosen: dict[tuple[int, str], Peering] = {}

    def node_session(peer_type: str, other: NodeBGP, source: str) -> None:
        for family in (4, 6):
            mine, theirs = local.address(family), other.address(family)
            if mine is None or theirs is None or mine == theirs:
                continue
            if (family, theirs) in chosen:
                continue
            rr_client = bool(local.rr_cluster_id) and other.rr_cluster_id != local.rr_cluster_id
            chosen[(family, theirs)] = Peering(
                name=protocol_name(peer_type, theirs),
                peer_type=peer_type,
                family=family,
                address=theirs,
                local_address=mine,
                local_as=local_as,
                peer_as=other.asn or settings.asn,
                passive=_higher(mine, theirs),
                rr_client=rr_client,
                peer_node=other.name,
                source=source,
            )

    for spec in sorted(peers, key=lambda p: p.name):
        where = f"BGPPeer {spec.name}"
        node_sel = _selector(spec.node_selector, f"{where} spec.nodeSelector")
        peer_sel = _selector(spec.peer_selector, f"{where} spec.peerSelector")
        peer_type = _type(spec)
        if _applies(spec, local, node_sel):
            if spec.peer_ip:
                address = spec.peer_ip.split("/", 1)[0]
                family = 6 if ":" in address else 4
                mine = local.address(family)
                if mine is not None and address != mine and (family, address) not in chosen:
                    chosen[(family, address)] = Peering(
                        name=protocol_name(peer_type, address),
                        peer_type=peer_type,
                        family=family,
                        address=address,
                        local_address=mine,
                        local_as=local_as,
                        peer_as=spec.asn or local_as,
                        source=spec.name,
                    )
            elif peer_sel is not None:
                for other in others:
                    if peer_sel.evaluate(other.labels):
                        node_session(peer_type, other, spec.name)
        # Reverse: the local node is a selected peer of the nodes this BGPPeer applies to.
        if peer_sel is not None and not spec.peer_ip and peer_sel.evaluate(local.labels):
            for other in others:
                if _applies(spec, other, node_sel):
                    node_session(peer_type, other, spec.name)

    if settings.mesh and not local.rr_cluster_id:
        for other in others:
            if not other.rr_cluster_id:
                node_session(MESH, other, "mesh")
    return sorted(
        chosen.values(), key=lambda p: (p.family, ipaddress.ip_address(p.address), p.name)
    )
