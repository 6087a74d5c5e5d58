"""The real-kernel part of ``regionmesh demo``: hosts and VMs in network namespaces, one agent
(and, with BIRD installed, one ``regionmesh bgp``) per host, TCP servers and probes.

Namespaces, veths and process clean-up are :class:`regionmesh.testing.netns.Topology`'s (the
same sandbox the root tests use); what the agents program is theirs. The demo's story and
printing are :mod:`.demo`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from regionmesh.errors import RegionmeshError
from regionmesh.model import WorkloadEndpoint
from regionmesh.testing.netns import Netns, Topology

ALLOWED = ("client-1", "web-1")
"""The cross-region pair whose flow allow-tcp-80 opens (and the demo explains)."""
DENIED = ("batch-1", "web-1")
"""A cross-region pair that stays denied."""
CHECKS = (("web-2", "web-1"), ("client-2", "client-1"))
"""Same-region flows the SGs allow: used to know both agents have programmed their host."""
PORT = 80
SERVER_TTL = 600.0
"""Seconds a demo TCP server lives at most (it is stopped with the sandbox anyway)."""


@dataclass(frozen=True, slots=True)
class DemoVm:
    """A VM of the cloud file with what its WorkloadEndpoint says about it."""

    name: str
    region: str
    host: str
    ip: str
    endpoint: WorkloadEndpoint

    @property
    def ref(self) -> str:
        """``namespace/name`` of the WorkloadEndpoint."""
        return f"{self.endpoint.metadata.namespace}/{self.endpoint.metadata.name}"


def _cli_command() -> list[str]:
    return [sys.executable, "-c", "from regionmesh.cli.main import main; main()"]


def dataplane_problem() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not installed (apt-get install iproute2 nftables)"
    return None


def _remove_bird(pidfile: Path, run_dir: Path) -> None:
    """Kill a BIRD whose ``regionmesh bgp`` had to be killed, and remove its run directory."""
    try:
        os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
    except (OSError, ValueError):
        pass
    shutil.rmtree(run_dir, ignore_errors=True)


class Dataplane:
    """Hosts and VMs in namespaces, agents and TCP servers; everything lands in ``topo``."""

    def __init__(
        self,
        topo: Topology,
        tmpdir: str,
        url: str,
        vms: dict[str, DemoVm],
        echo: Callable[[str], None],
    ) -> None:
        self.topo = topo
        self.tmpdir = tmpdir
        self.url = url
        self.vms = vms
        self.echo = echo
        self.hosts: dict[str, Netns] = {}
        self.vm_ns: dict[str, Netns] = {}
        self.logs_paths: dict[str, str] = {}
        self.fabric: dict[str, str] = {}
        self.routing = "static routes"

    def build(self) -> None:
        regions: dict[str, list[DemoVm]] = {}
        for vm in self.vms.values():
            regions.setdefault(vm.host, []).append(vm)
        fabric: dict[str, str] = {}
        hosts = sorted(regions)
        for i, host in enumerate(hosts, start=1):
            # forwarding on, and a dead uplink as default route so proxy ARP answers
            self.hosts[host] = self.topo.add_host(f"h{i}")
            fabric[host] = f"10.254.0.{i}"
        # one fabric link (the demo has one host per region; a chain for more hosts)
        for a, b in zip(hosts, hosts[1:], strict=False):
            self.topo.link_hosts(self.hosts[a], fabric[a], self.hosts[b], fabric[b])
        self.fabric = fabric
        use_bgp = shutil.which("bird") is not None and len(hosts) == 2
        for host, members in regions.items():
            for vm in members:
                self._add_vm(host, vm)
            if use_bgp:
                continue
            # every other host's VMs are reached over the fabric (a BGP stand-in)
            for other, others in regions.items():
                if other == host:
                    continue
                for vm in others:
                    self.hosts[host].ip(
                        "route", "replace", f"{vm.ip}/32", "via", fabric[other], "proto", "static"
                    )
        for host in hosts:
            self._start_agent(host, self.vms_region(host))
            if use_bgp:
                self._start_bgp(host)
        if use_bgp:
            self.routing = "BGP (regionmesh bgp + BIRD 2, node-to-node mesh)"
        else:
            why = (
                "bird is not installed (apt-get install bird2)"
                if len(hosts) == 2
                else (f"{len(hosts)} hosts on a chain of links")
            )
            self.echo(f"  routes between hosts: static (a BGP stand-in: {why})")
        web = self.vms[ALLOWED[1]]
        self.topo.listen(self.vm_ns[web.name], web.ip, PORT, ttl=SERVER_TTL)
        for _src, dst in CHECKS:
            if dst != web.name:
                self.topo.listen(self.vm_ns[dst], self.vms[dst].ip, PORT, ttl=SERVER_TTL)
        self.echo(
            f"  {len(self.hosts)} hosts, {len(self.vm_ns)} VMs in namespaces "
            f"{self.topo.prefix}-{self.topo.run_id}-*; agents started; TCP servers on port {PORT}"
        )

    def vms_region(self, host: str) -> str:
        return next(vm.region for vm in self.vms.values() if vm.host == host)

    def _add_vm(self, host: str, vm: DemoVm) -> None:
        ep = vm.endpoint
        via = ep.spec.ipv4_gateway or vm.ip.rsplit(".", 2)[0] + ".0.1"
        self.vm_ns[vm.name] = self.topo.add_vm(
            self.hosts[host],
            f"vm-{vm.name}",
            vm.ip,
            ep.spec.interface_name,
            prefixlen=16,
            gateway=str(via),
            mac=ep.spec.mac or None,
        )

    def _start_agent(self, host: str, region: str) -> None:
        cfg = Path(self.tmpdir) / f"felix-{host}.cfg"
        cfg.write_text(
            "[global]\n"
            f"FelixHostname = {host}\n"
            f"OpenstackRegion = {region}\n"
            "InterfacePrefix = tap\n"
            "ReportingIntervalSecs = 5\n"
            "LogSeverityScreen = INFO\n"
        )
        log = Path(self.tmpdir) / f"agent-{host}.log"
        self.logs_paths[host] = str(log)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "REGIONMESH_"))}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.hosts[host].name, *_cli_command(), "agent"]
                + ["--config-file", str(cfg), "--datastore", self.url],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.topo.processes.append(proc)

    def _start_bgp(self, host: str) -> None:
        cfg = Path(self.tmpdir) / f"felix-{host}.cfg"
        # BIRD's control socket path must stay under 108 bytes: a short directory in /tmp
        run_dir = Path(tempfile.mkdtemp(prefix="rmdemo-bgp-", dir="/tmp"))
        pidfile = run_dir / "bird.pid"
        self.topo.on_close.append(lambda: _remove_bird(pidfile, run_dir))
        log = Path(self.tmpdir) / f"bgp-{host}.log"
        self.logs_paths[f"{host} bgp"] = str(log)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "REGIONMESH_"))}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.hosts[host].name, *_cli_command(), "bgp"]
                + ["--config-file", str(cfg), "--datastore", self.url]
                + ["--address", f"{self.fabric[host]}/24", "--run-dir", str(run_dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.topo.processes.append(proc)

    def wait_routes(self, timeout: float = 60.0) -> None:
        """With BGP: wait until every host has a ``proto bird`` route to every remote VM."""
        if not self.routing.startswith("BGP"):
            return
        started = time.monotonic()
        want = {h: {vm.ip for vm in self.vms.values() if vm.host != h} for h in self.hosts}
        while True:
            have = {
                h: set(ns.ip("route", "show", "proto", "bird").split())
                for h, ns in self.hosts.items()
            }
            if all(want[h] <= have[h] for h in self.hosts):
                break
            for proc in self.topo.processes:
                if proc.poll() is not None:
                    raise RegionmeshError(f"a demo process exited early:\n{self.logs()}")
            if time.monotonic() - started > timeout:
                raise RegionmeshError(
                    f"BGP did not distribute the VM routes within {timeout:.0f} s:\n{self.logs()}"
                )
            time.sleep(0.2)
        count = sum(len(w) for w in want.values())
        self.echo(
            f"  routes between hosts: {self.routing}: {count} VM route(s) learned "
            f"(proto bird) in {time.monotonic() - started:.1f} s"
        )

    def probe(self, src: str, dst: str, timeout: float = 0.7) -> bool:
        return self.topo.connect(self.vm_ns[src], self.vms[dst].ip, PORT, timeout) is not None

    def wait_probe(self, src: str, dst: str, *, want: bool, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            got = self.probe(src, dst, timeout=0.5)
            if got == want or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    def wait_ready(self, timeout: float = 30.0) -> None:
        for src, dst in CHECKS:
            if not self.wait_probe(src, dst, want=True, timeout=timeout):
                raise RegionmeshError(
                    f"agents did not program the same-region flow {src} → {dst} within "
                    f"{timeout:.0f} s:\n{self.logs()}"
                )
            self.echo(f"  ready: same-region {src} → {dst} TCP/{PORT} CONNECTED (SG rule)")
        for proc in self.topo.processes:
            if proc.poll() is not None:
                raise RegionmeshError(f"a demo process exited early:\n{self.logs()}")

    def logs(self) -> str:
        out = []
        for host, path in self.logs_paths.items():
            try:
                text = Path(path).read_text(errors="replace")[-3000:]
            except OSError:
                text = "(no log)"
            out.append(f"----- {host if ' ' in host else 'agent ' + host} -----\n{text}")
        return "\n".join(out)
