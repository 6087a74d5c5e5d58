"""calicoctl's validation of the BGP kinds (Node, BGPConfiguration, BGPPeer).

Called from :func:`regionmesh.model.validation.validate` with its error collector, so problems
carry JSON paths (``spec.bgp.ipv4Address``) like every other kind. The rules are libcalico-go's
validator tags and struct checks for ``NodeSpec``, ``BGPConfigurationSpec`` and ``BGPPeerSpec``
plus the client's "default-only fields" check of BGPConfiguration. Checks that compare several
resources (duplicate node addresses, endpoints on hosts without a Node) are ``regionmesh
doctor``'s; what the values mean to BIRD is the BGP daemon's business.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from regionmesh.model.bgp import (
    DEFAULT_BGP_CONFIGURATION,
    BGPConfiguration,
    BGPPeer,
    Node,
    parse_peer_ip,
)
from regionmesh.model.config import parse_go_duration

if TYPE_CHECKING:
    from regionmesh.model.validation import _Errors

__all__ = ["check_bgp_configuration", "check_bgp_peer", "check_node"]

LOG_LEVELS = ("Trace", "Debug", "Info", "Warning", "Error", "Fatal")
_IGNORED_INTERFACE_RE = re.compile(r"^[a-zA-Z0-9_.*-]{1,15}$")
_MAC_RE = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")
_STANDARD_COMMUNITY_RE = re.compile(r"^(\d+):(\d+)$")
_LARGE_COMMUNITY_RE = re.compile(r"^(\d+):(\d+):(\d+)$")
_CIDR_TEXT_RE = re.compile(r"^[0-9A-Fa-f:.]+(/\d{1,3})?$")
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NAME_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")


def _address_or_cidr(text: str, version: int) -> bool:
    """libcalico-go's ``cidrv4``/``cidrv6``: an address, or address/prefix (host bits allowed)."""
    if not _CIDR_TEXT_RE.match(text):
        return False
    try:
        return ipaddress.ip_interface(text).version == version
    except ValueError:
        return False


