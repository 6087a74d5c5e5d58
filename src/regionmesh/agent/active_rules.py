"""ActiveRulesCalculator: which policies and profiles are active on this host.

Felix's ``active_rules_calculator.go``. A (Global)NetworkPolicy is *active* while its own
selector — rewritten by :func:`regionmesh.policy.selectors.policy_selector`, the one place that
knows the namespace and ``namespaceSelector`` rules — matches at least one **local** workload
endpoint; a profile is active while a local endpoint lists it. The matching runs in a
:class:`~regionmesh.agent.label_index.LabelIndex` over the local endpoints, so a policy change
evaluates only that policy's selector and an endpoint change only the selectors it can affect.

``preDNAT`` and ``doNotTrack`` policies never apply to workload endpoints (policy-model.md
§2.8), so they are treated as absent here; host endpoints are not enforced by this agent.

What it tells others: the :class:`ActiveRulesListener` (the rule scanner) hears
active/inactive/changed owners; the :class:`PolicyMatchListener` (the policy resolver) hears
every policy and every (policy, endpoint) match. Converting rules and ordering policies are
theirs.
"""

from __future__ import annotations

import logging
from typing import Protocol

from regionmesh.agent.dispatcher import UpdateDispatcher
from regionmesh.agent.label_index import LabelIndex
from regionmesh.agent.label_inheritance import EntityInfo
from regionmesh.agent.updates import GNP, NP, PROFILE, Key, ResourceUpdate, endpoint_id, policy_id
from regionmesh.model import GlobalNetworkPolicy, NetworkPolicy, Profile, WorkloadEndpoint
from regionmesh.policy.labels import LabelledEntity
from regionmesh.policy.selectors import policy_selector
from regionmesh.selector import SelectorError

__all__ = ["ActiveRulesCalculator", "ActiveRulesListener", "PolicyMatchListener"]

LOG = logging.getLogger(__name__)

Policy = NetworkPolicy | GlobalNetworkPolicy


class ActiveRulesListener(Protocol):
    """Hears which owners are active (the rule scanner)."""

    def on_policy_active(self, policy_id: str, policy: Policy) -> None:
        """Active, new or changed."""

    def on_policy_inactive(self, policy_id: str) -> None:
        """No longer active."""

    def on_profile_active(self, name: str, profile: Profile | None) -> None:
        """Used by a local endpoint (None: the profile does not exist)."""

    def on_profile_inactive(self, name: str) -> None:
        """No longer used by a local endpoint."""


class PolicyMatchListener(Protocol):
    """Hears policies and their local matches (the policy resolver)."""

    def on_policy_update(self, policy_id: str, policy: Policy | None) -> None:
        """A policy's current value (None: gone, invalid, or not for workloads)."""

    def on_policy_match_started(self, policy_id: str, endpoint_id: str) -> None:
        """The policy now selects the local endpoint."""

    def on_policy_match_stopped(self, policy_id: str, endpoint_id: str) -> None:
        """The policy no longer selects the local endpoint."""


def applies_to_workloads(policy: Policy) -> bool:
    """False for preDNAT/doNotTrack GNPs, which Felix never puts on workload endpoints."""
    if isinstance(policy, GlobalNetworkPolicy):
        return not (policy.spec.pre_dnat or policy.spec.do_not_track)
    return True


