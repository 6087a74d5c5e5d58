"""Neutron → Calico translation, networking-calico's shapes: the one import for callers.

The translation lives in four rooms, named as networking-calico names them:
:mod:`~regionmesh.openstack.records` (the typed Neutron inputs),
:mod:`~regionmesh.openstack.endpoints` (port → WorkloadEndpoint),
:mod:`~regionmesh.openstack.security_groups` (security group → NetworkPolicy) and
:mod:`~regionmesh.openstack.subnets` (subnet → DHCP record). This module re-exports them and
keeps the *document* form of the two main translations: :func:`port_to_workload_endpoint`
and :func:`security_group_to_policy` return exactly the dict networking-calico builds
(without ``uid``/``creationTimestamp``). The write path stores the typed, validated resource
(:func:`workload_endpoint`, :func:`network_policy`) laid out by
:mod:`~regionmesh.openstack.layout`, which is byte-for-byte that document. ``with_server_metadata``/``same_content`` belong
to the write path (:mod:`regionmesh.datastore.resource_client`) and are re-exported for callers
that compare stored documents. Nothing here imports Neutron or does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from regionmesh.datastore.resource_client import same_content, with_server_metadata
from regionmesh.model import workload_endpoint_name
from regionmesh.model.kinds import API_VERSION
from regionmesh.model.meta import NAMESPACE_LABEL, ORCHESTRATOR_LABEL
from regionmesh.openstack.endpoints import (
    ENDPOINT_OWNER_PREFIXES,
    FQDN_ANNOTATION,
    LABEL_MAX_LENGTH,
    NETWORK_ID_ANNOTATION,
    NETWORK_NAME_LABEL,
    ORCHESTRATOR,
    PROJECT_ID_LABEL,
    PROJECT_NAME_LABEL,
    PROJECT_PARENT_ID_LABEL,
    SG_LABEL_PREFIX,
    SG_NAME_LABEL_PREFIX,
    SG_NAME_MAX_LENGTH,
    endpoint_annotations,
    endpoint_document,
    endpoint_hosts,
    endpoint_labels,
    endpoint_name,
    endpoint_spec,
    interface_name,
    is_endpoint_port,
    sanitize_label_value,
    workload_endpoint,
)
from regionmesh.openstack.layout import calico_document
from regionmesh.openstack.records import (
    UNBOUND,
    FixedIP,
    FloatingIP,
    HostRoute,
    NeutronPort,
    NeutronRule,
    NeutronSecurityGroup,
    NeutronSubnet,
    ProjectInfo,
    SecurityGroupRef,
)
from regionmesh.openstack.security_groups import (
    IP_PROTOCOL_MAP,
    SG_POLICY_PREFIX,
    network_policy,
    policy_document,
    policy_name,
    policy_spec,
    policy_spec_partial,
    rule_to_calico,
    security_group_policy,
    sg_selector,
)
from regionmesh.openstack.subnets import overlapping, subnet_to_dhcp_record

__all__ = [
    "API_VERSION", "ENDPOINT_OWNER_PREFIXES", "FQDN_ANNOTATION", "IP_PROTOCOL_MAP",
    "LABEL_MAX_LENGTH", "NAMESPACE_LABEL", "NETWORK_ID_ANNOTATION", "NETWORK_NAME_LABEL",
    "ORCHESTRATOR", "ORCHESTRATOR_LABEL", "PROJECT_ID_LABEL", "PROJECT_NAME_LABEL",
    "PROJECT_PARENT_ID_LABEL", "SG_LABEL_PREFIX", "SG_NAME_LABEL_PREFIX", "SG_NAME_MAX_LENGTH",
    "SG_POLICY_PREFIX", "UNBOUND", "FixedIP", "FloatingIP", "HostRoute", "NeutronPort",
    "NeutronRule", "NeutronSecurityGroup", "NeutronSubnet", "ProjectInfo", "SecurityGroupRef",
    "calico_document", "endpoint_annotations", "endpoint_document", "endpoint_hosts",
    "endpoint_labels", "endpoint_name", "endpoint_spec", "interface_name", "is_endpoint_port",
    "network_policy", "overlapping", "policy_document", "policy_name", "policy_spec",
    "policy_spec_partial", "port_to_workload_endpoint", "rule_to_calico", "same_content",
    "sanitize_label_value", "security_group_policy", "security_group_to_policy", "sg_selector",
    "subnet_to_dhcp_record", "with_server_metadata", "workload_endpoint",
    "workload_endpoint_name",
]  # fmt: skip


def port_to_workload_endpoint(
    port: NeutronPort, *, region: str | None, host: str | None = None
) -> dict[str, Any]:
    """The WorkloadEndpoint document for ``port`` at ``host`` (default: its bound host), as
    networking-calico builds it (not validated; the write path stores
    ``calico_document(workload_endpoint(...))``, which is byte-for-byte this after checks)."""
    return endpoint_document(port, region=region, host=host)


def security_group_to_policy(
    sg: NeutronSecurityGroup,
    *,
    region: str | None,
    address_groups: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, Any]:
    """The NetworkPolicy document ``ossg.default.<sg-id>`` in the region's namespace, as
    networking-calico builds it; TranslationError for any rule it cannot translate."""
    return policy_document(sg.id, policy_spec(sg.id, sg.rules, address_groups), region=region)
