"""The calc graph's input type, the ids it derives from resource keys, and its node interfaces.

:class:`ResourceUpdate` is the one thing that flows into the graph (Felix's ``api.Update``): a
key ``(kind, namespace, name)`` and a value that is a model resource, or ``None`` when the
resource is deleted *or invalid* (never rely on an update being "new" or a delete being final).
The id helpers fix how resource keys become dataplane ids (``np/<ns>/<name>``, ``gnp/<name>``,
``<ns>/<name>`` for workload endpoints). What the graph does with updates is left to the nodes
(see :mod:`regionmesh.agent.graph`).

The small Protocols at the end (:class:`IPSetSink`, :class:`RulesSink`, :class:`EndpointSink`)
are the interfaces between nodes, as Felix's ``ipSetUpdateCallbacks`` & co.: each pair of calls
must balance. :class:`regionmesh.agent.event_sequencer.EventSequencer` implements all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from regionmesh.dataplane.messages import (
    ActivePolicyUpdate,
    ActiveProfileUpdate,
    IPSetType,
    Member,
    WorkloadEndpointUpdate,
)
from regionmesh.model import Resource

__all__ = [
    "GNP",
    "GNS",
    "HEP",
    "NP",
    "NS",
    "PROFILE",
    "TIER",
    "WEP",
    "EndpointSink",
    "IPSetSink",
    "Key",
    "RulesSink",
    "ResourceUpdate",
    "endpoint_id",
    "policy_id",
]

WEP = "WorkloadEndpoint"
HEP = "HostEndpoint"
NS = "NetworkSet"
GNS = "GlobalNetworkSet"
NP = "NetworkPolicy"
GNP = "GlobalNetworkPolicy"
PROFILE = "Profile"
TIER = "Tier"

Key = tuple[str, str | None, str]
"""``(kind, namespace or None, name)``: identifies one resource in the datastore."""


@dataclass(frozen=True, slots=True)
class ResourceUpdate:
    """One datastore change: ``value`` is the resource, or None when deleted or invalid."""

    kind: str
    namespace: str | None
    name: str
    value: Resource | None

    @property
    def key(self) -> Key:
        """``(kind, namespace, name)``."""
        return (self.kind, self.namespace, self.name)


def policy_id(kind: str, namespace: str | None, name: str) -> str:
    """Dataplane id of a policy: ``np/<ns>/<name>`` or ``gnp/<name>``."""
    if kind == NP:
        return f"np/{namespace or ''}/{name}"
    return f"gnp/{name}"


def endpoint_id(namespace: str | None, name: str) -> str:
    """Dataplane id of a workload endpoint: ``<namespace>/<name>``."""
    return f"{namespace or ''}/{name}"


class IPSetSink(Protocol):
    """IP-set lifecycle and membership (added → members… → removed)."""

    def on_ipset_added(self, set_id: str, set_type: IPSetType) -> None:
        """The set is in use; its members follow as ``on_ipset_member_added``."""

    def on_ipset_member_added(self, set_id: str, member: Member) -> None:
        """``member`` joined the set."""

    def on_ipset_member_removed(self, set_id: str, member: Member) -> None:
        """``member`` left the set."""

    def on_ipset_removed(self, set_id: str) -> None:
        """No active rule uses the set any more (its members go with it)."""


class RulesSink(Protocol):
    """Active policies and profiles, already converted to dataplane rules."""

    def on_policy_update(self, msg: ActivePolicyUpdate) -> None:
        """The policy is active with these rules."""

    def on_policy_removed(self, policy_id: str) -> None:
        """The policy is no longer active."""

    def on_profile_update(self, msg: ActiveProfileUpdate) -> None:
        """The profile is active with these rules."""

    def on_profile_removed(self, profile_id: str) -> None:
        """The profile is no longer used by a local endpoint."""


class EndpointSink(Protocol):
    """Local endpoints with their resolved tiers."""

    def on_endpoint_update(self, msg: WorkloadEndpointUpdate) -> None:
        """The endpoint exists with this tier list."""

    def on_endpoint_removed(self, endpoint_id: str) -> None:
        """The endpoint left this host."""
