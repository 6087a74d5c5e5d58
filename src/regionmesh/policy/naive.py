"""A deliberately NAIVE evaluator: the same semantics as :mod:`.verdicts`, no index, no cache.

Every call scans the whole resource list, recomputes effective labels, re-parses every
selector from its canonical text and walks the expression tree
(:meth:`regionmesh.selector.expr.Node.evaluate`), parses every CIDR again and finds address
owners by scanning all entities. It exists as the benchmark baseline and as the oracle the
property tests compare the indexed :class:`~regionmesh.policy.snapshot.Snapshot` against, so
it shares only the pure building blocks (label rules, selector rewrites, ordering keys, trace
wording) and re-implements matching and the §2.5 loop on its own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

from regionmesh.model import (
    DEFAULT_TIER,
    EntityRule,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    HostEndpoint,
    NetworkPolicy,
    NetworkSet,
    Port,
    Profile,
    Resource,
    Rule,
    Tier,
    WorkloadEndpoint,
)
from regionmesh.policy.flows import Flow, IPAddress
from regionmesh.policy.hostlocal import EndpointToHostAction, evaluate_local
from regionmesh.policy.labels import LabelledEntity, effective_labels
from regionmesh.policy.ordering import (
    Direction,
    default_tier,
    governed_directions,
    policy_sort_key,
    policy_tier,
    sort_tiers,
    tier_default_action,
)
from regionmesh.policy.selectors import policy_selector, rule_entity_selectors
from regionmesh.policy.trace import (
    DirectionVerdict,
    EndpointId,
    FlowVerdict,
    PolicyId,
    TraceStep,
    steps,
)
from regionmesh.selector import Selector
from regionmesh.selector.parser import parse_expression

__all__ = ["NaiveWorld", "naive_evaluate_endpoint", "naive_evaluate_flow", "naive_rule_matches"]

Endpoint = WorkloadEndpoint | HostEndpoint
Policy = NetworkPolicy | GlobalNetworkPolicy


def _eval(sel: Selector, labels: Mapping[str, str]) -> bool:
    """Re-parse the canonical text and walk the tree: no compiled predicate, no cache."""
    result: bool = parse_expression(str(sel)).evaluate(labels)
    return result


class NaiveWorld:
    """The resources, kept as a plain list; every question scans it."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        latest: dict[tuple[str, str, str], Resource] = {}
        for res in resources:
            latest[(res.KIND, res.metadata.namespace, res.metadata.name)] = res
        self.resources: list[Resource] = list(latest.values())

    def profiles(self) -> dict[str, Profile]:
        return {r.metadata.name: r for r in self.resources if isinstance(r, Profile)}

    def tiers(self) -> dict[str, Tier]:
        tiers = {r.metadata.name: r for r in self.resources if isinstance(r, Tier)}
        tiers.setdefault(DEFAULT_TIER, default_tier())
        return tiers

    def policies(self) -> list[Policy]:
        return [r for r in self.resources if isinstance(r, (NetworkPolicy, GlobalNetworkPolicy))]

    def entities(self) -> list[LabelledEntity]:
        return [
            r
            for r in self.resources
            if isinstance(r, (WorkloadEndpoint, HostEndpoint, NetworkSet, GlobalNetworkSet))
        ]

    @staticmethod
    def _cidrs(entity: LabelledEntity) -> list[str]:
        if isinstance(entity, WorkloadEndpoint):
            return entity.spec.ip_networks
        if isinstance(entity, HostEndpoint):
            return entity.spec.expected_ips
        return entity.spec.nets

    def owners(self, ip: IPAddress) -> list[LabelledEntity]:
        """Entities owning ``ip``, found by scanning and parsing every CIDR."""
        found = []
        for ent in self.entities():
            for text in self._cidrs(ent):
                try:
                    net = ipaddress.ip_network(text, strict=False)
                except ValueError:
                    continue
                if net.version == ip.version and ip in net:
                    found.append(ent)
                    break
        return found

    def labels(self, entity: LabelledEntity) -> dict[str, str]:
        return effective_labels(entity, self.profiles())


