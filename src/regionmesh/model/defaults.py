"""calicoctl's write-time defaulting of v3 resources (policy-model.md §2.6).

:func:`apply_defaults` fills in what the Calico client fills in before validating a write:
policy ``types`` from the rules, ``spec.tier: default`` and the ``projectcalico.org/tier``
label, the ``default`` namespace for namespaced kinds, tier ``defaultAction: Deny`` (the
built-in tiers also get their fixed order, :data:`RESERVED_TIERS`), and the WorkloadEndpoint
name and namespace/orchestrator labels. Checking the result is :mod:`regionmesh.model.validation`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from regionmesh.model.endpoints import WorkloadEndpoint, workload_endpoint_name
from regionmesh.model.meta import NAMESPACE_LABEL, ORCHESTRATOR_LABEL, Resource
from regionmesh.model.names import TIER_LABEL
from regionmesh.model.policy import DEFAULT_TIER, GlobalNetworkPolicy, NetworkPolicy, Tier
from regionmesh.model.rules import Rule

DEFAULT_TIER_ORDER = 1_000_000.0
RESERVED_TIERS: dict[str, tuple[float, str]] = {
    "default": (DEFAULT_TIER_ORDER, "Deny"),
    "kube-admin": (1_000.0, "Pass"),
    "kube-baseline": (10_000_000.0, "Pass"),
}


def default_policy_types(ingress: list[Rule], egress: list[Rule]) -> list[str]:
    """libcalico-go's ``types`` default: egress rules only → Egress; both → both; else Ingress."""
    if egress and ingress:
        return ["Ingress", "Egress"]
    if egress:
        return ["Egress"]
    return ["Ingress"]


def apply_defaults(resource: Resource, *, default_namespace: str = "default") -> Resource:
    """Return a copy of ``resource`` with calicoctl's write-time defaults filled in."""
    meta = resource.metadata
    meta_update: dict[str, Any] = {}
    spec_update: dict[str, Any] = {}
    spec_obj: BaseModel | None = None
    if resource.info.namespaced and not meta.namespace:
        meta_update["namespace"] = default_namespace
    if isinstance(resource, GlobalNetworkPolicy | NetworkPolicy):
        spec = spec_obj = resource.spec
        tier = spec.tier or DEFAULT_TIER
        if not spec.tier:
            spec_update["tier"] = tier
        if meta.labels.get(TIER_LABEL) != tier:
            meta_update["labels"] = {**meta.labels, TIER_LABEL: tier}
        if not spec.types:
            spec_update["types"] = default_policy_types(spec.ingress, spec.egress)
    elif isinstance(resource, Tier):
        spec_obj = resource.spec
        reserved = RESERVED_TIERS.get(meta.name)
        if resource.spec.order is None and reserved is not None:
            # Calico's built-in tiers have a fixed order; an omitted order means that one
            # (otherwise a nil order would sort the default tier after every ordered tier).
            spec_update["order"] = reserved[0]
        if resource.spec.default_action is None:
            spec_update["default_action"] = reserved[1] if reserved is not None else "Deny"
    elif isinstance(resource, WorkloadEndpoint):
        spec_w = resource.spec
        namespace = meta_update.get("namespace", meta.namespace)
        labels = dict(meta.labels)
        labels[NAMESPACE_LABEL] = namespace
        if spec_w.orchestrator:
            labels[ORCHESTRATOR_LABEL] = spec_w.orchestrator
        if labels != meta.labels:
            meta_update["labels"] = labels
        if not meta.name and spec_w.node and spec_w.orchestrator and spec_w.endpoint:
            meta_update["name"] = workload_endpoint_name(
                spec_w.node, spec_w.orchestrator, spec_w.workload_or_pod, spec_w.endpoint
            )
    update: dict[str, Any] = {}
    if meta_update:
        update["metadata"] = meta.model_copy(update=meta_update)
    if spec_update and spec_obj is not None:
        update["spec"] = spec_obj.model_copy(update=spec_update)
    return resource.model_copy(update=update) if update else resource
