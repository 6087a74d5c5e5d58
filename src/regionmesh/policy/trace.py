"""Verdict and trace value types shared by the indexed and the naive evaluator.

A :class:`DirectionVerdict` is the outcome for one endpoint and direction plus the TRACE: the
ordered :class:`TraceStep` list explaining it (which tier was skipped and why, which policy's
rule fired with which action, where an implicit deny happened, which profiles were tried).
A :class:`FlowVerdict` combines the source's egress and the destination's ingress. Every type
has ``to_dict()`` for JSON output. The step constructors here are the only place trace
wording is decided; *when* a step happens is decided by :mod:`regionmesh.policy.verdicts`
(and mirrored by :mod:`regionmesh.policy.naive`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from regionmesh.policy.flows import Flow
from regionmesh.policy.ordering import Direction

__all__ = [
    "DirectionVerdict",
    "EndpointId",
    "FlowVerdict",
    "PolicyId",
    "StepKind",
    "TraceStep",
    "steps",
]


class StepKind(StrEnum):
    """What a trace step records."""

    TIER_SKIPPED = "tier-skipped"
    """No policy of the tier selects the endpoint for this direction."""
    RULE = "rule"
    """A rule matched (its action is in ``action``; Log continues, Pass leaves the tier)."""
    POLICY_NO_MATCH = "policy-no-match"
    """A policy selects the endpoint but none of its rules matched."""
    END_OF_TIER = "end-of-tier"
    """Nothing decided in the tier: implicit deny, or the tier's ``defaultAction: Pass``."""
    PROFILE_MISSING = "profile-missing"
    PROFILE_NO_MATCH = "profile-no-match"
    FINAL_DENY = "final-deny"
    """No tier and no profile decided: deny."""
    HOST_LOCAL = "host-local"
    """Host ↔ its own workload: host-endpoint policy (and, host → workload, the workload's
    ingress policy) does not apply, as in Felix (:mod:`regionmesh.policy.hostlocal`)."""
    ENDPOINT_TO_HOST = "endpoint-to-host"
    """Workload → its own host: ``DefaultEndpointToHostAction`` decided (or a special case)."""


