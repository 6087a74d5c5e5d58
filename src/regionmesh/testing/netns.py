"""Network-namespace sandboxes: hosts, VMs on tap veths, host links, TCP probes.

Builds the topology proven by the project's netns proof, for the tests that need real kernels
and for ``regionmesh demo`` (both use this one :class:`Topology`):

* a *host* is a namespace with forwarding on and a dead veth ``up0`` as default route (so
  proxy ARP has a route to answer for off-subnet targets; ``dummy`` links are unavailable);
* a *VM* is a namespace whose ``eth0`` is the peer of a host-side veth named like a Nova tap
  (``tap`` + 11 chars); the VM gets the pool as its subnet and a default route via a gateway
  address that only the host's proxy ARP answers. Host-side /32 routes and proxy ARP are the
  dataplane's job (``NetlinkRoutes``); ``vm_routes_by_helper=True`` lets the helper do it
  for VMs the agent must not know;
* hosts can be linked to each other (``link_hosts`` + ``route``) and to the root namespace
  (``link_to_root``, e.g. to reach an etcd listening on the root side of that veth).

Every namespace is named ``<prefix>-<run id>-<tag>`` (``rmt`` for tests, ``rmdemo`` for the
demo) so parallel runs never collide, and :class:`Topology` is a context manager that stops
its processes and deletes its namespaces (and root-side veths) even when the caller fails.
Traffic only ever flows between these namespaces. What runs in the namespaces (agents,
dataplane) is the caller's business.
"""

from __future__ import annotations

import secrets
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from regionmesh.errors import RegionmeshError

RUN_ID = secrets.token_hex(3)

_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    try:
        c.sendall(b"ok " + peer[0].encode() + b"\n")
    finally:
        c.close()
"""

_CLIENT = r"""
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam)
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    data = s.recv(100)
except OSError as exc:
    print(type(exc).__name__)
    sys.exit(1)
