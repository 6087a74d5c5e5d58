"""``regionmesh demo``: the project's main job, end to end, in under a minute.

1. Builds the two-region cloud of ``two-region-cloud.yaml`` (package data,
   :mod:`regionmesh.examples`) through ``regionmesh cloud apply``'s code
   (:mod:`regionmesh.openstack.cloud`) into a TEMPORARY embedded datastore (or the one given
   with ``--datastore``/``-c``);
2. prints the region-by-region connectivity matrix and the cross-region flows;
3. previews ``allow-tcp-80.yaml`` (what-if), applies it like ``calicoctl apply``, prints
   the matrix again and the explain trace of one cross-region pair (client-1 → web-1 TCP/80);
4. as root (unless ``--no-dataplane``): builds one network namespace per compute host and per
   VM (the VMs' taps, MACs and addresses come from the WorkloadEndpoints), starts one
   ``regionmesh agent`` per host on the same datastore, and proves the flows with real TCP: an
   allowed cross-region flow connects, a denied one does not. Hosts reach each other's VMs
   through ``regionmesh bgp`` (one BIRD 2 per host, full mesh) when ``bird`` is installed,
   else through static routes (a BGP stand-in); the demo says which it used.

Everything it creates (namespaces, veths, agent and server processes, the temporary store) is
removed on success, failure, Ctrl-C or SIGTERM. Verdicts come from :mod:`regionmesh.policy`;
programming the kernel is the agent's job; this module only orchestrates and prints.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import click
import yaml

from regionmesh import examples
from regionmesh.cli.context import CliContext
from regionmesh.cli.resources import prepare
from regionmesh.errors import RegionmeshError
from regionmesh.model import Resource, WorkloadEndpoint
from regionmesh.openstack import cloud as cloud_mod
from regionmesh.policy import Snapshot
from regionmesh.policy.connectivity import compute_connectivity
from regionmesh.policy.flowspec import EndpointRef, FlowSpec, check_flow
from regionmesh.policy.whatif import what_if

__all__ = ["DemoVm", "run_demo"]

CLOUD_FILE = examples.example_path(examples.CLOUD)
POLICY_FILE = examples.example_path(examples.POLICY)
ALLOWED = ("client-1", "web-1")
"""The cross-region pair whose flow allow-tcp-80 opens (and the demo explains)."""
DENIED = ("batch-1", "web-1")
"""A cross-region pair that stays denied."""
CHECKS = (("web-2", "web-1"), ("client-2", "client-1"))
"""Same-region flows the SGs allow: used to know both agents have programmed their host."""
PORT = 80

_SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    try:
        c.sendall(b"hello " + peer[0].encode() + b"\n")
    finally:
        c.close()
"""

_CLIENT = r"""
import socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print(s.recv(100).decode().strip())
except OSError as exc:
    print(type(exc).__name__)
    sys.exit(1)
"""


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


