"""Pure parts of regionmesh bgp: peer computation, BIRD configuration text, birdc parsing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from regionmesh.bgp.peers import (
    GLOBAL,
    MESH,
    NODE_SPECIFIC,
    BGPSettings,
    NodeBGP,
    PeerSpec,
    compute_peerings,
)
from regionmesh.bgp.render import BirdInputs, render, router_id
from regionmesh.bgp.status import (
    bgp_peers,
    format_node_status,
    parse_protocols,
    parse_status,
)
from regionmesh.errors import ConfigError

N1 = NodeBGP("n1", "10.0.0.1/24", "fd00::1/64")
N2 = NodeBGP("n2", "10.0.0.2/24", "fd00::2/64", labels={"rack": "a"})
N3 = NodeBGP("n3", "10.0.0.3/24", None, labels={"rack": "b"})
RR = NodeBGP("rr", "10.0.0.9/24", None, rr_cluster_id="244.0.0.1", labels={"rr": "true"})


def _names(peerings: list) -> list[str]:  # type: ignore[type-arg]
    return [p.name for p in peerings]


def test_mesh_is_every_other_node_per_family_lower_address_connects() -> None:
    ps = compute_peerings(N2, [N1, N2, N3], BGPSettings())
    assert _names(ps) == ["Mesh_10_0_0_1", "Mesh_10_0_0_3", "Mesh_fd00__1"]
    assert all(p.peer_type == MESH for p in ps)
    by = {p.address: p for p in ps}
    assert by["10.0.0.1"].passive and not by["10.0.0.3"].passive  # the higher side waits
    assert by["fd00::1"].local_address == "fd00::2" and by["fd00::1"].family == 6
    # the other side agrees: exactly one connects
    back = {p.address: p for p in compute_peerings(N1, [N1, N2, N3], BGPSettings())}
    assert not back["10.0.0.2"].passive


def test_mesh_off_and_route_reflectors_leave_the_mesh() -> None:
    assert compute_peerings(N1, [N1, N2], BGPSettings(mesh=False)) == []
    ps = compute_peerings(N1, [N1, N2, RR], BGPSettings())
    assert "Mesh_10_0_0_9" not in _names(ps)
    assert compute_peerings(RR, [N1, N2, RR], BGPSettings()) == []


def test_route_reflector_reverse_peerings_and_rr_clients() -> None:
    spec = PeerSpec("to-rr", node_selector="all()", peer_selector="rr == 'true'")
    nodes = [N1, N2, N3, RR]
    client = compute_peerings(N1, nodes, BGPSettings(mesh=False), [spec])
    assert _names(client) == ["Node_10_0_0_9"]
    assert client[0].peer_type == NODE_SPECIFIC and not client[0].rr_client
    reflector = compute_peerings(RR, nodes, BGPSettings(mesh=False), [spec])
    assert _names(reflector) == ["Node_10_0_0_1", "Node_10_0_0_2", "Node_10_0_0_3"]
    assert all(p.rr_client for p in reflector)
    # a second reflector of the same cluster is not a client
    rr2 = NodeBGP("rr2", "10.0.0.10/24", rr_cluster_id="244.0.0.1", labels={"rr": "true"})
    both = compute_peerings(RR, [*nodes, rr2], BGPSettings(mesh=False), [spec])
    assert {p.address: p.rr_client for p in both}["10.0.0.10"] is False


def test_bgppeer_scopes_peer_ip_and_precedence_over_mesh() -> None:
    peers = [
        PeerSpec("tor", node_selector="rack == 'a'", peer_ip="10.0.0.254", asn=65001),
        PeerSpec("everyone", peer_ip="10.0.0.253"),
        PeerSpec("pin", node="n2", peer_selector="rack == 'b'"),
    ]
    ps = {p.address: p for p in compute_peerings(N2, [N1, N2, N3], BGPSettings(), peers)}
    assert ps["10.0.0.254"].peer_as == 65001 and ps["10.0.0.254"].peer_type == NODE_SPECIFIC
    assert ps["10.0.0.253"].peer_type == GLOBAL and ps["10.0.0.253"].peer_as == 64512
    assert ps["10.0.0.3"].name == "Node_10_0_0_3"  # explicit beats the mesh
    assert ps["10.0.0.1"].peer_type == MESH
    assert "10.0.0.254" not in {p.address for p in compute_peerings(N1, [N1], BGPSettings(), peers)}
    # reverse: n3 is selected by "pin" and so peers with n2 as node-specific
    n3 = {p.address: p for p in compute_peerings(N3, [N1, N2, N3], BGPSettings(), peers)}
    assert n3["10.0.0.2"].name == "Node_10_0_0_2"


def test_as_numbers_and_bad_selector() -> None:
    n1 = NodeBGP("n1", "10.0.0.1/24", asn=65010)
    (p,) = compute_peerings(n1, [n1, N2], BGPSettings(asn=65000))
    assert (p.local_as, p.peer_as) == (65010, 65000)
    with pytest.raises(ConfigError, match="BGPPeer bad spec.peerSelector"):
        compute_peerings(N1, [N1, N2], BGPSettings(), [PeerSpec("bad", peer_selector="a ==")])


def _conf(**kw: object) -> str:
    peerings = compute_peerings(N1, [N1, N2, N3], BGPSettings())
    args: dict[str, object] = {"node": "n1", "ipv4": "10.0.0.1", "ipv6": "fd00::1"}
    args.update(kw)
    return render(BirdInputs(peerings=peerings, **args))  # type: ignore[arg-type]


def test_render_exports_only_workload_routes_of_the_agent_protocol() -> None:
    text = _conf(interface_prefixes=("tap", "cali"), device_route_protocol=80)
    assert "router id 10.0.0.1;" in text
    assert "krt_source != 80" in text
    assert 'ifname ~ "tap*" || ifname ~ "cali*"' in text
    assert "if net.len = 0 then reject;" in text
    assert "export filter rm_export;" in text and "rm_reflect;" not in text.split("template")[1]
    assert "filter rm_kernel_export { if source = RTS_BGP then accept; reject; }" in text
    assert "persist" not in text  # a stopping BIRD removes the routes it installed
    assert "protocol bgp Mesh_fd00__2 from rm_peer" in text


def test_render_validates_inputs() -> None:
    with pytest.raises(ConfigError, match="DeviceRouteProtocol"):
        _conf(device_route_protocol=0)
    with pytest.raises(ConfigError, match="routeReflectorClusterID"):
        _conf(rr_cluster_id="not-an-ip")
    with pytest.raises(ConfigError, match="InterfacePrefix"):
        _conf(interface_prefixes=())
    assert router_id("v6only", None) == router_id("v6only", None) != "0.0.0.0"


@pytest.mark.parametrize("variant", ["plain", "rr", "port"])
def test_rendered_configuration_parses_with_bird(variant: str, tmp_path: Path) -> None:
    bird = shutil.which("bird")
    assert bird, "bird (Debian bird2) is needed"
    if variant == "rr":
        spec = PeerSpec("to-rr", peer_selector="rr == 'true'")
        ps = compute_peerings(RR, [N1, N2, RR], BGPSettings(mesh=False), [spec])
        text = render(BirdInputs("rr", "10.0.0.9", None, ps, rr_cluster_id="244.0.0.1"))
        assert "rr client;" in text and "rr cluster id 244.0.0.1;" in text
    elif variant == "port":
        text = _conf(listen_port=1790)
        assert "neighbor 10.0.0.2 port 1790" in text
    else:
        text = _conf()
    path = tmp_path / "bird.conf"
    path.write_text(text)
    proc = subprocess.run([bird, "-p", "-c", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + text


SHOW_ALL = [
    (2002, "Name       Proto      Table      State  Since         Info"),
    (1002, "device1    Device     ---        up     23:11:13.938  "),
    (1002, "Mesh_10_0_0_2 BGP        ---        up     23:11:15.101  Established   "),
    (1006, "  Description:    node-to-node mesh n2"),
    (1006, "  BGP state:          Established"),
    (1006, "    Neighbor address: 10.0.0.2"),
    (1002, "Node_fd00__9 BGP        ---        start  23:11:13.938  Active        Socket: Connection refused"),
    (1006, "    Neighbor address: fd00::9"),
    (1002, "other_bgp  BGP        ---        up     23:11:13.938  Established"),
    (0, ""),
]  # fmt: skip


def test_parse_protocols_and_node_status_table() -> None:
    protocols = parse_protocols(SHOW_ALL)
    assert [p.name for p in protocols] == ["device1", "Mesh_10_0_0_2", "Node_fd00__9", "other_bgp"]
    assert protocols[1].established and protocols[1].neighbor == "10.0.0.2"
    assert protocols[2].info == "Active Socket: Connection refused"
    rows = bgp_peers(protocols)
    assert [(r.address, r.peer_type, r.family) for r in rows] == [
        ("10.0.0.2", MESH, 4),
        ("fd00::9", NODE_SPECIFIC, 6),
    ]
    status = parse_status(
        [(1000, "BIRD 2.0.12"), (1011, "Router ID is 10.0.0.1"), (13, "Daemon is up and running")]
    )
    assert status.router_id == "10.0.0.1"
    text = format_node_status(status, rows, "/run/x/bird.ctl")
    assert text.startswith(
        "Calico process is running.\nBGP daemon: BIRD 2.0.12, router id 10.0.0.1"
    )
    assert "| PEER ADDRESS |     PEER TYPE     | STATE |" in text
    assert "| 10.0.0.2     | node-to-node mesh | up    | 23:11:15.101 | Established" in text
    assert "IPv6 BGP status" in text and "fd00::9" in text
    empty = format_node_status(status, [], "/s")
    assert "No IPv4 peers found." in empty and "No IPv6 peers found." in empty
