"""Network-namespace test helpers: the shared :mod:`regionmesh.testing.netns` sandbox plus
the checks and extras only tests need (root tools, polling, address-less VMs, loopback relays).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from regionmesh.testing.netns import RUN_ID, Netns, Topology, sh

__all__ = [
    "RUN_ID",
    "Netns",
    "Topology",
    "add_bare_vm",
    "forward_loopback_port",
    "require_root_tools",
    "sh",
    "wait_until",
]


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
