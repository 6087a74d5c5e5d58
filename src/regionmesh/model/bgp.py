"""BGP kinds: Node, BGPConfiguration and BGPPeer, as in Calico's v3 API, plus the AS number type.

Fields, JSON names and nesting follow libcalico-go's ``NodeSpec``/``NodeBGPSpec`` and
projectcalico/api's ``BGPConfigurationSpec``/``BGPPeerSpec``, so calicoctl's strict decoding
accepts and refuses the same documents. :data:`ASNumber` decodes like Calico's
``numorstring.ASNumber`` (a JSON number, a digit string or dotted ``"X.Y"``) and is stored as a
number. The helpers at the bottom compute what Calico's consumers derive from these resources
(the effective AS number, mesh flag, listen port and log level of a node; which BGPPeers apply to
a node and which Nodes a ``peerSelector`` picks), so the routing daemon and the CLI agree.

Semantic checks (address forms, mutual exclusions, default-only fields) live in
:mod:`regionmesh.model.bgp_checks`; keys and I/O belong to :mod:`regionmesh.datastore`; rendering a
BIRD configuration belongs to the BGP daemon.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field, PlainSerializer
from pydantic.functional_validators import PlainValidator
from pydantic_core import PydanticCustomError

from regionmesh.model.base import Model, StrictBool, StrictInt, StrictStr
from regionmesh.model.meta import Resource
from regionmesh.selector import SelectorError
from regionmesh.selector import parse as parse_selector

__all__ = [
    "ASNumber",
    "BGPConfiguration",
    "BGPConfigurationSpec",
    "BGPPeer",
    "BGPPeerSpec",
    "BGPSettings",
    "DEFAULT_AS_NUMBER",
    "DEFAULT_BGP_CONFIGURATION",
    "DEFAULT_LISTEN_PORT",
    "DEFAULT_LOG_SEVERITY",
    "Node",
    "NodeBGPSpec",
    "NodeSpec",
    "NodeStatus",
    "bgp_settings",
    "node_bgp_configuration_name",
    "parse_as_number",
    "parse_peer_ip",
    "peer_applies_to_node",
    "peer_selected_nodes",
]

DEFAULT_AS_NUMBER = 64512
"""Calico's AS number when neither the Node nor BGPConfiguration ``default`` sets one."""
DEFAULT_LISTEN_PORT = 179
DEFAULT_LOG_SEVERITY = "Info"
DEFAULT_BGP_CONFIGURATION = "default"
NODE_CONFIGURATION_PREFIX = "node."
MAX_AS_NUMBER = 2**32 - 1

_DIGITS_RE = re.compile(r"^\d+$")


def parse_as_number(value: object) -> int:
    """An AS number as Calico decodes it: 0–4294967295, ``"64512"`` or dotted ``"1.10"``.

    Dotted notation is ``high.low`` with each part 0–65535 (``"1.10"`` → 65546).
    Raises ValueError with Calico's wording for anything else.
    """
    if isinstance(value, bool):
        raise ValueError("AS number must be a number or a string")
    if isinstance(value, int):
        if not 0 <= value <= MAX_AS_NUMBER:
            raise ValueError(f"AS number {value} out of range (0-{MAX_AS_NUMBER})")
        return value
    if not isinstance(value, str):
        raise ValueError("AS number must be a number or a string")
    if _DIGITS_RE.match(value) and int(value) <= MAX_AS_NUMBER:
        return int(value)
    parts = value.split(".")
    if (
        len(parts) == 2
        and all(_DIGITS_RE.match(p) for p in parts)
        and all(int(p) <= 0xFFFF for p in parts)
    ):
        return (int(parts[0]) << 16) + int(parts[1])
    raise ValueError(f"invalid AS Number format ({value})")


def _validate_as_number(value: object) -> int:
    try:
        return parse_as_number(value)
    except ValueError as exc:
        raise PydanticCustomError("as_number", str(exc)) from exc


ASNumber = Annotated[int, PlainValidator(_validate_as_number), PlainSerializer(int)]
"""A BGP AS number (``numorstring.ASNumber``): decoded from a number or string, stored as a number."""


# --- Node --------------------------------------------------------------------------------------


