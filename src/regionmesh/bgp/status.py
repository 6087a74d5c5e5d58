"""Parsing what BIRD's control socket answers (pure), and ``calicoctl node status``'s table.

BIRD's reply is a list of ``(code, text)`` lines (a line starting with a space continues the
previous code). :func:`parse_protocols` reads ``show protocols all`` into
:class:`ProtocolState` objects (name, protocol, state, since, info, and for BGP the neighbor
address and ``BGP state``); :func:`parse_status` reads ``show status``. :func:`bgp_peers` keeps
the sessions ``regionmesh bgp`` configured (named ``Mesh_``/``Global_``/``Node_`` as Calico's)
and :func:`format_node_status` prints Calico's ``calicoctl node status`` layout.

Talking to the socket is :mod:`.bird`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from regionmesh.bgp.peers import TYPE_BY_PREFIX

Reply = Sequence[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class ProtocolState:
    """One line of ``show protocols`` plus the details of ``show protocols all``."""

    name: str
    proto: str
    table: str
    state: str
    since: str
    info: str
    details: dict[str, str] = field(default_factory=dict)

    @property
    def neighbor(self) -> str | None:
        """The BGP neighbor address, when BIRD printed it."""
        return self.details.get("Neighbor address")

    @property
    def established(self) -> bool:
        """Whether the BGP session is up."""
        return self.proto == "BGP" and self.info.split(" ", 1)[0] == "Established"


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    """``show status``: version, router id, and BIRD's own summary line."""

    version: str
    router_id: str
    message: str
    lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PeerRow:
    """One row of ``calicoctl node status``."""

    address: str
    peer_type: str
    state: str
    since: str
    info: str
    family: int
    protocol: str


def parse_protocols(reply: Reply) -> list[ProtocolState]:
    """``show protocols [all]`` → one :class:`ProtocolState` per protocol (header skipped)."""
    protocols: list[ProtocolState] = []
    for code, text in reply:
        if code == 1002:
            parts = text.split(None, 5)
            if len(parts) < 5:
                continue
            name, proto, table, state, since = parts[:5]
            info = parts[5].strip() if len(parts) > 5 else ""
            info = " ".join(info.split()) if info else ""
            protocols.append(ProtocolState(name, proto, table, state, since, info, {}))
        elif code == 1006 and protocols:
            key, sep, value = text.strip().partition(":")
            if sep and key and key not in protocols[-1].details:
                protocols[-1].details[key.strip()] = value.strip()
    return protocols


def parse_status(reply: Reply) -> DaemonStatus:
    """``show status`` → :class:`DaemonStatus`."""
    version = router_id = message = ""
    lines: list[str] = []
    for code, text in reply:
        lines.append(text)
        if code == 1000:
            version = text.strip()
        elif text.strip().startswith("Router ID is "):
            router_id = text.strip()[len("Router ID is ") :]
        elif code == 13:
            message = text.strip()
    return DaemonStatus(version, router_id, message, tuple(lines))


def peer_type_of(name: str) -> str | None:
    """``node-to-node mesh`` / ``global`` / ``node specific`` from a protocol name, else None."""
    prefix = name.split("_", 1)[0]
    return TYPE_BY_PREFIX.get(prefix) if "_" in name else None


def bgp_peers(protocols: Iterable[ProtocolState]) -> list[PeerRow]:
    """The BGP sessions ``regionmesh bgp`` configured, as node-status rows."""
    rows: list[PeerRow] = []
    for p in protocols:
        peer_type = peer_type_of(p.name)
        if p.proto != "BGP" or peer_type is None:
            continue
        address = p.neighbor or _address_from_name(p.name)
        rows.append(
            PeerRow(
                address=address,
                peer_type=peer_type,
                state=p.state,
                since=p.since,
                info=p.info,
                family=6 if ":" in address else 4,
                protocol=p.name,
            )
        )
    return rows


def _address_from_name(name: str) -> str:
    rest = name.split("_", 1)[1]
    if rest.count("_") == 3 and "__" not in rest:
        return rest.replace("_", ".")
    return rest.replace("_", ":")


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(r: list[str], center: bool = False) -> str:
        cells = [(c.center(w) if center else c.ljust(w)) for c, w in zip(r, widths, strict=True)]
        return "| " + " | ".join(cells) + " |"

    out = [rule, line(rows[0], center=True), rule]
    out += [line(r) for r in rows[1:]]
    out.append(rule)
    return "\n".join(out)


def format_node_status(daemon: DaemonStatus, peers: Sequence[PeerRow], where: str) -> str:
    """Calico's ``calicoctl node status`` text: process line, then one table per family."""
    out = [
        "Calico process is running.",
        f"BGP daemon: {daemon.version or 'BIRD'}, router id {daemon.router_id or '?'}, "
        f"control socket {where}",
        "",
    ]
    header = ["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"]
    for family in (4, 6):
        out.append(f"IPv{family} BGP status")
        rows = [
            [p.address, p.peer_type, p.state, p.since, p.info] for p in peers if p.family == family
        ]
        if rows:
            out.append(_table([header, *rows]))
        else:
            out.append(f"No IPv{family} peers found.")
        out.append("")
    return "\n".join(out)
