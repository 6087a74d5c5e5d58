"""In-memory models of the agent's nft tables, and the scripts that move the kernel between them.

A :class:`TableModel` is what one table (``ip calico`` or ``ip6 calico``) should hold: sets,
verdict maps and chains (rules as nft text). This module turns models into nft scripts: a full
replacement (``add table; delete table; add table; …`` in one transaction, so everything in the
table is ours and stale objects vanish) or a :class:`TableDelta` (element adds/deletes, chains
flushed and refilled, chains and sets removed after nothing references them). It also reduces a
model, or the kernel's ``nft -j list table`` output, to a :class:`Fingerprint` so a resync can
tell whether the kernel drifted. Producing models from messages is :mod:`.render`; running the
scripts is :mod:`.nft_runner`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAP_TYPE = "ifname : verdict"
_TAG = re.compile(r'comment "(cali:[^;"]*)')
_PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "udplite": 136, "icmp": 1, "ipv6-icmp": 58}
_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50}
_PRIORITIES["srcnat"] = 100


@dataclass(slots=True)
class SetModel:
    """A named set: its nft type, whether it has ``flags interval``, and its elements as text."""

    type: str
    interval: bool
    elements: set[str] = field(default_factory=set)

    def shape(self) -> tuple[str, bool]:
        """What cannot change without re-creating the set."""
        return (self.type, self.interval)


@dataclass(frozen=True, slots=True)
class ChainModel:
    """A chain: ``hook`` is the base-chain spec (``type filter hook … ;``) or None; rules as text."""

    rules: tuple[str, ...]
    hook: str | None = None


@dataclass(slots=True)
class TableModel:
    """Everything one agent-owned table should contain."""

    family: str  # "ip" | "ip6"
    name: str
    sets: dict[str, SetModel] = field(default_factory=dict)
    maps: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {ifname: verdict}
    chains: dict[str, ChainModel] = field(default_factory=dict)


@dataclass(slots=True)
class TableDelta:
    """Changes to apply to a programmed table; :func:`delta_script` drops the no-ops."""

    new_sets: dict[str, SetModel] = field(default_factory=dict)
    removed_sets: set[str] = field(default_factory=set)
    element_adds: dict[str, set[str]] = field(default_factory=dict)
    element_dels: dict[str, set[str]] = field(default_factory=dict)
    chains: dict[str, ChainModel | None] = field(default_factory=dict)  # None = remove
    map_elements: dict[str, dict[str, str | None]] = field(default_factory=dict)  # None = remove

    def is_empty(self) -> bool:
        """True when nothing at all was recorded."""
        return not (
            self.new_sets
            or self.removed_sets
            or self.element_adds
            or self.element_dels
            or self.chains
            or self.map_elements
        )


def _elements(items: Iterable[str]) -> str:
    return ", ".join(items)


def _set_decl(t: TableModel, name: str, s: SetModel) -> str:
    flags = " flags interval;" if s.interval else ""
    return f"add set {t.family} {t.name} {name} {{ type {s.type};{flags} }}"


def _add_elements(out: list[str], head: str, elements: Iterable[str], chunk: int = 50000) -> None:
    batch: list[str] = []
    for e in elements:
        batch.append(e)
        if len(batch) >= chunk:
            out.append(f"{head} {{ {_elements(batch)} }}")
            batch = []
    if batch:
        out.append(f"{head} {{ {_elements(batch)} }}")


def _map_element(key: str, verdict: str) -> str:
    return f'"{key}" : {verdict}'


def full_script(tables: Iterable[TableModel]) -> str:
    """One transaction that replaces each table wholesale (atomic, sweeps anything stale)."""
    out: list[str] = []
    for t in tables:
        tn = f"{t.family} {t.name}"
        out += [f"add table {tn}", f"delete table {tn}", f"add table {tn}"]
        for name, s in t.sets.items():
            out.append(_set_decl(t, name, s))
            _add_elements(out, f"add element {tn} {name}", s.elements)
        for name in t.maps:
            out.append(f"add map {tn} {name} {{ type {MAP_TYPE}; }}")
        for name, c in t.chains.items():
            out.append(
                f"add chain {tn} {name} {{ {c.hook} }}" if c.hook else f"add chain {tn} {name}"
            )
        for name, c in t.chains.items():
            prefix = f"add rule {tn} {name} "
            out.extend(prefix + r for r in c.rules)
        for name, elems in t.maps.items():
            if elems:
                items = (_map_element(k, v) for k, v in elems.items())
                out.append(f"add element {tn} {name} {{ {_elements(items)} }}")
    return "\n".join(out) + "\n"


def delta_script(programmed: TableModel, delta: TableDelta) -> list[str]:
    """Commands moving ``programmed`` to ``programmed + delta``, in an order the kernel accepts.

    Order: new sets; element deletes then adds; new chains (empty); map elements that go away
    or change; changed chains flushed and refilled, new chains filled; new map elements;
    removed chains flushed, then deleted; removed sets deleted.
    """
    tn = f"{programmed.family} {programmed.name}"
    out: list[str] = []
    for name, s in delta.new_sets.items():
        out.append(_set_decl(programmed, name, s))
        _add_elements(out, f"add element {tn} {name}", s.elements)
    for name, dels in delta.element_dels.items():
        if dels:
            _add_elements(out, f"delete element {tn} {name}", sorted(dels))
    for name, adds in delta.element_adds.items():
        if adds:
            _add_elements(out, f"add element {tn} {name}", sorted(adds))
    new_chains = {
        n: c for n, c in delta.chains.items() if c is not None and n not in programmed.chains
    }
    changed = {
        n: c
        for n, c in delta.chains.items()
        if c is not None and n in programmed.chains and programmed.chains[n] != c
    }
    removed = [n for n, c in delta.chains.items() if c is None and n in programmed.chains]
    for name, c in new_chains.items():
        out.append(f"add chain {tn} {name} {{ {c.hook} }}" if c.hook else f"add chain {tn} {name}")
    map_dels: list[tuple[str, str]] = []
    map_adds: list[tuple[str, str, str]] = []
    for mname, elems in delta.map_elements.items():
        current = programmed.maps.get(mname, {})
        for key, verdict in elems.items():
            old = current.get(key)
            if old == verdict:
                continue
            if old is not None:
                map_dels.append((mname, key))
            if verdict is not None:
                map_adds.append((mname, key, verdict))
    for mname, key in map_dels:
        out.append(f'delete element {tn} {mname} {{ "{key}" }}')
    for name, c in changed.items():
        out.append(f"flush chain {tn} {name}")
        out.extend(f"add rule {tn} {name} {r}" for r in c.rules)
    for name, c in new_chains.items():
        out.extend(f"add rule {tn} {name} {r}" for r in c.rules)
    for mname, key, verdict in map_adds:
        out.append(f"add element {tn} {mname} {{ {_map_element(key, verdict)} }}")
    out.extend(f"flush chain {tn} {name}" for name in removed)
    out.extend(f"delete chain {tn} {name}" for name in removed)
    out.extend(f"delete set {tn} {name}" for name in delta.removed_sets if name in programmed.sets)
    return out


def commit(programmed: TableModel, delta: TableDelta) -> None:
    """Record in ``programmed`` that ``delta`` is now in the kernel."""
    for name in delta.removed_sets:
        programmed.sets.pop(name, None)
    for name, s in delta.new_sets.items():
        programmed.sets[name] = s
    for name, dels in delta.element_dels.items():
        programmed.sets[name].elements.difference_update(dels)
    for name, adds in delta.element_adds.items():
        programmed.sets[name].elements.update(adds)
    for name, c in delta.chains.items():
        if c is None:
            programmed.chains.pop(name, None)
        else:
            programmed.chains[name] = c
    for mname, elems in delta.map_elements.items():
        current = programmed.maps.setdefault(mname, {})
        for key, verdict in elems.items():
            if verdict is None:
                current.pop(key, None)
            else:
                current[key] = verdict


# ------------------------------------------------------------------ fingerprints ----


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What a resync compares: chain hooks and rule tags, set shapes and elements, map contents."""

    chains: Mapping[str, tuple[str | None, tuple[str, ...]]]
    sets: Mapping[str, tuple[str, bool, frozenset[str]]]
    maps: Mapping[str, Mapping[str, str]]

    def differences(self, other: Fingerprint) -> list[str]:
        """Human-readable list of what differs (empty when equal)."""
        out: list[str] = []
        for kind, mine, theirs in (
            ("chain", self.chains, other.chains),
            ("set", self.sets, other.sets),
            ("map", self.maps, other.maps),
        ):
            for name in sorted(set(mine) | set(theirs)):
                if name not in theirs:
                    out.append(f"{kind} {name} missing")
                elif name not in mine:
                    out.append(f"{kind} {name} unexpected")
                elif mine[name] != theirs[name]:
                    out.append(f"{kind} {name} differs")
        return out


