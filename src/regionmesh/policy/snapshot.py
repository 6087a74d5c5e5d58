"""An immutable, indexed in-memory view of a set of resources, for fast policy evaluation.

:class:`Snapshot` is built once from an iterable of model resources (anything that is not a
policy, tier, profile, endpoint or network set is ignored; a later duplicate replaces an
earlier one). It pre-computes and indexes:

* effective labels (§2.2) of every endpoint and network set, *grouped*: entities with
  identical label sets share one :class:`LabelGroup` (VMs of the same security groups do), so
  a selector is evaluated once per group and the result cached;
* every policy selector, rewritten (§2.3) and parsed once; a candidate index maps one label
  key each selector *requires* to the policies, so finding the policies of an endpoint looks at
  a few candidates instead of every policy; the result is cached per label group;
* addresses: endpoint IPs (``ipNetworks``, ``expectedIPs``) and network-set ``nets`` by prefix
  length, so "which entities own this address" is a handful of dict lookups;
* rules, compiled lazily once per policy/profile.

Tiers are ordered per §2.4; the ``default`` tier is synthesised (order 1000000, Deny) when the
input lacks it, as Calico always creates it. The snapshot answers questions; the verdict
algorithm is :mod:`regionmesh.policy.verdicts`' job. Internal caches fill on demand (benign
under concurrent readers), the observable content never changes.

It is over 500 lines on purpose: it is one object, the indexes above are built together from
one pass over the input and share the label groups, and splitting them would only move
private state across module boundaries.
"""

from __future__ import annotations

import gc
import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from regionmesh.model import (
    DEFAULT_TIER,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    HostEndpoint,
    NetworkPolicy,
    NetworkSet,
    Profile,
    Resource,
    Rule,
    Tier,
    WorkloadEndpoint,
)
from regionmesh.policy.flows import (
    PROTOCOL_TCP,
    CompiledRule,
    IPAddress,
    IPNetwork,
    compile_rule,
    parse_net,
)
from regionmesh.policy.labels import LabelledEntity, effective_labels
from regionmesh.policy.ordering import (
    Direction,
    default_tier,
    governed_directions,
    policy_sort_key,
    policy_tier,
    sort_tiers,
)
from regionmesh.policy.selectors import policy_selector
from regionmesh.policy.trace import EndpointId, PolicyId
from regionmesh.selector import Selector

__all__ = [
    "Endpoint",
    "EntityRecord",
    "LabelGroup",
    "PolicyRecord",
    "ProfileRecord",
    "Snapshot",
    "endpoint_id",
]

Endpoint = WorkloadEndpoint | HostEndpoint
Policy = NetworkPolicy | GlobalNetworkPolicy
NamedPort = tuple[str, int, int]
"""(name, protocol number, port) declared by an endpoint."""


def endpoint_id(endpoint: Endpoint) -> EndpointId:
    """The identity of an endpoint resource."""
    return EndpointId(endpoint.KIND, endpoint.metadata.namespace, endpoint.metadata.name)


@dataclass(frozen=True, slots=True, eq=False)
class LabelGroup:
    """One distinct effective label set, shared by every entity that has it."""

    gid: int
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True, eq=False)
class EntityRecord:
    """An endpoint or network set as the snapshot sees it."""

    resource: LabelledEntity
    group: LabelGroup
    addresses: tuple[IPAddress, ...]
    nets: tuple[IPNetwork, ...]
    ports: tuple[NamedPort, ...]

    @property
    def kind(self) -> str:
        """The resource kind."""
        return self.resource.KIND

    @property
    def is_endpoint(self) -> bool:
        """True for workload and host endpoints (policed; named ports)."""
        return isinstance(self.resource, (WorkloadEndpoint, HostEndpoint))

    @property
    def labels(self) -> Mapping[str, str]:
        """Effective labels (shared with the group: do not modify)."""
        return self.group.labels


