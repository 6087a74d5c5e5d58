"""Effective labels: what selectors see when they look at an entity (policy-model.md §2.2).

* WorkloadEndpoint: own labels minus ``pcns.*``/``pcsa.*`` keys, then the labels the system
  forces (``projectcalico.org/namespace``, ``projectcalico.org/orchestrator``,
  ``projectcalico.org/serviceaccount``), over the ``labelsToApply`` of its profiles (own labels
  win; among profiles the first listed wins).
* NetworkSet: own labels + namespace label, over the profile ``kns.<namespace>`` if it exists.
* GlobalNetworkSet: own labels only. HostEndpoint: own labels over its profiles.

This module only computes label maps; matching selectors against them and indexing entities
by label set is :mod:`regionmesh.policy.snapshot`'s job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from regionmesh.model import (
    GlobalNetworkSet,
    HostEndpoint,
    NetworkSet,
    Profile,
    WorkloadEndpoint,
)
from regionmesh.model.meta import NAMESPACE_LABEL, ORCHESTRATOR_LABEL

__all__ = [
    "LabelledEntity",
    "NAMESPACE_LABEL",
    "NAMESPACE_LABEL_PREFIX",
    "ORCHESTRATOR_LABEL",
    "SERVICE_ACCOUNT_LABEL",
    "SERVICE_ACCOUNT_LABEL_PREFIX",
    "effective_labels",
    "namespace_profile_name",
]

SERVICE_ACCOUNT_LABEL = "projectcalico.org/serviceaccount"
NAMESPACE_LABEL_PREFIX = "pcns."
SERVICE_ACCOUNT_LABEL_PREFIX = "pcsa."
_NAMESPACE_PROFILE_PREFIX = "kns."

LabelledEntity = WorkloadEndpoint | HostEndpoint | NetworkSet | GlobalNetworkSet
"""Every kind that carries labels seen by policy and rule selectors."""

ProfileLookup = Mapping[str, Profile] | Callable[[str], Profile | None]


def namespace_profile_name(namespace: str) -> str:
    """``kns.<namespace>``: the profile Kubernetes namespaces become (source of ``pcns.*``)."""
    return _NAMESPACE_PROFILE_PREFIX + namespace


def _lookup(profiles: ProfileLookup, name: str) -> Profile | None:
    if callable(profiles):
        return profiles(name)
    return profiles.get(name)


def _inherited(names: Sequence[str], profiles: ProfileLookup) -> dict[str, str]:
    """``labelsToApply`` of the named profiles; the first profile listed wins a key."""
    out: dict[str, str] = {}
    for name in reversed(names):
        profile = _lookup(profiles, name)
        if profile is not None:
            out.update(profile.spec.labels_to_apply)
    return out


def effective_labels(
    entity: LabelledEntity, profiles_by_name: ProfileLookup | None = None
) -> dict[str, str]:
    """The labels selectors match against for ``entity`` (a fresh dict the caller may keep).

    ``profiles_by_name`` maps a profile name to its Profile (a mapping or a lookup function);
    profiles that do not exist are ignored, as Felix does.
    """
    profiles: ProfileLookup = profiles_by_name if profiles_by_name is not None else {}
    if isinstance(entity, WorkloadEndpoint):
        labels = _inherited(entity.spec.profiles, profiles)
        for key, value in entity.metadata.labels.items():
            if not key.startswith((NAMESPACE_LABEL_PREFIX, SERVICE_ACCOUNT_LABEL_PREFIX)):
                labels[key] = value
        labels[NAMESPACE_LABEL] = entity.metadata.namespace
        if entity.spec.orchestrator:
            labels[ORCHESTRATOR_LABEL] = entity.spec.orchestrator
        if entity.spec.service_account_name:
            labels[SERVICE_ACCOUNT_LABEL] = entity.spec.service_account_name
        return labels
    if isinstance(entity, HostEndpoint):
        labels = _inherited(entity.spec.profiles, profiles)
        labels.update(entity.metadata.labels)
        return labels
    if isinstance(entity, NetworkSet):
        labels = _inherited([namespace_profile_name(entity.metadata.namespace)], profiles)
        labels.update(entity.metadata.labels)
        labels[NAMESPACE_LABEL] = entity.metadata.namespace
        return labels
    if isinstance(entity, GlobalNetworkSet):
        return dict(entity.metadata.labels)
    raise TypeError(f"{type(entity).__name__} carries no policy-visible labels")