AnyNet = ipaddress.IPv4Network | ipaddress.IPv6Network


def collapse(nets: Iterable[AnyNet]) -> list[AnyNet]:
    """Merge overlapping/adjacent networks per family (no element masks another)."""
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for n in nets:
        if isinstance(n, ipaddress.IPv4Network):
            v4.append(n)
        else:
            v6.append(n)
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


def _range_nets(lo: str, hi: str) -> list[AnyNet]:
    a, b = ipaddress.ip_address(lo.strip()), ipaddress.ip_address(hi.strip())
    if isinstance(a, ipaddress.IPv4Address) and isinstance(b, ipaddress.IPv4Address):
        return list(ipaddress.summarize_address_range(a, b))
    if isinstance(a, ipaddress.IPv6Address) and isinstance(b, ipaddress.IPv6Address):
        return list(ipaddress.summarize_address_range(a, b))
    raise ValueError(f"mixed-family range {lo}-{hi}")


def _canonical_interval(elements: Iterable[str]) -> frozenset[str]:
    nets: list[AnyNet] = []
    for e in elements:
        if "-" in e and "/" not in e:
            lo, hi = e.split("-", 1)
            nets += _range_nets(lo, hi)
        else:
            nets.append(ipaddress.ip_network(e, strict=False))
    return frozenset(interval_element(n) for n in collapse(nets))


