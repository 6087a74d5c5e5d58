"""PolicyResolver: the ordered tiers and policies of each local workload endpoint.

Felix's ``policy_resolver.go`` + ``policy_sorter.go``. It hears (policy, local endpoint)
matches from the active-rules calculator, the policies themselves, Tiers, and the local
endpoints; changes only mark endpoints *dirty*. :meth:`PolicyResolver.flush` then builds one
:class:`~regionmesh.dataplane.messages.WorkloadEndpointUpdate` per dirty endpoint:

* tiers in evaluation order and each tier's policies in order — both orders, the tier default
  action (``Pass`` or Deny) and which directions a policy governs (a policy stored without
  ``types`` governs both) come from :mod:`regionmesh.policy.ordering`;
* a tier appears only if some policy in it applies in at least one direction, and lists per
  direction only the policies governing that direction;
* the endpoint's profiles, in its order, follow the tiers;
* its floating IPs (``spec.ipNATs``) as :class:`~regionmesh.dataplane.messages.NatMapping`
  per family (Felix ``Ipv4Nat``/``Ipv6Nat``). A mapping Calico's validator would refuse
  (internal address not among the endpoint's ``ipNetworks``, or families differ) is left out
  with a warning rather than DNATing to an address the VM does not own.

A ``default`` tier with no Tier resource behaves as Calico's built-in one (order 1000000,
Deny). Converting rules and deciding which policies are active are other nodes' jobs.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping

from regionmesh.agent.dispatcher import UpdateDispatcher
from regionmesh.agent.label_inheritance import EntityInfo, normalise_address
from regionmesh.agent.updates import TIER, EndpointSink, Key, ResourceUpdate, endpoint_id
from regionmesh.dataplane.messages import (
    NatMapping,
    TierDefaultAction,
    TierInfo,
    WorkloadEndpointUpdate,
)
from regionmesh.errors import ValidationError
from regionmesh.model import (
    DEFAULT_TIER,
    GlobalNetworkPolicy,
    NetworkPolicy,
    Tier,
    WorkloadEndpoint,
)
from regionmesh.policy.labels import LabelledEntity
from regionmesh.policy.ordering import (
    Direction,
    PolicySortKey,
    default_tier,
    governed_directions,
    policy_sort_key,
    policy_tier,
    sort_tiers,
    tier_default_action,
)

__all__ = ["PolicyResolver"]

LOG = logging.getLogger(__name__)

Policy = NetworkPolicy | GlobalNetworkPolicy


class _PolicyMeta:
    """What ordering needs of a policy (kept instead of re-reading the resource)."""

    __slots__ = ("tier", "sort_key", "ingress", "egress")

    def __init__(self, policy: Policy) -> None:
        directions = governed_directions(policy)
        self.tier: str = policy_tier(policy)
        self.sort_key: PolicySortKey = policy_sort_key(policy)
        self.ingress = Direction.INGRESS in directions
        self.egress = Direction.EGRESS in directions

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _PolicyMeta) and (
            self.tier,
            self.sort_key,
            self.ingress,
            self.egress,
        ) == (other.tier, other.sort_key, other.ingress, other.egress)

    __hash__ = None  # type: ignore[assignment]


class PolicyResolver:
    """Keeps per-endpoint policy matches; :meth:`flush` emits the dirty endpoints."""

    def __init__(self, sink: EndpointSink) -> None:
        self._sink = sink
        self._endpoints: dict[str, WorkloadEndpoint] = {}
        self._policies: dict[str, _PolicyMeta] = {}
        self._tiers: dict[str, Tier] = {DEFAULT_TIER: default_tier()}
        self._matches_by_endpoint: dict[str, set[str]] = {}
        self._matches_by_policy: dict[str, set[str]] = {}
        self._dirty: set[str] = set()

    def register_with(self, dispatcher: UpdateDispatcher) -> None:
        """Tiers (policies and endpoints arrive from the active-rules calculator/local filter)."""
        dispatcher.register(TIER, self.on_tier_update)

    # ----------------------------------------------------------------- inputs ----
    def on_tier_update(self, update: ResourceUpdate) -> None:
        """A tier changed: its endpoints need re-sorting."""
        name = update.name
        tier = update.value if isinstance(update.value, Tier) else None
        if tier is None:
            if name == DEFAULT_TIER:
                self._tiers[name] = default_tier()
            else:
                self._tiers.pop(name, None)
        else:
            self._tiers[name] = tier
        for pid, meta in self._policies.items():
            if meta.tier == name:
                self._dirty.update(self._matches_by_policy.get(pid, ()))

    def on_policy_update(self, policy_id: str, policy: Policy | None) -> None:
        """A policy's order, tier or types may have changed."""
        if policy is None:
            self._policies.pop(policy_id, None)
            return
        meta = _PolicyMeta(policy)
        if self._policies.get(policy_id) != meta:
            self._policies[policy_id] = meta
            self._dirty.update(self._matches_by_policy.get(policy_id, ()))

    def on_policy_match_started(self, policy_id: str, endpoint_id: str) -> None:
        """The policy now selects the endpoint."""
        self._matches_by_endpoint.setdefault(endpoint_id, set()).add(policy_id)
        self._matches_by_policy.setdefault(policy_id, set()).add(endpoint_id)
        self._dirty.add(endpoint_id)

    def on_policy_match_stopped(self, policy_id: str, endpoint_id: str) -> None:
        """The policy no longer selects the endpoint."""
        for index, key, value in (
            (self._matches_by_endpoint, endpoint_id, policy_id),
            (self._matches_by_policy, policy_id, endpoint_id),
        ):
            values = index.get(key)
            if values is not None:
                values.discard(value)
                if not values:
                    del index[key]
        self._dirty.add(endpoint_id)

    def on_entity_update(self, key: Key, entity: LabelledEntity, info: EntityInfo) -> None:
        """A local endpoint was added or changed."""
        if isinstance(entity, WorkloadEndpoint):
            eid = endpoint_id(key[1], key[2])
            self._endpoints[eid] = entity
            self._dirty.add(eid)

    def on_entity_remove(self, key: Key) -> None:
        """A local endpoint went away."""
        eid = endpoint_id(key[1], key[2])
        if self._endpoints.pop(eid, None) is not None:
            self._dirty.add(eid)

    # ---------------------------------------------------------------- queries ----
    def endpoints(self) -> Mapping[str, WorkloadEndpoint]:
        """The local endpoints by id (``<namespace>/<name>``)."""
        return self._endpoints

    # ------------------------------------------------------------------ flush ----
    def flush(self) -> None:
        """Send an update (or removal) for every dirty endpoint."""
        dirty, self._dirty = self._dirty, set()
        for eid in sorted(dirty):
            endpoint = self._endpoints.get(eid)
            if endpoint is None:
                self._sink.on_endpoint_removed(eid)
                continue
            try:
                msg = self._endpoint_message(eid, endpoint)
            except ValidationError as exc:
                LOG.error("Cannot program endpoint %s, leaving it out: %s", eid, exc)
                self._sink.on_endpoint_removed(eid)
                continue
            self._sink.on_endpoint_update(msg)

    def tiers_of(self, eid: str) -> tuple[TierInfo, ...]:
        """The ordered tiers of a local endpoint, from its current matches."""
        by_tier: dict[str, list[tuple[PolicySortKey, str, _PolicyMeta]]] = {}
        for pid in self._matches_by_endpoint.get(eid, ()):
            meta = self._policies.get(pid)
            if meta is not None:
                by_tier.setdefault(meta.tier, []).append((meta.sort_key, pid, meta))
        known = self._tiers
        out: list[TierInfo] = []
        for name in sort_tiers(by_tier, known):
            members = sorted(by_tier[name], key=lambda item: item[0])
            ingress = tuple(pid for _, pid, meta in members if meta.ingress)
            egress = tuple(pid for _, pid, meta in members if meta.egress)
            if not (ingress or egress):
                continue
            action = TierDefaultAction(tier_default_action(known.get(name)))
            out.append(TierInfo(name, ingress, egress, action))
        return tuple(out)

    def _endpoint_message(self, eid: str, endpoint: WorkloadEndpoint) -> WorkloadEndpointUpdate:
        spec = endpoint.spec
        v4: list[str] = []
        v6: list[str] = []
        for net in spec.ip_networks:
            addr = normalise_address(net)
            if addr is None:
                continue
            text = addr if "/" in addr else addr + ("/128" if ":" in addr else "/32")
            (v6 if ":" in addr else v4).append(text)
        nats4, nats6 = _nat_mappings(eid, endpoint, v4 + v6)
        return WorkloadEndpointUpdate(
            id=eid,
            name=spec.interface_name,
            mac=spec.mac or None,
            ipv4_nets=tuple(dict.fromkeys(v4)),
            ipv6_nets=tuple(dict.fromkeys(v6)),
            tiers=self.tiers_of(eid),
            profile_ids=tuple(dict.fromkeys(spec.profiles)),
            ipv4_nats=nats4,
            ipv6_nats=nats6,
        )


def _nat_mappings(
    eid: str, endpoint: WorkloadEndpoint, nets: list[str]
) -> tuple[tuple[NatMapping, ...], tuple[NatMapping, ...]]:
    """``spec.ipNATs`` split by family, normalised, deduplicated, in the endpoint's order."""
    networks = [ipaddress.ip_network(n, strict=False) for n in nets]
    out: dict[int, dict[NatMapping, None]] = {4: {}, 6: {}}
    for nat in endpoint.spec.ip_nats:
        try:
            internal = ipaddress.ip_address(nat.internal_ip)
            external = ipaddress.ip_address(nat.external_ip)
        except ValueError:
            LOG.warning("Endpoint %s: ignoring unparseable ipNAT %s", eid, nat)
            continue
        if internal.version != external.version or not any(internal in n for n in networks):
            LOG.warning(
                "Endpoint %s: ignoring ipNAT %s -> %s (NAT is not in the endpoint networks)",
                eid,
                external,
                internal,
            )
            continue
        out[internal.version][NatMapping(str(internal), str(external))] = None
    return tuple(out[4]), tuple(out[6])
