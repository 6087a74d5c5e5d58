"""The verdict algorithm of policy-model.md §2.5, with a trace, over a :class:`Snapshot`.

``evaluate_endpoint(snapshot, endpoint, direction, flow)``::

    for tier in ordered tiers:
        policies of the tier selecting the endpoint with the direction in their types
        (workload endpoints: never preDNAT/doNotTrack policies)
        none → "no policy in tier X selects the endpoint for <direction>", next tier
        for each policy, each rule in order: first match decides —
            Allow/Deny → verdict; Pass → next tier; Log → note it and keep scanning
        nothing decided → tier defaultAction Pass: next tier; otherwise implicit deny
    profiles in order: first matching rule — Allow/Deny decide, Pass leaves the profile
    (as the iptables/nftables dataplane does), Log continues
    → deny ("no profile matched" / "the endpoint has no profiles")

``evaluate_flow(snapshot, src, dst, flow)`` combines the source endpoint's egress and the
destination endpoint's ingress; a side that is not a Calico endpoint (None) is not policed.
Host endpoints are evaluated for traffic to/from the host itself (normal policy only; the
preDNAT, doNotTrack and applyOnForward stages of §2.8 are not modelled here), except between a
host and its own workloads, where Felix applies no host-endpoint policy
(:mod:`regionmesh.policy.hostlocal`).
"""

from __future__ import annotations

from regionmesh.policy.flows import CompiledRule, Flow
from regionmesh.policy.hostlocal import EndpointToHostAction, evaluate_local
from regionmesh.policy.ordering import Direction, tier_default_action
from regionmesh.policy.snapshot import Endpoint, Snapshot, endpoint_id
from regionmesh.policy.trace import DirectionVerdict, FlowVerdict, PolicyId, TraceStep, steps

__all__ = ["evaluate_endpoint", "evaluate_flow", "explain_flow"]

_DECISIVE = ("Allow", "Deny")


def evaluate_endpoint(
    snapshot: Snapshot, endpoint: Endpoint, direction: Direction | str, flow: Flow
) -> DirectionVerdict:
    """The verdict of ``endpoint`` for ``flow`` in ``direction``, with its trace."""
    direction = Direction(direction)
    ident = endpoint_id(endpoint)
    trace: list[TraceStep] = []

    def done(action: str) -> DirectionVerdict:
        return DirectionVerdict(ident, direction, action, tuple(trace))

    applicable = dict(snapshot.applicable_tiers(endpoint, direction))
    for tier in snapshot.tier_names:
        policies = applicable.get(tier)
        if not policies:
            trace.append(steps.tier_skipped(tier, direction))
            continue
        passed = False
        for pol in policies:
            rules: tuple[CompiledRule, ...] = pol.rules(direction)
            for index, rule in enumerate(rules):
                if not rule.matches(flow, snapshot):
                    continue
                action = rule.action
                trace.append(steps.rule(tier, pol.ident, index, action))
                if action in _DECISIVE:
                    return done(action)
                if action == "Pass":
                    passed = True
                    break
            if passed:
                break
            trace.append(steps.policy_no_match(tier, pol.ident, len(rules)))
        if passed:
            continue
        default = tier_default_action(snapshot.tier(tier))
        trace.append(steps.end_of_tier(tier, default))
        if default != "Pass":
            return done("Deny")

    profile_names = endpoint.spec.profiles
    for name in profile_names:
        prof = snapshot.profile_record(name)
        if prof is None:
            # Felix replaces a missing profile with drop-all rules (fail closed).
            trace.append(steps.profile_missing(name))
            return done("Deny")
        rules = prof.rules(direction)
        left = False
        for index, rule in enumerate(rules):
            if not rule.matches(flow, snapshot):
                continue
            action = rule.action
            trace.append(steps.rule(None, PolicyId("Profile", "", name), index, action))
            if action in _DECISIVE:
                return done(action)
            if action == "Pass":
                left = True
                break
        if not left:
            trace.append(steps.profile_no_match(name, len(rules)))
    trace.append(steps.final_deny(bool(profile_names)))
    return done("Deny")


def evaluate_flow(
    snapshot: Snapshot,
    src: Endpoint | None,
    dst: Endpoint | None,
    flow: Flow,
    *,
    endpoint_to_host: EndpointToHostAction | str | None = None,
) -> FlowVerdict:
    """``src``'s egress and ``dst``'s ingress verdicts; None means "not a Calico endpoint".

    A flow between a host endpoint and a workload on the same node follows Felix's local paths
    (:mod:`regionmesh.policy.hostlocal`); ``endpoint_to_host`` is the host's
    ``DefaultEndpointToHostAction`` (a value, or node → value; default ``Drop``).
    """
    local = evaluate_local(
        src,
        dst,
        flow,
        lambda: evaluate_endpoint(snapshot, src, Direction.EGRESS, flow),  # type: ignore[arg-type]
        endpoint_to_host,
    )
    if local is not None:
        return local
    egress = evaluate_endpoint(snapshot, src, Direction.EGRESS, flow) if src is not None else None
    ingress = evaluate_endpoint(snapshot, dst, Direction.INGRESS, flow) if dst is not None else None
    return FlowVerdict(flow, egress, ingress)


def explain_flow(snapshot: Snapshot, flow: Flow) -> list[FlowVerdict]:
    """Evaluate ``flow`` between whatever endpoints own its addresses.

    Usually one verdict; several when an address is owned by more than one endpoint (e.g.
    overlapping tenant networks in different regions), one per (source, destination) pair.
    """
    srcs: list[Endpoint | None] = list(snapshot.endpoints_at(flow.src_ip)) or [None]
    dsts: list[Endpoint | None] = list(snapshot.endpoints_at(flow.dst_ip)) or [None]
    return [evaluate_flow(snapshot, s, d, flow) for s in srcs for d in dsts]
