"""RecordingDataplane: a test dataplane that holds state and enforces the message contract.

Modelled on Felix's ``dataplane/mock``: it keeps what the messages say (IP-set members,
active policies/profiles, endpoints, config, in-sync) and raises
:class:`~regionmesh.errors.DataplaneContractError` the moment the stream breaks the ordering
contract documented in :mod:`.messages` — so calc-graph ordering bugs fail unit tests instead
of surfacing as kernel errors. It never touches a kernel; ``apply``/``resync`` only count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from regionmesh.dataplane.api import Dataplane
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
from regionmesh.errors import DataplaneContractError

__all__ = ["RecordingDataplane"]


@dataclass
class RecordingDataplane(Dataplane):
    """Holds the dataplane's view of the world and fails on contract violations."""

    config: HostConfig | None = None
    ipsets: dict[str, set[Member]] = field(default_factory=dict)
    ipset_types: dict[str, IPSetType] = field(default_factory=dict)
    policies: dict[str, ActivePolicyUpdate] = field(default_factory=dict)
    profiles: dict[str, ActiveProfileUpdate] = field(default_factory=dict)
    endpoints: dict[str, WorkloadEndpointUpdate] = field(default_factory=dict)
    in_sync: bool = False
    messages: list[Message] = field(default_factory=list)
    applies: int = 0

    # --------------------------------------------------------------- protocol ----
    def on_update(self, msg: Message) -> None:  # noqa: C901 - one branch per message type of the contract
        """Check ``msg`` against the current state, then record it."""
        self.messages.append(msg)
        match msg:
            case HostConfig():
                self.config = msg
            case IPSetUpdate():
                self.ipsets[msg.id] = set(msg.members)
                self.ipset_types[msg.id] = msg.type
            case IPSetDeltaUpdate():
                if msg.id not in self.ipsets:
                    self._fail(f"IP-set delta for unknown set {msg.id}")
                overlap = msg.added & msg.removed
                if overlap:
                    self._fail(f"IP-set delta for {msg.id} adds and removes {sorted(overlap)!r}")
                self.ipsets[msg.id] -= msg.removed
                self.ipsets[msg.id] |= msg.added
            case IPSetRemove():
                if msg.id not in self.ipsets:
                    self._fail(f"removal of unknown IP set {msg.id}")
                users = self._ipset_users(msg.id)
                if users:
                    self._fail(f"IP set {msg.id} removed while used by {sorted(users)}")
                del self.ipsets[msg.id]
                del self.ipset_types[msg.id]
            case ActivePolicyUpdate() | ActiveProfileUpdate():
                missing = sorted(msg.ipset_ids() - set(self.ipsets))
                if missing:
                    self._fail(f"{msg.id} references unknown IP sets {missing}")
                if isinstance(msg, ActivePolicyUpdate):
                    self.policies[msg.id] = msg
                else:
                    self.profiles[msg.id] = msg
            case ActivePolicyRemove():
                self._remove_rules_owner(msg.id, self.policies, "policy")
            case ActiveProfileRemove():
                self._remove_rules_owner(msg.id, self.profiles, "profile")
            case WorkloadEndpointUpdate():
                missing = sorted(msg.policy_ids() - set(self.policies))
                missing += sorted(set(msg.profile_ids) - set(self.profiles))
                if missing:
                    self._fail(f"endpoint {msg.id} references unknown policies/profiles {missing}")
                for other in self.endpoints.values():
                    if other.id != msg.id and other.name == msg.name:
                        self._fail(f"endpoints {other.id} and {msg.id} share interface {msg.name}")
                self.endpoints[msg.id] = msg
            case WorkloadEndpointRemove():
                if msg.id not in self.endpoints:
                    self._fail(f"removal of unknown endpoint {msg.id}")
                del self.endpoints[msg.id]
            case InSync():
                self.in_sync = True
            case _:
                raise TypeError(f"not a dataplane message: {msg!r}")

    def apply(self) -> None:
        """Count applies (there is no kernel)."""
        self.applies += 1

    def resync(self) -> bool:
        """Nothing can drift."""
        return False

    # ---------------------------------------------------------------- helpers ----
    @staticmethod
    def _fail(reason: str) -> None:
        raise DataplaneContractError(reason)

    def _ipset_users(self, set_id: str) -> set[str]:
        owners = list(self.policies.values()) + list(self.profiles.values())
        return {p.id for p in owners if set_id in p.ipset_ids()}

    def _remove_rules_owner(
        self,
        pid: str,
        store: dict[str, ActivePolicyUpdate] | dict[str, ActiveProfileUpdate],
        what: str,
    ) -> None:
        if pid not in store:
            self._fail(f"removal of unknown {what} {pid}")
        users = sorted(
            ep.id
            for ep in self.endpoints.values()
            if (pid in ep.policy_ids() if what == "policy" else pid in ep.profile_ids)
        )
        if users:
            self._fail(f"{what} {pid} removed while used by endpoints {users}")
        del store[pid]

    def endpoint_policy_order(self, endpoint_id: str) -> list[tuple[str, list[str], list[str]]]:
        """(tier, ingress policies, egress policies) of an endpoint, for assertions."""
        ep = self.endpoints[endpoint_id]
        return [(t.name, list(t.ingress_policies), list(t.egress_policies)) for t in ep.tiers]
