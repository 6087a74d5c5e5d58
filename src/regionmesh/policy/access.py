"""The answer shapes of connectivity: port/type intervals, services and :class:`Access`.

An :class:`Access` maps each protocol to the disjoint intervals of destination ports (or
ICMP ``type*256+code``) a flow may use; :class:`Service` is one labelled entry of it. Pure
values and interval arithmetic; which flows are probed is :mod:`regionmesh.policy.pair_evaluation`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from regionmesh.policy.flows import (
    PROTOCOL_ICMP,
    PROTOCOL_ICMPV6,
)

Interval = tuple[int, int]
Intervals = tuple[Interval, ...]
"""Sorted, disjoint, non-adjacent inclusive intervals."""

OTHER_PROTOCOL = -1
"""Access key for "every protocol not probed by name"."""
PROBE_SOURCE_PORT = 40000
PORT_PROTOCOLS = frozenset({6, 17, 132, 136})
ICMP_PROTOCOLS = frozenset({PROTOCOL_ICMP, PROTOCOL_ICMPV6})
PORT_DOMAIN: Interval = (0, 65535)
ICMP_DOMAIN: Interval = (0, 255 * 256 + 255)
_NAMES = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMPv6", 132: "SCTP", 136: "UDPLite"}


def protocol_name(protocol: int) -> str:
    """``TCP``/``UDP``/… or ``protocol N`` (``other`` for :data:`OTHER_PROTOCOL`)."""
    if protocol == OTHER_PROTOCOL:
        return "other protocols"
    return _NAMES.get(protocol, f"protocol {protocol}")


def protocol_domain(protocol: int) -> Interval:
    if protocol in PORT_PROTOCOLS:
        return PORT_DOMAIN
    if protocol in ICMP_PROTOCOLS:
        return ICMP_DOMAIN
    return (0, 0)


def intervals_union(items: Iterable[Interval]) -> Intervals:
    """Merge intervals into sorted, disjoint, non-adjacent ones."""
    out: list[list[int]] = []
    for lo, hi in sorted(items):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def intervals_subtract(a: Intervals, b: Intervals) -> Intervals:
    """``a`` minus ``b`` (both normalised)."""
    out: list[Interval] = []
    for lo, hi in a:
        cur = lo
        for blo, bhi in b:
            if bhi < cur or blo > hi:
                continue
            if blo > cur:
                out.append((cur, blo - 1))
            cur = max(cur, bhi + 1)
            if cur > hi:
                break
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


@dataclass(frozen=True, slots=True, order=True)
class Service:
    """A protocol and an inclusive range on its axis (ports, or ``type*256+code`` for ICMP)."""

    protocol: int
    low: int = 0
    high: int = 0

    @property
    def label(self) -> str:
        """``TCP/80``, ``TCP/8000-8080``, ``TCP`` (all ports), ``ICMP type 8``, ``ICMP 8/0``…"""
        name = protocol_name(self.protocol)
        lo, hi = self.low, self.high
        if (lo, hi) == protocol_domain(self.protocol):
            return name
        if self.protocol in ICMP_PROTOCOLS:
            (t1, c1), (t2, c2) = divmod(lo, 256), divmod(hi, 256)
            if c1 == 0 and c2 == 255:
                return f"{name} type {t1}" if t1 == t2 else f"{name} types {t1}-{t2}"
            if t1 == t2:
                return f"{name} {t1}/{c1}" if c1 == c2 else f"{name} {t1}/{c1}-{c2}"
            return f"{name} {t1}/{c1}-{t2}/{c2}"
        return f"{name}/{lo}" if lo == hi else f"{name}/{lo}-{hi}"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        out: dict[str, object] = {"protocol": protocol_name(self.protocol), "label": self.label}
        if self.protocol in PORT_PROTOCOLS:
            out["ports"] = [self.low, self.high]
        elif self.protocol in ICMP_PROTOCOLS and (self.low, self.high) != ICMP_DOMAIN:
            out["icmp"] = [list(divmod(self.low, 256)), list(divmod(self.high, 256))]
        return out


@dataclass(frozen=True, slots=True)
class Access:
    """What one group may send another: allowed intervals per protocol (empty = nothing).

    ``probed`` lists the protocols evaluated by name; any other protocol behaves like the
    representative :data:`OTHER_PROTOCOL` (no relevant rule names it).
    """

    allowed: Mapping[int, Intervals] = field(default_factory=dict)
    probed: frozenset[int] | None = None

    def __bool__(self) -> bool:
        return any(self.allowed.values())

    def _probed(self) -> frozenset[int]:
        return self.probed if self.probed is not None else frozenset(self.allowed)

    def get(self, protocol: int) -> Intervals:
        """Allowed intervals of ``protocol`` (unprobed protocols: as "other protocols")."""
        if protocol in self.allowed:
            return self.allowed[protocol]
        if protocol == OTHER_PROTOCOL or protocol in self._probed():
            return ()
        return (protocol_domain(protocol),) if self.allowed.get(OTHER_PROTOCOL) else ()

    def services(self) -> list[Service]:
        """One :class:`Service` per allowed interval, protocols in a stable order."""
        return [
            Service(p, lo, hi)
            for p in sorted(self.allowed, key=_proto_order)
            for lo, hi in self.allowed[p]
        ]

    def is_everything(self) -> bool:
        """True when every probed protocol is fully allowed (an "allow all")."""
        return (
            bool(self.allowed)
            and OTHER_PROTOCOL in self.allowed
            and all(iv == (protocol_domain(p),) for p, iv in self.allowed.items())
        )

    def labels(self) -> list[str]:
        """Human labels (``any`` for allow-all)."""
        if self.is_everything():
            return ["any"]
        return [s.label for s in self.services()]

    def minus(self, other: Access) -> Access:
        """What ``self`` allows that ``other`` does not."""
        keys = set(self.allowed) | set(other.allowed) | self._probed() | other._probed()
        out: dict[int, Intervals] = {}
        for p in keys:
            rest = intervals_subtract(self.get(p), other.get(p))
            if rest:
                out[p] = rest
        return Access(out, frozenset(keys))

    def union(self, other: Access) -> Access:
        """Everything either allows."""
        keys = set(self.allowed) | set(other.allowed) | self._probed() | other._probed()
        out = {p: intervals_union([*self.get(p), *other.get(p)]) for p in keys}
        return Access({p: iv for p, iv in out.items() if iv}, frozenset(keys))


def _proto_order(p: int) -> tuple[int, int]:
    return (1, 0) if p == OTHER_PROTOCOL else (0, p)