def interval_element(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """How an element of an interval set is written: bare address for a host, else a CIDR."""
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


def fingerprint_model(t: TableModel) -> Fingerprint:
    """The fingerprint the kernel should show for model ``t``."""
    chains = {
        n: (c.hook and _hook_key(c.hook), tuple(_rule_tag(r) for r in c.rules))
        for n, c in t.chains.items()
    }
    sets = {
        n: (
            s.type,
            s.interval,
            _canonical_interval(s.elements) if s.interval else frozenset(s.elements),
        )
        for n, s in t.sets.items()
    }
    maps = {n: dict(m) for n, m in t.maps.items()}
    return Fingerprint(chains, sets, maps)


def _rule_tag(rule: str) -> str:
    m = _TAG.search(rule)
    return m.group(1) if m else ""


_HOOK = re.compile(r"type (\w+) hook (\w+) priority ([\w-]+);")


def _hook_key(hook: str) -> str:
    m = _HOOK.search(hook)
    if not m:
        return hook
    prio = m.group(3)
    number = _PRIORITIES[prio] if prio in _PRIORITIES else int(prio)
    return f"{m.group(1)} {m.group(2)} {number}"


def _json_element(value: Any) -> str:
    if isinstance(value, dict) and "elem" in value:
        return _json_element(value["elem"]["val"] if "val" in value["elem"] else value["elem"])
    if isinstance(value, dict) and "prefix" in value:
        return f"{value['prefix']['addr']}/{value['prefix']['len']}"
    if isinstance(value, dict) and "range" in value:
        return f"{value['range'][0]}-{value['range'][1]}"
    if isinstance(value, dict) and "concat" in value:
        parts = []
        for p in value["concat"]:
            if isinstance(p, str) and p in _PROTO_NUMBERS:
                parts.append(str(_PROTO_NUMBERS[p]))
            else:
                parts.append(str(p))
        return " . ".join(parts)
    return str(value)


def _json_verdict(value: Any) -> str:
    for kind in ("goto", "jump"):
        if isinstance(value, dict) and kind in value:
            return f"{kind} {value[kind]['target']}"
    return str(value)


def fingerprint_json(listing: Mapping[str, Any]) -> Fingerprint:
    """The fingerprint of one table from ``nft -j list table <family> <name>`` output."""
    chains: dict[str, tuple[str | None, list[str]]] = {}
    sets: dict[str, tuple[str, bool, frozenset[str]]] = {}
    maps: dict[str, dict[str, str]] = {}
    for obj in listing.get("nftables", []):
        if "chain" in obj:
            c = obj["chain"]
            hook = f"{c['type']} {c['hook']} {c['prio']}" if "hook" in c else None
            chains[c["name"]] = (hook, [])
        elif "rule" in obj:
            r = obj["rule"]
            comment = r.get("comment", "")
            chains[r["chain"]][1].append(comment.split(";", 1)[0] if comment else "")
        elif "set" in obj:
            s = obj["set"]
            stype = s["type"] if isinstance(s["type"], str) else " . ".join(s["type"])
            interval = "interval" in s.get("flags", [])
            elems = [_json_element(e) for e in s.get("elem", [])]
            sets[s["name"]] = (
                stype,
                interval,
                _canonical_interval(elems) if interval else frozenset(elems),
            )
        elif "map" in obj:
            m = obj["map"]
            maps[m["name"]] = {str(k): _json_verdict(v) for k, v in m.get("elem", [])}
    return Fingerprint({n: (h, tuple(r)) for n, (h, r) in chains.items()}, sets, maps)
