"""Three compute hosts on one L2 fabric, each running ``regionmesh agent`` and ``regionmesh bgp``.

Topology (namespaces ``rmt-<run>-*``, removed even on failure; NO static routes between hosts)::

    switch sw: bridge br0
      h1 eth0 10.0.0.1/24 fd00:f::1/64   node cmp-a1, region one   VM a (web)     10.65.1.2 2001:db8:1::2
      h2 eth0 10.0.0.2/24 fd00:f::2/64   node cmp-a2, region one   VM b (client)  10.65.2.2
      h3 eth0 10.0.0.3/24 fd00:f::3/64   node cmp-b1, region two   VM c (client)  10.65.3.2
                                                                   VM e (other)   10.65.3.3
    etcd: the session's test etcd on the root 127.0.0.1, relayed to 127.0.0.1 in every host.

Resources are what Neutron writes (agent_support): SG policies, WorkloadEndpoints, the seed
GNP ``allow-tcp-80`` (web ← client on TCP 80, across regions) and an SG rule of SG web allowing
TCP 8080 from SG client (regional: only region one's clients).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import agent_support as s

from netns import Netns, Topology, add_switch, forward_loopback_port, plug, wait_until
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.openstack.translate import NeutronPort, NeutronRule, NeutronSecurityGroup
from regionmesh.testing.etcd_server import EtcdServer

BIN = os.path.dirname(sys.executable)
REGIONMESH = os.path.join(BIN, "regionmesh")
CALICOCTL = os.path.join(BIN, "calicoctl")

HOSTS: dict[str, tuple[str, str, str, str]] = {
    # tag: (node name, region, IPv4 CIDR, IPv6 CIDR)
    "h1": ("cmp-a1", "one", "10.0.0.1/24", "fd00:f::1/64"),
    "h2": ("cmp-a2", "one", "10.0.0.2/24", "fd00:f::2/64"),
    "h3": ("cmp-b1", "two", "10.0.0.3/24", "fd00:f::3/64"),
}
VMS: dict[str, tuple[str, str, str, list[str], str | None]] = {
    # vm: (host, ip, port id, SGs, IPv6)
    "a": ("h1", "10.65.1.2", "aaaaaaaa-1111-4000-8000-00000000000a",
          [s.SG_WEB, s.SG_BASE], "2001:db8:1::2"),
    "b": ("h2", "10.65.2.2", "bbbbbbbb-1111-4000-8000-00000000000b",
          [s.SG_CLIENT, s.SG_BASE], None),
    "c": ("h3", "10.65.3.2", "cccccccc-2222-4000-8000-00000000000c",
          [s.SG_CLIENT, s.SG_BASE], None),
    "e": ("h3", "10.65.3.3", "eeeeeeee-2222-4000-8000-00000000000e",
          [s.SG_OTHER, s.SG_BASE], None),
}  # fmt: skip
BOUND = 20.0  # seconds a route change may take to reach another host's kernel


def web_sg() -> NeutronSecurityGroup:
    """SG web: egress allowed, ingress TCP 8080 from SG client (of the same region)."""
    base = s.egress_only_sg(s.SG_WEB)
    rule = NeutronRule("web-8080", s.SG_WEB, "ingress", "IPv4", "tcp", 8080, 8080,
                       remote_group_id=s.SG_CLIENT)  # fmt: skip
    return NeutronSecurityGroup(base.id, base.name, (*base.rules, rule))


@dataclass
class World:
    topo: Topology
    etcd: EtcdServer
    store: EtcdDatastore
    tmp: str
    hosts: dict[str, Netns]
    vms: dict[str, Netns] = field(default_factory=dict)
    ports: dict[str, NeutronPort] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    listening: set[tuple[str, int]] = field(default_factory=set)

    # ---------------------------------------------------------------- processes ----
    def felix_cfg(self, host: str) -> str:
        name, region, _v4, _v6 = HOSTS[host]
        return s.felix_cfg(
            os.path.join(self.tmp, f"felix-{host}.cfg"),
            FelixHostname=name,
            OpenstackRegion=region,
            DatastoreType="etcdv3",
            EtcdEndpoints=f"http://127.0.0.1:{self.etcd.client_port}",
            ReportingIntervalSecs=1,
            ReportingTTLSecs=5,
            NftablesRefreshInterval=30,
        )

    def run_dir(self, host: str) -> str:
        return os.path.join(self.tmp, f"run-{host}")

    def _spawn(self, key: str, host: str, args: list[str]) -> subprocess.Popen[bytes]:
        log_path = os.path.join(self.tmp, f"{key}.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "REGIONMESH_"))}
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.hosts[host].name, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.procs[key] = proc
        self.logs[key] = log_path
        return proc

    def start_agent(self, host: str) -> None:
        self._spawn(
            f"agent-{host}", host, [REGIONMESH, "agent", "--config-file", self.felix_cfg(host)]
        )

    def bgp_args(self, host: str) -> list[str]:
        _name, _region, v4, v6 = HOSTS[host]
        return [REGIONMESH, "bgp", "--config-file", self.felix_cfg(host), "--address", v4,
                "--address6", v6, "--run-dir", self.run_dir(host)]  # fmt: skip

    def start_bgp(self, host: str, wait: bool = False) -> None:
        """Start ``regionmesh bgp`` on ``host``; with ``wait``, until its BIRD answers (process
        start-up is not what the tests measure: on a loaded machine it can take a minute)."""
        self._spawn(f"bgp-{host}", host, self.bgp_args(host))
        if wait:
            self.wait(f"regionmesh bgp on {host} runs BIRD",
                      lambda: self.node_status(host).returncode == 0, 180.0)  # fmt: skip

    def stop(self, key: str, timeout: float = 15.0) -> int:
        proc = self.procs.pop(key)
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
            raise

    def check_alive(self) -> None:
        for key, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{key} exited ({proc.returncode}):\n{self.dump()}")

    def dump(self) -> str:
        out = []
        for tag, host in self.hosts.items():
            for cmd in (["ip", "route"], ["ip", "-6", "route"]):
                try:
                    out.append(f"----- {tag} {' '.join(cmd)}\n{host.run(*cmd)}")
                except RuntimeError as exc:
                    out.append(str(exc))
        for key, path in sorted(self.logs.items()):
            with open(path, errors="replace") as f:
                out.append(f"----- {key} -----\n{f.read()[-3000:]}")
        return "\n".join(out)

    # ---------------------------------------------------------------- observations ----
    def bird_routes(self, host: str, family: int = 4) -> set[str]:
        """Destinations of this host's ``proto bird`` routes."""
        text = self.hosts[host].run("ip", f"-{family}", "route", "show", "proto", "bird")
        return {line.split()[0] for line in text.splitlines() if line.strip()}

    def node_status(self, host: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.hosts[host].name, CALICOCTL, "node", "status",
             "--run-dir", self.run_dir(host)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    def established(self, host: str) -> list[str]:
        """Rows of ``calicoctl node status`` whose INFO is Established."""
        out = self.node_status(host).stdout
        return [ln for ln in out.splitlines() if ln.startswith("|") and "Established" in ln]

    def wait(self, what: str, predicate: Callable[[], bool], bound: float = BOUND) -> float:
        started = time.monotonic()
        while not predicate():
            self.check_alive()
            if time.monotonic() - started > bound:
                raise AssertionError(f"not within {bound}s: {what}\n{self.dump()}")
            time.sleep(0.1)
        return time.monotonic() - started

    def listen(self, vm: str, port: int) -> None:
        """A TCP server in ``vm`` on ``port`` (once per test module)."""
        if (vm, port) not in self.listening:
            self.topo.listen(self.vms[vm], VMS[vm][1], port, ttl=1800)
            self.listening.add((vm, port))

    def probe(self, src: str, dst: str, port: int) -> bool:
        return self.topo.connect(self.vms[src], VMS[dst][1], port, timeout=0.5) is not None

    # ---------------------------------------------------------------- resources ----
    def wep(self, vm: str) -> dict[str, Any]:
        host = VMS[vm][0]
        doc = s.wep_doc(self.ports[vm], HOSTS[host][1])
        v6 = VMS[vm][4]
        if v6:
            doc["spec"]["ipNetworks"] = [*doc["spec"]["ipNetworks"], f"{v6}/128"]
        return doc


def build(topo: Topology, etcd: EtcdServer, tmp: str) -> World:
    """Namespaces, fabric, VMs and the seed resources (nothing started yet)."""
    switch = add_switch(topo)
    hosts = {tag: topo.add_host(tag) for tag in HOSTS}
    for tag, host in hosts.items():
        plug(topo, switch, host, [HOSTS[tag][2], HOSTS[tag][3]])
        host.sysctl(net__ipv6__conf__all__forwarding="1")
        forward_loopback_port(topo, host, etcd.client_port, ttl=1800)
    store = etcd.open()
    w = World(topo, etcd, store, tmp, hosts)
    for vm, (host, ip, port_id, sgs, v6) in VMS.items():
        mac = f"fa:16:3e:00:01:{ord(vm):02x}"
        w.ports[vm] = s.port(port_id, HOSTS[host][0], ip, sgs, mac=mac)
        w.vms[vm] = topo.add_vm(hosts[host], vm, ip, "tap" + port_id[:11], mac=mac)
        if v6:
            w.vms[vm].ip("addr", "add", f"{v6}/128", "dev", "eth0", "nodad")
    docs = [
        s.sg_doc(sg, region)
        for region in ("one", "two")
        for sg in (web_sg(), s.egress_only_sg(s.SG_CLIENT), s.egress_only_sg(s.SG_OTHER),
                   s.egress_only_sg(s.SG_BASE))
    ]  # fmt: skip
    docs += [w.wep(vm) for vm in VMS]
    docs.append({"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration",
                 "metadata": {"name": "default"}, "spec": {"interfacePrefix": "tap"}})  # fmt: skip
    docs.append({"apiVersion": "projectcalico.org/v3", "kind": "ClusterInformation",
                 "metadata": {"name": "default"},
                 "spec": {"clusterType": "openstack", "datastoreReady": True}})  # fmt: skip
    docs.append(s.SEED_GNP)
    s.apply_docs(store, docs)
    return w


def close(w: World) -> None:
    """Stop every process we started (bgp first: SIGTERM, so BIRD exits cleanly)."""
    for key in sorted(w.procs, key=lambda k: not k.startswith("bgp")):
        proc = w.procs[key]
        if proc.poll() is None:
            proc.terminate()
    for proc in w.procs.values():
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    w.procs.clear()
    for tag in HOSTS:  # a BIRD orphaned by a killed regionmesh bgp
        try:
            with open(os.path.join(w.run_dir(tag), "bird.pid")) as f:
                os.kill(int(f.read().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    w.store.close()


def node_doc(w: World, name: str) -> dict[str, Any] | None:
    kv = w.store.get(f"/calico/resources/v3/projectcalico.org/nodes/{name}")
    return None if kv is None else json.loads(kv.value)


__all__ = ["HOSTS", "VMS", "World", "build", "close", "node_doc", "wait_until"]
