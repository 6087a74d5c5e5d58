"""RuleScanner: active policies/profiles → dataplane rules, and which IP sets they need.

Felix's ``rule_scanner.go`` + ``rule_convert.go``. For every active policy or profile it
converts the model rules into :class:`regionmesh.dataplane.messages.Rule` values, replacing
each rule side's selector with an IP-set id and each named port with a named-port IP-set id.
The selector rewriting itself (namespace clauses, ``namespaceSelector``, service accounts,
``notSelector`` folding) is :mod:`regionmesh.policy.selectors`' — this module only calls it.

IP sets are reference-counted by the rules that use them: a set is activated in the
:class:`~regionmesh.agent.ipset_index.IPSetMemberIndex` before the first rule that uses it is
sent and deactivated after the last one stops using it. Which policies are active, and
matching endpoints against the sets, are other nodes' jobs.

Rules the dataplane contract cannot express are made to fail closed:

* a side naming a Kubernetes ``services`` matches nothing (as in ``regionmesh.policy.flows``),
  so the rule is dropped;
* source named ports have no message field yet: an Allow/Log rule using them is dropped (it
  allows less), any other action loses its source-port test (it matches more);
* a rule that still cannot be built turns the whole owner into deny-all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from regionmesh.agent.ipset_index import IPSetMemberIndex, IPSetSpec
from regionmesh.agent.updates import RulesSink
from regionmesh.dataplane import messages as dp
from regionmesh.errors import ValidationError
from regionmesh.model import EntityRule, GlobalNetworkPolicy, NetworkPolicy, Port, Profile
from regionmesh.model import Rule as ModelRule
from regionmesh.policy.selectors import folded_selector, rule_entity_selectors
from regionmesh.selector import ALL, SelectorError

__all__ = ["ConvertedRules", "RuleScanner", "convert_rules", "DENY_ALL"]

LOG = logging.getLogger(__name__)

_ACTIONS = {
    "Allow": dp.Action.ALLOW,
    "Deny": dp.Action.DENY,
    "Pass": dp.Action.PASS,
    "Log": dp.Action.LOG,
}

DENY_ALL = (dp.Rule(dp.Action.DENY),)
"""Felix's ``DummyDropRules``: what a missing profile or an unconvertible owner becomes."""


class _Skip(Exception):
    """The rule can never match: leave it out."""


@dataclass(frozen=True, slots=True)
class ConvertedRules:
    """One owner's rules in dataplane terms, and the IP sets they reference."""

    inbound: tuple[dp.Rule, ...]
    outbound: tuple[dp.Rule, ...]
    ipsets: dict[str, IPSetSpec]


def _ports(ports: Sequence[Port]) -> tuple[dp.PortRange, ...]:
    return tuple(dp.PortRange(p.min, p.max) for p in ports if not p.name)


def _convert_rule(
    rule: ModelRule, namespace: str, ipsets: dict[str, IPSetSpec], rule_id: str
) -> dp.Rule:
    action = _ACTIONS[rule.action]
    protocol = rule.protocol.number if rule.protocol is not None else None
    fields: dict[str, object] = {
        "action": action,
        "ip_version": rule.ip_version,
        "protocol": protocol,
        "not_protocol": rule.not_protocol.number if rule.not_protocol is not None else None,
        "rule_id": rule_id,
    }
    if rule.icmp is not None:
        if rule.icmp.type is None:
            raise _Skip  # an icmp match without a type matches no packet
        fields["icmp"] = dp.ICMPMatch(rule.icmp.type, rule.icmp.code)
    if rule.not_icmp is not None and rule.not_icmp.type is not None:
        fields["not_icmp"] = dp.ICMPMatch(rule.not_icmp.type, rule.not_icmp.code)

    def side(er: EntityRule, prefix: str) -> None:
        if er.services is not None:
            raise _Skip
        fields[f"{prefix}_nets"] = tuple(er.nets)
        fields[f"not_{prefix}_nets"] = tuple(er.not_nets)
        positive, negative = rule_entity_selectors(er, namespace)
        folded = folded_selector(positive, negative)
        if folded is not None:
            spec = IPSetSpec(folded)
            ipsets[spec.selector.unique_id] = spec
            fields[f"{prefix}_ipset_ids"] = (spec.selector.unique_id,)
        elif negative is not None:
            spec = IPSetSpec(negative)
            ipsets[spec.selector.unique_id] = spec
            fields[f"not_{prefix}_ipset_ids"] = (spec.selector.unique_id,)
        fields[f"{prefix}_ports"] = _ports(er.ports)
        fields[f"not_{prefix}_ports"] = _ports(er.not_ports)
        names = [p.name for p in er.ports if p.name]
        not_names = [p.name for p in er.not_ports if p.name]
        if not (names or not_names):
            return
        if prefix == "src":
            # TODO(dataplane.messages): src_named_port_ipset_ids is not in the contract yet.
            if action in (dp.Action.ALLOW, dp.Action.LOG):
                raise _Skip
            fields["src_ports"] = ()
            fields["not_src_ports"] = ()
            return
        if protocol is None:
            raise ValidationError([], "named port without a protocol")
        selector = folded if folded is not None else ALL
        for key, port_names in (("dst", names), ("not_dst", not_names)):
            ids = []
            for name in port_names:
                spec = IPSetSpec(selector, protocol, name)
                set_id = spec.id
                ipsets[set_id] = spec
                ids.append(set_id)
            fields[f"{key}_named_port_ipset_ids"] = tuple(dict.fromkeys(ids))

    side(rule.source, "src")
    side(rule.destination, "dst")
    return dp.Rule(**fields)  # type: ignore[arg-type]


