"""Benchmark of ``regionmesh bgp``: route propagation time and configuration cost.

1. **Propagation** (root; real etcd, real BIRD 2, real kernels in namespaces this script
   creates): two hosts on one bridge, each running ``regionmesh bgp``; host 1 also runs
   ``regionmesh agent``. Measured, in the same run:
   * *baseline*: BIRD alone — a ``/32 dev tap… proto boot`` route added by hand with ``ip route``
     on host 1 (before the agent starts, so nothing else touches it) until it is in host 2's
     kernel (``ip monitor route`` timestamps), median over ``--changes`` routes;
   * *regionmesh*: a WorkloadEndpoint written to etcd until its route is in host 2's kernel
     (agent: watch → tap route; BIRD: learn → BGP → kernel), median over ``--changes`` VMs.
   The ratio is regionmesh / baseline: what the agent adds on top of BIRD (the script also
   reports the agent's part alone: WorkloadEndpoint write → local tap route, ``proto boot``).
2. **Configuration cost** at 100 and 1,000 nodes (full mesh, one new node): peerings + render
   (pure Python), ``bird -p`` (BIRD's own parse, the baseline), and ``configure`` of a running
   BIRD that already has the N-node configuration.

Run (as root): ``.venv/bin/python bench/bench_bgp.py`` (``--changes 10`` for a quick run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "tests" / "agent"))

import agent_support as s  # noqa: E402

from netns import Topology, add_switch, forward_loopback_port, plug  # noqa: E402
from regionmesh.bgp.bird import BirdControl, BirdProcess, RunDir, write_atomically  # noqa: E402
from regionmesh.bgp.peers import BGPSettings, NodeBGP, compute_peerings  # noqa: E402
from regionmesh.bgp.render import BirdInputs, render  # noqa: E402
from regionmesh.testing.etcd_server import start_etcd  # noqa: E402

BIN = os.path.dirname(sys.executable)


class RouteWatch:
    """``ip monitor route`` in a namespace: first time each destination appears on a line
    containing ``marker`` (``ip`` does not print ``proto boot``: use `` dev tap`` for those)."""

    def __init__(self, ns: str, marker: str = "proto bird") -> None:
        self.proto = marker
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            ["ip", "-n", ns, "monitor", "route"], stdout=subprocess.PIPE, text=True, bufsize=1
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.monotonic()
            if self.proto in line and not line.startswith("Deleted"):
                with self.cond:
                    self.seen.setdefault(line.split()[0], now)
                    self.cond.notify_all()

    def wait(self, dst: str, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while dst not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"{dst} never arrived")
                self.cond.wait(left)
            return self.seen[dst]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _spawn(topo: Topology, ns: str, args: list[str], log: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "REGIONMESH_"))}
    with open(log, "wb") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env)  # fmt: skip
    topo.processes.append(proc)  # type: ignore[arg-type]
    return proc


def propagation(changes: int) -> dict[str, float]:
    etcd = start_etcd()
    tmp = tempfile.mkdtemp(prefix="rm-bench-bgp-")
    topo = Topology()
    bgp: list[subprocess.Popen[bytes]] = []
    try:
        sw = add_switch(topo)
        h = [topo.add_host(f"bh{i}") for i in (1, 2)]
        for i, host in enumerate(h, start=1):
            plug(topo, sw, host, [f"10.0.0.{i}/24"])
            forward_loopback_port(topo, host, etcd.client_port, ttl=1800)
        taps = [f"tap{i:04d}bench"[:14] for i in range(2 * changes)]
        for tap in taps:
            h[0].ip("link", "add", tap, "type", "veth", "peer", "name", "v" + tap[3:])
            h[0].ip("link", "set", tap, "up")
            h[0].ip("link", "set", "v" + tap[3:], "up")
        store = etcd.open()
        s.apply_docs(store, [{"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration",
                              "metadata": {"name": "default"}, "spec": {"interfacePrefix": "tap"}}])  # fmt: skip
        cfgs = []
        for i, host in enumerate(h, start=1):
            cfgs.append(s.felix_cfg(os.path.join(tmp, f"felix{i}.cfg"), FelixHostname=f"bench{i}",
                        OpenstackRegion="one", EtcdEndpoints=f"http://127.0.0.1:{etcd.client_port}"))  # fmt: skip
            bgp.append(_spawn(topo, host.name, [f"{BIN}/regionmesh", "bgp", "--config-file",
                       cfgs[-1], "--address", f"10.0.0.{i}/24", "--run-dir",
                       os.path.join(tmp, f"run{i}")], os.path.join(tmp, f"bgp{i}.log")))  # fmt: skip
        watch = RouteWatch(h[1].name)
        local = RouteWatch(h[0].name, " dev tap")
        ctl = BirdControl(os.path.join(tmp, "run2", "bird.ctl"))
        deadline = time.monotonic() + 120
        while True:
            try:
                if "Established" in str(ctl.command("show protocols")):
                    break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the BGP session did not come up")
            time.sleep(0.2)
        baseline = []
        for i in range(changes):
            dst = f"10.66.0.{i + 1}"
            t = time.monotonic()
            h[0].ip("route", "add", f"{dst}/32", "dev", taps[i], "scope", "link", "proto", "boot")
            baseline.append(watch.wait(dst) - t)
        for i in range(changes):
            h[0].ip("route", "del", f"10.66.0.{i + 1}/32")
        _spawn(topo, h[0].name, [f"{BIN}/regionmesh", "agent", "--config-file", cfgs[0]],
               os.path.join(tmp, "agent1.log"))  # fmt: skip
        time.sleep(3)  # the agent's first full apply
        ours, agent = [], []
        for i in range(changes):
            tap = taps[changes + i]
            dst = f"10.65.0.{i + 1}"
            port_id = f"{i:08x}-0000-4000-8000-{i:012x}"
            p = s.port(port_id, "bench1", dst, [s.SG_BASE])
            doc = s.wep_doc(p, "one")
            doc["spec"]["interfaceName"] = tap
            t = time.monotonic()
            s.apply_docs(store, [doc])
            ours.append(watch.wait(dst, 60.0) - t)
            agent.append(local.wait(dst, 1.0) - t)
        watch.close()
        local.close()
        store.close()
        return {
            "baseline_ms": statistics.median(baseline) * 1000,
            "regionmesh_ms": statistics.median(ours) * 1000,
            "regionmesh_p90_ms": sorted(ours)[int(0.9 * len(ours))] * 1000,
            "agent_ms": statistics.median(agent) * 1000,
        }
    finally:
        for proc in bgp:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)
        topo.close()
        etcd.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def config_cost(n: int, topo: Topology) -> dict[str, float]:
    nodes = [NodeBGP(f"n{i}", f"10.{i >> 8 & 255}.{i & 255}.1/16") for i in range(n)]
    local = nodes[0]
    t = time.perf_counter()
    peerings = compute_peerings(local, nodes, BGPSettings())
    text = render(BirdInputs("n0", local.address(4), None, peerings, ("tap",)))
    render_ms = (time.perf_counter() - t) * 1000
    tmp = tempfile.mkdtemp(prefix="rm-bench-bird-")
    try:
        run = RunDir(tmp)
        write_atomically(run.config, text)
        t = time.perf_counter()
        subprocess.run(["bird", "-p", "-c", run.config], check=True, capture_output=True)
        parse_ms = (time.perf_counter() - t) * 1000
        ns = topo.netns(f"cfg{n}")
        bird = BirdProcess(run)
        bird.bird = "bird"
        proc = subprocess.Popen(["ip", "netns", "exec", ns.name, "bird", "-f", "-c", run.config,
                                 "-s", run.socket, "-P", run.pidfile])  # fmt: skip
        topo.processes.append(proc)  # type: ignore[arg-type]
        while not BirdControl(run.socket).alive():
            time.sleep(0.05)
        more = [*nodes, NodeBGP(f"n{n}", f"10.250.0.{n % 250 + 1}/16")]
        write_atomically(run.config, render(BirdInputs("n0", local.address(4), None,
                         compute_peerings(local, more, BGPSettings()), ("tap",))))  # fmt: skip
        t = time.perf_counter()
        BirdControl(run.socket, timeout=120).configure()
        configure_ms = (time.perf_counter() - t) * 1000
        proc.terminate()
        proc.wait(timeout=30)
        return {"nodes": n, "peerings": len(peerings), "render_ms": render_ms,
                "bird_parse_ms": parse_ms, "configure_ms": configure_ms}  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=50)
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("bird"):
        raise SystemExit("bench_bgp needs root and bird (Debian bird2)")
    r = propagation(args.changes)
    print(f"propagation over {args.changes} changes (median): BIRD alone (ip route) "
          f"{r['baseline_ms']:.0f} ms; WorkloadEndpoint write -> remote kernel "
          f"{r['regionmesh_ms']:.0f} ms (p90 {r['regionmesh_p90_ms']:.0f} ms; of which WEP -> "
          f"local tap route by the agent {r['agent_ms']:.0f} ms); "
          f"ratio {r['regionmesh_ms'] / r['baseline_ms']:.2f}")  # fmt: skip
    with Topology() as topo:
        for n in (100, 1000):
            c = config_cost(n, topo)
            print(f"config at {n} nodes ({c['peerings']} sessions): render {c['render_ms']:.1f} ms, "
                  f"bird -p {c['bird_parse_ms']:.1f} ms (ratio {c['render_ms'] / c['bird_parse_ms']:.2f}), "
                  f"configure {c['configure_ms']:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
