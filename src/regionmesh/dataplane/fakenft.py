"""FakeNft: an in-memory nftables kernel for unit tests, as strict as the real one.

It implements :class:`regionmesh.dataplane.api.NftRunner` for the subset of the nft language
the renderer emits (one command per line: ``add|delete table``, ``add|delete set``, ``add map``,
``add|delete element``, ``add|flush|delete chain``, ``add rule`` with the match/statement
vocabulary of :mod:`.render`, including ``dnat to``/``snat to``). It holds tables, chains,
rules, sets, elements and map elements, and applies each script as one transaction on a copy:
the first failing command raises :class:`~regionmesh.errors.DataplaneError` and nothing is
applied — like the kernel.

What it rejects, mirroring what ``nft`` 1.0.6 / kernel 6.x were observed to reject: syntax
outside the subset; unknown table/chain/set/map references (``@set``, ``jump``/``goto``,
``vmap``); re-declaring a set with a different type/flags; a map key already bound to a
different verdict; deleting a missing element/chain/set; deleting a chain still jumped to or
still targeted by a map element; deleting a set still referenced by a rule; elements of the
wrong type (a prefix in a set without ``flags interval``, v6 in a v4 set, ...); overlapping
intervals; a ``dstnat``/``srcnat`` priority keyword on another hook than prerouting/postrouting;
a nat chain on the forward hook; and, checked over the whole table when the transaction ends as
the kernel's chain validation does, a ``dnat`` reachable (through jumps, gotos and verdict maps)
from anything but a nat base chain on prerouting/output, or an ``snat`` from anything but a nat
base chain on postrouting/input. Identical re-adds (same element, same chain, same set
declaration) are accepted because the kernel accepts them.
``tests/dataplane/test_dp_fakenft_vs_kernel.py`` runs the same scripts through the real ``nft``
to keep this honest.

Why one module of this size: it is one cohesive thing, a parser for the emitted nft subset and
the kernel's acceptance rules over the objects it builds. The rules refer to the parser's
objects and the parser exists only to feed the rules, so splitting them would give two modules
that only make sense together (module-size rule, docs/DESIGN.md).
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from regionmesh.errors import DataplaneError

_NAME = re.compile(r"[A-Za-z_.][A-Za-z0-9/_.\-]*")
_TOKEN = re.compile(r'"[^"]*"|[{},;]|[^\s{},;"]+')
_HEX_OR_INT = re.compile(r"0x[0-9a-fA-F]+|[0-9]+")
_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50}
_PRIORITIES["srcnat"] = 100
_SET_TYPES = {
    "ipv4_addr",
    "ipv6_addr",
    "ipv4_addr . inet_proto . inet_service",
    "ipv6_addr . inet_proto . inet_service",
}
_CT_STATES = {"established", "related", "invalid", "new", "untracked"}
_PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp", 136: "udplite", 1: "icmp", 58: "ipv6-icmp"}
_PRIORITY_HOOKS = {"dstnat": "prerouting", "srcnat": "postrouting"}  # nft 1.0.6, ip/ip6
_NAT_HOOKS = {"dnat": ("prerouting", "output"), "snat": ("postrouting", "input")}


class _Reject(Exception):
    """Internal: the command is invalid; message as nft would say it."""


@dataclass
class _Set:
    type: str
    interval: bool
    elements: set[str] = field(default_factory=set)


@dataclass
class _Rule:
    text: str
    comment: str
    sets: set[str]  # referenced set/map names
    chains: set[str]  # jump/goto targets
    nat: str | None = None  # "dnat" | "snat" statement in the rule


@dataclass
class _Chain:
    hook: tuple[str, str, int, str] | None  # (type, hook, priority, policy)
    rules: list[_Rule] = field(default_factory=list)


@dataclass
class _Table:
    sets: dict[str, _Set] = field(default_factory=dict)
    maps: dict[str, dict[str, str]] = field(default_factory=dict)
    chains: dict[str, _Chain] = field(default_factory=dict)


def _name(token: str, what: str) -> str:
    if not _NAME.fullmatch(token) or len(token) > 255:
        raise _Reject(f"syntax error, invalid {what} name {token!r}")
    return token


def _parse_addr(
    text: str, family: int, allow_prefix: bool
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise _Reject(f"Could not resolve hostname: {text}") from exc
    if net.version != family:
        raise _Reject(f"Could not resolve hostname: {text}: Address family not supported")
    if "/" in text and not allow_prefix:
        raise _Reject(
            "You must add 'flags interval' to your set declaration if you want to add prefix elements"
        )
    return net


class _Tokens:
    def __init__(self, text: str) -> None:
        self.items: list[str] = _TOKEN.findall(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> str | None:
        i = self.pos + offset
        return self.items[i] if i < len(self.items) else None

    def next(self) -> str:
        if self.pos >= len(self.items):
            raise _Reject("syntax error, unexpected end of command")
        tok = self.items[self.pos]
        self.pos += 1
        return tok

    def expect(self, *options: str) -> str:
        tok = self.next()
        if tok not in options:
            raise _Reject(f"syntax error, unexpected {tok!r}, expecting {' or '.join(options)}")
        return tok

    def done(self) -> bool:
        return self.pos >= len(self.items)

    def braced(self) -> list[list[str]]:
        """``{ a b , c }`` → [[a, b], [c]] (after the opening brace was peeked)."""
        self.expect("{")
        groups: list[list[str]] = [[]]
        while True:
            tok = self.next()
            if tok == "}":
                break
            if tok == ",":
                groups.append([])
            else:
                groups[-1].append(tok)
        return [g for g in groups if g]


class FakeNft:
    """In-memory nft: holds state, applies whole scripts atomically, rejects invalid ones."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str], _Table] = {}
        self.transactions: list[str] = []  # every successfully applied script

    # ---------------------------------------------------------------- NftRunner ----
    def apply(self, script: str) -> None:
        """Apply ``script`` as one transaction, or raise DataplaneError and change nothing."""
        work = self._run(script, validate_each=False)
        try:
            for t in work.values():
                self._validate_nat(t)
        except _Reject as exc:
            # Rare: replay, validating after every command, to blame the line as nft does.
            self._run(script, validate_each=True)
            raise DataplaneError(f"Error: {exc}") from None
        self.tables = work
        self.transactions.append(script)

    def _run(self, script: str, validate_each: bool) -> dict[tuple[str, str], _Table]:
        work = copy.deepcopy(self.tables)
        for number, line in enumerate(script.splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            try:
                self._command(work, stripped)
                if validate_each:
                    for t in work.values():
                        self._validate_nat(t)
            except _Reject as exc:
                raise DataplaneError(f"Error: {exc} (line {number}: {stripped[:300]})") from None
        return work

    def list_ruleset_json(self, table: str) -> dict[str, Any]:
        """The table in ``nft -j list table`` shape (the fields the driver reads)."""
        family, name = table.split()
        t = self.tables.get((family, name))
        if t is None:
            return {"nftables": []}
        out: list[dict[str, Any]] = [{"table": {"family": family, "name": name}}]
        base = {"family": family, "table": name}
        for sname, s in t.sets.items():
            obj: dict[str, Any] = base | {"name": sname}
            parts = s.type.split(" . ")
            obj["type"] = parts[0] if len(parts) == 1 else parts
            if s.interval:
                obj["flags"] = ["interval"]
            if s.elements:
                obj["elem"] = [self._json_elem(e) for e in sorted(s.elements)]
            out.append({"set": obj})
        for mname, elems in t.maps.items():
            mobj: dict[str, Any] = base | {"name": mname, "type": "ifname", "map": "verdict"}
            if elems:
                mobj["elem"] = [
                    [k, {v.split()[0]: {"target": v.split()[1]}}] for k, v in elems.items()
                ]
            out.append({"map": mobj})
        for cname, c in t.chains.items():
            cobj: dict[str, Any] = base | {"name": cname}
            if c.hook:
                cobj |= {"type": c.hook[0], "hook": c.hook[1], "prio": c.hook[2]}
                cobj["policy"] = c.hook[3]
            out.append({"chain": cobj})
        for cname, c in t.chains.items():
            for r in c.rules:
                robj: dict[str, Any] = base | {"chain": cname, "expr": []}
                if r.comment:
                    robj["comment"] = r.comment
                out.append({"rule": robj})
        return {"nftables": out}

    # --------------------------------------------------------------- inspection ----
    def chain_rules(self, table: str, chain: str) -> list[str]:
        """Rule texts of a chain (tests use this to look at what was programmed)."""
        family, name = table.split()
        return [r.text for r in self.tables[(family, name)].chains[chain].rules]

    def set_elements(self, table: str, set_name: str) -> set[str]:
        """Elements of a set as written."""
        family, name = table.split()
        return set(self.tables[(family, name)].sets[set_name].elements)

    def map_elements(self, table: str, map_name: str) -> dict[str, str]:
        """Key → verdict of a verdict map."""
        family, name = table.split()
        return dict(self.tables[(family, name)].maps[map_name])

    # ---------------------------------------------------------------- validation ----
    @staticmethod
    def _validate_nat(t: _Table) -> None:
        """The kernel's commit-time check: nat statements only on paths from fitting base chains."""
        if not any(r.nat for c in t.chains.values() for r in c.rules):
            return
        for base_name, base in t.chains.items():
            if base.hook is None:
                continue
            seen: set[str] = set()
            todo = [base_name]
            while todo:
                name = todo.pop()
                if name in seen:
                    continue
                seen.add(name)
                for r in t.chains[name].rules:
                    if r.nat and (base.hook[0] != "nat" or base.hook[1] not in _NAT_HOOKS[r.nat]):
                        raise _Reject(
                            f"Could not process rule: Operation not supported: {r.nat} in "
                            f"chain {name} reached from {base.hook[0]} {base.hook[1]} {base_name}"
                        )
                    todo.extend(r.chains)
                    for ref in r.sets:
                        for verdict in t.maps.get(ref, {}).values():
                            todo.append(verdict.split()[1])

    # ------------------------------------------------------------------ commands ----
    @staticmethod
    def _json_elem(e: str) -> Any:
        if " . " in e:
            addr, proto, port = e.split(" . ")
            return {"concat": [addr, _PROTO_NAMES.get(int(proto), int(proto)), int(port)]}
        if "/" in e:
            addr, length = e.split("/")
            return {"prefix": {"addr": addr, "len": int(length)}}
        return e

    def _table(self, tables: dict[tuple[str, str], _Table], tok: _Tokens) -> tuple[str, _Table]:
        family = tok.expect("ip", "ip6")
        name = _name(tok.next(), "table")
        t = tables.get((family, name))
        if t is None:
            raise _Reject(f"No such file or directory: table {family} {name}")
        return family, t

    def _command(self, tables: dict[tuple[str, str], _Table], line: str) -> None:
        tok = _Tokens(line)
        verb = tok.expect("add", "delete", "flush")
        kind = tok.expect("table", "set", "map", "element", "chain", "rule")
        if kind == "table":
            if verb == "flush":
                raise _Reject("flush table is not in the supported subset")
            family = tok.expect("ip", "ip6")
            key = (family, _name(tok.next(), "table"))
            if verb == "add":
                tables.setdefault(key, _Table())
            elif key not in tables:
                raise _Reject(f"No such file or directory: table {key[0]} {key[1]}")
            else:
                del tables[key]
            self._end(tok)
            return
        family, t = self._table(tables, tok)
        fam = 4 if family == "ip" else 6
        if kind == "set":
            self._set_cmd(t, verb, tok)
        elif kind == "map":
            if verb != "add":
                raise _Reject(f"{verb} map is not in the supported subset")
            name = _name(tok.next(), "map")
            spec = tok.braced()
            if spec != [["type", "ifname", ":", "verdict", ";"]]:
                raise _Reject(f"unsupported map declaration {spec}")
            if name in t.sets:
                raise _Reject("File exists")
            t.maps.setdefault(name, {})
            self._end(tok)
        elif kind == "element":
            self._element_cmd(t, fam, verb, tok)
        elif kind == "chain":
            self._chain_cmd(t, verb, tok)
        else:
            if verb != "add":
                raise _Reject(f"{verb} rule is not in the supported subset")
            chain = _name(tok.next(), "chain")
            if chain not in t.chains:
                raise _Reject(f"No such file or directory: chain {chain}")
            t.chains[chain].rules.append(self._rule(t, fam, tok))

    @staticmethod
    def _end(tok: _Tokens) -> None:
        if not tok.done():
            raise _Reject(f"syntax error, unexpected {tok.peek()!r}")

    def _set_cmd(self, t: _Table, verb: str, tok: _Tokens) -> None:
        name = _name(tok.next(), "set")
        if verb == "delete":
            self._end(tok)
            if name not in t.sets:
                raise _Reject(f"No such file or directory: set {name}")
            if any(name in r.sets for c in t.chains.values() for r in c.rules):
                raise _Reject(f"Could not process rule: Device or resource busy: set {name}")
            del t.sets[name]
            return
        if verb != "add":
            raise _Reject("flush set is not in the supported subset")
        stmts = [g for g in " ".join(tok.items[tok.pos :]).strip().strip("{}").split(";")]
        tok.pos = len(tok.items)
        stype, interval = None, False
        for stmt in (s.strip() for s in stmts):
            if not stmt:
                continue
            if stmt.startswith("type "):
                stype = stmt[5:].strip()
            elif stmt == "flags interval":
                interval = True
            else:
                raise _Reject(f"syntax error in set declaration: {stmt!r}")
        if stype not in _SET_TYPES:
            raise _Reject(f"unsupported set type {stype!r}")
        if " . " in stype and interval:
            raise _Reject("interval concatenations are not in the supported subset")
        if name in t.maps:
            raise _Reject("Could not process rule: File exists")
        old = t.sets.get(name)
        if old is not None:
            if (old.type, old.interval) != (stype, interval):
                raise _Reject(f"Could not process rule: File exists: set {name}")
            return
        t.sets[name] = _Set(stype, interval)

    def _set_element(self, s: _Set, fam: int, words: list[str]) -> str:
        if " . " in s.type:
            if len(words) != 5 or words[1] != "." or words[3] != ".":
                raise _Reject(f"syntax error in element {' '.join(words)!r}")
            addr = _parse_addr(words[0], fam, False)
            proto, port = words[2], words[4]
            proto_num = {"tcp": 6, "udp": 17, "sctp": 132}.get(proto)
            if proto_num is None:
                if not proto.isdigit() or int(proto) > 255:
                    raise _Reject(f"invalid protocol {proto!r}")
                proto_num = int(proto)
            if not port.isdigit() or int(port) > 65535:
                raise _Reject(f"invalid port {port!r}")
            return f"{addr.network_address} . {proto_num} . {int(port)}"
        if len(words) != 1:
            raise _Reject(f"syntax error in element {' '.join(words)!r}")
        net = _parse_addr(words[0], fam, s.interval)
        if net.prefixlen == net.max_prefixlen:
            return str(net.network_address)
        return str(net)

    def _element_cmd(self, t: _Table, fam: int, verb: str, tok: _Tokens) -> None:  # noqa: C901 - one nft grammar production, kept whole
        name = _name(tok.next(), "set")
        groups = tok.braced()
        self._end(tok)
        if verb not in ("add", "delete"):
            raise _Reject(f"{verb} element is not in the supported subset")
        if name in t.maps:
            m = t.maps[name]
            for words in groups:
                key = words[0]
                if not (key.startswith('"') and key.endswith('"')):
                    raise _Reject(f"syntax error, map key {key!r} must be a quoted ifname")
                key = key[1:-1]
                if verb == "delete":
                    if len(words) != 1:
                        raise _Reject("syntax error in element")
                    if key not in m:
                        raise _Reject(f"Could not process rule: No such file or directory: {key}")
                    del m[key]
                    continue
                if len(words) != 4 or words[1] != ":" or words[2] not in ("goto", "jump"):
                    raise _Reject(f"syntax error in map element {' '.join(words)!r}")
                target = words[3]
                if target not in t.chains or t.chains[target].hook is not None:
                    raise _Reject(f"Could not process rule: No such file or directory: {target}")
                verdict = f"{words[2]} {target}"
                if m.get(key, verdict) != verdict:
                    raise _Reject(f"Could not process rule: File exists: {key}")
                m[key] = verdict
            return
        s = t.sets.get(name)
        if s is None:
            raise _Reject(f"No such file or directory: set {name}")
        elems = [self._set_element(s, fam, words) for words in groups]
        if verb == "delete":
            for e in elems:
                if e not in s.elements:
                    raise _Reject(f"Could not process rule: No such file or directory: {e}")
                s.elements.discard(e)
            return
        if s.interval:
            new = [ipaddress.ip_network(e) for e in elems]
            for i, a in enumerate(new):
                for b in new[i + 1 :]:
                    if a.overlaps(b) and a != b:
                        raise _Reject("conflicting intervals specified")
            existing = [ipaddress.ip_network(e) for e in s.elements]
            for a in new:
                for b in existing:
                    if a.overlaps(b) and a != b:
                        raise _Reject("interval overlaps with an existing one")
        s.elements.update(elems)

    def _chain_cmd(self, t: _Table, verb: str, tok: _Tokens) -> None:
        name = _name(tok.next(), "chain")
        if verb == "add":
            hook = None
            if tok.peek() == "{":
                tok.expect("{")
                tok.expect("type")
                ctype = tok.expect("filter", "nat")
                tok.expect("hook")
                hname = tok.expect("prerouting", "input", "forward", "output", "postrouting")
                tok.expect("priority")
                prio_tok = tok.next()
                if _PRIORITY_HOOKS.get(prio_tok, hname) != hname:
                    raise _Reject("invalid priority expression value in this context.")
                if prio_tok in _PRIORITIES:
                    prio = _PRIORITIES[prio_tok]
                elif re.fullmatch(r"-?\d+", prio_tok):
                    prio = int(prio_tok)
                else:
                    raise _Reject(f"invalid priority {prio_tok!r}")
                tok.expect(";")
                tok.expect("policy")
                policy = tok.expect("accept", "drop")
                tok.expect(";")
                tok.expect("}")
                if ctype == "nat" and hname == "forward":
                    raise _Reject("Could not process rule: Operation not supported")
                hook = (ctype, hname, prio, policy)
            self._end(tok)
            old = t.chains.get(name)
            if old is not None:
                if old.hook != hook and hook is not None:
                    raise _Reject(f"Could not process rule: File exists: chain {name}")
                return
            t.chains[name] = _Chain(hook)
            return
        self._end(tok)
        chain = t.chains.get(name)
        if chain is None:
            raise _Reject(f"Could not process rule: No such file or directory: chain {name}")
        if verb == "flush":
            chain.rules.clear()
            return
        users = [
            c
            for cname, c in t.chains.items()
            if cname != name and any(name in r.chains for r in c.rules)
        ]
        mapped = any(v.split()[1] == name for m in t.maps.values() for v in m.values())
        if users or mapped:
            raise _Reject(f"Could not process rule: Device or resource busy: chain {name}")
        del t.chains[name]

    # --------------------------------------------------------------------- rules ----
    def _rule(self, t: _Table, fam: int, tok: _Tokens) -> _Rule:  # noqa: C901 - nft's rule grammar, one match keyword per branch, kept whole
        text = " ".join(tok.items[tok.pos :])
        sets: set[str] = set()
        chains: set[str] = set()
        comment = ""
        verdict_seen = False
        nat: str | None = None
        ip_kw = "ip" if fam == 4 else "ip6"
        icmp_kw = "icmp" if fam == 4 else "icmpv6"

        def neg() -> None:
            if tok.peek() == "!=":
                tok.next()

        def number(tok_text: str, limit: int) -> int:
            if not _HEX_OR_INT.fullmatch(tok_text) or int(tok_text, 0) > limit:
                raise _Reject(f"syntax error, bad value {tok_text!r}")
            return int(tok_text, 0)

        def value_or_set(parse_one: Any) -> None:
            if tok.peek() == "{":
                groups = tok.braced()
                if not groups:
                    raise _Reject("syntax error, empty anonymous set")
                for g in groups:
                    parse_one(g)
            else:
                parse_one([tok.next()])

        def set_ref(expected_type: str) -> None:
            ref = tok.next()
            if not ref.startswith("@"):
                raise _Reject(f"syntax error, expected @set, got {ref!r}")
            s = t.sets.get(ref[1:])
            if s is None:
                raise _Reject(f"No such file or directory: set {ref[1:]}")
            if s.type != expected_type:
                raise _Reject(f"datatype mismatch: set {ref[1:]} has type {s.type}")
            sets.add(ref[1:])

        def ports(group: list[str]) -> None:
            if len(group) != 1:
                raise _Reject(f"syntax error in ports {group}")
            lo, _, hi = group[0].partition("-")
            if number(lo, 65535) > (number(hi, 65535) if hi else 65535):
                raise _Reject(f"invalid range {group[0]}")

        def addrs(group: list[str]) -> None:
            if len(group) != 1:
                raise _Reject(f"syntax error in addresses {group}")
            _parse_addr(group[0], fam, True)

        while not tok.done():
            if verdict_seen and tok.peek() != "comment":
                raise _Reject(f"syntax error, statement after verdict: {tok.peek()!r}")
            word = tok.next()
            if word == "comment":
                c = tok.next()
                if not (c.startswith('"') and c.endswith('"')) or len(c) - 2 > 128:
                    raise _Reject("syntax error, bad comment")
                comment = c[1:-1]
                self._end(tok)
                break
            if word in ("accept", "drop", "return"):
                verdict_seen = True
            elif word in ("jump", "goto"):
                target = tok.next()
                chain = t.chains.get(target)
                if chain is None:
                    raise _Reject(f"Could not process rule: No such file or directory: {target}")
                if chain.hook is not None:
                    raise _Reject(f"Could not process rule: Operation not supported: {target}")
                chains.add(target)
                verdict_seen = True
            elif word == "counter":
                pass
            elif word == "ct":
                tok.expect("state")
                neg()
                states = [tok.next()]
                while tok.peek() == ",":
                    tok.next()
                    states.append(tok.next())
                if not set(states) <= _CT_STATES:
                    raise _Reject(f"syntax error, bad ct state {states}")
            elif word == "meta":
                what = tok.expect("l4proto", "mark")
                if what == "l4proto":
                    if tok.peek() == ".":
                        raise _Reject("syntax error, unexpected concatenation")
                    neg()
                    value_or_set(lambda g: number(g[0], 255))
                elif tok.peek() == "set":
                    tok.next()
                    tok.expect("mark")
                    tok.expect("&", "|")
                    number(tok.next(), 0xFFFFFFFF)
                else:
                    tok.expect("&")
                    number(tok.next(), 0xFFFFFFFF)
                    tok.expect("==", "!=")
                    number(tok.next(), 0xFFFFFFFF)
            elif word in ("iifname", "oifname"):
                nxt = tok.next()
                if nxt == "vmap":
                    ref = tok.next()
                    if not ref.startswith("@") or ref[1:] not in t.maps:
                        raise _Reject(f"No such file or directory: map {ref}")
                    sets.add(ref[1:])
                    verdict_seen = True
                elif not (nxt.startswith('"') and nxt.endswith('"') and 2 < len(nxt) <= 18):
                    raise _Reject(f"syntax error, bad interface name {nxt!r}")
            elif word in ("ip", "ip6"):
                if word != ip_kw:
                    raise _Reject(f"conflicting protocols specified: {word} in {ip_kw} table")
                where = tok.expect("saddr", "daddr")
                if tok.peek() == ".":
                    if where != "daddr":
                        raise _Reject("syntax error, unsupported concatenation")
                    for expected in (".", "meta", "l4proto", ".", "th", "dport"):
                        tok.expect(expected)
                    neg()
                    addr_type = "ipv4_addr" if fam == 4 else "ipv6_addr"
                    set_ref(f"{addr_type} . inet_proto . inet_service")
                    continue
                neg()
                if (tok.peek() or "").startswith("@"):
                    set_ref("ipv4_addr" if fam == 4 else "ipv6_addr")
                else:
                    value_or_set(addrs)
            elif word == "th":
                tok.expect("sport", "dport")
                neg()
                value_or_set(ports)
            elif word in ("tcp", "udp"):
                tok.expect("sport", "dport")
                neg()
                value_or_set(ports)
            elif word in ("icmp", "icmpv6"):
                if word != icmp_kw:
                    raise _Reject(f"conflicting protocols specified: {word}")
                field_ = tok.expect("type", "code")
                if tok.peek() == ".":
                    tok.expect(".")
                    tok.expect(icmp_kw)
                    tok.expect("code")
                    tok.expect("!=", "==")
                    for g in tok.braced():
                        if len(g) != 3 or g[1] != ".":
                            raise _Reject(f"syntax error in {g}")
                        number(g[0], 255)
                        number(g[2], 255)
                    continue
                neg()
                value_or_set(lambda g: number(g[0], 255))
                del field_
            elif word == "fib":
                for expected in ("saddr", ".", "mark", ".", "iif", "oif"):
                    tok.expect(expected)
                number(tok.next(), 0xFFFFFFFF)
            elif word == "log":
                tok.expect("prefix")
                p = tok.next()
                if not (p.startswith('"') and p.endswith('"')):
                    raise _Reject("syntax error, log prefix must be quoted")
                tok.expect("level")
                tok.expect("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")
            elif word in ("dnat", "snat"):
                tok.expect("to")
                target = tok.next()
                addr, port = target, ""
                if fam == 4 and ":" in target:  # v6 with a port would need [addr]:port
                    addr, _, port = target.rpartition(":")
                _parse_addr(addr, fam, False)
                if port:
                    number(port, 65535)
                nat = word
                verdict_seen = True
            else:
                raise _Reject(f"syntax error, unexpected {word!r}")
        return _Rule(text, comment, sets, chains, nat)
