"""BIRD 2 configuration text for one host, from its peerings (pure).

:func:`render` turns a :class:`BirdInputs` into the whole ``bird.conf``. What the text does:

* ``router id`` = the node's IPv4 address (or a stable hash of the node name on an IPv6-only
  node, as Calico's ``CALICO_ROUTER_ID=hash``).
* ``protocol kernel`` per family: ``learn`` takes in the agent's routes to workload taps
  (``import``, with preference 250 so a local workload always beats a BGP route for the same
  address — a peer's announcement of a local VM's address is never installed); only BGP routes
  are exported to the kernel (they land as ``proto bird``); no ``persist``, so a stopping BIRD
  withdraws what it installed. ``scan time 2`` bounds recovery from a missed netlink event.
* Export to peers: exactly the routes the agent programs to local workload interfaces —
  learned from the kernel with route protocol ``DeviceRouteProtocol`` (Felix's parameter,
  default 3 = ``boot``) *and* on an interface named ``<InterfacePrefix>*`` — never a default
  route, never a route learned from a peer (no transit). A route reflector also reflects BGP
  routes (BIRD's ``rr client`` rules decide to whom).
* Sessions: iBGP/eBGP per :class:`~regionmesh.bgp.peers.Peering`, ``multihop`` + ``gateway
  recursive`` with ``source address`` = this node's address (the flat L3 network may span
  subnets), short timers (connect delay 1 s, connect retry 2 s, error wait 1–10 s, forgotten
  after 30 s; Calico uses 2 / 5 / 5–30 s — ours let a restarted host's peers reconnect within a
  few seconds; BIRD's defaults are 5 / 120 / 60–300 s),
  ``graceful restart`` (a crashed BIRD does not flap its peers' routes; a stopped one sends a
  Cease and its routes are withdrawn at once), ``next hop self`` — on a route reflector only
  for eBGP-learned routes, so reflected routes keep their originator as next hop.

Writing the file, checking it with ``bird -p`` and reloading it are :mod:`.bird`'s job.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from regionmesh.bgp.peers import Peering
from regionmesh.errors import ConfigError

LOCAL_PREFERENCE = 250
"""Preference of learned workload routes (BGP's is 100): the local route always wins."""


@dataclass(frozen=True, slots=True)
class BirdInputs:
    """Everything the configuration depends on."""

    node: str
    ipv4: str | None  # bare addresses of this node
    ipv6: str | None
    peerings: Sequence[Peering]
    interface_prefixes: tuple[str, ...] = ("tap",)
    device_route_protocol: int = 3
    listen_port: int = 179
    rr_cluster_id: str | None = None


def router_id(node: str, ipv4: str | None) -> str:
    """The node's IPv4 address, else a stable non-zero 32-bit hash of its name."""
    if ipv4:
        return ipv4
    digest = int.from_bytes(hashlib.sha256(node.encode()).digest()[:4], "big") or 1
    return str(ipaddress.IPv4Address(digest))


def _quote(text: str) -> str:
    if any(c in text for c in '"\\\n'):
        raise ConfigError(f"value {text!r} cannot be used in a BIRD configuration")
    return f'"{text}"'


def _iface_match(prefixes: tuple[str, ...]) -> str:
    return " || ".join(f"ifname ~ {_quote(p + '*')}" for p in prefixes)


def _session(p: Peering, export_filter: str, rr_cluster_id: str | None, port: int) -> str:
    local_port = f" port {port}" if port != 179 else ""
    peer_port = local_port if p.peer_node else ""
    lines = [
        f"protocol bgp {p.name} from rm_peer {{",
        f"  description {_quote(f'{p.peer_type} {p.peer_node or p.source}')};",
        f"  local {p.local_address}{local_port} as {p.local_as};",
        f"  neighbor {p.address}{peer_port} as {p.peer_as};",
        f"  source address {p.local_address};",
    ]
    if p.passive:
        lines.append("  passive on;")
    if p.rr_client:
        lines.append("  rr client;")
        lines.append(f"  rr cluster id {_rr_cluster(rr_cluster_id)};")
    channel = "ipv4" if p.family == 4 else "ipv6"
    # A reflector keeps the originator's next hop on reflected iBGP routes (traffic goes host
    # to host, not through the reflector); its own routes still get its address.
    next_hop = "next hop self ebgp" if rr_cluster_id else "next hop self"
    lines.append(
        f"  {channel} {{ import filter rm_import; export filter {export_filter}; "
        f"{next_hop}; gateway recursive; }};"
    )
    lines.append("}")
    return "\n".join(lines)


def _rr_cluster(cluster_id: str | None) -> str:
    try:
        return str(ipaddress.IPv4Address(cluster_id or ""))
    except ValueError as exc:
        raise ConfigError(
            f"invalid routeReflectorClusterID {cluster_id!r}: must be an IPv4 address"
        ) from exc


def render(inputs: BirdInputs) -> str:
    """The complete ``bird.conf`` text."""
    prefixes = tuple(p for p in inputs.interface_prefixes if p)
    if not prefixes:
        raise ConfigError("InterfacePrefix is empty: no workload interfaces to announce")
    if not 0 < inputs.device_route_protocol < 256:
        raise ConfigError(
            f"invalid DeviceRouteProtocol {inputs.device_route_protocol}: must be 1-255"
        )
    is_rr = bool(inputs.rr_cluster_id)
    if is_rr:
        _rr_cluster(inputs.rr_cluster_id)
    match = _iface_match(prefixes)
    exclude = ", ".join(_quote("-" + p + "*") for p in prefixes)
    out = [
        f"# Generated by regionmesh bgp for node {inputs.node}. Do not edit: it is rewritten",
        "# on every change of Node / BGPConfiguration / BGPPeer.",
        "log stderr { info, remote, warning, error, auth, fatal, bug };",
        f"router id {router_id(inputs.node, inputs.ipv4)};",
        "",
        "protocol device { scan time 2; }",
        # connected routes, for recursive next-hop resolution (never exported)
        f'protocol direct {{ ipv4; ipv6; interface {exclude}, "*"; }}',
        "",
        "# Local workload routes: what the agent programs to workload interfaces.",
        "function rm_local_workload() {",
        '  if proto != "kernel4" && proto != "kernel6" then return false;',
        f"  if krt_source != {inputs.device_route_protocol} then return false;",
        f"  if !({match}) then return false;",
        "  return true;",
        "}",
        "filter rm_kernel_import {",
        f"  if ({match}) then preference = {LOCAL_PREFERENCE};",
        "  accept;",
        "}",
        "filter rm_kernel_export { if source = RTS_BGP then accept; reject; }",
        "filter rm_import { if net.len = 0 then reject; accept; }",
        "filter rm_export {",
        "  if net.len = 0 then reject;",
        "  if rm_local_workload() then accept;",
        "  reject;",
        "}",
        "filter rm_reflect {",
        "  if net.len = 0 then reject;",
        "  if source = RTS_BGP then accept;",
        "  if rm_local_workload() then accept;",
        "  reject;",
        "}",
        "",
        "protocol kernel kernel4 {",
        "  ipv4 { import filter rm_kernel_import; export filter rm_kernel_export; };",
        "  learn; scan time 2; graceful restart; merge paths on;",
        "}",
        "protocol kernel kernel6 {",
        "  ipv6 { import filter rm_kernel_import; export filter rm_kernel_export; };",
        "  learn; scan time 2; graceful restart; merge paths on;",
        "}",
        "",
        "template bgp rm_peer {",
        "  multihop;",
        "  graceful restart;",
        "  connect delay time 1;",
        "  connect retry time 2;",
        "  error wait time 1, 10;",
        "  error forget time 30;",
        "}",
    ]
    export = "rm_reflect" if is_rr else "rm_export"
    for p in inputs.peerings:
        out.append("")
        out.append(_session(p, export, inputs.rr_cluster_id, inputs.listen_port))
    return "\n".join(out) + "\n"