def _convert_list(
    rules: Sequence[ModelRule], namespace: str, ipsets: dict[str, IPSetSpec], owner: str, d: str
) -> tuple[dp.Rule, ...]:
    out: list[dp.Rule] = []
    for i, rule in enumerate(rules):
        try:
            out.append(_convert_rule(rule, namespace, ipsets, f"{owner}:{d}:{i}"))
        except _Skip:
            continue
    return tuple(out)


def convert_rules(
    owner: str, ingress: Sequence[ModelRule], egress: Sequence[ModelRule], namespace: str
) -> ConvertedRules:
    """Convert one owner's rules (``namespace`` is ``""`` for GNPs and profiles).

    Never raises: an owner whose rules cannot be converted becomes deny-all.
    """
    ipsets: dict[str, IPSetSpec] = {}
    try:
        inbound = _convert_list(ingress, namespace, ipsets, owner, "in")
        outbound = _convert_list(egress, namespace, ipsets, owner, "out")
    except (ValidationError, SelectorError, KeyError, ValueError) as exc:
        LOG.error("Cannot convert the rules of %s, treating it as deny-all: %s", owner, exc)
        return ConvertedRules(DENY_ALL, DENY_ALL, {})
    return ConvertedRules(inbound, outbound, ipsets)


class RuleScanner:
    """Converts active owners' rules, refcounts their IP sets, sends rules to ``sink``."""

    def __init__(self, ipsets: IPSetMemberIndex, sink: RulesSink) -> None:
        self._ipsets = ipsets
        self._sink = sink
        self._owner_sets: dict[str, frozenset[str]] = {}  # owner key -> set ids it uses
        self._refcounts: dict[str, int] = {}
        self._maybe_stale: list[str] = []

    def on_policy_active(self, policy_id: str, policy: NetworkPolicy | GlobalNetworkPolicy) -> None:
        """``policy`` is active (new, or its content changed)."""
        namespace = policy.metadata.namespace if isinstance(policy, NetworkPolicy) else ""
        converted = convert_rules(policy_id, policy.spec.ingress, policy.spec.egress, namespace)
        self._swap_sets("policy:" + policy_id, converted.ipsets)
        self._sink.on_policy_update(
            dp.ActivePolicyUpdate(policy_id, converted.inbound, converted.outbound)
        )
        self._release_stale()

    def on_policy_inactive(self, policy_id: str) -> None:
        """The policy no longer selects a local endpoint (or is gone)."""
        self._sink.on_policy_removed(policy_id)
        self._swap_sets("policy:" + policy_id, {})
        self._release_stale()

    def on_profile_active(self, name: str, profile: Profile | None) -> None:
        """A local endpoint uses profile ``name``; None means it does not exist (deny-all)."""
        if profile is None:
            converted = ConvertedRules(DENY_ALL, DENY_ALL, {})
        else:
            converted = convert_rules(name, profile.spec.ingress, profile.spec.egress, "")
        self._swap_sets("profile:" + name, converted.ipsets)
        self._sink.on_profile_update(
            dp.ActiveProfileUpdate(name, converted.inbound, converted.outbound)
        )
        self._release_stale()

    def on_profile_inactive(self, name: str) -> None:
        """No local endpoint uses profile ``name`` any more."""
        self._sink.on_profile_removed(name)
        self._swap_sets("profile:" + name, {})
        self._release_stale()

    def _swap_sets(self, owner: str, specs: dict[str, IPSetSpec]) -> None:
        """Point ``owner`` at ``specs``: activate new sets now, queue released ones."""
        new = frozenset(specs)
        old = self._owner_sets.get(owner, frozenset())
        for set_id in new - old:
            count = self._refcounts.get(set_id, 0)
            self._refcounts[set_id] = count + 1
            if count == 0:
                self._ipsets.on_ipset_active(specs[set_id])
        for set_id in old - new:
            self._refcounts[set_id] -= 1
            if self._refcounts[set_id] == 0:
                self._maybe_stale.append(set_id)
        if new:
            self._owner_sets[owner] = new
        else:
            self._owner_sets.pop(owner, None)

    def _release_stale(self) -> None:
        """Deactivate sets no owner uses (after the owners' new rules were sent)."""
        stale, self._maybe_stale = self._maybe_stale, []
        for set_id in stale:
            if self._refcounts.get(set_id) == 0:
                del self._refcounts[set_id]
                self._ipsets.on_ipset_inactive(set_id)
