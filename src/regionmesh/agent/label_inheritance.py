"""LabelInheritanceIndex: every labelled entity with its effective labels, addresses and ports.

It holds WorkloadEndpoints, HostEndpoints, NetworkSets and GlobalNetworkSets of the whole
cluster (every host, every region) and the Profiles whose ``labelsToApply`` they inherit. For
each entity it computes an :class:`EntityInfo` — effective labels (by calling
:func:`regionmesh.policy.labels.effective_labels`, the one definition of them), the addresses
it contributes to selector IP sets, its named ports — and passes it to its sinks. When a
profile's labels change, only the entities that list that profile are recomputed.

Not its job: matching selectors (:mod:`.label_index`), deciding locality (:mod:`.filters`),
profile *rules* (:mod:`.active_rules`).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from regionmesh.agent.dispatcher import UpdateDispatcher
from regionmesh.agent.updates import GNS, HEP, NS, PROFILE, WEP, Key, ResourceUpdate
from regionmesh.model import (
    GlobalNetworkSet,
    HostEndpoint,
    NetworkSet,
    Profile,
    WorkloadEndpoint,
)
from regionmesh.policy.labels import LabelledEntity, effective_labels, namespace_profile_name

__all__ = [
    "EntityInfo",
    "EntitySink",
    "LabelInheritanceIndex",
    "NamedPort",
    "normalise_address",
]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NamedPort:
    """A port an endpoint declares by name (target of named-port rules)."""

    name: str
    protocol: int
    port: int


@dataclass(frozen=True, slots=True)
class EntityInfo:
    """What the graph needs of one labelled entity (a small, resource-free record).

    ``addresses`` are members of selector IP sets (bare addresses for /32 and /128, otherwise
    masked CIDRs); ``host_addresses`` are the endpoint's own addresses, for named-port members.
    """

    labels: Mapping[str, str]
    addresses: tuple[str, ...]
    host_addresses: tuple[str, ...]
    named_ports: tuple[NamedPort, ...]


class EntitySink(Protocol):
    """Receives entities with their effective labels (balanced update/remove per key)."""

    def on_entity_update(self, key: Key, entity: LabelledEntity, info: EntityInfo) -> None:
        """``key`` exists now with ``info`` (new or changed)."""

    def on_entity_remove(self, key: Key) -> None:
        """``key`` no longer exists (or is invalid)."""


def normalise_address(text: str) -> str | None:
    """``10.0.0.1/32`` → ``10.0.0.1``; ``10.0.0.7/24`` → ``10.0.0.0/24``; None if unparseable."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


def _dedup(values: list[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v is not None))


def entity_info(entity: LabelledEntity, labels: dict[str, str]) -> EntityInfo:
    """Build the :class:`EntityInfo` of ``entity`` given its effective labels."""
    named: list[NamedPort] = []
    if isinstance(entity, WorkloadEndpoint):
        addresses = _dedup([normalise_address(n) for n in entity.spec.ip_networks])
        ports = [(p.name, p.protocol, p.port) for p in entity.spec.ports]
    elif isinstance(entity, HostEndpoint):
        addresses = _dedup([normalise_address(n) for n in entity.spec.expected_ips])
        ports = [(p.name, p.protocol, p.port) for p in entity.spec.ports]
    else:
        addresses = _dedup([normalise_address(n) for n in entity.spec.nets])
        ports = []
    for name, protocol, port in ports:
        if name and protocol is not None and protocol.is_known:
            named.append(NamedPort(name, protocol.number, port))
    hosts = tuple(a for a in addresses if "/" not in a)
    return EntityInfo(labels, addresses, hosts, tuple(dict.fromkeys(named)))


class LabelInheritanceIndex:
    """Keeps entities and profile labels; emits each entity's :class:`EntityInfo` on change."""

    def __init__(self, sinks: tuple[EntitySink, ...]) -> None:
        self._sinks = sinks
        self._entities: dict[Key, LabelledEntity] = {}
        self._profiles: dict[str, Profile] = {}
        self._referrers: dict[str, set[Key]] = {}  # profile name -> entity keys listing it
        self._profile_refs: dict[Key, tuple[str, ...]] = {}

    def register_with(self, dispatcher: UpdateDispatcher) -> None:
        """Entities and profiles."""
        for kind in (WEP, HEP, NS, GNS):
            dispatcher.register(kind, self.on_entity_update)
        dispatcher.register(PROFILE, self.on_profile_update)

    def on_entity_update(self, update: ResourceUpdate) -> None:
        """An entity changed or went away."""
        key = update.key
        value = update.value
        if not isinstance(value, WorkloadEndpoint | HostEndpoint | NetworkSet | GlobalNetworkSet):
            if self._entities.pop(key, None) is not None:
                self._set_refs(key, ())
                for sink in self._sinks:
                    sink.on_entity_remove(key)
            return
        self._entities[key] = value
        self._set_refs(key, self._profile_names(value))
        self._emit(key, value)

    def on_profile_update(self, update: ResourceUpdate) -> None:
        """A profile changed: re-derive the entities inheriting its labels, if they changed."""
        name = update.name
        value = update.value if isinstance(update.value, Profile) else None
        old = self._profiles.get(name)
        if value is None:
            self._profiles.pop(name, None)
        else:
            self._profiles[name] = value
        old_labels = old.spec.labels_to_apply if old is not None else {}
        new_labels = value.spec.labels_to_apply if value is not None else {}
        if old_labels == new_labels:
            return
        for key in list(self._referrers.get(name, ())):
            self._emit(key, self._entities[key])

    @staticmethod
    def _profile_names(entity: LabelledEntity) -> tuple[str, ...]:
        if isinstance(entity, WorkloadEndpoint | HostEndpoint):
            return tuple(entity.spec.profiles)
        if isinstance(entity, NetworkSet):
            return (namespace_profile_name(entity.metadata.namespace),)
        return ()

    def _set_refs(self, key: Key, names: tuple[str, ...]) -> None:
        old = self._profile_refs.get(key, ())
        if old == names:
            return
        for name in old:
            refs = self._referrers.get(name)
            if refs is not None:
                refs.discard(key)
                if not refs:
                    del self._referrers[name]
        for name in names:
            self._referrers.setdefault(name, set()).add(key)
        if names:
            self._profile_refs[key] = names
        else:
            self._profile_refs.pop(key, None)

    def _emit(self, key: Key, entity: LabelledEntity) -> None:
        labels = effective_labels(entity, self._profiles.get)
        info = entity_info(entity, labels)
        for sink in self._sinks:
            sink.on_entity_update(key, entity, info)