print(data.decode().strip())
sys.exit(0 if data.startswith(b"ok") else 1)
"""


def sh(*args: str, input: str | None = None, timeout: float = 20.0) -> str:
    """Run a command in the root namespace; raise with its stderr if it fails."""
    proc = subprocess.run(
        list(args), input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RegionmeshError(
            f"{shlex.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
        )
    return proc.stdout


@dataclass
class Netns:
    """One namespace created by a :class:`Topology`."""

    name: str

    def run(self, *args: str, input: str | None = None, timeout: float = 20.0) -> str:
        """Run a command inside the namespace."""
        return sh("ip", "netns", "exec", self.name, *args, input=input, timeout=timeout)

    def ip(self, *args: str) -> str:
        """``ip -n <ns> …``."""
        return sh("ip", "-n", self.name, *args)

    def sysctl(self, **settings: str) -> None:
        """Set sysctls inside the namespace; keys use ``__`` for ``.`` (``net__ipv4__ip_forward``)."""
        pairs = [f"{k.replace('__', '.')}={v}" for k, v in settings.items()]
        self.run("sysctl", "-q", "-w", *pairs)


@dataclass
class Topology:
    """Creates namespaces and links; cleans everything up on exit."""

    run_id: str = RUN_ID
    prefix: str = "rmt"
    namespaces: list[Netns] = field(default_factory=list)
    root_links: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)
    on_close: list[Callable[[], None]] = field(default_factory=list)
    """Run by :meth:`close` after the processes stopped, before the namespaces go."""
    grace: float = 5.0
    _links: int = 0

    def __enter__(self) -> Topology:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop our processes (SIGTERM, then SIGKILL after ``grace`` s), delete our root-side
        links and namespaces (idempotent)."""
        for p in self.processes:
            if p.poll() is None:
                p.terminate()
        for p in self.processes:
            try:
                p.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.processes.clear()
        for fn in reversed(self.on_close):
            fn()
        self.on_close.clear()
        for link in self.root_links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
        self.root_links.clear()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False)
        self.namespaces.clear()

    # ----------------------------------------------------------------- building ----
    def netns(self, tag: str) -> Netns:
        """A fresh namespace ``<prefix>-<run>-<tag>`` with ``lo`` up."""
        ns = Netns(f"{self.prefix}-{self.run_id}-{tag}"[:40])
        sh("ip", "netns", "add", ns.name)
        self.namespaces.append(ns)
        ns.ip("link", "set", "lo", "up")
        return ns

    def add_host(self, tag: str) -> Netns:
        """A compute host: forwarding on, dead uplink ``up0`` as default route."""
        host = self.netns(tag)
        host.ip("link", "add", "up0", "type", "veth", "peer", "name", "up0x")
        host.ip("link", "set", "up0", "up")
        host.ip("route", "add", "default", "dev", "up0")
        host.sysctl(net__ipv4__ip_forward="1")
        return host

    def add_vm(
        self,
        host: Netns,
        tag: str,
        ip: str,
        iface: str,
        *,
        prefixlen: int = 16,
        gateway: str = "10.65.0.1",
        mac: str | None = None,
        vm_routes_by_helper: bool = False,
    ) -> Netns:
        """A VM namespace plugged into ``host`` through veth ``iface`` (``tap…``, ≤15 chars)."""
        assert len(iface) <= 15, iface
        vm = self.netns(tag)
        peer = ["peer", "name", "eth0"] + (["address", mac] if mac else []) + ["netns", vm.name]
        host.ip("link", "add", iface, "type", "veth", *peer)
        host.ip("link", "set", iface, "up")
        vm.ip("link", "set", "eth0", "up")
        vm.ip("addr", "add", f"{ip}/{prefixlen}", "dev", "eth0")
        vm.ip("route", "add", "default", "via", gateway, "dev", "eth0")
        if vm_routes_by_helper:
            host.sysctl(**{f"net__ipv4__conf__{iface}__proxy_arp": "1"})
            host.sysctl(**{f"net__ipv4__neigh__{iface}__proxy_delay": "0"})
            # proto static: not "boot", so an agent sweeping its own routes leaves it alone
            host.ip(
                "route", "replace", f"{ip}/32", "dev", iface, "scope", "link", "proto", "static"
            )
        return vm

    def link_hosts(self, a: Netns, a_ip: str, b: Netns, b_ip: str, prefixlen: int = 24) -> str:
        """A point-to-point fabric veth between two hosts; returns the link name on both."""
        self._links += 1
        name = f"fab{self._links}"
        a.ip("link", "add", name, "type", "veth", "peer", "name", name, "netns", b.name)
        for ns, addr in ((a, a_ip), (b, b_ip)):
            ns.ip("addr", "add", f"{addr}/{prefixlen}", "dev", name)
            ns.ip("link", "set", name, "up")
        return name

    def link_to_root(self, host: Netns, root_ip: str, host_ip: str, prefixlen: int = 30) -> str:
        """A veth from the root namespace into ``host`` (e.g. to reach a root-side etcd)."""
        self._links += 1
        root_name = f"rmt{self.run_id}{self._links}"[:15]
        sh(
            "ip",
            "link",
            "add",
            root_name,
            "type",
            "veth",
            "peer",
            "name",
            "mgmt0",
            "netns",
            host.name,
        )
        self.root_links.append(root_name)
        sh("ip", "addr", "add", f"{root_ip}/{prefixlen}", "dev", root_name)
        sh("ip", "link", "set", root_name, "up")
        host.ip("addr", "add", f"{host_ip}/{prefixlen}", "dev", "mgmt0")
        host.ip("link", "set", "mgmt0", "up")
        return root_name

    # ------------------------------------------------------------------ traffic ----
    def listen(self, ns: Netns, ip: str, port: int, ttl: float = 120.0) -> subprocess.Popen[str]:
        """Start a TCP server in ``ns`` that greets every connection with ``ok <peer>``."""
        cmd = ["ip", "netns", "exec", ns.name, "timeout", str(int(ttl))]
        cmd += [sys.executable, "-c", _SERVER, ip, str(port)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.processes.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(
                f"server {ns.name} {ip}:{port} did not start: {proc.stderr.read() if proc.stderr else ''}"
            )
        return proc

    @staticmethod
    def connect(ns: Netns, ip: str, port: int, timeout: float = 0.6) -> str | None:
        """Connect from ``ns``; the server's greeting, or None if it failed within ``timeout``."""
        cmd = ["ip", "netns", "exec", ns.name, sys.executable, "-c", _CLIENT, ip, str(port)]
        cmd.append(str(timeout))
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout + 10, check=False
        )
        return proc.stdout.strip() if proc.returncode == 0 else None