class _Rules:
    """Lazily compiled ingress/egress rules of a policy or profile."""

    __slots__ = ("_ingress", "_egress", "_compiled", "_namespace")

    def __init__(self, ingress: list[Rule], egress: list[Rule], namespace: str) -> None:
        self._ingress = ingress
        self._egress = egress
        self._namespace = namespace
        self._compiled: dict[Direction, tuple[CompiledRule, ...]] = {}

    def rules(self, direction: Direction) -> tuple[CompiledRule, ...]:
        """Compiled rules of ``direction``, in order."""
        got = self._compiled.get(direction)
        if got is None:
            raw = self._ingress if direction is Direction.INGRESS else self._egress
            got = tuple(compile_rule(r, self._namespace) for r in raw)
            self._compiled[direction] = got
        return got


class PolicyRecord(_Rules):
    """A (G)NP with its rewritten selector, tier, rank and compiled rules."""

    __slots__ = ("policy", "ident", "selector", "tier", "directions", "rank", "workload_ok")

    def __init__(self, policy: Policy) -> None:
        super().__init__(policy.spec.ingress, policy.spec.egress, policy.metadata.namespace)
        self.policy = policy
        self.ident = PolicyId(policy.KIND, policy.metadata.namespace, policy.metadata.name)
        self.selector: Selector = policy_selector(policy)
        self.tier = policy_tier(policy)
        self.directions = governed_directions(policy)
        self.rank = 0
        untracked = isinstance(policy, GlobalNetworkPolicy) and (
            policy.spec.pre_dnat or policy.spec.do_not_track
        )
        self.workload_ok = not untracked
        """False for preDNAT/doNotTrack GNPs, which never apply to workload endpoints."""


class ProfileRecord(_Rules):
    """A profile with its compiled rules (profiles are cluster-scoped: namespace ``""``)."""

    __slots__ = ("profile",)

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile.spec.ingress, profile.spec.egress, "")
        self.profile = profile


def _addresses(
    cidrs: Iterable[str],
) -> tuple[tuple[IPAddress, ...], tuple[IPNetwork, ...]]:
    """Split CIDRs into single addresses and wider networks (unparseable entries are ignored,
    as Felix ignores what it cannot parse)."""
    addrs: list[IPAddress] = []
    nets: list[IPNetwork] = []
    for text in cidrs:
        host, _, plen = text.partition("/")
        try:
            if not plen or plen == ("128" if ":" in host else "32"):
                addrs.append(ipaddress.ip_address(host))  # fast path: one address
                continue
            net = parse_net(text)
        except ValueError:
            continue
        if net.num_addresses == 1:
            addrs.append(net.network_address)
        else:
            nets.append(net)
    return tuple(addrs), tuple(nets)


def _ports(resource: LabelledEntity) -> tuple[NamedPort, ...]:
    if not isinstance(resource, (WorkloadEndpoint, HostEndpoint)):
        return ()
    out: list[NamedPort] = []
    for p in resource.spec.ports:
        proto = PROTOCOL_TCP
        if p.protocol is not None:
            try:
                proto = p.protocol.number
            except ValueError:
                continue
        out.append((p.name, proto, p.port))
    return tuple(out)