@dataclass
class _Sandbox:
    """Namespaces, processes and files the dataplane part creates; ``close`` removes them."""

    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)
    bird_pidfiles: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)

    def ns_name(self, what: str) -> str:
        return f"rmdemo-{self.tag}-{what}"[:40]

    def close(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.terminate()
        for p in self.processes:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.processes.clear()
        for pidfile in self.bird_pidfiles:  # a BIRD whose regionmesh bgp had to be killed
            try:
                os.kill(int(Path(pidfile).read_text().strip()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        self.bird_pidfiles.clear()
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)
        self.dirs.clear()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self.namespaces.clear()


def _sh(*args: str, timeout: float = 20.0) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RegionmeshError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _cli_command() -> list[str]:
    return [sys.executable, "-c", "from regionmesh.cli.main import main; main()"]


def _vms(cloud_file: Path, snap: Snapshot) -> dict[str, DemoVm]:
    raw = yaml.safe_load(cloud_file.read_text())
    by_workload = {e.spec.workload: e for e in snap.endpoints() if isinstance(e, WorkloadEndpoint)}
    out: dict[str, DemoVm] = {}
    for region in raw["regions"]:
        for vm in region.get("vms", []):
            ep = by_workload.get(cloud_mod.cloud_id(region["name"], "vm", vm["name"]))
            if ep is not None:
                out[vm["name"]] = DemoVm(
                    vm["name"], region["name"], vm["host"], str(vm["ips"][0]), ep
                )
    return out


class _Demo:
    def __init__(self, cli: CliContext, echo: Callable[[str], None]) -> None:
        self.cli = cli
        self.echo = echo
        self.step = 0

    def section(self, title: str) -> None:
        self.step += 1
        self.echo("")
        self.echo(click.style(f"== {self.step}. {title}", bold=True))

    def snapshot(self) -> tuple[list[Resource], Snapshot]:
        from regionmesh.cli.explain_cmds import load_resources

        resources = load_resources(self.cli.client())
        return resources, Snapshot(resources)

    def show_connectivity(self, snap: Snapshot) -> None:
        from regionmesh.cli.explain_cmds import render_edges, render_matrix

        conn = compute_connectivity(snap)
        self.echo("VM pairs allowed / all VM pairs, and what is allowed (rows: from, cols: to):")
        self.echo(render_matrix(conn))
        self.echo("cross-region flows allowed:")
        self.echo(render_edges(conn, cross_region_only=True))


def run_demo(
    cli: CliContext,
    *,
    dataplane: bool = True,
    keep: bool = False,
    cloud_file: Path = CLOUD_FILE,
    policy_file: Path = POLICY_FILE,
    echo: Callable[[str], None] = click.echo,
) -> int:
    """Run the demo; returns the exit status (0: every step and proof worked)."""
    started = time.monotonic()
    for path in (cloud_file, policy_file):
        if not path.is_file():
            echo(f"demo: {path} not found (the package is installed without its examples)")
            return 1
    tmpdir = tempfile.mkdtemp(prefix="regionmesh-demo-")
    sandbox = _Sandbox()
    if cli.url is None and cli.config_file is None:
        cli.url = f"sqlite:///{tmpdir}/demo.db"
        where = f"{cli.url} (temporary)"
    else:
        where = "the datastore given on the command line"
    demo = _Demo(cli, echo)
    try:
        with _sigterm_as_interrupt():
            code = _run(demo, sandbox, tmpdir, where, dataplane, cloud_file, policy_file)
    except KeyboardInterrupt:
        echo("\ndemo interrupted; cleaning up")
        code = 130
    except RegionmeshError as exc:
        echo(f"demo failed: {exc}")
        code = 1
    finally:
        sandbox.close()
        cli.close()
        if keep:
            echo(f"kept {tmpdir}")
        else:
            shutil.rmtree(tmpdir, ignore_errors=True)
    echo(f"\ndemo finished in {time.monotonic() - started:.1f} s (exit {code})")
    return code


def _run(
    demo: _Demo,
    sandbox: _Sandbox,
    tmpdir: str,
    where: str,
    dataplane: bool,
    cloud_file: Path,
    policy_file: Path,
) -> int:
    from regionmesh.cli.explain_cmds import render_explanation, render_what_if

    echo = demo.echo
    demo.section(f"two-region cloud from {cloud_file.name} → {where}")
    cloud = cloud_mod.load_cloud(cloud_file)
    result = cloud_mod.apply_cloud(demo.cli.store(), cloud)
    echo(
        f"regionmesh cloud apply: {result.count('created')} created, "
        f"{result.count('updated')} updated, {result.count('unchanged')} unchanged "
        f"(regions {', '.join(r.name for r in cloud.regions)})"
    )
    resources_now, snap = demo.snapshot()
    vms = _vms(cloud_file, snap)
    for vm in vms.values():
        sgs = sorted(
            k.split("openstack-", 1)[1]
            for k in vm.endpoint.metadata.labels
            if k.startswith("sg-name.projectcalico.org/")
        )
        echo(f"  region {vm.region:4} {vm.host:10} {vm.name:9} {vm.ip:10} SG {', '.join(sgs)}")

    demo.section("who can reach whom BEFORE the cross-region policy")
    demo.show_connectivity(snap)

    demo.section(f"what-if: regionmesh apply --dry-run -f {policy_file.name}")
    items = prepare(str(policy_file), None)
    bad = [p for p in items if not p.valid]
    if bad:
        raise RegionmeshError(f"{policy_file}: {bad[0].errors}")
    changes = [p.resource for p in items if p.resource is not None]
    echo(render_what_if(what_if(resources_now, changes)))

    sb: _Dataplane | None = None
    if dataplane:
        problem = _dataplane_problem()
        if problem:
            echo(f"\n(skipping the real-TCP proof: {problem}; run as root or pass --no-dataplane)")
        else:
            demo.section("dataplane: one agent per compute host, VMs in network namespaces")
            sb = _Dataplane(sandbox, tmpdir, demo.cli.url or "", vms, echo)
            sb.build()
            sb.wait_routes()
            sb.wait_ready()
            ok = sb.probe(*ALLOWED)
            echo(f"  before the policy: {_pair(vms, ALLOWED)} TCP/{PORT}: {_word(ok)}")
            if ok:
                echo("  unexpected: the flow is open before the policy")
                return 1

    demo.section(f"apply {policy_file.name} (as calicoctl apply)")
    written = demo.cli.client().write_all("apply", changes)
    echo(f"Successfully applied {len(written)} resource(s)")
    _resources, snap = demo.snapshot()

    demo.section("who can reach whom AFTER")
    demo.show_connectivity(snap)

    src, dst = vms[ALLOWED[0]], vms[ALLOWED[1]]
    demo.section(
        f"explain {src.name} (region {src.region}) → {dst.name} (region {dst.region}) TCP/{PORT}"
    )
    echo(f"regionmesh explain --from {src.ref} \\\n    --to {dst.ref} --protocol TCP --port {PORT}")
    spec = FlowSpec(
        EndpointRef(src.endpoint.metadata.namespace, src.endpoint.metadata.name),
        EndpointRef(dst.endpoint.metadata.namespace, dst.endpoint.metadata.name),
        6,
        PORT,
    )
    echo(render_explanation(check_flow(snap, spec).verdict))

    if sb is not None:
        demo.section("prove it with real TCP")
        opened = sb.wait_probe(*ALLOWED, want=True, timeout=10.0)
        echo(f"  allowed  {_pair(vms, ALLOWED)} TCP/{PORT}: {_word(opened)}")
        denied_ok = not sb.probe(*DENIED)
        echo(f"  denied   {_pair(vms, DENIED)} TCP/{PORT}: {_word(not denied_ok)}")
        if not (opened and denied_ok):
            echo("  the dataplane does not match the policy verdicts; agent logs:")
            echo(sb.logs())
            return 1
        echo("  the kernel agrees with explain: policy verdicts proven with real TCP")
    return 0


def _pair(vms: dict[str, DemoVm], pair: tuple[str, str]) -> str:
    a, b = vms[pair[0]], vms[pair[1]]
    return f"{a.name} ({a.region}, {a.ip}) → {b.name} ({b.region}, {b.ip})"


def _word(connected: bool) -> str:
    return "CONNECTED" if connected else "blocked"


def _dataplane_problem() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not installed (apt-get install iproute2 nftables)"
    return None


class _Dataplane:
    """Hosts and VMs in namespaces, agents and a TCP server; everything lands in ``sandbox``."""

    def __init__(
        self,
        sandbox: _Sandbox,
        tmpdir: str,
        url: str,
        vms: dict[str, DemoVm],
        echo: Callable[[str], None],
    ) -> None:
        self.sb = sandbox
        self.tmpdir = tmpdir
        self.url = url
        self.vms = vms
        self.echo = echo
        self.hosts: dict[str, str] = {}
        self.vm_ns: dict[str, str] = {}
        self.logs_paths: dict[str, str] = {}
        self.fabric: dict[str, str] = {}
        self.routing = "static routes"

    def _netns(self, what: str) -> str:
        name = self.sb.ns_name(what)
        _sh("ip", "netns", "add", name)
        self.sb.namespaces.append(name)
        _sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def build(self) -> None:
        regions: dict[str, list[DemoVm]] = {}
        for vm in self.vms.values():
            regions.setdefault(vm.host, []).append(vm)
        fabric: dict[str, str] = {}
        for i, host in enumerate(sorted(regions), start=1):
            ns = self._netns(f"h{i}")
            self.hosts[host] = ns
            # a dead uplink as default route, so proxy ARP answers for off-subnet targets
            _sh("ip", "-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", "up0x")
            _sh("ip", "-n", ns, "link", "set", "up0", "up")
            _sh("ip", "-n", ns, "route", "add", "default", "dev", "up0")
            _sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
            fabric[host] = f"10.254.0.{i}"
        hosts = sorted(regions)
        # one fabric link (the demo has one host per region; a chain for more hosts)
        for i in range(len(hosts) - 1):
            a, b = hosts[i], hosts[i + 1]
            link = f"fab{i}"
            _sh(
                "ip", "-n", self.hosts[a], "link", "add", link, "type", "veth",
                "peer", "name", link, "netns", self.hosts[b],
            )  # fmt: skip
            for h in (a, b):
                _sh("ip", "-n", self.hosts[h], "addr", "add", f"{fabric[h]}/24", "dev", link)
                _sh("ip", "-n", self.hosts[h], "link", "set", link, "up")
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
                    _sh(
                        "ip", "-n", self.hosts[host], "route", "replace", f"{vm.ip}/32",
                        "via", fabric[other], "proto", "static",
                    )  # fmt: skip
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
        self._server(self.vm_ns[web.name], web.ip)
        for _src, dst in CHECKS:
            if dst != web.name:
                self._server(self.vm_ns[dst], self.vms[dst].ip)
        self.echo(
            f"  {len(self.hosts)} hosts, {len(self.vm_ns)} VMs in namespaces rmdemo-{self.sb.tag}-*;"
            f" agents started; TCP servers on port {PORT}"
        )

    def vms_region(self, host: str) -> str:
        return next(vm.region for vm in self.vms.values() if vm.host == host)

    def _add_vm(self, host: str, vm: DemoVm) -> None:
        ep = vm.endpoint
        ns = self._netns(f"vm-{vm.name}")
        self.vm_ns[vm.name] = ns
        iface = ep.spec.interface_name
        gateway = ep.spec.ipv4_gateway
        peer = ["peer", "name", "eth0"]
        if ep.spec.mac:
            peer += ["address", ep.spec.mac]
        _sh("ip", "-n", self.hosts[host], "link", "add", iface, "type", "veth", *peer, "netns", ns)
        _sh("ip", "-n", self.hosts[host], "link", "set", iface, "up")
        _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        prefix = "16"
        _sh("ip", "-n", ns, "addr", "add", f"{vm.ip}/{prefix}", "dev", "eth0")
        via = gateway or vm.ip.rsplit(".", 2)[0] + ".0.1"
        _sh("ip", "-n", ns, "route", "add", "default", "via", str(via), "dev", "eth0")

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
                ["ip", "netns", "exec", self.hosts[host], *_cli_command(), "agent"]
                + ["--config-file", str(cfg), "--datastore", self.url],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.sb.processes.append(proc)

    def _start_bgp(self, host: str) -> None:
        cfg = Path(self.tmpdir) / f"felix-{host}.cfg"
        # BIRD's control socket path must stay under 108 bytes: a short directory in /tmp
        run_dir = Path(tempfile.mkdtemp(prefix="rmdemo-bgp-", dir="/tmp"))
        self.sb.dirs.append(str(run_dir))
        log = Path(self.tmpdir) / f"bgp-{host}.log"
        self.logs_paths[f"{host} bgp"] = str(log)
        self.sb.bird_pidfiles.append(str(run_dir / "bird.pid"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "REGIONMESH_"))}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.hosts[host], *_cli_command(), "bgp"]
                + ["--config-file", str(cfg), "--datastore", self.url]
                + ["--address", f"{self.fabric[host]}/24", "--run-dir", str(run_dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.sb.processes.append(proc)

    def wait_routes(self, timeout: float = 60.0) -> None:
        """With BGP: wait until every host has a ``proto bird`` route to every remote VM."""
        if not self.routing.startswith("BGP"):
            return
        started = time.monotonic()
        want = {h: {vm.ip for vm in self.vms.values() if vm.host != h} for h in self.hosts}
        while True:
            have = {
                h: set(_sh("ip", "-n", ns, "route", "show", "proto", "bird").split())
                for h, ns in self.hosts.items()
            }
            if all(want[h] <= have[h] for h in self.hosts):
                break
            for proc in self.sb.processes:
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

    def _server(self, ns: str, ip: str) -> None:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", _SERVER, ip, str(PORT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.sb.processes.append(proc)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RegionmeshError(f"the TCP server in {ns} did not start")

    def probe(self, src: str, dst: str, timeout: float = 0.7) -> bool:
        cmd = ["ip", "netns", "exec", self.vm_ns[src], sys.executable, "-c", _CLIENT]
        cmd += [self.vms[dst].ip, str(PORT), str(timeout)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10)
        return proc.returncode == 0 and proc.stdout.startswith("hello")

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
        for proc in self.sb.processes:
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
