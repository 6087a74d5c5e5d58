"""Neutron port → Calico ``WorkloadEndpoint`` (openstack-driver.md §2), as networking-calico does.

* :func:`endpoint_hosts`: where a port needs an endpoint (its bound host, and a live-migration
  destination);
* :func:`endpoint_document`: the endpoint as networking-calico's document (name, spec, labels
  and annotations byte-compatible with it, §2.2–2.5), a plain dict in its key order;
* :func:`workload_endpoint`: the same endpoint as a typed, validated
  :class:`regionmesh.model.WorkloadEndpoint`. A translation the model refuses raises
  :class:`~regionmesh.errors.TranslationError` here, in neutron-server, instead of being
  dropped by every compute host's agent.

Writing, keys and CAS are :class:`~regionmesh.openstack.writer.RegionWriter`'s; nothing here
imports Neutron or does I/O.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from regionmesh.errors import FieldError, TranslationError, ValidationError
from regionmesh.model import WorkloadEndpoint, codec, validation, workload_endpoint_name
from regionmesh.model.kinds import API_VERSION
from regionmesh.model.meta import NAMESPACE_LABEL, ORCHESTRATOR_LABEL
from regionmesh.model.regions import region_namespace
from regionmesh.openstack.records import UNBOUND, NeutronPort

ORCHESTRATOR = "openstack"

SG_LABEL_PREFIX = "sg.projectcalico.org/openstack-"
SG_NAME_LABEL_PREFIX = "sg-name.projectcalico.org/openstack-"
PROJECT_ID_LABEL = "projectcalico.org/openstack-project-id"
PROJECT_NAME_LABEL = "projectcalico.org/openstack-project-name"
PROJECT_PARENT_ID_LABEL = "projectcalico.org/openstack-project-parent-id"
NETWORK_NAME_LABEL = "projectcalico.org/openstack-network-name"
NETWORK_ID_ANNOTATION = "openstack.projectcalico.org/network-id"
FQDN_ANNOTATION = "openstack.projectcalico.org/fqdn"

LABEL_MAX_LENGTH = 63
SG_NAME_MAX_LENGTH = LABEL_MAX_LENGTH - len(SG_NAME_LABEL_PREFIX)  # 27

ENDPOINT_OWNER_PREFIXES = ("compute:", "kuryr:container")

_LABEL_BAD_CHARS = re.compile(r"[^-_.A-Za-z0-9]")
_LEADING_JUNK = re.compile(r"^[^A-Za-z0-9]+")
_TRAILING_JUNK = re.compile(r"[^A-Za-z0-9]+$")


def sanitize_label_value(value: str, max_length: int = LABEL_MAX_LENGTH) -> str:
    """networking-calico's ``sanitize_label_name_value``: truncate, ``_`` for bad characters,
    strip non-alphanumerics from both ends (``"Dan's Project"`` → ``Dan_s_Project``)."""
    value = _LABEL_BAD_CHARS.sub("_", value[:max_length])
    return _TRAILING_JUNK.sub("", _LEADING_JUNK.sub("", value))


def endpoint_name(host: str, port: NeutronPort) -> str:
    """The WorkloadEndpoint name of ``port`` on ``host`` (§2.2)."""
    return workload_endpoint_name(host, ORCHESTRATOR, port.device_id, port.id)


def interface_name(port_id: str) -> str:
    """Nova's tap device name for a port: ``tap`` + the first 11 characters of its id."""
    return "tap" + port_id[:11]


def is_endpoint_port(port: NeutronPort) -> bool:
    """True for VM (``compute:*``) and Kuryr container ports (§2.1)."""
    return port.device_owner.startswith(ENDPOINT_OWNER_PREFIXES)


def endpoint_hosts(port: NeutronPort) -> tuple[str, ...]:
    """The hosts at which ``port`` should have a WorkloadEndpoint (§2.1): its bound host
    (unless unbound and not migrating) and its live-migration destination."""
    if not is_endpoint_port(port):
        return ()
    hosts: list[str] = []
    if port.host_id and (port.vif_type != UNBOUND or port.migrating_to):
        hosts.append(port.host_id)
    if port.migrating_to and port.migrating_to not in hosts:
        hosts.append(port.migrating_to)
    return tuple(hosts)


def _host_net(address: str) -> str:
    """An IP as a host network; an address that already carries a prefix is kept whole."""
    if "/" in address:
        return str(ipaddress.ip_network(address, strict=False))
    return address + ("/128" if ":" in address else "/32")


