"""Shared pieces of the agent tests: Neutron-shaped resources, felix.cfg files, a restartable etcd.

Resources are built with :mod:`regionmesh.openstack.translate` (the same code the Neutron driver
uses), so endpoints carry exactly Neutron's labels and SG policies have no ``types``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from regionmesh.datastore.api import Datastore
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.datastore.resource_client import ResourceClient
from regionmesh.model import codec
from regionmesh.openstack.translate import (
    FixedIP,
    NeutronPort,
    NeutronRule,
    NeutronSecurityGroup,
    SecurityGroupRef,
    port_to_workload_endpoint,
    security_group_to_policy,
)
from regionmesh.testing.etcd_server import DEFAULT_ETCD_BINARY, free_port

SG_WEB = "a7734e61-b545-452d-a3cd-0189cbd9747a"  # destination SG of the seed GNP
SG_CLIENT = "85cc3048-abc3-43cc-89b3-377341426ac5"  # source SG of the seed GNP
SG_OTHER = "0e2b7c55-5a8c-4c61-9d2a-6f7f3f0c0d01"  # an unrelated group
SG_BASE = "4f1d2c3b-1111-4222-8333-944455556666"  # egress-only "default"-like group

SEED_GNP: dict[str, Any] = {
    "apiVersion": "projectcalico.org/v3",
    "kind": "GlobalNetworkPolicy",
    "metadata": {"name": "allow-tcp-80"},
    "spec": {
        "selector": f"has(sg.projectcalico.org/openstack-{SG_WEB})",
        "types": ["Ingress"],
        "ingress": [
            {
                "action": "Allow",
                "protocol": "TCP",
                "source": {"selector": f"has(sg.projectcalico.org/openstack-{SG_CLIENT})"},
                "destination": {"ports": [80]},
            }
        ],
    },
}


def egress_only_sg(sg_id: str, name: str = "") -> NeutronSecurityGroup:
    """A Neutron SG with only the default egress-allow rules (IPv4 and IPv6)."""
    return NeutronSecurityGroup(
        sg_id,
        name or sg_id[:8],
        (
            NeutronRule(f"{sg_id[:8]}-e4", sg_id, "egress", "IPv4"),
            NeutronRule(f"{sg_id[:8]}-e6", sg_id, "egress", "IPv6"),
        ),
    )


def port(
    port_id: str,
    host: str,
    ip: str,
    sgs: Sequence[str],
    *,
    device_id: str | None = None,
    mac: str = "fa:16:3e:00:00:01",
) -> NeutronPort:
    """A bound compute port with one fixed IP in 10.65.0.0/16."""
    return NeutronPort(
        id=port_id,
        network_id="net-0001",
        device_id=device_id or f"vm-{port_id[:8]}",
        device_owner="compute:nova",
        mac_address=mac,
        host_id=host,
        vif_type="tap",
        fixed_ips=(FixedIP(ip, "subnet-0001", "10.65.0.1"),),
        security_groups=tuple(SecurityGroupRef(sg, f"sg-{sg[:6]}") for sg in sgs),
        project_id="project-1",
        network_name="net",
    )


def wep_doc(p: NeutronPort, region: str | None) -> dict[str, Any]:
    """The WorkloadEndpoint document the Neutron driver writes for ``p``."""
    return port_to_workload_endpoint(p, region=region)


def sg_doc(sg: NeutronSecurityGroup, region: str | None) -> dict[str, Any]:
    """The ``ossg.default.<id>`` NetworkPolicy document (no ``types``)."""
    return security_group_to_policy(sg, region=region)


def apply_docs(store: Datastore, docs: Sequence[Mapping[str, Any]]) -> None:
    """calicoctl apply of each document."""
    client = ResourceClient(store)
    for doc in docs:
        client.apply(codec.decode(dict(doc)))


def delete_doc(store: Datastore, doc: Mapping[str, Any]) -> None:
    """calicoctl delete of the resource ``doc`` names."""
    md = doc["metadata"]
    ResourceClient(store).delete(doc["kind"], md["name"], md.get("namespace"))


def felix_cfg(path: str, **params: object) -> str:
    """Write a Felix INI file with ``[global]`` and the given parameters; return the path."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("[global]\n")
        for key, value in params.items():
            f.write(f"{key} = {value}\n")
    return path


class RestartableEtcd:
    """A real etcd whose process can be killed and restarted on the same ports and data."""

    def __init__(self, listen_ips: Sequence[str] = ("127.0.0.1",)) -> None:
        if not os.access(DEFAULT_ETCD_BINARY, os.X_OK):
            raise AssertionError(f"etcd binary {DEFAULT_ETCD_BINARY} missing (etcd-server)")
        self.workdir = tempfile.mkdtemp(prefix="rm-agent-etcd-", dir="/dev/shm")
        self.port = free_port()
        self.peer_port = free_port()
        self.listen_ips = list(listen_ips)
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoints = [f"http://{ip}:{self.port}" for ip in self.listen_ips]
        self.endpoint = self.endpoints[0]
        self.url = f"etcd://{self.listen_ips[0]}:{self.port}"

    def start(self) -> None:
        """Start (or restart) the process and wait until it is healthy."""
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            DEFAULT_ETCD_BINARY,
            "--name", "agent-test",
            "--data-dir", os.path.join(self.workdir, "data"),
            "--listen-client-urls", ",".join(self.endpoints),
            "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"agent-test={peer}",
            "--initial-cluster-state", "new",
            "--logger", "zap",
            "--log-level", "error",
        ]  # fmt: skip
        log = open(os.path.join(self.workdir, "etcd.log"), "ab")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"etcd exited: {self.log()[-2000:]}")
            try:
                if requests.get(self.endpoint + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError(f"etcd not healthy: {self.log()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the process (the data directory stays)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def open(self) -> EtcdDatastore:
        """A client for the test itself."""
        return EtcdDatastore([self.endpoint])

    def log(self) -> str:
        """etcd's output."""
        try:
            with open(os.path.join(self.workdir, "etcd.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self) -> None:
        """Kill and remove everything."""
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)
