"""CalcGraph: the per-host calculation graph, wired in one place (Felix's ``calc_graph.go``).

Input: :class:`ResourceUpdate` values (a v3 resource, or None = deleted/invalid), keyed by
``(kind, namespace, name)``. Output: an ordered list of
:mod:`regionmesh.dataplane.messages` from :meth:`CalcGraph.flush`. Usage::

    g = CalcGraph(hostname="cmp1", host_config=HostConfig())
    g.on_updates(batch)        # cheap: coalesces by key, nothing is computed yet
    msgs = g.flush()           # runs the graph, returns messages in contract order
    g.in_sync()                # after the first complete snapshot: next flush ends with InSync

Data flow (each box is one node, one file)::

    on_updates ──► pending (last value per key) ──flush──► ValidationFilter (invalid → None)
                                                               │
                                                               ▼
                                                        UpdateDispatcher (by kind)
          ┌──────────────────────────┬───────────────────────┼─────────────────────┐
          ▼ WEP HEP NS GNS Profile   ▼ GNP NP Profile        ▼ Tier                │
    LabelInheritanceIndex      ActiveRulesCalculator ──► PolicyResolver            │
      │ (effective labels)      ▲   │ active owners        │ (dirty endpoints,     │
      │                         │   ▼                      │  sorted on flush)     │
      ├─► LocalEndpointFilter ──┘  RuleScanner ──────────► │ ──────────────────────┘
      │     (this host's WEPs) ──► │ rules, IP-set refcounts│
      │                            ▼                       ▼
      └──────────────────────► IPSetMemberIndex ──► EventSequencer ──► list[Message]

Registration order matters in one place: the LabelInheritanceIndex registers for ``Profile``
before the ActiveRulesCalculator, so an endpoint's inherited labels are updated before the
profile's rules are re-sent (either order reaches the same state; this one churns less).
"""

from __future__ import annotations

from collections.abc import Iterable

from regionmesh.agent.active_rules import ActiveRulesCalculator
from regionmesh.agent.dispatcher import UpdateDispatcher
from regionmesh.agent.event_sequencer import EventSequencer
from regionmesh.agent.filters import LocalEndpointFilter, ValidationFilter
from regionmesh.agent.ipset_index import IPSetMemberIndex
from regionmesh.agent.label_inheritance import LabelInheritanceIndex
from regionmesh.agent.policy_resolver import PolicyResolver
from regionmesh.agent.rule_scanner import RuleScanner
from regionmesh.agent.updates import Key, ResourceUpdate
from regionmesh.dataplane.messages import HostConfig, Message
from regionmesh.model import WorkloadEndpoint

__all__ = ["CalcGraph", "ResourceUpdate"]


class CalcGraph:
    """The calculation graph of one host; see the module docstring."""

    def __init__(self, hostname: str, host_config: HostConfig | None = None) -> None:
        self.hostname = hostname
        self._pending: dict[Key, ResourceUpdate] = {}

        # The sink of everything: coalesces and orders the output messages.
        self._sequencer = EventSequencer()
        self._sequencer.on_host_config(host_config or HostConfig())

        #   active rule selectors ──► IPSetMemberIndex ◄── every entity of the cluster
        #                                   └──► sequencer (sets, member deltas)
        self._ipsets = IPSetMemberIndex(self._sequencer)

        #   active owners ──► RuleScanner ──► sequencer (rules); ──► IPSetMemberIndex (sets)
        self._rule_scanner = RuleScanner(self._ipsets, self._sequencer)

        #   matches, policies, tiers, local endpoints ──► PolicyResolver ──► sequencer
        self._resolver = PolicyResolver(self._sequencer)

        #   policies/profiles + local endpoints ──► ActiveRulesCalculator
        #       ──► RuleScanner (active owners), PolicyResolver (matches)
        self._active_rules = ActiveRulesCalculator(self._rule_scanner, self._resolver)

        #   entities ──► LocalEndpointFilter ──► ActiveRulesCalculator, PolicyResolver
        self._local_filter = LocalEndpointFilter(hostname, (self._active_rules, self._resolver))

        #   WEP/HEP/NS/GNS + profile labels ──► LabelInheritanceIndex
        #       ──► IPSetMemberIndex (all entities), LocalEndpointFilter
        self._labels = LabelInheritanceIndex((self._ipsets, self._local_filter))

        self._dispatcher = UpdateDispatcher()
        self._labels.register_with(self._dispatcher)  # before active rules: see docstring
        self._active_rules.register_with(self._dispatcher)
        self._resolver.register_with(self._dispatcher)
        self._validation = ValidationFilter(self._dispatcher.on_update)

    # ---------------------------------------------------------------- public API ----
    def on_updates(self, updates: Iterable[ResourceUpdate]) -> None:
        """Queue ``updates``; only the last value per key matters. Nothing runs until flush."""
        pending = self._pending
        for update in updates:
            pending[update.key] = update

    def flush(self) -> list[Message]:
        """Run the queued updates through the graph; return messages in contract order."""
        pending, self._pending = self._pending, {}
        kinds = self._dispatcher.kinds()
        for update in pending.values():
            if update.kind in kinds:
                self._validation.on_update(update)
        self._resolver.flush()
        return self._sequencer.flush()

    def in_sync(self) -> None:
        """The first complete snapshot has been queued: the next flush ends with InSync."""
        self._sequencer.on_in_sync()

    def set_host_config(self, host_config: HostConfig) -> None:
        """Send a new HostConfig first in the next flush (if it differs from the last)."""
        self._sequencer.on_host_config(host_config)

    def local_endpoint_ids(self) -> set[str]:
        """Ids (``<namespace>/<name>``) of this host's valid workload endpoints."""
        return set(self._resolver.endpoints())

    def local_endpoint(self, endpoint_id: str) -> WorkloadEndpoint | None:
        """The local endpoint with that id (for status reporting: interface, workload…)."""
        return self._resolver.endpoints().get(endpoint_id)
