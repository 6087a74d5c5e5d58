"""Real DHCP: ``regionmesh dhcp-agent`` + real dnsmasq in a compute-host namespace, busybox
udhcpc in VM namespaces, the test etcd in the root namespace.

Topology (all created here, removed even on failure)::

    rmt-<run>-h    compute host "cmp-east-1" (region east): dhcp-agent, dnsmasq, and the
                   per-host agent when ``regionmesh agent --help`` works; reaches the
                   root-side etcd through a loopback relay
    rmt-<run>-va   VM A, tap "tapaaaaaaaa-11", NO address; served in openstack-region-east
    rmt-<run>-vb   VM B, tap "tapbbbbbbbb-22", NO address; served in openstack-region-east

The WorkloadEndpoints are written with ResourceClient, the subnet records with the driver's
translation at ``/calico/dhcp/v2/region-east/subnet/<id>``. Checked: A and B get exactly their
IP, gateway, routes (option 121), DNS server, host name and the tap's MTU; A's
allowed-address-pair IP is never handed out; an IP change is served on the next request;
a killed dnsmasq is restarted; A moved to the OTHER region's namespace (same host, same tap)
gets no lease while B is still served; SIGTERM stops dnsmasq and removes the alias interface.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import dhcp_support as ds
import pytest

from netns import (
    Netns,
    Topology,
    add_bare_vm,
    forward_loopback_port,
    require_root_tools,
    wait_until,
)
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.testing.etcd_server import EtcdServer

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.timeout(240)]

HOST = "cmp-east-1"
REGION, OTHER = "east", "west"
SUBNET = ds.subnet(
    "5ub0000a-0000-4000-8000-000000000001",
    "10.65.0.0/16",
    gateway="10.65.0.1",
    routes=(("192.168.100.0/24", "10.65.0.254"),),
    dns=("10.64.0.53",),
)
PORT_A = "aaaaaaaa-1111-4000-8000-0000000000a1"
PORT_B = "bbbbbbbb-2222-4000-8000-0000000000b2"
MAC_A, MAC_B = "fa:16:3e:00:00:0a", "fa:16:3e:00:00:0b"
TAP_A, TAP_B = "tap" + PORT_A[:11], "tap" + PORT_B[:11]
UDHCPC = "/usr/bin/busybox"
SCRIPT = """#!/bin/sh
# udhcpc event script: record the lease variables of every event, change nothing.
{
  echo "event=$1"
  for v in ip subnet mask router dns staticroutes mtu serverid lease hostname; do
    eval "val=\\${$v}"
    [ -n "$val" ] && echo "$v=$val"
  done
  echo "end"
} >> "$LEASE_LOG"
"""


@dataclass
class World:
    topo: Topology
    etcd: EtcdServer
    store: EtcdDatastore
    host: Netns
    vms: dict[str, Netns]
    state_dir: str
    tmp: str
    agent: subprocess.Popen[bytes] | None = None
    felix: subprocess.Popen[bytes] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def files(self, name: str) -> str:
        return os.path.join(self.state_dir, ds.NET_A, name)

    def read(self, name: str) -> str:
        try:
            with open(self.files(name), encoding="utf-8") as f:
                return f.read()
        except OSError:
            return ""

    def dnsmasq_pid(self) -> int | None:
        text = self.read("pid").strip()
        return int(text) if text.isdigit() and _is_our_dnsmasq(int(text), self.state_dir) else None

    def logs(self) -> str:
        out = []
        for name in ("dhcp-agent.log", "agent.log"):
            path = os.path.join(self.tmp, name)
            if os.path.exists(path):
                with open(path, encoding="utf-8", errors="replace") as f:
                    out.append(f"--- {name} ---\n{f.read()[-6000:]}")
        out.append(f"--- dnsmasq.log ---\n{self.read('dnsmasq.log')[-4000:]}")
        return "\n".join(out)


def _is_our_dnsmasq(pid: int, state_dir: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().decode(errors="replace")
    except OSError:
        return False
    return "dnsmasq" in cmd and state_dir in cmd


def _kill_leftover_dnsmasq(state_dir: str) -> None:
    for root, _dirs, files in os.walk(state_dir):
        if "pid" in files:
            with contextlib.suppress(OSError, ValueError):
                pid = int(open(os.path.join(root, "pid"), encoding="ascii").read().strip())  # noqa: SIM115
                if _is_our_dnsmasq(pid, state_dir):
                    os.kill(pid, signal.SIGKILL)


def _agent_available() -> bool:
    exe = shutil.which("regionmesh")
    if exe is None:
        return False
    proc = subprocess.run([exe, "agent", "--help"], capture_output=True, timeout=30, check=False)
    return proc.returncode == 0


def _env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ETCD_", "REGIONMESH_", "CALICO_", "DATASTORE_"))
    }


@pytest.fixture
def world(clean_etcd: EtcdServer) -> Iterator[World]:
    require_root_tools()
    for tool in ("/usr/sbin/dnsmasq", UDHCPC):
        assert os.access(tool, os.X_OK), f"{tool} missing (dnsmasq-base / busybox)"
    tmp = tempfile.mkdtemp(prefix="rm-dhcp-")
    os.chmod(tmp, 0o755)  # dnsmasq re-reads its files as an unprivileged user
    topo = Topology()
    store = clean_etcd.open()
    w: World | None = None
    try:
        host = topo.add_host("h")
        vms = {
            "a": add_bare_vm(topo, host, "va", TAP_A, mac=MAC_A),
            "b": add_bare_vm(topo, host, "vb", TAP_B, mac=MAC_B),
        }
        host.ip("link", "set", TAP_A, "mtu", "1450")
        host.ip("link", "set", TAP_B, "mtu", "1450")
        forward_loopback_port(topo, host, int(clean_etcd.endpoint.rsplit(":", 1)[1]))
        w = World(topo, clean_etcd, store, host, vms, os.path.join(tmp, "state"), tmp)
        yield w
    finally:
        for proc in (w.agent, w.felix) if w is not None else ():
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        _kill_leftover_dnsmasq(os.path.join(tmp, "state"))
        topo.close()
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _start_dhcp_agent(w: World) -> None:
    port = w.etcd.endpoint.rsplit(":", 1)[1]
    conf = os.path.join(w.tmp, "neutron.conf")
    with open(conf, "w", encoding="utf-8") as f:
        f.write(
            f"[DEFAULT]\nhost = {HOST}\n\n[calico]\nopenstack_region = {REGION}\n"
            f"etcd_host = 127.0.0.1\netcd_port = {port}\n"
        )
    log = open(os.path.join(w.tmp, "dhcp-agent.log"), "wb")  # noqa: SIM115
    try:
        w.agent = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                w.host.name,
                "timeout",
                "200",
                sys.executable,
                "-m",
                "regionmesh.cli.dhcp_cmd",
                "--config-file",
                conf,
                "--state-dir",
                w.state_dir,
                "--log-level",
                "DEBUG",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(),
        )
    finally:
        log.close()


def _start_felix_agent(w: World) -> bool:
    """Run the per-host agent (nftables policy + routes) if it is available."""
    if not _agent_available():
        return False
    port = w.etcd.endpoint.rsplit(":", 1)[1]
    cfg = os.path.join(w.tmp, "felix.cfg")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(
            f"[global]\nFelixHostname = {HOST}\nOpenstackRegion = {REGION}\n"
            f"DatastoreType = etcdv3\nEtcdEndpoints = http://127.0.0.1:{port}\n"
            "InterfacePrefix = tap\nDefaultEndpointToHostAction = DROP\n"
            "ReportingIntervalSecs = 1\nReportingTTLSecs = 5\n"
        )
    log = open(os.path.join(w.tmp, "agent.log"), "wb")  # noqa: SIM115
    try:
        w.felix = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                w.host.name,
                "timeout",
                "200",
                shutil.which("regionmesh") or "regionmesh",
                "agent",
                "--config-file",
                cfg,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(),
        )
    finally:
        log.close()
    return True


def _udhcpc(w: World, vm: str, *, tries: int = 5) -> dict[str, str] | None:
    """Run busybox udhcpc once in ``vm``; the ``bound`` variables, or None without a lease."""
    lease_log = os.path.join(w.tmp, f"lease-{vm}.log")
    script = os.path.join(w.tmp, "udhcpc.sh")
    if not os.path.exists(script):
        with open(script, "w", encoding="utf-8") as f:
            f.write(SCRIPT)
        os.chmod(script, 0o755)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lease_log)
    cmd = [
        "ip",
        "netns",
        "exec",
        w.vms[vm].name,
        "env",
        f"LEASE_LOG={lease_log}",
        "timeout",
        "30",
        UDHCPC,
        "udhcpc",
        "-i",
        "eth0",
        "-n",
        "-q",
        "-t",
        str(tries),
        "-T",
        "1",
        "-O",
        "mtu",
        "-O",
        "staticroutes",
        "-s",
        script,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=40, check=False)
    try:
        with open(lease_log, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    events: list[dict[str, str]] = []
    for block in text.split("end\n"):
        pairs = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if pairs:
            events.append(pairs)
    bound = [e for e in events if e.get("event") == "bound"]
    if proc.returncode != 0 or not bound:
        return None
    return bound[-1]


def _wait_hosts(w: World, want: str, present: bool, bound: float = 10.0) -> float:
    t0 = time.monotonic()
    ok = wait_until(lambda: (want in w.read("host")) == present, timeout=bound, interval=0.02)
    assert ok, (
        f"hosts file never {'had' if present else 'lost'} {want!r}:\n{w.read('host')}\n{w.logs()}"
    )
    return time.monotonic() - t0


def test_dhcp_agent_serves_this_region_only(world: World) -> None:
    w = world
    a = ds.port(
        PORT_A,
        HOST,
        ["10.65.1.2"],
        mac=MAC_A,
        allowed_pairs=("10.65.9.9",),
        fqdn="vm-a.example.org.",
    )
    b = ds.port(PORT_B, HOST, ["10.65.1.3"], mac=MAC_B)
    ds.put_subnet(w.store, SUBNET, REGION)
    ds.apply_wep(w.store, a, REGION)
    ds.apply_wep(w.store, b, REGION)
    felix = _start_felix_agent(w)
    t0 = time.monotonic()
    _start_dhcp_agent(w)
    _wait_hosts(w, f"{MAC_A},10.65.1.2,vm-a", True, bound=20.0)
    _wait_hosts(w, f"{MAC_B},10.65.1.3,host-10-65-1-3", True)
    assert wait_until(lambda: w.dnsmasq_pid() is not None, timeout=10), w.logs()
    w.timings["agent start → hosts file"] = time.monotonic() - t0
    assert "10.65.9.9" not in w.read("host"), "an allowed-address-pair IP must not be served"
    if felix:  # DHCP must pass the agent's ruleset: wait until it has programmed A's tap
        assert wait_until(
            lambda: TAP_A in w.host.run("nft", "list", "ruleset"), timeout=30, interval=0.2
        ), w.logs()

    # 1. A and B get exactly their endpoint's data.
    t1 = time.monotonic()
    lease_a = _udhcpc(w, "a")
    w.timings["udhcpc A (DISCOVER→ACK)"] = time.monotonic() - t1
    assert lease_a is not None, w.logs()
    assert lease_a["ip"] == "10.65.1.2"
    assert lease_a["mask"] == "16"
    assert lease_a["router"] == "10.65.0.1"
    assert lease_a["dns"] == "10.64.0.53"
    assert lease_a["staticroutes"] == "192.168.100.0/24 10.65.0.254 0.0.0.0/0 10.65.0.1"
    assert lease_a["mtu"] == "1450"
    assert lease_a["hostname"] == "vm-a"
    assert lease_a["serverid"] == "10.65.0.1"
    lease_b = _udhcpc(w, "b")
    assert lease_b is not None, w.logs()
    assert (lease_b["ip"], lease_b["mtu"], lease_b["hostname"]) == (
        "10.65.1.3",
        "1450",
        "host-10-65-1-3",
    )
    pid = w.dnsmasq_pid()

    # 2. A new IP for A is served on the next request, without restarting dnsmasq.
    t2 = time.monotonic()
    a2 = ds.port(
        PORT_A,
        HOST,
        ["10.65.1.20"],
        mac=MAC_A,
        allowed_pairs=("10.65.9.9",),
        fqdn="vm-a.example.org.",
    )
    ds.apply_wep(w.store, a2, REGION)
    w.timings["IP change → hosts file"] = _wait_hosts(w, "10.65.1.20", True)
    lease_a2 = _udhcpc(w, "a")
    w.timings["IP change → new lease"] = time.monotonic() - t2
    assert lease_a2 is not None and lease_a2["ip"] == "10.65.1.20", w.logs()
    assert w.dnsmasq_pid() == pid, (
        "an endpoint change must SIGHUP dnsmasq, not restart it\n" + w.logs()
    )

    # 3. A crashed dnsmasq is restarted and serves again.
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    t3 = time.monotonic()
    assert wait_until(lambda: w.dnsmasq_pid() not in (None, pid), timeout=15, interval=0.05), (
        w.logs()
    )
    w.timings["dnsmasq killed → restarted"] = time.monotonic() - t3
    lease_b2 = _udhcpc(w, "b")
    assert lease_b2 is not None and lease_b2["ip"] == "10.65.1.3", w.logs()

    # 4. A defined in the OTHER region's namespace (same host, tap and subnet) is not served.
    ds.put_subnet(w.store, SUBNET, OTHER)
    t_del = time.monotonic()
    ds.delete_wep(w.store, a2, REGION)
    ds.apply_wep(w.store, a2, OTHER)
    _wait_hosts(w, MAC_A, False)
    w.timings["delete → host entry gone"] = time.monotonic() - t_del
    t4 = time.monotonic()
    assert _udhcpc(w, "a", tries=3) is None, "a VM of another region got a lease from this host"
    w.timings["other-region VM: no lease after"] = time.monotonic() - t4
    lease_b3 = _udhcpc(w, "b")
    assert lease_b3 is not None and lease_b3["ip"] == "10.65.1.3", w.logs()

    # 5. SIGTERM: dnsmasq stopped, alias interface removed.
    dnsmasq = w.dnsmasq_pid()
    assert w.agent is not None
    w.agent.send_signal(signal.SIGTERM)
    w.agent.wait(timeout=20)
    assert w.agent.returncode == 0, w.logs()
    assert dnsmasq is not None and not _is_our_dnsmasq(dnsmasq, w.state_dir)
    assert "ns-" + ds.NET_A[:11] not in w.host.ip("link", "show")

    print(f"\nDHCP agent timings (policy agent {'ON' if felix else 'OFF'}):")
    for name, value in w.timings.items():
        print(f"  {name:36s} {value * 1000:8.1f} ms")
