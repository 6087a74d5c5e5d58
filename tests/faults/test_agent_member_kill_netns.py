"""The member an agent is connected to is killed while policies change (real kernel, real TCP).

One compute host namespace with three VMs (A: SG web, B: SG client, E: SG other, each also SG
base) and one agent PROCESS in it, whose felix.cfg ``EtcdEndpoints`` lists the three members
(reached from the namespace through loopback relays); the first one, which the agent uses, is
the etcd leader. The GNP ``allow-tcp-80`` goes through three states:

* S0 (before): web <- client on 80 (B->A:80 open, E->A:80 closed);
* S1 (written right after the kill): port 80 -> 8080 (B->A:80 and E->A:80 closed);
* S2: source client -> other on 80 (E->A:80 open, B->A:80 closed).

A prober connects over TCP all the time. Never opened: E->A:80 before S2 was written, B->A:80
once S1 was in force, anything to A:81. The agent must keep its ruleset while it fails over,
reach S1 within FAILOVER_BOUND of the kill, and end in S2.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
from fault_support import use_test_helpers

from regionmesh.testing.etcd_cluster import EtcdCluster

use_test_helpers()
import agent_support as s  # noqa: E402

from netns import Topology, forward_loopback_port, require_root_tools  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]

FAILOVER_BOUND = 15.0
VMS = {
    "a": ("10.65.1.2", "aaaaaaaa-3333-4000-8000-00000000000a", [s.SG_WEB, s.SG_BASE]),
    "b": ("10.65.1.3", "bbbbbbbb-3333-4000-8000-00000000000b", [s.SG_CLIENT, s.SG_BASE]),
    "e": ("10.65.1.4", "eeeeeeee-3333-4000-8000-00000000000e", [s.SG_OTHER, s.SG_BASE]),
}


def _gnp(source_sg: str, port: int) -> dict[str, object]:
    doc = copy.deepcopy(s.SEED_GNP)
    rule = doc["spec"]["ingress"][0]  # type: ignore[index]
    rule["source"] = {"selector": f"has(sg.projectcalico.org/openstack-{source_sg})"}
    rule["destination"] = {"ports": [port]}
    return doc


def test_agent_keeps_rules_and_fails_over_when_its_member_dies(
    cluster: EtcdCluster, tmp_path: object
) -> None:
    require_root_tools()
    leader = cluster.wait_leader()
    order = [cluster.member(leader)] + [m for m in cluster.members if m.name != leader]
    store = cluster.open()
    log_path = os.path.join(str(tmp_path), "agent.log")
    with Topology() as topo:
        host = topo.add_host("fk")
        vms = {}
        ports = {}
        for vm, (ip, port_id, sgs) in VMS.items():
            mac = f"fa:16:3e:00:03:{ord(vm):02x}"
            ports[vm] = s.port(port_id, "cmp-fk", ip, sgs, mac=mac)
            vms[vm] = topo.add_vm(host, vm, ip, "tap" + port_id[:11], mac=mac)
        for m in order:
            forward_loopback_port(topo, host, m.client_port)
        for port in (80, 81):
            topo.listen(vms["a"], VMS["a"][0], port)
        docs = [
            s.sg_doc(s.egress_only_sg(sg), "one")
            for sg in (s.SG_WEB, s.SG_CLIENT, s.SG_OTHER, s.SG_BASE)
        ]
        docs += [s.wep_doc(p, "one") for p in ports.values()]
        docs.append(_gnp(s.SG_CLIENT, 80))
        s.apply_docs(store, docs)
        cfg = s.felix_cfg(
            os.path.join(str(tmp_path), "felix.cfg"),
            FelixHostname="cmp-fk",
            OpenstackRegion="one",
            DatastoreType="etcdv3",
            InterfacePrefix="tap",
            EtcdEndpoints=",".join(m.endpoint for m in order),
            ReportingIntervalSecs=1,
            NftablesRefreshInterval=30,
        )
        exe = shutil.which("regionmesh") or os.path.join(
            os.path.dirname(sys.executable), "regionmesh"
        )
        assert exe, "the regionmesh console script is not installed"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "REGIONMESH_"))}
        with open(log_path, "wb") as log:
            agent = subprocess.Popen(
                ["ip", "netns", "exec", host.name, exe, "agent", "--config-file", cfg],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        topo.processes.append(agent)  # type: ignore[arg-type]

        def logs() -> str:
            with open(log_path, errors="replace") as f:
                return f.read()[-5000:]

        def probe(src: str, port: int = 80) -> bool:
            return topo.connect(vms[src], VMS["a"][0], port, timeout=0.4) is not None

        def wait(pred: object, bound: float, what: str) -> float:
            t0 = time.monotonic()
            while not pred():  # type: ignore[operator]
                assert agent.poll() is None, f"agent died:\n{logs()}"
                if time.monotonic() - t0 > bound:
                    pytest.fail(f"{what} not within {bound}s\n{logs()}")
            return time.monotonic() - t0

        wait(lambda: probe("b") and not probe("e"), 60, "S0 (B->A open)")
        ruleset = host.run("nft", "list", "table", "ip", "calico")

        # --- prober: every flow, all the time, until the end
        samples: list[tuple[float, float, str, int, bool]] = []  # start, end, flow, connected
        done = threading.Event()

        def prober() -> None:
            while not done.is_set():
                for src, port in (("b", 80), ("e", 80), ("b", 81), ("e", 81)):
                    t0 = time.monotonic()
                    ok = probe(src, port)
                    samples.append((t0, time.monotonic(), src, port, ok))

        thread = threading.Thread(target=prober, daemon=True)
        thread.start()
        time.sleep(1.0)

        killed_at = time.monotonic()
        cluster.kill(order[0].name)
        s.apply_docs(store, [_gnp(s.SG_CLIENT, 8080)])
        s1_written = time.monotonic()
        kept = host.run("nft", "list", "table", "ip", "calico") == ruleset or not probe("b")
        s1_took = wait(lambda: not probe("b"), FAILOVER_BOUND, "S1 after the kill")
        s1_in_force = time.monotonic()
        time.sleep(1.0)
        s.apply_docs(store, [_gnp(s.SG_OTHER, 80)])
        s2_written = time.monotonic()
        s2_took = wait(lambda: probe("e") and not probe("b"), FAILOVER_BOUND, "S2")
        time.sleep(1.0)
        done.set()
        thread.join(timeout=30)
        cluster.restart(order[0].name)
        assert agent.poll() is None, f"agent died:\n{logs()}"

        # A connection happened somewhere in [start, end]: wrong only if it surely fell into
        # a period where the flow was closed in every state in force.
        wrong = [
            (round(t0 - killed_at, 2), src, port)
            for t0, t1, src, port, ok in samples
            if ok
            and (
                port == 81 or (src == "e" and t1 < s2_written) or (src == "b" and t0 > s1_in_force)
            )
        ]
        print(
            f"agent's member {order[0].name} (leader) killed: S1 applied {s1_took:.2f}s after its "
            f"write ({s1_written - killed_at:.2f}s after the kill), S2 in {s2_took:.2f}s; "
            f"{len(samples)} TCP probes, wrongly open: {len(wrong)}; ruleset kept meanwhile: "
            f"{kept}"
        )
        assert wrong == [], wrong[:10]
        assert kept
    store.close()
