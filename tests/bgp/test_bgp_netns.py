"""Real BIRD 2, real kernels: three hosts, an agent and a ``regionmesh bgp`` process on each.

See :mod:`bgp_support` for the topology. The hosts have no static routes to each other's VMs:
everything a VM reaches on another host, BGP put there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator

import agent_support as s
import bgp_support as b
import pytest

from netns import Topology, require_root_tools
from regionmesh.testing.etcd_server import EtcdServer

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.timeout(600)]

A4, B4, C4, E4 = (b.VMS[v][1] for v in "abce")
A6 = "2001:db8:1::2"
PEERS = {"h1": {"h2", "h3"}, "h2": {"h1", "h3"}, "h3": {"h1", "h2"}}
VM_ROUTES = {h: {f"{b.VMS[v][1]}" for v in b.VMS if b.VMS[v][0] == h} for h in b.HOSTS}


def _birdc(w: b.World, host: str, *args: str) -> str:
    sock = f"{w.run_dir(host)}/bird.ctl"
    return subprocess.run(["birdc", "-s", sock, *args], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


def _expected(host: str) -> set[str]:
    return set().union(*(VM_ROUTES[o] for o in PEERS[host]))


@pytest.fixture(scope="module")
def world(etcd_server: EtcdServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[b.World]:
    require_root_tools()
    for tool in ("bird", "birdc"):
        assert shutil.which(tool), f"BGP tests need {tool!r} (Debian bird2)"
    etcd_server.wipe()
    tmp = str(tmp_path_factory.mktemp("bgp"))
    with Topology() as topo:
        w = b.build(topo, etcd_server, tmp)
        try:
            for host in b.HOSTS:
                w.start_agent(host)
                w.start_bgp(host)
            yield w
        finally:
            b.close(w)


def test_mesh_routes_policy_withdrawal_restart(world: b.World) -> None:
    w = world
    timings: dict[str, float] = {}
    # Process start-up is not what is measured (a loaded machine may take many seconds to
    # import Python): wait until every host registered its Node, then time the routing.
    w.wait("every host registered its Node",
           lambda: all(b.node_doc(w, n) for n, *_ in b.HOSTS.values()), 180.0)  # fmt: skip
    t0 = time.monotonic()
    for host in b.HOSTS:
        timings[f"{host}_routes"] = w.wait(
            f"{host} learns the other hosts' VM /32s",
            lambda h=host: _expected(h) <= w.bird_routes(h),  # type: ignore[misc]
            40.0,
        )
    timings["all_routes_from_start"] = time.monotonic() - t0
    for host in b.HOSTS:
        w.wait(f"{host}: 4 Established mesh peers (2 per family)",
               lambda h=host: len(w.established(h)) == 4)  # type: ignore[misc]  # fmt: skip
        status = w.node_status(host)
        assert status.returncode == 0, status.stderr
        rows = [ln for ln in status.stdout.splitlines() if ln.startswith("| 10.0.0.")]
        assert len(rows) == 2 and all("node-to-node mesh" in r for r in rows), status.stdout
        assert "IPv6 BGP status" in status.stdout and "fd00:f::" in status.stdout
        # Only VM routes travel: never a default route, never the fabric subnet, nothing else.
        assert w.bird_routes(host) == _expected(host), w.dump()
        route = w.hosts[host].run("ip", "route", "show", "proto", "bird")
        assert "via 10.0.0." in route and "dev eth0" in route
    # IPv6 VM addresses are distributed the same way (over the IPv6 sessions).
    for host in ("h2", "h3"):
        w.wait(f"{host} learns {A6}/128", lambda h=host: f"{A6}" in w.bird_routes(h, 6))  # type: ignore[misc]
    assert not any("::/0" in r or r == "default" for r in w.bird_routes("h2", 6))

    # Policy across hosts and regions, real TCP.
    for vm in b.VMS:
        for port in (80, 81, 8080):
            w.listen(vm, port)
    w.wait("c (region two, client) -> a (web):80", lambda: w.probe("c", "a", 80), 10.0)
    assert w.probe("b", "a", 80), "b (region one client on h2) cannot reach web:80"
    assert not w.probe("e", "a", 80), "SG other reached web:80"
    assert not w.probe("c", "a", 81), "client reached web:81"
    # The SG rule (web: TCP 8080 from SG client) holds across two hosts of region one only.
    assert w.probe("b", "a", 8080), "region one client on h2 cannot reach web:8080 on h1"
    assert not w.probe("c", "a", 8080), "region two client reached region one's SG rule"

    # A peer announcing a local workload's address never gets it installed here: h3 routes
    # a's address to one of its taps (as the agent would), h1 hears it and keeps its own route.
    spoof_tap = "tap" + b.VMS["c"][2][:11]
    w.hosts["h3"].ip("route", "add", f"{A4}/32", "dev", spoof_tap, "scope", "link", "proto", "boot")
    try:
        w.wait("h1's BIRD hears h3 announce a's address",
               lambda: "Mesh_10_0_0_3" in _birdc(w, "h1", "show", "route", "for", A4, "all"))  # fmt: skip
        assert A4 not in w.bird_routes("h1"), w.dump()
        assert f"{A4} dev tap" in w.hosts["h1"].run("ip", "route", "show", A4)
    finally:
        subprocess.run(["ip", "-n", w.hosts["h3"].name, "route", "del", f"{A4}/32", "dev",
                        spoof_tap], capture_output=True, check=False)  # fmt: skip
    w.wait("h3 routes a's address to h1 again", lambda: A4 in w.bird_routes("h3"), 10.0)
    w.wait("c -> a:80 after the spoof", lambda: w.probe("c", "a", 80), 10.0)

    # A deleted VM is withdrawn from the other kernels; a new one appears on them.
    t = time.monotonic()
    s.delete_doc(w.store, w.wep("b"))
    w.wait("b withdrawn", lambda: B4 not in w.bird_routes("h1") and B4 not in w.bird_routes("h3"))
    timings["vm_deleted_to_withdrawn"] = time.monotonic() - t
    t = time.monotonic()
    s.apply_docs(w.store, [w.wep("b")])
    w.wait("b back", lambda: B4 in w.bird_routes("h1") and B4 in w.bird_routes("h3"))
    timings["vm_created_to_routed"] = time.monotonic() - t
    w.wait("b -> a:80 again (both agents programmed the new endpoint)",
           lambda: w.probe("b", "a", 80), 15.0)  # fmt: skip

    # Stopping one host's regionmesh bgp withdraws its routes elsewhere (Cease), and removes
    # what its BIRD installed locally; the Node stays registered.
    t = time.monotonic()
    assert w.stop("bgp-h3") == 0, w.dump()
    w.wait("h3's routes withdrawn on h1 and h2",
           lambda: not ({C4, E4} & (w.bird_routes("h1") | w.bird_routes("h2"))), 10.0)  # fmt: skip
    timings["bgp_stopped_to_withdrawn"] = time.monotonic() - t
    assert w.bird_routes("h3") == set() and w.bird_routes("h3", 6) == set(), w.dump()
    assert b.node_doc(w, "cmp-b1") is not None
    gone = w.node_status("h3")
    assert gone.returncode == 1 and "not running" in gone.stderr, gone
    doctor = subprocess.run(
        [b.REGIONMESH, "doctor", "-o", "json", "--bgp-run-dir", w.run_dir("h1"),
         "--datastore", w.etcd.url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    down = [f for f in json.loads(doctor.stdout) if f["code"] == "bgp-peer-not-established"]
    assert {f["values"]["address"] for f in down} == {"10.0.0.3", "fd00:f::3"}, doctor.stdout
    # Restarting it restores them.
    w.start_bgp("h3", wait=True)
    t = time.monotonic()
    w.wait("h3's routes back", lambda: {C4, E4} <= w.bird_routes("h1") and
           {C4, E4} <= w.bird_routes("h2") and _expected("h3") <= w.bird_routes("h3"))  # fmt: skip
    timings["bgp_restarted_to_routed"] = time.monotonic() - t
    w.wait("c -> a again", lambda: w.probe("c", "a", 80), 5.0)

    # calicoctl delete node removes it from every peer's configuration.
    assert w.stop("bgp-h2") == 0
    s.delete_doc(w.store, {"kind": "Node", "metadata": {"name": "cmp-a2"}})
    for host in ("h1", "h3"):
        w.wait(f"{host} forgets cmp-a2",
               lambda h=host: "10.0.0.2" not in w.node_status(h).stdout)  # type: ignore[misc]  # fmt: skip
    w.start_bgp("h2", wait=True)
    for host in b.HOSTS:
        w.wait(f"{host} mesh complete again", lambda h=host: len(w.established(h)) == 4)  # type: ignore[misc]
        w.wait(f"{host} routes again", lambda h=host: _expected(h) <= w.bird_routes(h))  # type: ignore[misc]
    print("bgp timings (s):", json.dumps({k: round(v, 2) for k, v in timings.items()}))


def test_route_reflector(world: b.World) -> None:
    """Mesh off, cmp-b1 a route reflector selected by a BGPPeer: h1 and h2 learn each other's
    routes through it only."""
    w = world
    w.wait("every host registered its Node",
           lambda: all(b.node_doc(w, n) for n, *_ in b.HOSTS.values()), 180.0)  # fmt: skip
    rr = b.node_doc(w, "cmp-b1")
    assert rr is not None
    rr["metadata"]["labels"] = {"route-reflector": "true"}
    rr["spec"]["bgp"]["routeReflectorClusterID"] = "244.0.0.1"
    for key in ("resourceVersion", "uid", "creationTimestamp"):
        rr["metadata"].pop(key, None)
    s.apply_docs(w.store, [
        {"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
         "metadata": {"name": "default"}, "spec": {"nodeToNodeMeshEnabled": False}},
        {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
         "metadata": {"name": "peer-with-rr"},
         "spec": {"nodeSelector": "all()", "peerSelector": "route-reflector == 'true'"}},
        rr,
    ])  # fmt: skip

    def only_rr(host: str) -> bool:
        rows = w.established(host)
        return len(rows) == 2 and all("10.0.0.3 " in r or "fd00:f::3 " in r for r in rows)

    for host in ("h1", "h2"):
        w.wait(f"{host} peers with the reflector only", lambda h=host: only_rr(h))  # type: ignore[misc]
    w.wait("h3 (reflector) has both clients", lambda: len(w.established("h3")) == 4)
    for host in b.HOSTS:
        w.wait(f"{host} routes through the reflector",
               lambda h=host: _expected(h) <= w.bird_routes(h))  # type: ignore[misc]  # fmt: skip
    status = w.node_status("h1").stdout
    assert "node specific" in status and "10.0.0.2" not in status, status
    learned = _birdc(w, "h1", "show", "route", "protocol", "Node_10_0_0_3")
    assert B4 in learned, learned
    # reflected routes keep their originator as next hop: traffic goes host to host
    assert "via 10.0.0.2 " in w.hosts["h1"].run("ip", "route", "show", B4), w.dump()
    assert "via 10.0.0.1 " in w.hosts["h2"].run("ip", "route", "show", A4), w.dump()
    assert "via 10.0.0.3 " in w.hosts["h1"].run("ip", "route", "show", C4), w.dump()
    w.listen("a", 80)
    w.wait("b -> a:80 in reflector mode", lambda: w.probe("b", "a", 80), 10.0)

    # regionmesh bgp keeps what the operator added to its Node across a restart.
    assert w.stop("bgp-h3") == 0
    w.start_bgp("h3", wait=True)
    w.wait("reflector back", lambda: len(w.established("h3")) == 4)
    after = b.node_doc(w, "cmp-b1")
    assert after is not None
    assert after["metadata"].get("labels") == {"route-reflector": "true"}
    assert after["spec"]["bgp"]["routeReflectorClusterID"] == "244.0.0.1"
    for host in b.HOSTS:
        w.wait(f"{host} routes after reflector restart",
               lambda h=host: _expected(h) <= w.bird_routes(h))  # type: ignore[misc]  # fmt: skip