class NodeBGPSpec(Model):
    """``Node.spec.bgp``: the node's BGP addresses (CIDR form, e.g. ``10.0.0.1/24``) and AS."""

    as_number: ASNumber | None = Field(default=None, alias="asNumber")
    ipv4_address: StrictStr = Field(default="", alias="ipv4Address")
    ipv6_address: StrictStr = Field(default="", alias="ipv6Address")
    ipv4_ipip_tunnel_addr: StrictStr = Field(default="", alias="ipv4IPIPTunnelAddr")
    route_reflector_cluster_id: StrictStr = Field(default="", alias="routeReflectorClusterID")

    @property
    def ipv4_interface(self) -> ipaddress.IPv4Interface | None:
        """``ipv4Address`` as an interface (address + prefix), None when unset or invalid."""
        return _interface(self.ipv4_address, 4)  # type: ignore[return-value]

    @property
    def ipv6_interface(self) -> ipaddress.IPv6Interface | None:
        """``ipv6Address`` as an interface (address + prefix), None when unset or invalid."""
        return _interface(self.ipv6_address, 6)  # type: ignore[return-value]


def _interface(text: str, version: int) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    if not text:
        return None
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        return None
    return iface if iface.version == version else None


class OrchRef(Model):
    """``Node.spec.orchRefs[]``: the node's name in an orchestrator."""

    node_name: StrictStr = ""
    orchestrator: StrictStr = ""


class NodeWireguardSpec(Model):
    """``Node.spec.wireguard`` (accepted and kept; regionmesh does not use WireGuard)."""

    interface_ipv4_address: StrictStr = Field(default="", alias="interfaceIPv4Address")
    interface_ipv6_address: StrictStr = Field(default="", alias="interfaceIPv6Address")


class NodeAddress(Model):
    """``Node.spec.addresses[]``."""

    address: StrictStr = ""
    type: StrictStr = ""


class NodeInterface(Model):
    """``Node.spec.interfaces[]``."""

    name: StrictStr = ""
    addresses: list[StrictStr] = Field(default_factory=list)


class NodeSpec(Model):
    """Spec of a Calico ``Node`` (one compute host)."""

    bgp: NodeBGPSpec | None = None
    ipv4_vxlan_tunnel_addr: StrictStr = Field(default="", alias="ipv4VXLANTunnelAddr")
    vxlan_tunnel_mac_addr: StrictStr = Field(default="", alias="vxlanTunnelMACAddr")
    ipv6_vxlan_tunnel_addr: StrictStr = Field(default="", alias="ipv6VXLANTunnelAddr")
    vxlan_tunnel_mac_addr_v6: StrictStr = Field(default="", alias="vxlanTunnelMACAddrV6")
    orch_refs: list[OrchRef] = Field(default_factory=list, alias="orchRefs")
    wireguard: NodeWireguardSpec | None = None
    addresses: list[NodeAddress] = Field(default_factory=list)
    interfaces: list[NodeInterface] = Field(default_factory=list)


class NodeStatus(Model):
    """``Node.status`` (written by Calico components; kept as read)."""

    wireguard_public_key: StrictStr = ""
    wireguard_public_key_v6: StrictStr = Field(default="", alias="wireguardPublicKeyV6")
    pod_cidrs: list[StrictStr] = Field(default_factory=list, alias="podCIDRs")


class Node(Resource):
    """``Node``: a compute host, its BGP addresses and AS; labels feed BGPPeer selectors."""

    KIND: ClassVar[str] = "Node"
    kind: Literal["Node"] = "Node"
    spec: NodeSpec = Field(default_factory=NodeSpec)
    status: NodeStatus | None = None

    @property
    def bgp(self) -> NodeBGPSpec | None:
        """``spec.bgp`` (None when the node has no BGP section)."""
        return self.spec.bgp


# --- BGPConfiguration ----------------------------------------------------------------------------


class CIDRBlock(Model):
    """One ``{cidr: ...}`` entry of the service IP lists."""

    cidr: StrictStr = ""


class Community(Model):
    """A named BGP community (``aa:nn`` or ``aa:nn:mm``)."""

    name: StrictStr = ""
    value: StrictStr = ""


class PrefixAdvertisement(Model):
    """Communities to attach to routes inside ``cidr``."""

    cidr: StrictStr = ""
    communities: list[StrictStr] = Field(default_factory=list)