def _families_ok(rule: Rule, version: int) -> bool:
    if rule.ip_version is not None and rule.ip_version != version:
        return False
    sides = (rule.source, rule.destination)
    for cidrs in [s.nets for s in sides] + [s.not_nets for s in sides]:
        nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
        if nets and all(n.version != version for n in nets):
            return False
    for side in sides:
        for c in side.not_nets:
            net = ipaddress.ip_network(c, strict=False)
            if net.version == version and net.prefixlen == 0:
                return False
    return True


def _icmp_hit(icmp_type: int | None, icmp_code: int | None, flow: Flow) -> bool:
    if flow.icmp_type is None or icmp_type is None or flow.icmp_type != icmp_type:
        return False
    return icmp_code is None or icmp_code == flow.icmp_code


def _side_ok(
    world: NaiveWorld,
    er: EntityRule,
    namespace: str,
    ip: IPAddress,
    port: int | None,
    protocol: int,
) -> bool:
    if er.services is not None:
        return False
    if er.nets and not any(ip in ipaddress.ip_network(n, strict=False) for n in er.nets):
        return False
    if any(ip in ipaddress.ip_network(n, strict=False) for n in er.not_nets):
        return False
    positive, negative = rule_entity_selectors(er, namespace)
    owners = world.owners(ip)

    def in_folded(ent: LabelledEntity) -> bool:
        labels = world.labels(ent)
        if positive is None:
            return True
        if not _eval(positive, labels):
            return False
        return negative is None or not _eval(negative, labels)

    if positive is not None:
        if not any(in_folded(e) for e in owners):
            return False
    elif negative is not None:
        if any(_eval(negative, world.labels(e)) for e in owners):
            return False

    def port_hit(entries: Sequence[Port], port: int) -> bool:
        for entry in entries:
            if entry.name:
                for ent in owners:
                    if not isinstance(ent, (WorkloadEndpoint, HostEndpoint)):
                        continue
                    if not in_folded(ent):
                        continue
                    for declared in ent.spec.ports:
                        proto = declared.protocol.number if declared.protocol else 6
                        if (
                            declared.name == entry.name
                            and proto == protocol
                            and declared.port == port
                        ):
                            return True
            elif entry.min <= port <= entry.max:
                return True
        return False

    if er.ports and (port is None or not port_hit(er.ports, port)):
        return False
    if er.not_ports and port is not None and port_hit(er.not_ports, port):
        return False
    return True


def _rule_ok(world: NaiveWorld, rule: Rule, namespace: str, flow: Flow) -> bool:
    if not _families_ok(rule, flow.ip_version):
        return False
    if rule.protocol is not None and rule.protocol.number != flow.protocol:
        return False
    if rule.not_protocol is not None and rule.not_protocol.number == flow.protocol:
        return False
    if rule.icmp is not None and not _icmp_hit(rule.icmp.type, rule.icmp.code, flow):
        return False
    if rule.not_icmp is not None and _icmp_hit(rule.not_icmp.type, rule.not_icmp.code, flow):
        return False
    if not _side_ok(world, rule.source, namespace, flow.src_ip, flow.src_port, flow.protocol):
        return False
    return _side_ok(world, rule.destination, namespace, flow.dst_ip, flow.dst_port, flow.protocol)


def naive_rule_matches(
    resources: Iterable[Resource] | NaiveWorld, rule: Rule, namespace: str, flow: Flow
) -> bool:
    """Brute-force counterpart of :func:`~.flows.rule_matches` (rule of a policy in
    ``namespace``, ``""`` for GNPs and profiles)."""
    world = resources if isinstance(resources, NaiveWorld) else NaiveWorld(resources)
    return _rule_ok(world, rule, namespace, flow)