def endpoint_labels(port: NeutronPort, namespace: str) -> dict[str, str]:
    """The WorkloadEndpoint's labels (§2.4), in networking-calico's order."""
    labels: dict[str, str] = {}
    for sg in port.security_groups:
        sg_name = sanitize_label_value(sg.name, SG_NAME_MAX_LENGTH)
        labels[SG_LABEL_PREFIX + sg.id] = sg_name
        if sg_name:
            labels[SG_NAME_LABEL_PREFIX + sg_name] = sg.id
    labels[NAMESPACE_LABEL] = namespace
    labels[ORCHESTRATOR_LABEL] = ORCHESTRATOR
    if port.project_id is not None:
        labels[PROJECT_ID_LABEL] = port.project_id
    if port.project is not None:
        labels[PROJECT_NAME_LABEL] = sanitize_label_value(port.project.name)
        labels[PROJECT_PARENT_ID_LABEL] = port.project.parent_id or ""
    if port.network_name is not None:
        labels[NETWORK_NAME_LABEL] = sanitize_label_value(port.network_name)
    return labels


def endpoint_annotations(port: NeutronPort) -> dict[str, str]:
    """The WorkloadEndpoint's annotations (§2.5)."""
    annotations = {NETWORK_ID_ANNOTATION: port.network_id}
    if port.dns_fqdn:
        annotations[FQDN_ANNOTATION] = port.dns_fqdn
    return annotations


def endpoint_spec(port: NeutronPort, host: str) -> dict[str, Any]:
    """The WorkloadEndpoint spec for ``port`` on ``host`` (§2.3)."""
    spec: dict[str, Any] = {
        "orchestrator": ORCHESTRATOR,
        "workload": port.device_id,
        "node": host,
        "endpoint": port.id,
        "interfaceName": interface_name(port.id),
        "mac": port.mac_address,
    }
    ip_networks: list[str] = []
    for ip in port.fixed_ips:
        ip_networks.append(_host_net(ip.ip_address))
        if ip.gateway_ip is not None:
            spec["ipv6Gateway" if ":" in ip.ip_address else "ipv4Gateway"] = ip.gateway_ip
    allowed_ips = [_host_net(a) for a in port.allowed_address_pairs]
    spec["ipNetworks"] = ip_networks + allowed_ips
    spec["allowedIps"] = allowed_ips
    nats = [
        {"internalIP": f.fixed_ip_address, "externalIP": f.floating_ip_address}
        for f in port.floating_ips
    ]
    if nats:
        spec["ipNATs"] = nats
    return spec


def endpoint_document(
    port: NeutronPort, *, region: str | None, host: str | None = None
) -> dict[str, Any]:
    """networking-calico's WorkloadEndpoint document for ``port`` at ``host`` (default: its
    bound host), without server metadata; not validated (see :func:`workload_endpoint`)."""
    node = host if host is not None else port.host_id
    if not node:
        raise TranslationError(
            [FieldError("binding:host_id", node, "the port is not bound to a host")],
            where=f"port {port.id}",
        )
    namespace = region_namespace(region)
    return {
        "kind": "WorkloadEndpoint",
        "apiVersion": API_VERSION,
        "metadata": {
            "name": endpoint_name(node, port),
            "namespace": namespace,
            "labels": endpoint_labels(port, namespace),
            "annotations": endpoint_annotations(port),
        },
        "spec": endpoint_spec(port, node),
    }


def workload_endpoint(
    port: NeutronPort, *, region: str | None, host: str | None = None
) -> WorkloadEndpoint:
    """The typed WorkloadEndpoint of ``port`` at ``host``, decoded and validated by the model.

    Raises :class:`TranslationError` (naming the port and every bad field) for a port whose
    endpoint Calico would refuse.
    """
    return to_workload_endpoint(endpoint_document(port, region=region, host=host), port.id)


def to_workload_endpoint(doc: dict[str, Any], port_id: str) -> WorkloadEndpoint:
    """Decode and validate an :func:`endpoint_document` (TranslationError naming the port)."""
    where = f"port {port_id}"
    try:
        resource = codec.decode(doc)
        validation.check(resource)
    except ValidationError as exc:
        raise TranslationError(exc.fields, where=f"{where}: {exc.where}") from exc
    assert isinstance(resource, WorkloadEndpoint)
    return resource
