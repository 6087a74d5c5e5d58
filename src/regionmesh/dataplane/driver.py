"""The nftables dataplane driver: messages in, one atomic nft transaction per apply out.

:class:`NftDataplane` follows Felix's two-method managers (style.md §1): ``on_update(msg)`` is
cheap and only records (state + dirty marks), ``apply()`` renders what is dirty and runs ONE
``nft -f`` transaction (then syncs routes), ``resync()`` reads the kernel back and rewrites the
whole table if it drifted. The first apply after ``InSync`` — and the first apply after any
failed transaction — replaces the whole table (``add table; delete table; add table; …``),
later applies are deltas: IP-set element adds/deletes, dirty chains flushed and refilled,
removed chains deleted after their referrers are gone, verdict-map elements added/removed,
and the two floating-IP chains re-rendered when any endpoint's ``ipNATs`` changed.

Recording goes into :mod:`.state` (one way: ``on_update`` → state); rendering is :mod:`.render`;
scripting :mod:`.tables`; kernel access goes through the :mod:`.api` seams (:mod:`.nft_runner`,
:mod:`.routes`, :mod:`.fakenft`). This module decides *what* changed. It does not check the message order (that is
:class:`.recording.RecordingDataplane`'s job in tests) but survives violations by failing
closed.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import defaultdict

from regionmesh.dataplane import names
from regionmesh.dataplane.api import Dataplane, EndpointRoute, NftRunner, RouteRunner
from regionmesh.dataplane.messages import (
    ActivePolicyRemove,
    ActivePolicyUpdate,
    ActiveProfileRemove,
    ActiveProfileUpdate,
    HostConfig,
    InSync,
    IPSetDeltaUpdate,
    IPSetRemove,
    IPSetUpdate,
    Member,
    Message,
    WorkloadEndpointRemove,
    WorkloadEndpointUpdate,
)
from regionmesh.dataplane.render import (
    dispatch_verdicts,
    endpoint_chain,
    endpoint_nats,
    fip_chains,
    nft_family,
    policy_chains,
    render_table,
)
from regionmesh.dataplane.state import FAMILIES, DesiredState, IPSetState, member_element
from regionmesh.dataplane.tables import (
    TableDelta,
    TableModel,
    commit,
    delta_script,
    fingerprint_json,
    fingerprint_model,
    full_script,
)
from regionmesh.errors import DataplaneError, FieldError, ValidationError

__all__ = ["NftDataplane"]

log = logging.getLogger(__name__)

_Key = tuple[str, str]  # ("ipset" | "policy" | "profile" | "endpoint", id)


class _FullRenderNeeded(Exception):
    """Internal: a delta cannot express the change (e.g. a set changed type)."""


class NftDataplane(Dataplane):
    """Programs ``table ip calico`` / ``table ip6 calico`` (and routes) from dataplane messages."""

    def __init__(
        self,
        nft: NftRunner,
        routes: RouteRunner | None = None,
        *,
        wait_for_in_sync: bool = True,
    ) -> None:
        self.nft = nft
        self.routes = routes
        self.state = DesiredState()
        self.in_sync = not wait_for_in_sync
        self.full_applies = 0
        self.delta_applies = 0
        self.drift_repairs = 0
        self._programmed: dict[int, TableModel] | None = None
        self._programmed_ifaces: dict[str, str] = {}  # endpoint id -> iface in the kernel
        self._full_needed = True
        self._routes_dirty = True
        self._nats_dirty = False  # some endpoint's floating IPs changed since the last apply
        self._dirty: set[_Key] = set()
        self._set_replaced: set[str] = set()
        self._set_pending: dict[str, set[tuple[int, str]]] = defaultdict(set)
        self._refs: dict[_Key, frozenset[_Key]] = {}  # referrer -> targets
        self._users: dict[_Key, set[_Key]] = defaultdict(set)  # target -> referrers

    # ------------------------------------------------------------------ on_update ----
    def on_update(self, msg: Message) -> None:  # noqa: C901 - one branch per message type of the contract
        """Record one message (cheap; no kernel access)."""
        s = self.state
        match msg:
            case HostConfig():
                if msg != s.config:
                    s.config = msg
                    self._full_needed = True
                    self._routes_dirty = True
            case IPSetUpdate():
                new = IPSetState(msg.type)
                for m in msg.members:
                    new.add(*self._element(msg.id, m))
                existed = msg.id in s.ipsets
                s.ipsets[msg.id] = new
                self._set_replaced.add(msg.id)
                self._dirty.add(("ipset", msg.id))
                if not existed:
                    self._touch_users(("ipset", msg.id))
            case IPSetDeltaUpdate():
                ipset = s.ipsets.get(msg.id)
                if ipset is None:
                    log.error("IP-set delta for unknown set %s ignored", msg.id)
                    return
                pending = self._set_pending[msg.id]
                for m in msg.removed:
                    fam, e = self._element(msg.id, m)
                    ipset.discard(fam, e)
                    pending.add((fam, e))
                for m in msg.added:
                    fam, e = self._element(msg.id, m)
                    ipset.add(fam, e)
                    pending.add((fam, e))
                self._dirty.add(("ipset", msg.id))
            case IPSetRemove():
                if s.ipsets.pop(msg.id, None) is not None:
                    self._dirty.add(("ipset", msg.id))
                    self._touch_users(("ipset", msg.id))
            case ActivePolicyUpdate() | ActiveProfileUpdate():
                kind = "policy" if isinstance(msg, ActivePolicyUpdate) else "profile"
                store: dict[str, ActivePolicyUpdate | ActiveProfileUpdate]
                store = s.policies if kind == "policy" else s.profiles  # type: ignore[assignment]
                existed = msg.id in store
                store[msg.id] = msg
                self._set_refs((kind, msg.id), {("ipset", i) for i in msg.ipset_ids()})
                self._dirty.add((kind, msg.id))
                if not existed:
                    self._touch_users((kind, msg.id))
            case ActivePolicyRemove() | ActiveProfileRemove():
                kind = "policy" if isinstance(msg, ActivePolicyRemove) else "profile"
                rstore: dict[str, object] = s.policies if kind == "policy" else s.profiles  # type: ignore[assignment]
                if rstore.pop(msg.id, None) is not None:
                    self._set_refs((kind, msg.id), set())
                    self._dirty.add((kind, msg.id))
                    self._touch_users((kind, msg.id))
            case WorkloadEndpointUpdate():
                old = s.endpoints.get(msg.id)
                old_nats = (old.ipv4_nats, old.ipv6_nats) if old is not None else ((), ())
                if old_nats != (msg.ipv4_nats, msg.ipv6_nats):
                    self._nats_dirty = True
                s.endpoints[msg.id] = msg
                targets = {("policy", p) for p in msg.policy_ids()}
                targets |= {("profile", p) for p in msg.profile_ids}
                self._set_refs(("endpoint", msg.id), targets)
                self._dirty.add(("endpoint", msg.id))
                self._routes_dirty = True
            case WorkloadEndpointRemove():
                gone = s.endpoints.pop(msg.id, None)
                if gone is not None:
                    if gone.ipv4_nats or gone.ipv6_nats:
                        self._nats_dirty = True
                    self._set_refs(("endpoint", msg.id), set())
                    self._dirty.add(("endpoint", msg.id))
                    self._routes_dirty = True
            case InSync():
                self.in_sync = True
            case _:
                raise TypeError(f"not a dataplane message: {msg!r}")

    @staticmethod
    def _element(set_id: str, member: Member) -> tuple[int, str]:
        try:
            return member_element(member)
        except ValueError as exc:
            raise ValidationError(
                [FieldError("members", member, str(exc))], f"IP set {set_id}"
            ) from exc

    def _set_refs(self, referrer: _Key, targets: set[_Key]) -> None:
        old = self._refs.get(referrer, frozenset())
        for t in old - targets:
            self._users[t].discard(referrer)
            if not self._users[t]:
                del self._users[t]
        for t in targets - old:
            self._users[t].add(referrer)
        if targets:
            self._refs[referrer] = frozenset(targets)
        else:
            self._refs.pop(referrer, None)

    def _touch_users(self, target: _Key) -> None:
        """``target`` appeared or vanished: whatever references it renders differently now."""
        self._dirty.update(self._users.get(target, ()))

    # ---------------------------------------------------------------------- apply ----
    def apply(self) -> None:
        """Program everything recorded since the last apply in ONE nft transaction.

        Does nothing before ``InSync``. On :class:`DataplaneError` the next apply re-renders
        the whole table; the error is re-raised for the caller to back off and retry.
        """
        if not self.in_sync:
            return
        try:
            if self._full_needed or self._programmed is None:
                self._apply_full()
            else:
                try:
                    self._apply_delta()
                except _FullRenderNeeded:
                    self._apply_full()
        except DataplaneError:
            self._full_needed = True
            raise
        if self.routes is not None and self._routes_dirty:
            self._sync_routes()

    def _families(self) -> tuple[int, ...]:
        return self.state.families()

    def _apply_full(self) -> None:
        models = {fam: render_table(self.state, fam) for fam in self._families()}
        script = full_script(models.values())
        stale = [f for f in FAMILIES if f not in models]
        if stale:  # e.g. IPv6 was switched off: drop its table in the same transaction
            head = "".join(
                f"add table {nft_family(f)} {names.TABLE}\ndelete table {nft_family(f)} {names.TABLE}\n"
                for f in stale
            )
            script = head + script
        self._full_needed = True
        self.nft.apply(script)
        self._programmed = models
        self._programmed_ifaces = {eid: ep.name for eid, ep in self.state.endpoints.items()}
        self._full_needed = False
        self._clear_dirty()
        self.full_applies += 1

    def _clear_dirty(self) -> None:
        self._nats_dirty = False
        self._dirty.clear()
        self._set_replaced.clear()
        self._set_pending.clear()

    def _apply_delta(self) -> None:
        assert self._programmed is not None
        if not self._dirty:
            return
        deltas = {fam: TableDelta() for fam in self._families()}
        for kind, key in sorted(self._dirty):
            if kind == "ipset":
                self._set_delta(key, deltas)
            elif kind in ("policy", "profile"):
                self._policy_delta(kind, key, deltas)
        endpoint_ids = [key for kind, key in self._dirty if kind == "endpoint"]
        self._endpoint_delta(endpoint_ids, deltas)
        if self._nats_dirty:  # delta_script skips the chains whose rules did not change
            for fam, delta in deltas.items():
                delta.chains.update(fip_chains(self.state.endpoints.values(), fam))
        lines: list[str] = []
        for fam, delta in deltas.items():
            lines += delta_script(self._programmed[fam], delta)
        if lines:
            self.nft.apply("\n".join(lines) + "\n")
            self.delta_applies += 1
        for fam, delta in deltas.items():
            commit(self._programmed[fam], delta)
        for eid in endpoint_ids:
            ep = self.state.endpoints.get(eid)
            if ep is None:
                self._programmed_ifaces.pop(eid, None)
            else:
                self._programmed_ifaces[eid] = ep.name
        self._clear_dirty()

    def _set_delta(self, set_id: str, deltas: dict[int, TableDelta]) -> None:
        assert self._programmed is not None
        current = self.state.ipsets.get(set_id)
        pending = self._set_pending.get(set_id, set())
        for fam, delta in deltas.items():
            name = names.set_name(set_id, fam)
            programmed = self._programmed[fam].sets.get(name)
            if current is None:
                if programmed is not None:
                    delta.removed_sets.add(name)
                continue
            if programmed is None:
                delta.new_sets[name] = current.model(fam)
                continue
            if programmed.shape() != (current.nft_type(fam), current.interval(fam)):
                raise _FullRenderNeeded(f"set {name} changes type")
            if set_id in self._set_replaced or programmed.interval:
                want = current.elements(fam)
                adds = want - programmed.elements
                dels = programmed.elements - want
            else:
                members = current.members[fam]
                have = programmed.elements
                adds = {e for f, e in pending if f == fam and e in members and e not in have}
                dels = {e for f, e in pending if f == fam and e not in members and e in have}
            if adds:
                delta.element_adds[name] = adds
            if dels:
                delta.element_dels[name] = dels

    def _policy_delta(self, kind: str, pid: str, deltas: dict[int, TableDelta]) -> None:
        store = self.state.policies if kind == "policy" else self.state.profiles
        msg = store.get(pid)
        profile = kind == "profile"
        for fam, delta in deltas.items():
            if msg is None:
                name = names.profile_chain if profile else names.policy_chain
                delta.chains[name(pid, True)] = None
                delta.chains[name(pid, False)] = None
            else:
                exists = self.state.ipsets.__contains__
                delta.chains.update(policy_chains(pid, msg, fam, exists, profile))

    def _endpoint_delta(self, endpoint_ids: list[str], deltas: dict[int, TableDelta]) -> None:
        s = self.state
        # Removals first, so an interface name that moves to another endpoint is re-added.
        for eid in endpoint_ids:
            old_iface = self._programmed_ifaces.get(eid)
            ep = s.endpoints.get(eid)
            if old_iface is None or (ep is not None and ep.name == old_iface):
                continue
            for delta in deltas.values():
                for to_wl in (True, False):
                    delta.chains[names.endpoint_chain(old_iface, to_wl)] = None
                for mname in (names.FROM_WL_DISPATCH, names.TO_WL_DISPATCH):
                    delta.map_elements.setdefault(mname, {})[old_iface] = None
        for eid in endpoint_ids:
            ep = s.endpoints.get(eid)
            if ep is None:
                continue
            for fam, delta in deltas.items():
                for to_wl in (True, False):
                    delta.chains[names.endpoint_chain(ep.name, to_wl)] = endpoint_chain(
                        ep, fam, to_wl, s.policies.__contains__, s.profiles.__contains__
                    )
                for mname, (key, verdict) in dispatch_verdicts(ep).items():
                    delta.map_elements.setdefault(mname, {})[key] = verdict

    # --------------------------------------------------------------------- routes ----
    def _sync_routes(self) -> None:
        assert self.routes is not None
        desired: dict[str, EndpointRoute] = {}
        for ep in self.state.endpoints.values():
            nets: list[str] = []
            for fam in self._families():
                nets += ep.ipv4_nets if fam == 4 else ep.ipv6_nets
                # Felix routes floating IPs to the tap too (OpenStack: always).
                nets += [n.external for n in endpoint_nats(ep, fam)]
            normalized = tuple(
                dict.fromkeys(str(ipaddress.ip_network(n, strict=False)) for n in nets)
            )
            desired[ep.name] = EndpointRoute(ep.name, normalized, ep.mac)
        missing = self.routes.sync(desired, self.state.config.interface_prefixes)
        self._routes_dirty = bool(missing)

    # --------------------------------------------------------------------- resync ----
    def resync(self) -> bool:
        """Apply pending work, read the tables back, and rewrite them wholesale if they drifted.

        Returns True when drift was found and repaired.
        """
        if not self.in_sync:
            return False
        self.apply()
        assert self._programmed is not None
        drift: list[str] = []
        for fam, model in self._programmed.items():
            listing = self.nft.list_ruleset_json(f"{nft_family(fam)} {names.TABLE}")
            drift += fingerprint_model(model).differences(fingerprint_json(listing))
        if self.routes is not None:
            self._routes_dirty = True
        if drift:
            log.warning("dataplane drift, rewriting tables: %s", "; ".join(drift[:10]))
            self._full_needed = True
            self.drift_repairs += 1
        self.apply()
        return bool(drift)
