"""The projectcalico.org/v3 resource model: typed resources, decoding, defaulting, validation.

These names are the package's public API; other packages import from here (or from
:mod:`regionmesh.model.codec` / :mod:`regionmesh.model.validation` for the pipeline functions).
The model does no I/O beyond reading input files in :func:`codec.load_path`; storage keys and
etcd belong to :mod:`regionmesh.datastore`, policy semantics to :mod:`regionmesh.policy`.
See docs/design/model.md.
"""

from __future__ import annotations

from regionmesh.model import codec, validation
from regionmesh.model.cluster_config import (
    ClusterInformation,
    ClusterInformationSpec,
    FelixConfiguration,
    FelixConfigurationSpec,
)
from regionmesh.model.codec import LoadedDocument
from regionmesh.model.endpoints import (
    IPNAT,
    EndpointPort,
    HostEndpoint,
    HostEndpointSpec,
    QoSControls,
    WorkloadEndpoint,
    WorkloadEndpointPort,
    WorkloadEndpointSpec,
    split_workload_endpoint_name,
    workload_endpoint_name,
)
from regionmesh.model.kinds import API_VERSION, KINDS, KindInfo, kind_info, lookup_kind
from regionmesh.model.meta import ObjectMeta, Resource
from regionmesh.model.policy import (
    DEFAULT_TIER,
    GlobalNetworkPolicy,
    GlobalNetworkPolicySpec,
    NetworkPolicy,
    NetworkPolicySpec,
    Profile,
    ProfileSpec,
    Tier,
    TierSpec,
)
from regionmesh.model.resource_classes import RESOURCE_CLASSES, AnyResource, resource_class
from regionmesh.model.rules import (
    EntityRule,
    HTTPMatch,
    HTTPPath,
    ICMPFields,
    Rule,
    RuleMetadata,
    ServiceAccountMatch,
    ServiceMatch,
)
from regionmesh.model.sets import GlobalNetworkSet, NetworkSet, NetworkSetSpec
from regionmesh.model.values import Port, Protocol

__all__ = [
    "API_VERSION",
    "AnyResource",
    "ClusterInformation",
    "ClusterInformationSpec",
    "DEFAULT_TIER",
    "EndpointPort",
    "EntityRule",
    "FelixConfiguration",
    "FelixConfigurationSpec",
    "GlobalNetworkPolicy",
    "GlobalNetworkPolicySpec",
    "GlobalNetworkSet",
    "HTTPMatch",
    "HTTPPath",
    "HostEndpoint",
    "HostEndpointSpec",
    "ICMPFields",
    "IPNAT",
    "KINDS",
    "KindInfo",
    "LoadedDocument",
    "NetworkPolicy",
    "NetworkPolicySpec",
    "NetworkSet",
    "NetworkSetSpec",
    "ObjectMeta",
    "Port",
    "Profile",
    "ProfileSpec",
    "Protocol",
    "QoSControls",
    "RESOURCE_CLASSES",
    "Resource",
    "Rule",
    "RuleMetadata",
    "ServiceAccountMatch",
    "ServiceMatch",
    "Tier",
    "TierSpec",
    "WorkloadEndpoint",
    "WorkloadEndpointPort",
    "WorkloadEndpointSpec",
    "codec",
    "kind_info",
    "lookup_kind",
    "resource_class",
    "split_workload_endpoint_name",
    "validation",
    "workload_endpoint_name",
]
