"""Tier and policy order, and which directions a policy governs (policy-model.md §2.4, §2.6).

* Tiers: existing tiers before referenced-but-missing ones, then ``order`` ascending with a
  nil order last, then name.
* Policies within a tier (NP and GNP interleaved): ``order`` ascending, nil last, ties broken
  by the *string* ``name + "/" + namespace + "/" + kind`` — Felix's quirk that puts ``web-deny``
  before ``web`` (``-`` sorts before ``/``) and a GNP before an NP of the same name.
* Directions: explicit ``types`` win; a policy stored *without* ``types`` governs both
  directions (Felix's rule; calicoctl-style defaulting on write is the model's job).

Pure functions over model objects; grouping policies by tier is the snapshot's job.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from enum import StrEnum

from regionmesh.model import DEFAULT_TIER, GlobalNetworkPolicy, NetworkPolicy, Tier

__all__ = [
    "DEFAULT_TIER_ORDER",
    "Direction",
    "PolicySortKey",
    "TierSortKey",
    "default_tier",
    "governed_directions",
    "policy_sort_key",
    "policy_tier",
    "sort_policies",
    "sort_tiers",
    "tier_default_action",
    "tier_sort_key",
]

DEFAULT_TIER_ORDER = 1_000_000.0
"""The order Calico gives the ``default`` tier (and requires it to keep)."""

TierSortKey = tuple[bool, bool, float, str]
PolicySortKey = tuple[bool, float, str]


class Direction(StrEnum):
    """A traffic direction relative to an endpoint."""

    INGRESS = "ingress"
    EGRESS = "egress"

    @property
    def type_name(self) -> str:
        """The spelling used in ``spec.types`` (``Ingress``/``Egress``)."""
        return self.value.capitalize()


def default_tier() -> Tier:
    """The ``default`` tier as Calico always creates it (order 1000000, defaultAction Deny)."""
    return Tier.model_validate(
        {"metadata": {"name": DEFAULT_TIER}, "spec": {"order": DEFAULT_TIER_ORDER}}
    )


def tier_sort_key(name: str, tier: Tier | None) -> TierSortKey:
    """Sort key of tier ``name``; ``tier`` is None when it is referenced but does not exist."""
    order = tier.spec.order if tier is not None else None
    if order is None and tier is not None and name == DEFAULT_TIER:
        order = DEFAULT_TIER_ORDER  # stored without an order (e.g. written straight to etcd)
    return (tier is None, order is None, order if order is not None else math.inf, name)


def sort_tiers(names: Iterable[str], tiers: Mapping[str, Tier]) -> list[str]:
    """``names`` (de-duplicated) in evaluation order, looking each up in ``tiers``."""
    return sorted(set(names), key=lambda n: tier_sort_key(n, tiers.get(n)))


def tier_default_action(tier: Tier | None) -> str:
    """``Pass`` or ``Deny``: anything but an explicit ``Pass`` is ``Deny`` (as in Felix)."""
    if tier is not None and tier.spec.default_action == "Pass":
        return "Pass"
    return "Deny"


def policy_tier(policy: NetworkPolicy | GlobalNetworkPolicy) -> str:
    """The tier a policy belongs to (``spec.tier``, ``default`` when unset)."""
    return policy.spec.tier or DEFAULT_TIER


def policy_sort_key(policy: NetworkPolicy | GlobalNetworkPolicy) -> PolicySortKey:
    """Felix's order of policies within a tier (nil order last, quirky string tie-break)."""
    order = policy.spec.order
    tie = f"{policy.metadata.name}/{policy.metadata.namespace}/{policy.KIND}"
    return (order is None, order if order is not None else math.inf, tie)


def sort_policies(
    policies: Iterable[NetworkPolicy | GlobalNetworkPolicy],
) -> list[NetworkPolicy | GlobalNetworkPolicy]:
    """``policies`` in Felix's within-tier order."""
    return sorted(policies, key=policy_sort_key)


def governed_directions(policy: NetworkPolicy | GlobalNetworkPolicy) -> frozenset[Direction]:
    """The directions ``policy`` is enforced in: its ``types``, or both if it has none."""
    types = policy.spec.types
    if not types:
        return frozenset(Direction)
    return frozenset(d for d in Direction if d.type_name in types)
