"""Network-namespace test helpers: hosts, VMs on tap veths, host links, TCP probes.

Builds the topology proven by /work/shared/reference/netns-proof.sh, for any test that needs
real kernels:

* a *host* is a namespace with forwarding on and a dead veth ``up0`` as default route (so
  proxy ARP has a route to answer for off-subnet targets; ``dummy`` links are unavailable);
* a *VM* is a namespace whose ``eth0`` is the peer of a host-side veth named like a Nova tap
  (``tap`` + 11 chars); the VM gets the pool as its subnet and a default route via a gateway
  address that only the host's proxy ARP answers. Host-side /32 routes and proxy ARP are the
  dataplane's job (``NetlinkRoutes``); ``vm_routes_by_helper=True`` lets the helper do it
  for VMs the agent must not know;
* hosts can be linked to each other (``link_hosts`` + ``route``) and to the root namespace
  (``link_to_root``, e.g. to reach an etcd listening on the root side of that veth).

Every namespace is named ``rmt-<run id>-<tag>`` so parallel runs never collide, and
:class:`Topology` is a context manager that kills its processes and deletes its namespaces
(and root-side veths) even when the test fails. Traffic only ever flows between these
namespaces.
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import TracebackType

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
        raise RuntimeError(f"{shlex.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
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
    namespaces: list[Netns] = field(default_factory=list)
    root_links: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
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
        """Kill our processes, delete our root-side links and namespaces (idempotent)."""
        for p in self.processes:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=5)
        self.processes.clear()
        for link in self.root_links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
        self.root_links.clear()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False)
        self.namespaces.clear()

    # ----------------------------------------------------------------- building ----
    def netns(self, tag: str) -> Netns:
        """A fresh namespace ``rmt-<run>-<tag>`` with ``lo`` up."""
        ns = Netns(f"rmt-{self.run_id}-{tag}")
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


def require_root_tools() -> None:
    """Fail (not skip) when the environment cannot run namespace tests."""
    if os.geteuid() != 0:
        raise AssertionError("root tests need root (network namespaces, nft)")
    for tool in ("ip", "nft"):
        if subprocess.run(["which", tool], capture_output=True, check=False).returncode != 0:
            raise AssertionError(f"root tests need {tool!r} on PATH")


def wait_until(predicate: object, timeout: float = 5.0, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


# ------------------------------------------------------------------ added for tests/dhcp ----
# (by the DHCP-agent helper: VMs without an address, and root-loopback forwarding)

_FORWARDER = r"""
import ctypes, os, socket, sys, threading
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)
ns_path, port = sys.argv[1], int(sys.argv[2])
root = os.open("/proc/self/ns/net", os.O_RDONLY)
target = os.open(ns_path, os.O_RDONLY)
if libc.setns(target, CLONE_NEWNET) != 0:
    raise OSError(ctypes.get_errno(), "setns into " + ns_path)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(64)
if libc.setns(root, CLONE_NEWNET) != 0:
    raise OSError(ctypes.get_errno(), "setns back")
print("ready", flush=True)

def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

def handle(c):
    try:
        u = socket.create_connection(("127.0.0.1", port), timeout=5)
        u.settimeout(None)
    except OSError:
        c.close()
        return
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    pipe(u, c)
    c.close()
    u.close()

while True:
    conn, _ = srv.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
"""


def add_bare_vm(topo: Topology, host: Netns, tag: str, iface: str, *, mac: str) -> Netns:
    """A VM namespace plugged into ``host`` through veth ``iface`` whose ``eth0`` (MAC ``mac``)
    has NO address and no route — what a VM looks like before DHCP."""
    assert len(iface) <= 15, iface
    vm = topo.netns(tag)
    peer = ["peer", "name", "eth0", "address", mac, "netns", vm.name]
    host.ip("link", "add", iface, "type", "veth", *peer)
    host.ip("link", "set", iface, "up")
    vm.ip("link", "set", "eth0", "up")
    return vm


def forward_loopback_port(topo: Topology, ns: Netns, port: int, ttl: float = 300.0) -> None:
    """Make the root namespace's ``127.0.0.1:port`` reachable as ``127.0.0.1:port`` inside
    ``ns`` (a TCP relay process whose listening socket lives in ``ns``; killed by
    ``topo.close()``). For agents in a namespace talking to a root-side test etcd."""
    netns_path = f"/run/netns/{ns.name}"
    cmd = ["timeout", str(int(ttl)), sys.executable, "-c", _FORWARDER, netns_path, str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    topo.processes.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(
            f"forwarder into {ns.name}:{port} did not start: "
            f"{proc.stderr.read() if proc.stderr else ''}"
        )


# ------------------------------------------------------------------ added for tests/bgp ----
# (by the BGP helper: an L2 fabric — one bridge — that several hosts plug into)


def add_switch(topo: Topology, tag: str = "sw") -> Netns:
    """A namespace holding bridge ``br0``: the L2 fabric hosts plug into (:func:`plug`)."""
    switch = topo.netns(tag)
    switch.ip("link", "add", "br0", "type", "bridge")
    switch.ip("link", "set", "br0", "up")
    return switch


def plug(
    topo: Topology, switch: Netns, host: Netns, addresses: list[str], ifname: str = "eth0"
) -> str:
    """Connect ``host`` to ``switch``'s bridge with veth ``ifname`` carrying ``addresses`` (CIDRs,
    IPv6 ones added ``nodad``); returns the switch-side port name."""
    topo._links += 1
    port = f"p{topo._links}"
    host.ip("link", "add", ifname, "type", "veth", "peer", "name", port, "netns", switch.name)
    switch.ip("link", "set", port, "master", "br0")
    switch.ip("link", "set", port, "up")
    for address in addresses:
        extra = ["nodad"] if ":" in address else []
        host.ip("addr", "add", address, "dev", ifname, *extra)
    host.ip("link", "set", ifname, "up")
    return port