class Snapshot:
    """Immutable indexed view of resources; see the module docstring."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        # Building allocates millions of small objects that all survive: pausing the cyclic
        # GC meanwhile avoids repeated full scans of the (large) young heap.
        paused = gc.isenabled()
        gc.disable()
        try:
            self._build(resources)
        finally:
            if paused:
                gc.enable()

    def _build(self, resources: Iterable[Resource]) -> None:
        tiers: dict[str, Tier] = {}
        profiles: dict[str, Profile] = {}
        policies: dict[tuple[str, str, str], Policy] = {}
        entities: dict[tuple[str, str, str], LabelledEntity] = {}
        for res in resources:
            key = (res.KIND, res.metadata.namespace, res.metadata.name)
            if isinstance(res, Tier):
                tiers[res.metadata.name] = res
            elif isinstance(res, Profile):
                profiles[res.metadata.name] = res
            elif isinstance(res, (NetworkPolicy, GlobalNetworkPolicy)):
                policies[key] = res
            elif isinstance(res, (WorkloadEndpoint, HostEndpoint, NetworkSet, GlobalNetworkSet)):
                entities[key] = res
        if DEFAULT_TIER not in tiers:
            tiers[DEFAULT_TIER] = default_tier()
        self._tiers = tiers
        self._profiles = profiles
        self._profile_records = {n: ProfileRecord(p) for n, p in profiles.items()}

        # ---- policies, ranked by (tier order, order within tier)
        records = [PolicyRecord(p) for p in policies.values()]
        self._tier_names = tuple(sort_tiers([*tiers, *(r.tier for r in records)], tiers))
        tier_rank = {name: i for i, name in enumerate(self._tier_names)}
        records.sort(key=lambda r: (tier_rank[r.tier], policy_sort_key(r.policy)))
        for rank, rec in enumerate(records):
            rec.rank = rank
        self._policies = tuple(records)
        self._policy_by_id = {(r.ident.kind, r.ident.namespace, r.ident.name): r for r in records}
        self._build_candidate_index(records)

        # ---- entities, label groups, address index
        self._groups: dict[frozenset[tuple[str, str]], LabelGroup] = {}
        self._group_members: dict[int, list[EntityRecord]] = defaultdict(list)
        self._entities: dict[tuple[str, str, str], EntityRecord] = {}
        self._exact: dict[tuple[int, int], list[EntityRecord]] = defaultdict(list)
        self._by_prefix: dict[tuple[int, int], dict[int, list[EntityRecord]]] = {}
        for key, res in entities.items():
            ent = self._make_record(res)
            self._entities[key] = ent
            self._group_members[ent.group.gid].append(ent)
            for addr in ent.addresses:
                self._exact[(addr.version, int(addr))].append(ent)
            for net in ent.nets:
                table = self._by_prefix.setdefault((net.version, net.prefixlen), {})
                table.setdefault(int(net.network_address), []).append(ent)
        self._prefixes = {
            v: sorted((p for ver, p in self._by_prefix if ver == v), reverse=True) for v in (4, 6)
        }

        # ---- caches
        self._match_cache: dict[tuple[Selector, int], bool] = {}
        self._members_cache: dict[Selector, tuple[EntityRecord, ...]] = {}
        self._group_policies: dict[tuple[int, bool], tuple[PolicyRecord, ...]] = {}
        self._tiers_cache: dict[
            tuple[int, bool, Direction], tuple[tuple[str, tuple[PolicyRecord, ...]], ...]
        ] = {}

    # ------------------------------------------------------------------ construction helpers

    def _build_candidate_index(self, records: list[PolicyRecord]) -> None:
        req = [frozenset(r.selector.required_labels()) for r in records]
        popularity: dict[str, int] = defaultdict(int)
        for keys in req:
            for k in keys:
                popularity[k] += 1
        self._by_key: dict[str, list[PolicyRecord]] = defaultdict(list)
        self._unindexed: list[PolicyRecord] = []
        for rec, keys in zip(records, req, strict=True):
            if keys:
                best = min(keys, key=lambda k: (popularity[k], k))
                self._by_key[best].append(rec)
            else:
                self._unindexed.append(rec)

    def _group_for(self, labels: dict[str, str]) -> LabelGroup:
        key = frozenset(labels.items())
        group = self._groups.get(key)
        if group is None:
            group = LabelGroup(len(self._groups), labels)
            self._groups[key] = group
        return group

    def _make_record(self, res: LabelledEntity) -> EntityRecord:
        labels = effective_labels(res, self._profiles)
        if isinstance(res, WorkloadEndpoint):
            addrs, nets = _addresses(res.spec.ip_networks)
        elif isinstance(res, HostEndpoint):
            addrs, nets = _addresses(res.spec.expected_ips)
        else:
            addrs, nets = _addresses(res.spec.nets)
        return EntityRecord(res, self._group_for(labels), addrs, nets, _ports(res))

    # ------------------------------------------------------------------ plain lookups

    @property
    def tier_names(self) -> tuple[str, ...]:
        """Every tier (existing or referenced by a policy) in evaluation order."""
        return self._tier_names

    def tier(self, name: str) -> Tier | None:
        """The Tier called ``name``, or None if it does not exist."""
        return self._tiers.get(name)

    @property
    def tiers(self) -> Mapping[str, Tier]:
        """Existing tiers by name (including a synthesised ``default``)."""
        return self._tiers

    def profile(self, name: str) -> Profile | None:
        """The Profile called ``name``, or None."""
        return self._profiles.get(name)

    @property
    def profiles(self) -> Mapping[str, Profile]:
        """Profiles by name."""
        return self._profiles

    def profile_record(self, name: str) -> ProfileRecord | None:
        """The profile with compiled rules, or None."""
        return self._profile_records.get(name)

    @property
    def policies(self) -> tuple[PolicyRecord, ...]:
        """Every policy, in global evaluation order (tier order, then order within tier)."""
        return self._policies

    def policy(self, kind: str, namespace: str, name: str) -> PolicyRecord | None:
        """A policy by identity (``namespace`` is ``""`` for GNPs)."""
        return self._policy_by_id.get((kind, namespace, name))

    def workload_endpoint(self, namespace: str, name: str) -> WorkloadEndpoint | None:
        """A WorkloadEndpoint by namespace and name."""
        rec = self._entities.get(("WorkloadEndpoint", namespace, name))
        return rec.resource if rec is not None else None  # type: ignore[return-value]

    def host_endpoint(self, name: str) -> HostEndpoint | None:
        """A HostEndpoint by name."""
        rec = self._entities.get(("HostEndpoint", "", name))
        return rec.resource if rec is not None else None  # type: ignore[return-value]

    def endpoints(self) -> list[Endpoint]:
        """Every workload and host endpoint."""
        return [
            r.resource  # type: ignore[misc]
            for r in self._entities.values()
            if r.is_endpoint
        ]

    def entities(self) -> list[EntityRecord]:
        """Every endpoint and network set record."""
        return list(self._entities.values())

    def record_for(self, entity: LabelledEntity) -> EntityRecord:
        """The record of ``entity``; built ad hoc when it is not part of the snapshot (so
        hypothetical endpoints can be evaluated too)."""
        key = (entity.KIND, entity.metadata.namespace, entity.metadata.name)
        rec = self._entities.get(key)
        if rec is not None and rec.resource is entity:
            return rec
        if rec is not None and rec.resource == entity:
            return rec
        return self._make_record(entity)

    def labels_of(self, entity: LabelledEntity) -> Mapping[str, str]:
        """Effective labels of ``entity`` (read-only view)."""
        return self.record_for(entity).labels

    # ------------------------------------------------------------------ addresses

    def entities_at(self, ip: IPAddress | str) -> tuple[EntityRecord, ...]:
        """Every endpoint/network set owning ``ip`` (exact IPs, then nets, longest first)."""
        addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        value = int(addr)
        found: list[EntityRecord] = list(self._exact.get((addr.version, value), ()))
        bits = 32 if addr.version == 4 else 128
        for plen in self._prefixes[addr.version]:
            table = self._by_prefix[(addr.version, plen)]
            masked = value & (((1 << plen) - 1) << (bits - plen)) if plen else 0
            hit = table.get(masked)
            if hit:
                found.extend(hit)
        return tuple(found)

    def endpoints_at(self, ip: IPAddress | str) -> tuple[Endpoint, ...]:
        """The workload/host endpoints owning ``ip`` (usually zero or one)."""
        return tuple(
            r.resource  # type: ignore[misc]
            for r in self.entities_at(ip)
            if r.is_endpoint
        )

    def group_matches(self, selector: Selector, group: LabelGroup) -> bool:
        """Cached ``selector.evaluate(group.labels)``."""
        key = (selector, group.gid)
        hit = self._match_cache.get(key)
        if hit is None:
            hit = selector.evaluate(group.labels)
            self._match_cache[key] = hit
        return hit

    def address_matches(self, selector: Selector, ip: IPAddress) -> bool:
        """True if some entity owning ``ip`` matches ``selector`` (Felix's IP-set membership)."""
        for rec in self.entities_at(ip):
            if self.group_matches(selector, rec.group):
                return True
        return False

    def named_port_matches(
        self, selector: Selector | None, name: str, ip: IPAddress, protocol: int, port: int
    ) -> bool:
        """True if an endpoint owning ``ip`` (matching ``selector``, or any when None) declares
        port ``name`` as (``protocol``, ``port``)."""
        for rec in self.entities_at(ip):
            if not rec.ports:
                continue
            if selector is not None and not self.group_matches(selector, rec.group):
                continue
            for p_name, p_proto, p_port in rec.ports:
                if p_name == name and p_proto == protocol and p_port == port:
                    return True
        return False

    def members(self, selector: Selector) -> tuple[EntityRecord, ...]:
        """Every endpoint and network set whose effective labels match ``selector`` (cached)."""
        hit = self._members_cache.get(selector)
        if hit is None:
            found: list[EntityRecord] = []
            for group in self._groups.values():
                if self.group_matches(selector, group):
                    found.extend(self._group_members.get(group.gid, ()))
            hit = tuple(found)
            self._members_cache[selector] = hit
        return hit

    def addresses_matching(
        self, selector: Selector
    ) -> tuple[frozenset[IPAddress], frozenset[IPNetwork]]:
        """The IP set of ``selector``: single addresses and networks of its members."""
        addrs: set[IPAddress] = set()
        nets: set[IPNetwork] = set()
        for rec in self.members(selector):
            addrs.update(rec.addresses)
            nets.update(rec.nets)
        return frozenset(addrs), frozenset(nets)

    # ------------------------------------------------------------------ policy selection

    def _policies_for_group(self, group: LabelGroup, workload: bool) -> tuple[PolicyRecord, ...]:
        key = (group.gid, workload)
        hit = self._group_policies.get(key)
        if hit is None:
            labels = group.labels
            candidates: list[PolicyRecord] = [*self._unindexed]
            for label_key in labels:
                bucket = self._by_key.get(label_key)
                if bucket:
                    candidates.extend(bucket)
            chosen = [
                p
                for p in candidates
                if (p.workload_ok or not workload) and self.group_matches(p.selector, group)
            ]
            chosen.sort(key=lambda p: p.rank)
            hit = tuple(chosen)
            self._group_policies[key] = hit
        return hit

    def selecting_policies(self, endpoint: Endpoint) -> tuple[PolicyRecord, ...]:
        """Policies whose selector selects ``endpoint``, in evaluation order (any direction;
        preDNAT/doNotTrack policies are left out for workload endpoints)."""
        rec = self.record_for(endpoint)
        return self._policies_for_group(rec.group, isinstance(endpoint, WorkloadEndpoint))

    def applicable_tiers(
        self, endpoint: Endpoint, direction: Direction
    ) -> tuple[tuple[str, tuple[PolicyRecord, ...]], ...]:
        """``(tier, policies)`` for every tier with a policy applying to ``endpoint`` in
        ``direction``, in evaluation order. For host endpoints only the normal (tracked,
        non-preDNAT) policies are returned, i.e. traffic to/from the host itself."""
        rec = self.record_for(endpoint)
        workload = isinstance(endpoint, WorkloadEndpoint)
        key = (rec.group.gid, workload, direction)
        hit = self._tiers_cache.get(key)
        if hit is None:
            by_tier: dict[str, list[PolicyRecord]] = {}
            for p in self._policies_for_group(rec.group, workload):
                if direction in p.directions and p.workload_ok:
                    by_tier.setdefault(p.tier, []).append(p)
            hit = tuple((t, tuple(ps)) for t, ps in by_tier.items())
            self._tiers_cache[key] = hit
        return hit