class SecretKeySelector(Model):
    """A Kubernetes secret reference (accepted; regionmesh has no Kubernetes secrets)."""

    name: StrictStr = ""
    key: StrictStr = ""
    optional: StrictBool | None = None


class BGPPassword(Model):
    """``password`` / ``nodeMeshPassword``."""

    secret_key_ref: SecretKeySelector | None = None


class BGPConfigurationSpec(Model):
    """Spec of ``BGPConfiguration`` (``default`` or ``node.<name>``)."""

    log_severity_screen: StrictStr | None = None
    node_to_node_mesh_enabled: StrictBool | None = None
    as_number: ASNumber | None = Field(default=None, alias="asNumber")
    service_load_balancer_ips: list[CIDRBlock] = Field(
        default_factory=list, alias="serviceLoadBalancerIPs"
    )
    service_external_ips: list[CIDRBlock] = Field(default_factory=list, alias="serviceExternalIPs")
    service_cluster_ips: list[CIDRBlock] = Field(default_factory=list, alias="serviceClusterIPs")
    service_load_balancer_aggregation: StrictStr | None = None
    communities: list[Community] = Field(default_factory=list)
    prefix_advertisements: list[PrefixAdvertisement] = Field(default_factory=list)
    listen_port: StrictInt | None = None
    node_mesh_password: BGPPassword | None = None
    node_mesh_max_restart_time: StrictStr | None = None
    bind_mode: StrictStr | None = None
    ignored_interfaces: list[StrictStr] = Field(default_factory=list)
    local_workload_peering_ipv4: StrictStr = Field(default="", alias="localWorkloadPeeringIPV4")
    local_workload_peering_ipv6: StrictStr = Field(default="", alias="localWorkloadPeeringIPV6")


class BGPConfiguration(Resource):
    """``BGPConfiguration``: cluster defaults (``default``) or per-node overrides (``node.<name>``)."""

    KIND: ClassVar[str] = "BGPConfiguration"
    kind: Literal["BGPConfiguration"] = "BGPConfiguration"
    spec: BGPConfigurationSpec = Field(default_factory=BGPConfigurationSpec)


# --- BGPPeer -------------------------------------------------------------------------------------


class BGPPeerSpec(Model):
    """Spec of ``BGPPeer``: which local nodes peer (``node``/``nodeSelector``, or all) and with
    whom (``peerIP`` + ``asNumber``, or the Nodes matched by ``peerSelector``)."""

    node: StrictStr = ""
    node_selector: StrictStr = ""
    peer_ip: StrictStr = Field(default="", alias="peerIP")
    as_number: ASNumber | None = Field(default=None, alias="asNumber")
    local_as_number: ASNumber | None = Field(default=None, alias="localASNumber")
    peer_selector: StrictStr = ""
    keep_original_next_hop: StrictBool | None = None
    next_hop_mode: StrictStr | None = None
    password: BGPPassword | None = None
    source_address: StrictStr = ""
    max_restart_time: StrictStr | None = None
    num_allowed_local_as_numbers: StrictInt | None = Field(
        default=None, alias="numAllowedLocalASNumbers"
    )
    ttl_security: StrictInt | None = Field(default=None, alias="ttlSecurity")
    reachable_by: StrictStr = ""
    filters: list[StrictStr] = Field(default_factory=list)
    local_workload_selector: StrictStr = ""
    reverse_peering: StrictStr | None = None

    @property
    def is_global(self) -> bool:
        """True when the peering applies to every node (neither ``node`` nor ``nodeSelector``)."""
        return not self.node and not self.node_selector

    @property
    def peer_address(self) -> tuple[str, int | None] | None:
        """``peerIP`` split into (address, port or None); None when unset or malformed."""
        return parse_peer_ip(self.peer_ip) if self.peer_ip else None


class BGPPeer(Resource):
    """``BGPPeer``: an extra BGP session (top-of-rack router, route reflector topology...)."""

    KIND: ClassVar[str] = "BGPPeer"
    kind: Literal["BGPPeer"] = "BGPPeer"
    spec: BGPPeerSpec = Field(default_factory=BGPPeerSpec)


