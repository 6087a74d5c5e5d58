"""Two OpenStack regions, one etcd, one agent PROCESS per compute host, real TCP between VMs.

Topology (all namespaces created here, ``rmt-<run>-*``; removed even on failure)::

    region one: host h1 (agent cmp-one)          region two: host h2 (agent cmp-two)
      A 10.65.1.2  SG web + base                   C 10.65.2.2  SG client + base
      B 10.65.1.3  SG client + base                D 10.65.2.3  SG web + base
      E 10.65.1.4  SG other + base
    h1 ──fab1 10.64.0.1/24 ═ 10.64.0.2/24── h2   (each routes the other's VM /24: BGP stand-in)
    h1 ─mgmt0 10.231.1.2/30 ═ root 10.231.1.1     h2 ─mgmt0 10.231.2.2/30 ═ root 10.231.2.1
    etcd (root namespace) listens on 127.0.0.1, 10.231.1.1 and 10.231.2.1

Resources are what Neutron writes: WorkloadEndpoints with Neutron's labels in
``openstack-region-one`` / ``openstack-region-two``, ``ossg.default.<sg>`` NetworkPolicies
without ``types`` (egress allow-all, as a default SG), and the operator's seed GNP
``allow-tcp-80`` (web ← client on TCP 80).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import agent_support as s
import pytest

from netns import Netns, Topology, require_root_tools, wait_until
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.errors import RegionmeshError
from regionmesh.openstack.translate import NeutronPort

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.timeout(240)]

HOSTS = {"one": "cmp-one", "two": "cmp-two"}
VMS: dict[str, tuple[str, str, str, list[str]]] = {
    # vm: (region, ip, port id, SGs)
    "a": ("one", "10.65.1.2", "aaaaaaaa-1111-4000-8000-00000000000a", [s.SG_WEB, s.SG_BASE]),
    "b": ("one", "10.65.1.3", "bbbbbbbb-1111-4000-8000-00000000000b", [s.SG_CLIENT, s.SG_BASE]),
    "e": ("one", "10.65.1.4", "eeeeeeee-1111-4000-8000-00000000000e", [s.SG_OTHER, s.SG_BASE]),
    "c": ("two", "10.65.2.2", "cccccccc-2222-4000-8000-00000000000c", [s.SG_CLIENT, s.SG_BASE]),
    "d": ("two", "10.65.2.3", "dddddddd-2222-4000-8000-00000000000d", [s.SG_WEB, s.SG_BASE]),
}
APPLY_BOUND = 5.0  # seconds a change may take to open/close a flow


@dataclass
class World:
    topo: Topology
    etcd: s.RestartableEtcd
    store: EtcdDatastore
    hosts: dict[str, Netns]
    vms: dict[str, Netns]
    ports: dict[str, NeutronPort]
    agents: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, str]

    def ip(self, vm: str) -> str:
        return VMS[vm][1]

    def probe(self, src: str, dst: str, port: int = 80) -> bool:
        return self.topo.connect(self.vms[src], self.ip(dst), port, timeout=0.5) is not None

    def agent_logs(self) -> str:
        out = []
        for region, host in self.hosts.items():
            try:
                ruleset = host.run("nft", "list", "ruleset")
            except RegionmeshError as exc:
                ruleset = str(exc)
            out.append(f"----- nft ruleset {region} -----\n{ruleset}")
        for region, path in self.logs.items():
            with open(path, errors="replace") as f:
                out.append(f"----- agent {region} -----\n{f.read()[-4000:]}")
        return "\n".join(out)


def _mac(vm: str) -> str:
    return f"fa:16:3e:00:00:{ord(vm):02x}"


def _agent_cfg(world: World, region: str, tmpdir: str) -> str:
    return s.felix_cfg(
        os.path.join(tmpdir, f"felix-{region}.cfg"),
        FelixHostname=HOSTS[region],
        OpenstackRegion=region,
        DatastoreType="etcdv3",
        EtcdEndpoints=f"http://{world.etcd.listen_ips[1 if region == 'one' else 2]}:{world.etcd.port}",
        ReportingIntervalSecs=1,
        ReportingTTLSecs=5,
        EndpointReportingDelaySecs=0.05,
        NftablesRefreshInterval=30,
    )


def _agent_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "REGIONMESH_"))}


def _run_once(world: World, region: str, tmpdir: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("regionmesh")
    assert exe, "the regionmesh console script is not installed"
    cfg = _agent_cfg(world, region, tmpdir)
    cmd = ["ip", "netns", "exec", world.hosts[region].name, exe, "agent", "--config-file", cfg]
    return subprocess.run(
        [*cmd, "--once"], env=_agent_env(), capture_output=True, text=True, timeout=60, check=False
    )


def _start_agent(world: World, region: str, tmpdir: str) -> None:
    exe = shutil.which("regionmesh")
    assert exe, "the regionmesh console script is not installed"
    cfg = _agent_cfg(world, region, tmpdir)
    log_path = os.path.join(tmpdir, f"agent-{region}.log")
    log = open(log_path, "wb")  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", world.hosts[region].name, exe, "agent", "--config-file", cfg],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_agent_env(),
        )
    finally:
        log.close()
    world.topo.processes.append(proc)  # type: ignore[arg-type]
    world.agents[region] = proc
    world.logs[region] = log_path


@pytest.fixture
def world(tmp_path: object) -> Iterator[World]:
    require_root_tools()
    topo = Topology()
    etcd: s.RestartableEtcd | None = None
    store: EtcdDatastore | None = None
    agents: dict[str, subprocess.Popen[bytes]] = {}
    try:
        h = {"one": topo.add_host("h1"), "two": topo.add_host("h2")}
        topo.link_hosts(h["one"], "10.64.0.1", h["two"], "10.64.0.2")
        h["one"].ip("route", "add", "10.65.2.0/24", "via", "10.64.0.2", "proto", "static")
        h["two"].ip("route", "add", "10.65.1.0/24", "via", "10.64.0.1", "proto", "static")
        topo.link_to_root(h["one"], "10.231.1.1", "10.231.1.2")
        topo.link_to_root(h["two"], "10.231.2.1", "10.231.2.2")
        vms = {}
        ports = {}
        for vm, (region, ip, port_id, sgs) in VMS.items():
            ports[vm] = s.port(port_id, HOSTS[region], ip, sgs, mac=_mac(vm))
            vms[vm] = topo.add_vm(h[region], vm, ip, "tap" + port_id[:11], mac=_mac(vm))
        etcd = s.RestartableEtcd(["127.0.0.1", "10.231.1.1", "10.231.2.1"])
        etcd.start()
        store = etcd.open()
        w = World(topo, etcd, store, h, vms, ports, agents, {})
        yield w
    finally:
        for proc in agents.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in agents.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        topo.close()
        if store is not None:
            store.close()
        if etcd is not None:
            etcd.close()


def _seed(w: World) -> None:
    docs = [
        s.sg_doc(s.egress_only_sg(sg), region)
        for region in ("one", "two")
        for sg in (s.SG_WEB, s.SG_CLIENT, s.SG_OTHER, s.SG_BASE)
    ]
    docs += [s.wep_doc(w.ports[vm], VMS[vm][0]) for vm in VMS]
    # What networking-calico maintains in the global FelixConfiguration and ClusterInformation.
    docs.append(
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "FelixConfiguration",
            "metadata": {"name": "default"},
            "spec": {"interfacePrefix": "tap", "endpointReportingEnabled": True},
        }
    )
    docs.append(
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "ClusterInformation",
            "metadata": {"name": "default"},
            "spec": {"clusterType": "openstack", "datastoreReady": True},
        }
    )
    docs.append(s.SEED_GNP)
    s.apply_docs(w.store, docs)


def _wait_flow(w: World, src: str, dst: str, want: bool, bound: float, port: int = 80) -> float:
    """Poll until the flow's state is ``want``; return how long it took (fail after ``bound``)."""
    started = time.monotonic()
    while True:
        if w.probe(src, dst, port) == want:
            return time.monotonic() - started
        for region, proc in w.agents.items():
            assert proc.poll() is None, f"agent {region} died:\n{w.agent_logs()}"
        if time.monotonic() - started > bound:
            state = "open" if want else "closed"
            pytest.fail(f"{src}->{dst}:{port} not {state} within {bound}s\n{w.agent_logs()}")


