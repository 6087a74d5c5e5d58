"""IPSetMemberIndex: the members of every IP set that an active rule uses.

Felix's ``SelectorAndNamedPortIndex`` plus its member de-duplication. The rule scanner
activates :class:`IPSetSpec` values (a selector, optionally a named port); this index matches
their selectors against **all** labelled entities of the cluster through a
:class:`~regionmesh.agent.label_index.LabelIndex` and turns matches into members:

* a selector set (``hash:net``) gets the entity's addresses (``ipNetworks``, ``expectedIPs``,
  network-set ``nets``);
* a named-port set (``hash:ip,port``) gets ``(address, protocol, port)`` for each port of the
  entity declared with that name and protocol.

Members are reference-counted per set, so two entities sharing an address do not churn the
set; only a count moving 0↔1 is reported to the :class:`~regionmesh.agent.updates.IPSetSink`.
When an entity's addresses or ports change but its labels do not, only the sets it already
belongs to see a delta. Deciding which sets exist is the rule scanner's job; masking one member
by a wider one is left to the dataplane.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from regionmesh.agent.label_index import LabelIndex
from regionmesh.agent.label_inheritance import EntityInfo
from regionmesh.agent.updates import IPSetSink, Key
from regionmesh.dataplane.messages import IPSetType, Member, NamedPortMember
from regionmesh.policy.labels import LabelledEntity
from regionmesh.selector import Selector

__all__ = ["IPSetMemberIndex", "IPSetSpec", "named_port_set_id"]

_PROTOCOL_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}


def named_port_set_id(selector: Selector, protocol: int, port_name: str) -> str:
    """Felix's named-port IP-set id: ``n:`` + base64url(SHA-224(``n:<sel uid>,<proto>,<name>``)).

    TODO(policy): belongs in ``regionmesh.policy`` (an ``ipsets.named_port_set_id``) next to the
    selector id; kept here until that module exists.
    """
    proto = _PROTOCOL_NAMES.get(protocol, str(protocol))
    text = f"n:{selector.unique_id},{proto},{port_name}"
    digest = hashlib.sha224(text.encode()).digest()
    return "n:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class IPSetSpec:
    """What one IP set holds: addresses of entities matching ``selector``, or, with
    ``port_name``, their ``(address, protocol, port)`` for ports of that name."""

    selector: Selector
    protocol: int | None = None
    port_name: str = ""

    @property
    def id(self) -> str:
        """The set id (the selector's unique id, or the named-port id)."""
        if self.port_name:
            assert self.protocol is not None
            return named_port_set_id(self.selector, self.protocol, self.port_name)
        return self.selector.unique_id

    @property
    def type(self) -> IPSetType:
        """``hash:net`` or ``hash:ip,port``."""
        return IPSetType.NAMED_PORT if self.port_name else IPSetType.NET

    def members_of(self, info: EntityInfo) -> Iterable[Member]:
        """The members one matching entity contributes."""
        if not self.port_name:
            return info.addresses
        return [
            NamedPortMember(addr, p.protocol, p.port)
            for p in info.named_ports
            if p.name == self.port_name and p.protocol == self.protocol
            for addr in info.host_addresses
        ]


class IPSetMemberIndex:
    """Members of the active IP sets; an ``EntitySink`` for every entity of the cluster."""

    def __init__(self, sink: IPSetSink) -> None:
        self._sink = sink
        self._index: LabelIndex[Key, str] = LabelIndex(
            self._on_match_started, self._on_match_stopped
        )
        self._specs: dict[str, IPSetSpec] = {}
        self._members: dict[str, dict[Member, int]] = {}
        self._infos: dict[Key, EntityInfo] = {}

    # ------------------------------------------------------------ set lifecycle ----
    def on_ipset_active(self, spec: IPSetSpec) -> None:
        """Start maintaining ``spec``'s set (idempotent per id)."""
        set_id = spec.id
        if set_id in self._specs:
            return
        self._specs[set_id] = spec
        self._members[set_id] = {}
        self._sink.on_ipset_added(set_id, spec.type)
        self._index.update_selector(set_id, spec.selector)

    def on_ipset_inactive(self, set_id: str) -> None:
        """Stop maintaining the set; the sink hears one removal, not one per member."""
        if self._specs.pop(set_id, None) is None:
            return
        del self._members[set_id]
        self._index.delete_selector(set_id)  # stop callbacks ignore the forgotten set
        self._sink.on_ipset_removed(set_id)

    def members(self, set_id: str) -> frozenset[Member]:
        """Current members of an active set."""
        return frozenset(self._members.get(set_id, ()))

    # --------------------------------------------------------------- EntitySink ----
    def on_entity_update(self, key: Key, entity: LabelledEntity, info: EntityInfo) -> None:
        """An entity's labels, addresses or ports may have changed."""
        old = self._infos.get(key)
        self._infos[key] = info
        if old is not None and (
            old.addresses != info.addresses or old.named_ports != info.named_ports
        ):
            for set_id in self._index.selectors_matching(key):
                spec = self._specs[set_id]
                before = set(spec.members_of(old))
                after = set(spec.members_of(info))
                for member in before - after:
                    self._decref(set_id, member)
                for member in after - before:
                    self._incref(set_id, member)
        self._index.update_labels(key, info.labels)

    def on_entity_remove(self, key: Key) -> None:
        """An entity went away: its memberships end."""
        if key in self._infos:
            self._index.delete_labels(key)
            del self._infos[key]

    # --------------------------------------------------------------- matching ----
    def _on_match_started(self, set_id: str, key: Key) -> None:
        spec = self._specs.get(set_id)
        if spec is not None:
            for member in spec.members_of(self._infos[key]):
                self._incref(set_id, member)

    def _on_match_stopped(self, set_id: str, key: Key) -> None:
        spec = self._specs.get(set_id)
        if spec is not None:
            for member in spec.members_of(self._infos[key]):
                self._decref(set_id, member)

    def _incref(self, set_id: str, member: Member) -> None:
        counts = self._members[set_id]
        count = counts.get(member, 0)
        counts[member] = count + 1
        if count == 0:
            self._sink.on_ipset_member_added(set_id, member)

    def _decref(self, set_id: str, member: Member) -> None:
        counts = self._members[set_id]
        count = counts[member] - 1
        if count:
            counts[member] = count
        else:
            del counts[member]
            self._sink.on_ipset_member_removed(set_id, member)