_IPV4_PORT_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)\.(\d+):(\d+)$")
_IPV6_PORT_RE = re.compile(r"^\[([0-9a-fA-F:.]+)\]:(\d+)$")


def parse_peer_ip(text: str) -> tuple[str, int | None] | None:
    """``<IP>``, ``<IPv4>:<port>`` or ``[<IPv6>]:<port>`` → (address, port or None).

    None when the text is none of those forms (port must be 1–65535). The address is returned
    in its canonical text form.
    """
    host, port = text, None
    m4 = _IPV4_PORT_RE.match(text)
    m6 = _IPV6_PORT_RE.match(text)
    if m4:
        host, port = text.rsplit(":", 1)[0], int(m4.group(5))
    elif m6:
        host, port = m6.group(1), int(m6.group(2))
    if port is not None and not 1 <= port <= 65535:
        return None
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        return None


# --- what Calico's consumers derive ---------------------------------------------------------------


def node_bgp_configuration_name(node: str) -> str:
    """The name of a node's BGPConfiguration override: ``node.<name>``."""
    return NODE_CONFIGURATION_PREFIX + node


@dataclass(frozen=True, slots=True)
class BGPSettings:
    """The BGP settings in force on one node (defaults applied, per-node overrides merged)."""

    as_number: int
    node_to_node_mesh: bool
    listen_port: int
    log_severity: str
    bind_mode: str
    ignored_interfaces: tuple[str, ...]
    node_mesh_max_restart_time: str | None
    route_reflector_cluster_id: str


def bgp_settings(
    node: Node | None,
    default: BGPConfiguration | None,
    node_config: BGPConfiguration | None = None,
) -> BGPSettings:
    """Effective settings for ``node`` as confd computes them.

    AS number: the Node's ``spec.bgp.asNumber``, else BGPConfiguration ``default``'s, else
    64512. Mesh: ``default``'s ``nodeToNodeMeshEnabled`` (true when unset). Listen port, log
    severity, bind mode and ignored interfaces: the ``node.<name>`` override when it sets them,
    else ``default``'s, else 179 / ``Info`` / ``None`` / none.
    """
    d = default.spec if default is not None else BGPConfigurationSpec()
    n = node_config.spec if node_config is not None else BGPConfigurationSpec()
    bgp = node.spec.bgp if node is not None else None
    as_number = (
        bgp.as_number
        if bgp is not None and bgp.as_number is not None
        else d.as_number
        if d.as_number is not None
        else DEFAULT_AS_NUMBER
    )
    return BGPSettings(
        as_number=as_number,
        node_to_node_mesh=d.node_to_node_mesh_enabled is not False,
        listen_port=n.listen_port or d.listen_port or DEFAULT_LISTEN_PORT,
        log_severity=n.log_severity_screen or d.log_severity_screen or DEFAULT_LOG_SEVERITY,
        bind_mode=n.bind_mode or d.bind_mode or "None",
        ignored_interfaces=tuple(n.ignored_interfaces or d.ignored_interfaces),
        node_mesh_max_restart_time=d.node_mesh_max_restart_time,
        route_reflector_cluster_id=bgp.route_reflector_cluster_id if bgp is not None else "",
    )


def _selects(selector: str, labels: Mapping[str, str]) -> bool:
    try:
        return parse_selector(selector).evaluate(labels)
    except SelectorError:
        return False


def peer_applies_to_node(peer: BGPPeer, node_name: str, labels: Mapping[str, str]) -> bool:
    """True when ``peer`` configures sessions on the node (``node``, ``nodeSelector`` or global).

    An invalid selector matches nothing (validation refuses such peers on write).
    """
    spec = peer.spec
    if spec.node:
        return spec.node == node_name
    if spec.node_selector:
        return _selects(spec.node_selector, labels)
    return True


def peer_selected_nodes(peer: BGPPeer, nodes: Iterable[Node], *, exclude: str = "") -> list[Node]:
    """The Nodes a ``peerSelector`` picks (never the node named ``exclude``, i.e. itself).

    Empty when the peer has no ``peerSelector`` (it names a ``peerIP`` instead).
    """
    if not peer.spec.peer_selector:
        return []
    return [
        n
        for n in nodes
        if n.name != exclude and _selects(peer.spec.peer_selector, n.metadata.labels)
    ]