class ActiveRulesCalculator:
    """Tracks policies/profiles and local endpoints; reports what is active."""

    def __init__(self, rules: ActiveRulesListener, matches: PolicyMatchListener) -> None:
        self._rules = rules
        self._matches = matches
        self._index: LabelIndex[str, str] = LabelIndex(
            self._on_match_started, self._on_match_stopped
        )
        self._policies: dict[str, Policy] = {}
        self._active: set[str] = set()
        self._profiles: dict[str, Profile] = {}
        self._endpoint_profiles: dict[str, tuple[str, ...]] = {}
        self._profile_users: dict[str, int] = {}

    def register_with(self, dispatcher: UpdateDispatcher) -> None:
        """Policies and profiles (local endpoints arrive through the local filter)."""
        dispatcher.register(GNP, self.on_policy_update)
        dispatcher.register(NP, self.on_policy_update)
        dispatcher.register(PROFILE, self.on_profile_update)

    # --------------------------------------------------------------- policies ----
    def on_policy_update(self, update: ResourceUpdate) -> None:
        """A policy was written, deleted or found invalid."""
        pid = policy_id(update.kind, update.namespace, update.name)
        policy = update.value
        selector = None
        if isinstance(policy, NetworkPolicy | GlobalNetworkPolicy) and applies_to_workloads(policy):
            try:
                selector = policy_selector(policy)
            except SelectorError as exc:
                LOG.warning("Ignoring %s with a bad selector: %s", pid, exc)
        if selector is None or not isinstance(policy, NetworkPolicy | GlobalNetworkPolicy):
            if self._policies.pop(pid, None) is not None:
                self._matches.on_policy_update(pid, None)
                self._index.delete_selector(pid)  # last match stopping deactivates it
            return
        old = self._policies.get(pid)
        if old == policy:
            return
        self._policies[pid] = policy
        self._matches.on_policy_update(pid, policy)
        was_active = pid in self._active
        self._index.update_selector(pid, selector)
        if was_active and pid in self._active:
            self._rules.on_policy_active(pid, policy)  # still active, content changed

    def _on_match_started(self, pid: str, eid: str) -> None:
        if pid not in self._active:
            self._active.add(pid)
            self._rules.on_policy_active(pid, self._policies[pid])
        self._matches.on_policy_match_started(pid, eid)

    def _on_match_stopped(self, pid: str, eid: str) -> None:
        self._matches.on_policy_match_stopped(pid, eid)
        if self._index.match_count(pid) == 0 and pid in self._active:
            self._active.discard(pid)
            self._rules.on_policy_inactive(pid)

    # --------------------------------------------------------------- profiles ----
    def on_profile_update(self, update: ResourceUpdate) -> None:
        """A profile changed; re-send it if a local endpoint uses it."""
        name = update.name
        profile = update.value if isinstance(update.value, Profile) else None
        old = self._profiles.get(name)
        if profile is None:
            self._profiles.pop(name, None)
        else:
            self._profiles[name] = profile
        if old != profile and self._profile_users.get(name):
            self._rules.on_profile_active(name, profile)

    def _use_profiles(self, eid: str, names: tuple[str, ...]) -> None:
        old = self._endpoint_profiles.get(eid, ())
        if old == names:
            return
        for name in set(names) - set(old):
            count = self._profile_users.get(name, 0)
            self._profile_users[name] = count + 1
            if count == 0:
                self._rules.on_profile_active(name, self._profiles.get(name))
        for name in set(old) - set(names):
            count = self._profile_users[name] - 1
            if count:
                self._profile_users[name] = count
            else:
                del self._profile_users[name]
                self._rules.on_profile_inactive(name)
        if names:
            self._endpoint_profiles[eid] = names
        else:
            self._endpoint_profiles.pop(eid, None)

    # ---------------------------------------------------- local endpoints (sink) ----
    def on_entity_update(self, key: Key, entity: LabelledEntity, info: EntityInfo) -> None:
        """A local endpoint was added or changed."""
        eid = endpoint_id(key[1], key[2])
        self._index.update_labels(eid, info.labels)
        if isinstance(entity, WorkloadEndpoint):
            self._use_profiles(eid, tuple(dict.fromkeys(entity.spec.profiles)))

    def on_entity_remove(self, key: Key) -> None:
        """A local endpoint went away."""
        eid = endpoint_id(key[1], key[2])
        self._index.delete_labels(eid)
        self._use_profiles(eid, ())
