"""calicoctl's defaulting and validation of v3 resources (policy-model.md §2.6 and §3).

* :func:`apply_defaults` — what the Calico client does before validating a write: policy
  ``types`` from the rules, ``spec.tier: default`` and the ``projectcalico.org/tier`` label,
  the ``default`` namespace for namespaced kinds, tier ``defaultAction: Deny`` (the built-in
  tiers ``default``/``kube-admin``/``kube-baseline`` also get their fixed order), and the
  WorkloadEndpoint name and namespace/orchestrator labels.
* :func:`validate` — every rule of §3 (names, labels/annotations, selectors, rules, per-kind
  specs), returning *all* problems as :class:`~regionmesh.errors.FieldError` with JSON paths.
* :func:`check` — validate and raise one :class:`~regionmesh.errors.ValidationError`.

Checks that need the datastore (the tier must exist, ``knp.default.*`` names are refused on
write, ``resourceVersion`` on create) are the datastore's and the CLI's business. Decoding
(unknown fields, JSON types, port syntax) happened before, in :mod:`regionmesh.model.codec`.

The checks themselves live in :mod:`regionmesh.model.names` (names, labels, annotations,
selectors), :mod:`regionmesh.model.rule_checks`, :mod:`regionmesh.model.kind_checks` (per kind,
dispatched through :mod:`regionmesh.model.kinds`) and :mod:`regionmesh.model.felix_params`;
the defaulting in :mod:`regionmesh.model.defaults`. This module is the small façade.
"""

from __future__ import annotations

from regionmesh.errors import FieldError, ValidationError
from regionmesh.model.defaults import apply_defaults, default_policy_types
from regionmesh.model.kind_checks import KindProblems, check_kind
from regionmesh.model.meta import NAMESPACE_LABEL, ORCHESTRATOR_LABEL, Resource
from regionmesh.model.names import TIER_LABEL

__all__ = [
    "NAMESPACE_LABEL",
    "ORCHESTRATOR_LABEL",
    "TIER_LABEL",
    "apply_defaults",
    "check",
    "default_policy_types",
    "validate",
]


def validate(resource: Resource) -> list[FieldError]:
    """Every §3 problem of ``resource`` (an empty list when it is valid)."""
    problems = KindProblems()
    problems.metadata(resource)
    check_kind(problems, resource)
    return problems.items


def check(resource: Resource, *, where: str = "") -> None:
    """Raise ValidationError listing every problem of ``resource``; return if it is valid."""
    problems = validate(resource)
    if problems:
        place = f"{where} {resource.display_name}" if where else resource.display_name
        raise ValidationError(problems, where=place)
