"""The kind → resource class registry (``RESOURCE_CLASSES``) and the ``AnyResource`` union.

:mod:`regionmesh.model.kinds` holds the static facts about each kind (plural, scope, aliases);
this module binds each kind name to its pydantic class. Decoding documents is
:mod:`regionmesh.model.codec`'s job.
"""

from __future__ import annotations

from regionmesh.model.bgp import BGPConfiguration, BGPPeer, Node
from regionmesh.model.config import ClusterInformation, FelixConfiguration
from regionmesh.model.endpoints import HostEndpoint, WorkloadEndpoint
from regionmesh.model.kinds import KINDS
from regionmesh.model.meta import Resource
from regionmesh.model.policy import GlobalNetworkPolicy, NetworkPolicy, Profile, Tier
from regionmesh.model.sets import GlobalNetworkSet, NetworkSet

__all__ = ["AnyResource", "RESOURCE_CLASSES", "resource_class"]

AnyResource = (
    GlobalNetworkPolicy
    | NetworkPolicy
    | Tier
    | Profile
    | WorkloadEndpoint
    | HostEndpoint
    | NetworkSet
    | GlobalNetworkSet
    | FelixConfiguration
    | ClusterInformation
    | Node
    | BGPConfiguration
    | BGPPeer
)
"""Every concrete v3 resource class (for ``match`` statements and type annotations)."""

RESOURCE_CLASSES: dict[str, type[Resource]] = {
    cls.KIND: cls
    for cls in (
        GlobalNetworkPolicy,
        NetworkPolicy,
        Tier,
        Profile,
        WorkloadEndpoint,
        HostEndpoint,
        NetworkSet,
        GlobalNetworkSet,
        FelixConfiguration,
        ClusterInformation,
        Node,
        BGPConfiguration,
        BGPPeer,
    )
}
"""Kind name (``GlobalNetworkPolicy``) → resource class; same keys as ``kinds.KINDS``."""

assert set(RESOURCE_CLASSES) == set(KINDS), "kinds.KINDS and RESOURCE_CLASSES disagree"


def resource_class(kind: str) -> type[Resource] | None:
    """The class for an exact kind name, or None if the kind is not supported."""
    return RESOURCE_CLASSES.get(kind)
