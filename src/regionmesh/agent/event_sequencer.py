"""EventSequencer: coalesces the graph's outputs and flushes them in dependency order.

Felix's ``event_sequencer.go``. Nodes call it as things change (it implements
:class:`~regionmesh.agent.updates.IPSetSink`, :class:`~regionmesh.agent.updates.RulesSink` and
:class:`~regionmesh.agent.updates.EndpointSink`); nothing is sent until :meth:`flush`, which
returns the messages in the order the dataplane contract (:mod:`regionmesh.dataplane.messages`)
requires::

    HostConfig → IPSetUpdate / IPSetDeltaUpdate → ActivePolicyUpdate → ActiveProfileUpdate
      → WorkloadEndpointUpdate → WorkloadEndpointRemove → ActiveProfileRemove
      → ActivePolicyRemove → IPSetRemove → InSync

Coalescing: only the last update per id survives a flush window; an update equal to what was
already sent is dropped; an add then remove of something never sent cancels out; an IP-set
member added then removed (or the reverse) cancels out; a set removed and re-added within one
window is re-sent in full (``IPSetUpdate`` replaces) instead of removed. State is split per
message family (:class:`_Family`, :class:`_IPSetFamily`) so no class grows a field per kind.

The sequencer does not decide *what* is active; it trusts its callers to balance their calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from regionmesh.dataplane.messages import (
    ActivePolicyRemove,
    ActivePolicyUpdate,
    ActiveProfileRemove,
    ActiveProfileUpdate,
    HostConfig,
    InSync,
    IPSetDeltaUpdate,
    IPSetRemove,
    IPSetType,
    IPSetUpdate,
    Member,
    Message,
    WorkloadEndpointRemove,
    WorkloadEndpointUpdate,
)

__all__ = ["EventSequencer"]

M = TypeVar("M", ActivePolicyUpdate, ActiveProfileUpdate, WorkloadEndpointUpdate)


@dataclass
class _Family(Generic[M]):
    """Pending updates/removals and the last sent message, for one keyed message kind."""

    sent: dict[str, M] = field(default_factory=dict)
    pending_updates: dict[str, M] = field(default_factory=dict)
    pending_removes: set[str] = field(default_factory=set)

    def update(self, key: str, msg: M) -> None:
        self.pending_removes.discard(key)
        if self.sent.get(key) == msg:
            self.pending_updates.pop(key, None)
        else:
            self.pending_updates[key] = msg

    def remove(self, key: str) -> None:
        self.pending_updates.pop(key, None)
        if key in self.sent:
            self.pending_removes.add(key)

    def take_updates(self) -> list[M]:
        out = [self.pending_updates[k] for k in sorted(self.pending_updates)]
        self.sent.update(self.pending_updates)
        self.pending_updates.clear()
        return out

    def take_removes(self) -> list[str]:
        out = sorted(self.pending_removes)
        for key in out:
            del self.sent[key]
        self.pending_removes.clear()
        return out


@dataclass
class _IPSetFamily:
    """IP sets: new sets are sent whole, known sets as member deltas."""

    sent: set[str] = field(default_factory=set)
    pending_new: dict[str, tuple[IPSetType, set[Member]]] = field(default_factory=dict)
    pending_added: dict[str, set[Member]] = field(default_factory=dict)
    pending_removed: dict[str, set[Member]] = field(default_factory=dict)
    pending_removes: set[str] = field(default_factory=set)

    def added(self, set_id: str, set_type: IPSetType) -> None:
        self.pending_removes.discard(set_id)
        self.pending_added.pop(set_id, None)
        self.pending_removed.pop(set_id, None)
        self.pending_new[set_id] = (set_type, set())

    def removed(self, set_id: str) -> None:
        self.pending_new.pop(set_id, None)
        self.pending_added.pop(set_id, None)
        self.pending_removed.pop(set_id, None)
        if set_id in self.sent:
            self.pending_removes.add(set_id)

    def member_added(self, set_id: str, member: Member) -> None:
        new = self.pending_new.get(set_id)
        if new is not None:
            new[1].add(member)
            return
        removed = self.pending_removed.get(set_id)
        if removed is not None and member in removed:
            removed.discard(member)
        else:
            self.pending_added.setdefault(set_id, set()).add(member)

    def member_removed(self, set_id: str, member: Member) -> None:
        new = self.pending_new.get(set_id)
        if new is not None:
            new[1].discard(member)
            return
        added = self.pending_added.get(set_id)
        if added is not None and member in added:
            added.discard(member)
        else:
            self.pending_removed.setdefault(set_id, set()).add(member)

    def take_updates(self) -> list[Message]:
        out: list[Message] = []
        for set_id in sorted(self.pending_new):
            set_type, members = self.pending_new[set_id]
            out.append(IPSetUpdate(set_id, frozenset(members), set_type))
            self.sent.add(set_id)
        for set_id in sorted(self.pending_added.keys() | self.pending_removed.keys()):
            added = frozenset(self.pending_added.get(set_id, ()))
            removed = frozenset(self.pending_removed.get(set_id, ()))
            if added or removed:
                out.append(IPSetDeltaUpdate(set_id, added, removed))
        self.pending_new.clear()
        self.pending_added.clear()
        self.pending_removed.clear()
        return out

    def take_removes(self) -> list[Message]:
        out: list[Message] = [IPSetRemove(s) for s in sorted(self.pending_removes)]
        self.sent -= self.pending_removes
        self.pending_removes.clear()
        return out


class EventSequencer:
    """Collects the graph's outputs; :meth:`flush` returns them in contract order."""

    def __init__(self) -> None:
        self._host_config: HostConfig | None = None
        self._sent_host_config: HostConfig | None = None
        self._ipsets = _IPSetFamily()
        self._policies: _Family[ActivePolicyUpdate] = _Family()
        self._profiles: _Family[ActiveProfileUpdate] = _Family()
        self._endpoints: _Family[WorkloadEndpointUpdate] = _Family()
        self._in_sync_pending = False
        self._in_sync_sent = False

    # -------------------------------------------------------------- config ----
    def on_host_config(self, config: HostConfig) -> None:
        """Send ``config`` (first in the next flush) unless it is what was sent last."""
        self._host_config = None if config == self._sent_host_config else config

    def on_in_sync(self) -> None:
        """End the next flush with InSync (once per sequencer)."""
        if not self._in_sync_sent:
            self._in_sync_pending = True

    # -------------------------------------------------------------- IPSetSink ----
    def on_ipset_added(self, set_id: str, set_type: IPSetType) -> None:
        """A set came into use (members follow)."""
        self._ipsets.added(set_id, set_type)

    def on_ipset_member_added(self, set_id: str, member: Member) -> None:
        """A member joined."""
        self._ipsets.member_added(set_id, member)

    def on_ipset_member_removed(self, set_id: str, member: Member) -> None:
        """A member left."""
        self._ipsets.member_removed(set_id, member)

    def on_ipset_removed(self, set_id: str) -> None:
        """A set went out of use."""
        self._ipsets.removed(set_id)

    # -------------------------------------------------------------- RulesSink ----
    def on_policy_update(self, msg: ActivePolicyUpdate) -> None:
        """An active policy (new or changed rules)."""
        self._policies.update(msg.id, msg)

    def on_policy_removed(self, policy_id: str) -> None:
        """A policy became inactive."""
        self._policies.remove(policy_id)

    def on_profile_update(self, msg: ActiveProfileUpdate) -> None:
        """An active profile (new or changed rules)."""
        self._profiles.update(msg.id, msg)

    def on_profile_removed(self, profile_id: str) -> None:
        """A profile became inactive."""
        self._profiles.remove(profile_id)

    # ----------------------------------------------------------- EndpointSink ----
    def on_endpoint_update(self, msg: WorkloadEndpointUpdate) -> None:
        """A local endpoint (new or changed)."""
        self._endpoints.update(msg.id, msg)

    def on_endpoint_removed(self, endpoint_id: str) -> None:
        """A local endpoint went away."""
        self._endpoints.remove(endpoint_id)

    # ------------------------------------------------------------------ flush ----
    def flush(self) -> list[Message]:
        """Everything pending, in dependency order (see the module docstring)."""
        out: list[Message] = []
        if self._host_config is not None:
            out.append(self._host_config)
            self._sent_host_config = self._host_config
            self._host_config = None
        # Additions: what is referenced before what references it.
        out += self._ipsets.take_updates()
        out += self._policies.take_updates()
        out += self._profiles.take_updates()
        out += self._endpoints.take_updates()
        # Removals: in reverse, references dropped before their targets go.
        out += [WorkloadEndpointRemove(k) for k in self._endpoints.take_removes()]
        out += [ActiveProfileRemove(k) for k in self._profiles.take_removes()]
        out += [ActivePolicyRemove(k) for k in self._policies.take_removes()]
        out += self._ipsets.take_removes()
        if self._in_sync_pending:
            out.append(InSync())
            self._in_sync_pending = False
            self._in_sync_sent = True
        return out