def test_two_regions_real_agents_real_tcp(world: World, tmp_path: object) -> None:
    w = world
    timings: dict[str, float] = {}
    _seed(w)
    for vm in VMS:
        for port in (80, 81):
            w.topo.listen(w.vms[vm], w.ip(vm), port)
    # --once on h1: programs h1's kernel, writes its heartbeat, exits 0. The watching agent
    # started next on h1 replaces that table atomically with its own first apply.
    t = time.monotonic()
    once = _run_once(w, "one", str(tmp_path))
    timings["once_run"] = time.monotonic() - t
    assert once.returncode == 0, once.stderr
    assert "chain filter-cali-pi-gnp/allow-tcp-80" in w.hosts["one"].run(
        "nft", "list", "table", "ip", "calico"
    )
    assert w.store.get("/calico/felix/v2/region-one/host/cmp-one/status") is not None

    t0 = time.monotonic()
    for region in HOSTS:
        _start_agent(w, region, str(tmp_path))

    # Heartbeats under each host's own region (the first one follows the first apply).
    for region, host in HOSTS.items():
        key = f"/calico/felix/v2/region-{region}/host/{host}/status"
        assert wait_until(lambda k=key: w.store.get(k) is not None, 30.0), (key, w.agent_logs())
    timings["agents_start_to_both_heartbeats"] = time.monotonic() - t0

    # Cross-region, both directions: source SG (client) → destination SG (web) on TCP 80.
    timings["heartbeats_to_c_a_open"] = _wait_flow(w, "c", "a", True, APPLY_BOUND)
    _wait_flow(w, "b", "d", True, APPLY_BOUND)

    for region, host in HOSTS.items():
        key = f"/calico/felix/v2/region-{region}/host/{host}/status"
        kv = w.store.get(key)
        assert kv is not None and kv.lease != 0
        assert set(json.loads(kv.value)) == {"time", "uptime", "first_update"}
        wrong = f"/calico/felix/v2/region-{'two' if region == 'one' else 'one'}/host/{host}/status"
        assert w.store.get(wrong) is None
    # Per-endpoint status of a local VM.
    a = w.ports["a"]
    ep_key = (
        f"/calico/felix/v2/region-one/host/cmp-one/workload/openstack/"
        f"openstack-region-one%2f{a.device_id}/endpoint/{a.id}"
    )
    assert wait_until(lambda: w.store.get(ep_key) is not None, 5.0), w.agent_logs()
    assert json.loads(w.store.get(ep_key).value) == {"status": "up"}  # type: ignore[union-attr]

    # Denied: another group, and another port (the server on 81 is listening).
    assert not w.probe("e", "d"), f"VM in SG other reached web:80\n{w.agent_logs()}"
    assert not w.probe("c", "a", 81), "client reached web on port 81"
    assert not w.probe("a", "c"), "web reached client (client has no ingress rules)"
    assert w.probe("c", "a")  # still open

    # Removing SG client from C's endpoint (C keeps SG base: its egress stays allowed) closes
    # C→A at A's host (the IP set shrinks), while B→D stays open.
    t = time.monotonic()
    c_doc = s.wep_doc(w.ports["c"], "two")
    del c_doc["metadata"]["labels"][f"sg.projectcalico.org/openstack-{s.SG_CLIENT}"]
    s.apply_docs(w.store, [c_doc])
    timings["label_removed_to_closed"] = _wait_flow(w, "c", "a", False, APPLY_BOUND)
    timings["label_removed_to_closed_wall"] = time.monotonic() - t
    assert w.probe("b", "d")

    # Deleting the GNP closes the remaining cross-region flow.
    t = time.monotonic()
    s.delete_doc(w.store, s.SEED_GNP)
    timings["gnp_deleted_to_closed"] = _wait_flow(w, "b", "d", False, APPLY_BOUND)
    timings["gnp_deleted_to_closed_wall"] = time.monotonic() - t

    # Putting it back re-opens it (the agents are still watching).
    s.apply_docs(w.store, [s.SEED_GNP])
    timings["gnp_recreated_to_open"] = _wait_flow(w, "b", "d", True, APPLY_BOUND)

    for region, proc in w.agents.items():
        assert proc.poll() is None, f"agent {region} exited:\n{w.agent_logs()}"
    print("e2e timings (s):", json.dumps({k: round(v, 3) for k, v in timings.items()}))
