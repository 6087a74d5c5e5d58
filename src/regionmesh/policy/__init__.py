"""Calico's policy semantics — the ONE implementation used by the agent and by the CLI.

Pure logic over :mod:`regionmesh.model` resources and :mod:`regionmesh.selector` selectors (no
datastore, no dataplane). Facts: policy-model.md §2 and §7; design: docs/design/policy.md.

Public API (import from here)::

    # labels (§2.2)
    effective_labels(entity, profiles_by_name=None) -> dict[str, str]
    NAMESPACE_LABEL, ORCHESTRATOR_LABEL, SERVICE_ACCOUNT_LABEL

    # selector rewrites (§2.3)
    policy_selector(policy) -> Selector
    rule_entity_selectors(entity_rule, policy_namespace) -> (positive | None, negative | None)
    folded_selector(positive, negative) -> Selector | None        # Felix's (pos) && !(neg)

    # ordering and types (§2.4, §2.6)
    Direction.INGRESS / Direction.EGRESS                            # a StrEnum
    tier_sort_key(name, tier | None), sort_tiers(names, tiers), tier_default_action(tier)
    policy_sort_key(policy), sort_policies(policies), policy_tier(policy)
    governed_directions(policy) -> frozenset[Direction]            # no types => both

    # flows and rule matching (§2.7)
    Flow(src_ip, dst_ip, protocol, src_port, dst_port, icmp_type, icmp_code); Flow.make("10.0.0.1", …)
    compile_rule(rule, namespace) -> CompiledRule;  CompiledRule.matches(flow, index)
    rule_matches(rule, flow, direction, index, namespace="") -> bool
    AddressIndex                                                    # protocol a Snapshot implements

    # the indexed view
    Snapshot(resources)      .tier_names .tier(n) .profile(n) .policies .policy(kind, ns, name)
                             .workload_endpoint(ns, name) .host_endpoint(name) .endpoints()
                             .endpoints_at(ip) .entities_at(ip) .labels_of(entity)
                             .members(selector) .addresses_matching(selector)
                             .address_matches(selector, ip) .named_port_matches(...)
                             .selecting_policies(endpoint) .applicable_tiers(endpoint, direction)

    # verdicts (§2.5) with traces; every result has to_dict()
    evaluate_endpoint(snapshot, endpoint, direction, flow) -> DirectionVerdict
    evaluate_flow(snapshot, src | None, dst | None, flow, *, endpoint_to_host=None) -> FlowVerdict
                                    # host ↔ own workload: Felix's local paths (hostlocal.py)
    explain_flow(snapshot, flow) -> list[FlowVerdict]               # endpoints found by IP
    DirectionVerdict(endpoint, direction, action, trace).allowed;  FlowVerdict.allowed
    TraceStep(kind: StepKind, message, tier, policy: PolicyId, rule_index, action)

    # brute-force oracle / benchmark baseline
    naive_evaluate_endpoint(resources, …), naive_evaluate_flow(resources, …)

What is left to others: watching the datastore and incremental updates (the agent), rendering
rules into nftables (the dataplane), validation of resources (``regionmesh.model.validation``).
"""

from regionmesh.policy.flows import (
    AddressIndex,
    CompiledRule,
    Flow,
    compile_rule,
    protocol_number,
    rule_matches,
)
from regionmesh.policy.labels import (
    NAMESPACE_LABEL,
    NAMESPACE_LABEL_PREFIX,
    ORCHESTRATOR_LABEL,
    SERVICE_ACCOUNT_LABEL,
    SERVICE_ACCOUNT_LABEL_PREFIX,
    effective_labels,
)
from regionmesh.policy.naive import naive_evaluate_endpoint, naive_evaluate_flow
from regionmesh.policy.ordering import (
    Direction,
    governed_directions,
    policy_sort_key,
    policy_tier,
    sort_policies,
    sort_tiers,
    tier_default_action,
    tier_sort_key,
)
from regionmesh.policy.selectors import folded_selector, policy_selector, rule_entity_selectors
from regionmesh.policy.snapshot import EntityRecord, PolicyRecord, Snapshot, endpoint_id
from regionmesh.policy.trace import (
    DirectionVerdict,
    EndpointId,
    FlowVerdict,
    PolicyId,
    StepKind,
    TraceStep,
)
from regionmesh.policy.verdicts import evaluate_endpoint, evaluate_flow, explain_flow

__all__ = [
    "AddressIndex",
    "CompiledRule",
    "Direction",
    "DirectionVerdict",
    "EndpointId",
    "EntityRecord",
    "Flow",
    "FlowVerdict",
    "NAMESPACE_LABEL",
    "NAMESPACE_LABEL_PREFIX",
    "ORCHESTRATOR_LABEL",
    "PolicyId",
    "PolicyRecord",
    "SERVICE_ACCOUNT_LABEL",
    "SERVICE_ACCOUNT_LABEL_PREFIX",
    "Snapshot",
    "StepKind",
    "TraceStep",
    "compile_rule",
    "effective_labels",
    "endpoint_id",
    "evaluate_endpoint",
    "evaluate_flow",
    "explain_flow",
    "folded_selector",
    "governed_directions",
    "naive_evaluate_endpoint",
    "naive_evaluate_flow",
    "policy_selector",
    "policy_sort_key",
    "policy_tier",
    "protocol_number",
    "rule_entity_selectors",
    "rule_matches",
    "sort_policies",
    "sort_tiers",
    "tier_default_action",
    "tier_sort_key",
]