def _address(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _network(text: str) -> bool:
    """libcalico-go's ``net``: an address or a strictly masked CIDR."""
    if not _CIDR_TEXT_RE.match(text):
        return False
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError:
        return False
    return True


def _community_ok(value: str) -> bool:
    m = _STANDARD_COMMUNITY_RE.match(value)
    if m:
        return all(int(g) <= 0xFFFF for g in m.groups())
    m = _LARGE_COMMUNITY_RE.match(value)
    if m:
        return all(int(g) <= 0xFFFFFFFF for g in m.groups())
    return False


def check_node(errs: _Errors, res: Node) -> None:
    """Node: DNS-1123 subdomain name, BGP addresses in CIDR form, IPv4 cluster id, etc."""
    errs.name(res.name, "subdomain")
    spec = res.spec
    bgp = spec.bgp
    if bgp is not None:
        if bgp.as_number is None and not (
            bgp.ipv4_address
            or bgp.ipv6_address
            or bgp.ipv4_ipip_tunnel_addr
            or bgp.route_reflector_cluster_id
        ):
            errs.add("spec.bgp", {}, "Spec.BGP should not be empty")
        if bgp.ipv4_address and not _address_or_cidr(bgp.ipv4_address, 4):
            errs.add(
                "spec.bgp.ipv4Address",
                bgp.ipv4_address,
                "must be an IPv4 address with its prefix length, e.g. 10.0.0.1/24",
            )
        if bgp.ipv6_address and not _address_or_cidr(bgp.ipv6_address, 6):
            errs.add(
                "spec.bgp.ipv6Address",
                bgp.ipv6_address,
                "must be an IPv6 address with its prefix length, e.g. fd00::1/64",
            )
        if bgp.ipv4_ipip_tunnel_addr and not _address(bgp.ipv4_ipip_tunnel_addr, 4):
            errs.add(
                "spec.bgp.ipv4IPIPTunnelAddr", bgp.ipv4_ipip_tunnel_addr, "must be an IPv4 address"
            )
        if bgp.route_reflector_cluster_id and not _address(bgp.route_reflector_cluster_id, 4):
            errs.add(
                "spec.bgp.routeReflectorClusterID",
                bgp.route_reflector_cluster_id,
                "must be in IPv4 address form, e.g. 224.0.0.1",
            )
    for field, value, version in (
        ("ipv4VXLANTunnelAddr", spec.ipv4_vxlan_tunnel_addr, 4),
        ("ipv6VXLANTunnelAddr", spec.ipv6_vxlan_tunnel_addr, 6),
    ):
        if value and not _address(value, version):
            errs.add(f"spec.{field}", value, f"must be an IPv{version} address")
    for field, value in (
        ("vxlanTunnelMACAddr", spec.vxlan_tunnel_mac_addr),
        ("vxlanTunnelMACAddrV6", spec.vxlan_tunnel_mac_addr_v6),
    ):
        if value and not _MAC_RE.match(value):
            errs.add(f"spec.{field}", value, "invalid MAC address")
    if spec.wireguard is not None:
        wg = spec.wireguard
        if wg.interface_ipv4_address and not _address(wg.interface_ipv4_address, 4):
            errs.add(
                "spec.wireguard.interfaceIPv4Address",
                wg.interface_ipv4_address,
                "must be an IPv4 address",
            )
        if wg.interface_ipv6_address and not _address(wg.interface_ipv6_address, 6):
            errs.add(
                "spec.wireguard.interfaceIPv6Address",
                wg.interface_ipv6_address,
                "must be an IPv6 address",
            )
    for i, addr in enumerate(spec.addresses):
        if not _network(addr.address):
            errs.add(
                f"spec.addresses[{i}].address",
                addr.address,
                "must be an IP address or a strictly masked CIDR",
            )
        if addr.type and addr.type not in ("CalicoNodeIP", "InternalIP", "ExternalIP"):
            errs.add(
                f"spec.addresses[{i}].type",
                addr.type,
                "must be one of CalicoNodeIP, InternalIP, ExternalIP",
            )
    for i, iface in enumerate(spec.interfaces):
        if iface.name and not _NAME_RE.match(iface.name):
            errs.add(
                f"spec.interfaces[{i}].name",
                iface.name,
                "must consist of lower case alphanumeric characters, '-' or '.'",
            )


_DEFAULT_ONLY = (
    ("node_to_node_mesh_enabled", "nodeToNodeMeshEnabled"),
    ("as_number", "asNumber"),
    ("service_load_balancer_ips", "serviceLoadBalancerIPs"),
    ("service_external_ips", "serviceExternalIPs"),
    ("service_cluster_ips", "serviceClusterIPs"),
)


def check_bgp_configuration(errs: _Errors, res: BGPConfiguration) -> None:
    """BGPConfiguration: value checks, communities, and the fields only ``default`` may set."""
    errs.name(res.name, "subdomain")
    spec = res.spec
    if spec.log_severity_screen is not None and spec.log_severity_screen not in LOG_LEVELS:
        errs.add(
            "spec.logSeverityScreen",
            spec.log_severity_screen,
            "must be one of " + ", ".join(LOG_LEVELS),
        )
    if spec.listen_port is not None and not 1 <= spec.listen_port <= 65535:
        errs.add("spec.listenPort", spec.listen_port, "must be a port number between 1 and 65535")
    if spec.bind_mode is not None and spec.bind_mode not in ("None", "NodeIP"):
        errs.add("spec.bindMode", spec.bind_mode, "must be None or NodeIP")
    if spec.service_load_balancer_aggregation is not None and (
        spec.service_load_balancer_aggregation not in ("Enabled", "Disabled")
    ):
        errs.add(
            "spec.serviceLoadBalancerAggregation",
            spec.service_load_balancer_aggregation,
            "must be Enabled or Disabled",
        )
    if spec.node_mesh_max_restart_time is not None:
        try:
            if parse_go_duration(spec.node_mesh_max_restart_time) < 0:
                errs.add(
                    "spec.nodeMeshMaxRestartTime",
                    spec.node_mesh_max_restart_time,
                    "duration must not be negative",
                )
        except ValueError as exc:
            errs.add("spec.nodeMeshMaxRestartTime", spec.node_mesh_max_restart_time, str(exc))
    for i, iface in enumerate(spec.ignored_interfaces):
        if not _IGNORED_INTERFACE_RE.match(iface):
            errs.add(
                f"spec.ignoredInterfaces[{i}]",
                iface,
                "must be 1-15 characters from [a-zA-Z0-9_.*-]",
            )
    for field, value, version in (
        ("localWorkloadPeeringIPV4", spec.local_workload_peering_ipv4, 4),
        ("localWorkloadPeeringIPV6", spec.local_workload_peering_ipv6, 6),
    ):
        if value and not _address(value, version):
            errs.add(f"spec.{field}", value, f"must be an IPv{version} address")
    for field, blocks in (
        ("serviceLoadBalancerIPs", spec.service_load_balancer_ips),
        ("serviceExternalIPs", spec.service_external_ips),
        ("serviceClusterIPs", spec.service_cluster_ips),
    ):
        for i, block in enumerate(blocks):
            if block.cidr and not _network(block.cidr):
                errs.add(
                    f"spec.{field}[{i}].cidr",
                    block.cidr,
                    "must be an IP address or a strictly masked CIDR",
                )
    names = set()
    for i, community in enumerate(spec.communities):
        if not community.name or not _NAME_RE.match(community.name):
            errs.add(
                f"spec.communities[{i}].name",
                community.name,
                "community name is required and must be a DNS-1123 subdomain",
            )
        names.add(community.name)
        if not _community_ok(community.value):
            errs.add(
                f"spec.communities[{i}].value",
                community.value,
                "invalid community value or format used (expected aa:nn or aa:nn:mm)",
            )
    if spec.communities and not spec.prefix_advertisements:
        errs.add(
            "spec.communities",
            len(spec.communities),
            "communities are defined but not used in spec.prefixAdvertisements",
        )
    for i, adv in enumerate(spec.prefix_advertisements):
        if not adv.cidr or not _address_or_cidr(adv.cidr, 4) and not _address_or_cidr(adv.cidr, 6):
            errs.add(f"spec.prefixAdvertisements[{i}].cidr", adv.cidr, "invalid CIDR")
        if not adv.communities:
            errs.add(f"spec.prefixAdvertisements[{i}].communities", "", "communities are required")
        for j, c in enumerate(adv.communities):
            if c not in names and not _community_ok(c):
                errs.add(
                    f"spec.prefixAdvertisements[{i}].communities[{j}]",
                    c,
                    "must be the name of a community in spec.communities or a community value",
                )
    if res.name != DEFAULT_BGP_CONFIGURATION:
        for attr, wire in _DEFAULT_ONLY:
            value = getattr(spec, attr)
            if value is not None and value != []:
                shown = str(value).lower() if isinstance(value, bool) else value
                errs.add(
                    f"spec.{wire}",
                    shown,
                    f"Cannot set {wire} on a non default BGP Configuration.",
                )


def check_bgp_peer(errs: _Errors, res: BGPPeer) -> None:
    """BGPPeer: peerIP form, selectors, and Calico's mutual exclusions."""
    errs.name(res.name, "subdomain")
    spec = res.spec
    if spec.node and not _NAME_RE.match(spec.node):
        errs.add("spec.node", spec.node, "node must be a valid Node name (DNS-1123 subdomain)")
    errs.selector("spec.nodeSelector", spec.node_selector)
    errs.selector("spec.peerSelector", spec.peer_selector)
    errs.selector("spec.localWorkloadSelector", spec.local_workload_selector)
    if spec.peer_ip and parse_peer_ip(spec.peer_ip) is None:
        errs.add(
            "spec.peerIP",
            spec.peer_ip,
            'PeerIP value is invalid, it should either be "<IP>" or "<IPv4>:<port>" or '
            '"[<IPv6>]:<port>"',
        )
    if spec.node and spec.node_selector:
        errs.add("spec.node", spec.node, "Node field must be empty when NodeSelector is specified")
    if spec.peer_ip and spec.peer_selector:
        errs.add(
            "spec.peerIP", spec.peer_ip, "PeerIP field must be empty when PeerSelector is specified"
        )
    if spec.as_number and spec.peer_selector:
        errs.add(
            "spec.asNumber",
            spec.as_number,
            "ASNumber field must be empty when PeerSelector is specified",
        )
    if not spec.peer_ip and not spec.peer_selector:
        errs.add("spec", "", "BGPPeer must specify peerIP or peerSelector")
    if spec.peer_ip and not spec.as_number:
        errs.add("spec.asNumber", "", "asNumber is required with peerIP")
    if spec.reachable_by:
        if not _address(spec.reachable_by, 4) and not _address(spec.reachable_by, 6):
            errs.add("spec.reachableBy", spec.reachable_by, "ReachableBy is invalid address")
        elif (peer := parse_peer_ip(spec.peer_ip) if spec.peer_ip else None) is not None:
            if (
                ipaddress.ip_address(peer[0]).version
                != ipaddress.ip_address(spec.reachable_by).version
            ):
                errs.add(
                    "spec.reachableBy",
                    spec.reachable_by,
                    "ReachableBy and PeerIP address family mismatched",
                )
    if spec.source_address and spec.source_address not in ("UseNodeIP", "None"):
        errs.add("spec.sourceAddress", spec.source_address, "must be UseNodeIP or None")
    if spec.next_hop_mode is not None and spec.next_hop_mode not in ("Auto", "Self", "Keep"):
        errs.add("spec.nextHopMode", spec.next_hop_mode, "must be one of Auto, Self, Keep")
    if spec.keep_original_next_hop and spec.next_hop_mode is not None:
        errs.add(
            "spec.keepOriginalNextHop",
            True,
            "keepOriginalNextHop and nextHopMode cannot both be set",
        )
    if spec.reverse_peering is not None and spec.reverse_peering not in ("Auto", "Manual"):
        errs.add("spec.reversePeering", spec.reverse_peering, "must be Auto or Manual")
    if spec.ttl_security is not None and not 0 <= spec.ttl_security <= 255:
        errs.add("spec.ttlSecurity", spec.ttl_security, "must be between 0 and 255")
    if spec.num_allowed_local_as_numbers is not None and spec.num_allowed_local_as_numbers < 0:
        errs.add(
            "spec.numAllowedLocalASNumbers",
            spec.num_allowed_local_as_numbers,
            "must not be negative",
        )
    if spec.max_restart_time is not None:
        try:
            parse_go_duration(spec.max_restart_time)
        except ValueError as exc:
            errs.add("spec.maxRestartTime", spec.max_restart_time, str(exc))
    for i, name in enumerate(spec.filters):
        if not _NAME_RE.match(name):
            errs.add(f"spec.filters[{i}]", name, "filter name must be a DNS-1123 subdomain")