def naive_evaluate_endpoint(
    resources: Iterable[Resource] | NaiveWorld,
    endpoint: Endpoint,
    direction: Direction | str,
    flow: Flow,
) -> DirectionVerdict:
    """§2.5 by brute force; same result and trace as :func:`~.verdicts.evaluate_endpoint`."""
    world = resources if isinstance(resources, NaiveWorld) else NaiveWorld(resources)
    direction = Direction(direction)
    ident = EndpointId(endpoint.KIND, endpoint.metadata.namespace, endpoint.metadata.name)
    trace: list[TraceStep] = []
    labels = world.labels(endpoint)
    tiers = world.tiers()
    policies = world.policies()
    tier_names = sort_tiers([*tiers, *(policy_tier(p) for p in policies)], tiers)
    for tier in tier_names:
        applying = [
            p
            for p in policies
            if policy_tier(p) == tier
            and direction in governed_directions(p)
            and not (
                isinstance(p, GlobalNetworkPolicy) and (p.spec.pre_dnat or p.spec.do_not_track)
            )
            and _eval(policy_selector(p), labels)
        ]
        if not applying:
            trace.append(steps.tier_skipped(tier, direction))
            continue
        applying.sort(key=policy_sort_key)
        passed = False
        for pol in applying:
            pid = PolicyId(pol.KIND, pol.metadata.namespace, pol.metadata.name)
            rules = pol.spec.ingress if direction is Direction.INGRESS else pol.spec.egress
            for index, rule in enumerate(rules):
                if not _rule_ok(world, rule, pol.metadata.namespace, flow):
                    continue
                trace.append(steps.rule(tier, pid, index, rule.action))
                if rule.action in ("Allow", "Deny"):
                    return DirectionVerdict(ident, direction, rule.action, tuple(trace))
                if rule.action == "Pass":
                    passed = True
                    break
            if passed:
                break
            trace.append(steps.policy_no_match(tier, pid, len(rules)))
        if passed:
            continue
        default = tier_default_action(tiers.get(tier))
        trace.append(steps.end_of_tier(tier, default))
        if default != "Pass":
            return DirectionVerdict(ident, direction, "Deny", tuple(trace))
    profiles = world.profiles()
    for name in endpoint.spec.profiles:
        prof = profiles.get(name)
        if prof is None:
            trace.append(steps.profile_missing(name))
            return DirectionVerdict(ident, direction, "Deny", tuple(trace))
        rules = prof.spec.ingress if direction is Direction.INGRESS else prof.spec.egress
        left = False
        for index, rule in enumerate(rules):
            if not _rule_ok(world, rule, "", flow):
                continue
            trace.append(steps.rule(None, PolicyId("Profile", "", name), index, rule.action))
            if rule.action in ("Allow", "Deny"):
                return DirectionVerdict(ident, direction, rule.action, tuple(trace))
            if rule.action == "Pass":
                left = True
                break
        if not left:
            trace.append(steps.profile_no_match(name, len(rules)))
    trace.append(steps.final_deny(bool(endpoint.spec.profiles)))
    return DirectionVerdict(ident, direction, "Deny", tuple(trace))


def naive_evaluate_flow(
    resources: Iterable[Resource] | NaiveWorld,
    src: Endpoint | None,
    dst: Endpoint | None,
    flow: Flow,
    *,
    endpoint_to_host: EndpointToHostAction | str | None = None,
) -> FlowVerdict:
    """Brute-force counterpart of :func:`~.verdicts.evaluate_flow`."""
    world = resources if isinstance(resources, NaiveWorld) else NaiveWorld(resources)
    local = evaluate_local(
        src,
        dst,
        flow,
        lambda: naive_evaluate_endpoint(world, src, Direction.EGRESS, flow),  # type: ignore[arg-type]
        endpoint_to_host,
    )
    if local is not None:
        return local
    egress = naive_evaluate_endpoint(world, src, Direction.EGRESS, flow) if src else None
    ingress = naive_evaluate_endpoint(world, dst, Direction.INGRESS, flow) if dst else None
    return FlowVerdict(flow, egress, ingress)
