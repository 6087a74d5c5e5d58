"""Policy kinds: GlobalNetworkPolicy, NetworkPolicy, Tier and Profile (with their specs).

An NP spec has no ``namespaceSelector``/``doNotTrack``/``preDNAT``/``applyOnForward`` fields,
so strict decoding refuses them, as calicoctl does. ``types`` is left as written: defaulting is
:func:`regionmesh.model.validation.apply_defaults`' job, and a policy stored without ``types``
(as networking-calico writes security groups) keeps none. Ordering and evaluation belong to
:mod:`regionmesh.policy`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from regionmesh.model.base import Float, Model, StrictBool, StrictStr
from regionmesh.model.meta import Resource
from regionmesh.model.rules import Rule

__all__ = [
    "DEFAULT_TIER",
    "GlobalNetworkPolicy",
    "GlobalNetworkPolicySpec",
    "NetworkPolicy",
    "NetworkPolicySpec",
    "POLICY_TYPES",
    "Profile",
    "ProfileSpec",
    "Tier",
    "TierSpec",
]

DEFAULT_TIER = "default"
POLICY_TYPES = ("Ingress", "Egress")


class NetworkPolicySpec(Model):
    """Spec of a (namespaced) NetworkPolicy."""

    tier: StrictStr = ""
    order: Float | None = None
    selector: StrictStr = ""
    types: list[StrictStr] = Field(default_factory=list)
    ingress: list[Rule] = Field(default_factory=list)
    egress: list[Rule] = Field(default_factory=list)
    service_account_selector: StrictStr = ""
    performance_hints: list[StrictStr] = Field(default_factory=list)


class GlobalNetworkPolicySpec(NetworkPolicySpec):
    """Spec of a GlobalNetworkPolicy: an NP spec plus the cluster-wide/host options."""

    namespace_selector: StrictStr = ""
    do_not_track: StrictBool = False
    pre_dnat: StrictBool = Field(default=False, alias="preDNAT")
    apply_on_forward: StrictBool = False


class NetworkPolicy(Resource):
    """``NetworkPolicy``: namespaced; selectors are confined to its namespace by Felix."""

    KIND: ClassVar[str] = "NetworkPolicy"
    kind: Literal["NetworkPolicy"] = "NetworkPolicy"
    spec: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec)


class GlobalNetworkPolicy(Resource):
    """``GlobalNetworkPolicy``: cluster-scoped, selects across all namespaces and hosts."""

    KIND: ClassVar[str] = "GlobalNetworkPolicy"
    kind: Literal["GlobalNetworkPolicy"] = "GlobalNetworkPolicy"
    spec: GlobalNetworkPolicySpec = Field(default_factory=GlobalNetworkPolicySpec)


class TierSpec(Model):
    """Spec of a Tier: its order and what happens at its end (``Deny`` or ``Pass``)."""

    order: Float | None = None
    default_action: StrictStr | None = None


class Tier(Resource):
    """``Tier``: an ordered group of policies."""

    KIND: ClassVar[str] = "Tier"
    kind: Literal["Tier"] = "Tier"
    spec: TierSpec = Field(default_factory=TierSpec)


class ProfileSpec(Model):
    """Spec of a Profile: fallback rules and labels inherited by its endpoints."""

    ingress: list[Rule] = Field(default_factory=list)
    egress: list[Rule] = Field(default_factory=list)
    labels_to_apply: dict[StrictStr, StrictStr] = Field(default_factory=dict)


class Profile(Resource):
    """``Profile``: endpoints list profiles in ``spec.profiles``."""

    KIND: ClassVar[str] = "Profile"
    kind: Literal["Profile"] = "Profile"
    spec: ProfileSpec = Field(default_factory=ProfileSpec)
