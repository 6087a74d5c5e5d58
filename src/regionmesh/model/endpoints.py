"""Endpoint kinds: WorkloadEndpoint and HostEndpoint, and the WorkloadEndpoint naming scheme.

The WorkloadEndpoint spec follows libcalico-go's ``WorkloadEndpointSpec`` and additionally
accepts ``allowedIps``, the non-Calico field networking-calico writes (Felix ignores it; the
DHCP agent reads it). Names are ``<node>-<orchestrator>-<workload>-<endpoint>`` with every ``-``
inside a component doubled (:func:`workload_endpoint_name`). Label semantics (namespace label,
profile inheritance) belong to :mod:`regionmesh.policy`; the Neutron mapping to
:mod:`regionmesh.openstack`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from regionmesh.model.base import Model, StrictInt, StrictStr
from regionmesh.model.meta import Resource
from regionmesh.model.values import Protocol

__all__ = [
    "EndpointPort",
    "HostEndpoint",
    "HostEndpointSpec",
    "IPNAT",
    "QoSControls",
    "WorkloadEndpoint",
    "WorkloadEndpointPort",
    "WorkloadEndpointSpec",
    "split_workload_endpoint_name",
    "workload_endpoint_name",
]


def _escape(part: str) -> str:
    return part.replace("-", "--")


def workload_endpoint_name(node: str, orchestrator: str, workload: str, endpoint: str) -> str:
    """Calico's WorkloadEndpoint name: components joined by ``-``, each ``-`` in them doubled.

    >>> workload_endpoint_name("felix-host-1", "openstack", "instance-1", "DEADBEEF-1234-5678")
    'felix--host--1-openstack-instance--1-DEADBEEF--1234--5678'

    For Kubernetes endpoints pass the pod name as ``workload``.
    """
    return "-".join(_escape(p) for p in (node, orchestrator, workload, endpoint))


def split_workload_endpoint_name(name: str) -> list[str]:
    """Split a dash-escaped name back into its components (``--`` is a literal ``-``).

    The inverse of :func:`workload_endpoint_name` (like libcalico-go's
    ``ExtractDashSeparatedParms``); returns however many components the name has.
    """
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "-":
            if i + 1 < len(name) and name[i + 1] == "-":
                current.append("-")
                i += 2
                continue
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


class IPNAT(Model):
    """A 1:1 NAT (floating IP) of a workload endpoint."""

    internal_ip: StrictStr = Field(default="", alias="internalIP")
    external_ip: StrictStr = Field(default="", alias="externalIP")


class WorkloadEndpointPort(Model):
    """A named port declared by a workload (target of named-port rules)."""

    name: StrictStr = ""
    protocol: Protocol | None = None
    port: StrictInt = 0
    host_port: StrictInt | None = None
    host_ip: StrictStr = Field(default="", alias="hostIP")


class EndpointPort(Model):
    """A named port declared by a host endpoint."""

    name: StrictStr = ""
    protocol: Protocol | None = None
    port: StrictInt = 0


class QoSControls(Model):
    """Bandwidth/packet-rate/connection limits as networking-calico writes them."""

    ingress_bandwidth: StrictInt | None = None
    egress_bandwidth: StrictInt | None = None
    ingress_burst: StrictInt | None = None
    egress_burst: StrictInt | None = None
    ingress_peakrate: StrictInt | None = None
    egress_peakrate: StrictInt | None = None
    ingress_minburst: StrictInt | None = None
    egress_minburst: StrictInt | None = None
    ingress_packet_rate: StrictInt | None = None
    egress_packet_rate: StrictInt | None = None
    ingress_packet_burst: StrictInt | None = None
    egress_packet_burst: StrictInt | None = None
    ingress_max_connections: StrictInt | None = None
    egress_max_connections: StrictInt | None = None


class WorkloadEndpointSpec(Model):
    """Spec of a WorkloadEndpoint (a VM port or pod interface)."""

    orchestrator: StrictStr = ""
    workload: StrictStr = ""
    node: StrictStr = ""
    container_id: StrictStr = Field(default="", alias="containerID")
    pod: StrictStr = ""
    endpoint: StrictStr = ""
    service_account_name: StrictStr = ""
    ip_networks: list[StrictStr] = Field(default_factory=list)
    ip_nats: list[IPNAT] = Field(default_factory=list, alias="ipNATs")
    ipv4_gateway: StrictStr = Field(default="", alias="ipv4Gateway")
    ipv6_gateway: StrictStr = Field(default="", alias="ipv6Gateway")
    profiles: list[StrictStr] = Field(default_factory=list)
    interface_name: StrictStr = ""
    mac: StrictStr = ""
    ports: list[WorkloadEndpointPort] = Field(default_factory=list)
    allow_spoofed_source_prefixes: list[StrictStr] = Field(default_factory=list)
    qos_controls: QoSControls | None = None
    allowed_ips: list[StrictStr] = Field(default_factory=list)
    """Not a Calico field: networking-calico's allowed-address-pair IPs (kept byte-compatible)."""

    @property
    def workload_or_pod(self) -> str:
        """The name component Calico uses: ``pod`` for ``k8s``, otherwise ``workload``."""
        return self.pod if self.orchestrator == "k8s" else self.workload

    def expected_name(self) -> str:
        """The resource name these identifiers imply (see :func:`workload_endpoint_name`)."""
        return workload_endpoint_name(
            self.node, self.orchestrator, self.workload_or_pod, self.endpoint
        )


class WorkloadEndpoint(Resource):
    """``WorkloadEndpoint``: namespaced; one per VM port (OpenStack) or pod interface."""

    KIND: ClassVar[str] = "WorkloadEndpoint"
    kind: Literal["WorkloadEndpoint"] = "WorkloadEndpoint"
    spec: WorkloadEndpointSpec = Field(default_factory=WorkloadEndpointSpec)


class HostEndpointSpec(Model):
    """Spec of a HostEndpoint: a host interface and/or its expected IPs."""

    node: StrictStr = ""
    interface_name: StrictStr = ""
    expected_ips: list[StrictStr] = Field(default_factory=list, alias="expectedIPs")
    profiles: list[StrictStr] = Field(default_factory=list)
    ports: list[EndpointPort] = Field(default_factory=list)


class HostEndpoint(Resource):
    """``HostEndpoint``: cluster-scoped; policed like a workload by GNPs."""

    KIND: ClassVar[str] = "HostEndpoint"
    kind: Literal["HostEndpoint"] = "HostEndpoint"
    spec: HostEndpointSpec = Field(default_factory=HostEndpointSpec)