@dataclass(frozen=True, slots=True)
class _ObjectRef:
    """Kind, namespace (``""`` when cluster-scoped) and name of a resource."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind}({self.namespace}/{self.name})"
        return f"{self.kind}({self.name})"

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        out = {"kind": self.kind, "name": self.name}
        if self.namespace:
            out["namespace"] = self.namespace
        return out


@dataclass(frozen=True, slots=True)
class EndpointId(_ObjectRef):
    """A policed endpoint: kind, namespace (``""`` for host endpoints) and name."""


@dataclass(frozen=True, slots=True)
class PolicyId(_ObjectRef):
    """A policy or profile: kind (``GlobalNetworkPolicy``, ``NetworkPolicy``, ``Profile``),
    namespace and name."""


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One step of an explanation; ``message`` is the human sentence."""

    kind: StepKind
    message: str
    tier: str | None = None
    policy: PolicyId | None = None
    rule_index: int | None = None
    action: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (absent fields omitted)."""
        out: dict[str, Any] = {"step": str(self.kind), "message": self.message}
        if self.tier is not None:
            out["tier"] = self.tier
        if self.policy is not None:
            out["policy"] = self.policy.to_dict()
        if self.rule_index is not None:
            out["ruleIndex"] = self.rule_index
        if self.action is not None:
            out["action"] = self.action
        return out


class steps:  # noqa: N801 - a namespace of constructors
    """Constructors for every trace step (the one place their wording lives)."""

    @staticmethod
    def tier_skipped(tier: str, direction: Direction) -> TraceStep:
        return TraceStep(
            StepKind.TIER_SKIPPED,
            f"no policy in tier {tier} selects the endpoint for {direction}",
            tier=tier,
        )

    @staticmethod
    def rule(tier: str | None, policy: PolicyId, index: int, action: str) -> TraceStep:
        what = {
            "Allow": "allow",
            "Deny": "deny",
            "Pass": "pass: skip the rest of the tier" if tier else "pass: leave the profile",
            "Log": "log and continue",
        }.get(action, action)
        return TraceStep(
            StepKind.RULE,
            f"{policy} rule {index} matched: {what}",
            tier=tier,
            policy=policy,
            rule_index=index,
            action=action,
        )

    @staticmethod
    def policy_no_match(tier: str, policy: PolicyId, rule_count: int) -> TraceStep:
        return TraceStep(
            StepKind.POLICY_NO_MATCH,
            f"{policy} selects the endpoint but none of its {rule_count} rules matched",
            tier=tier,
            policy=policy,
        )

    @staticmethod
    def end_of_tier(tier: str, default_action: str) -> TraceStep:
        if default_action == "Pass":
            return TraceStep(
                StepKind.END_OF_TIER,
                f"end of tier {tier}: defaultAction Pass, continue with the next tier",
                tier=tier,
                action="Pass",
            )
        return TraceStep(
            StepKind.END_OF_TIER, f"end of tier {tier}: implicit deny", tier=tier, action="Deny"
        )

    @staticmethod
    def profile_missing(name: str) -> TraceStep:
        return TraceStep(
            StepKind.PROFILE_MISSING,
            f"profile {name} does not exist: its traffic is dropped (fail closed)",
            policy=PolicyId("Profile", "", name),
        )

    @staticmethod
    def profile_no_match(name: str, rule_count: int) -> TraceStep:
        return TraceStep(
            StepKind.PROFILE_NO_MATCH,
            f"none of the {rule_count} rules of profile {name} matched",
            policy=PolicyId("Profile", "", name),
        )

    @staticmethod
    def host_to_local_workload(node: str) -> TraceStep:
        return TraceStep(
            StepKind.HOST_LOCAL,
            f"traffic from host {node} to its own workload leaves through the workload's "
            "interface, not this host endpoint's: host endpoint policy does not apply",
            action="Allow",
        )

    @staticmethod
    def host_to_local_workload_ingress(node: str) -> TraceStep:
        return TraceStep(
            StepKind.HOST_LOCAL,
            f"traffic from host {node} to its own workload is not policed by the workload's "
            "ingress policy (Felix's OUTPUT chain returns early for workload interfaces)",
            action="Allow",
        )

    @staticmethod
    def endpoint_to_host(node: str, action: str) -> TraceStep:
        return TraceStep(
            StepKind.ENDPOINT_TO_HOST,
            f"traffic from a workload to its own host {node} skips host endpoint policy; "
            f"after the workload's egress policy, DefaultEndpointToHostAction {action} decides",
            action="Deny" if action == "Drop" else "Allow",
        )

    @staticmethod
    def endpoint_to_host_special_case(node: str, what: str) -> TraceStep:
        return TraceStep(
            StepKind.ENDPOINT_TO_HOST,
            f"OpenStack {what} special case: accepted from a workload to its own host {node} "
            "before any policy",
            action="Allow",
        )

    @staticmethod
    def final_deny(had_profiles: bool) -> TraceStep:
        why = "no profile matched" if had_profiles else "the endpoint has no profiles"
        return TraceStep(StepKind.FINAL_DENY, f"no tier decided and {why}: deny", action="Deny")


@dataclass(frozen=True, slots=True)
class DirectionVerdict:
    """The verdict of one endpoint for one direction, with its trace."""

    endpoint: EndpointId
    direction: Direction
    action: str
    """``Allow`` or ``Deny``."""
    trace: tuple[TraceStep, ...]

    @property
    def allowed(self) -> bool:
        """True if the endpoint allows the flow in this direction."""
        return self.action == "Allow"

    @property
    def decided_by(self) -> TraceStep | None:
        """The step that decided (the last one)."""
        return self.trace[-1] if self.trace else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "endpoint": self.endpoint.to_dict(),
            "direction": str(self.direction),
            "action": self.action,
            "allowed": self.allowed,
            "trace": [s.to_dict() for s in self.trace],
        }


@dataclass(frozen=True, slots=True)
class FlowVerdict:
    """A flow's verdict: the source endpoint's egress and the destination's ingress.

    ``egress``/``ingress`` is None when that side is not a Calico endpoint (not policed).
    """

    flow: Flow
    egress: DirectionVerdict | None
    ingress: DirectionVerdict | None

    @property
    def allowed(self) -> bool:
        """True when neither policed side denies."""
        return (self.egress is None or self.egress.allowed) and (
            self.ingress is None or self.ingress.allowed
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "flow": self.flow.to_dict(),
            "allowed": self.allowed,
            "source": self.egress.endpoint.to_dict() if self.egress else None,
            "destination": self.ingress.endpoint.to_dict() if self.ingress else None,
            "egress": self.egress.to_dict() if self.egress else "not policed",
            "ingress": self.ingress.to_dict() if self.ingress else "not policed",
        }
