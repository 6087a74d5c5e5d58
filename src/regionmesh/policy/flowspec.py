"""Flow specifications: "from endpoint/IP, to endpoint/IP, protocol, ports, ICMP, expect".

A :class:`FlowSpec` is what an operator writes — in a ``verify`` file entry or as ``explain``
options — before it is tied to a datastore. This module parses and checks specs (every problem
becomes a :class:`~regionmesh.errors.FieldError` naming the entry index and field, e.g.
``[2].to.endpoint``), and resolves a spec against a :class:`~regionmesh.policy.Snapshot` into
the endpoints and the concrete :class:`~regionmesh.policy.Flow` to evaluate (an unknown endpoint,
an IP that the named endpoint does not own, or an IP owned by several endpoints is an error,
never a silent deny). The verdict itself is :func:`regionmesh.policy.evaluate_flow`'s job;
reading files from disk and printing are the CLI's.

Verify file format (YAML or JSON, a list)::

    - from: {endpoint: NS/NAME}        # or {ip: 10.1.0.5}, or {endpoint: NS/NAME, ip: 10.1.0.5}
      to: {endpoint: NS/NAME}
      protocol: TCP                    # name or number
      port: 80                         # optional destination port
      srcPort: 40000                   # optional
      icmp: {type: 8, code: 0}         # optional
      expect: allow                    # allow | deny
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from regionmesh.errors import FieldError, ValidationError
from regionmesh.model import WorkloadEndpoint
from regionmesh.policy.flows import (
    PROTOCOL_ICMP,
    PROTOCOL_ICMPV6,
    Flow,
    IPAddress,
    parse_net,
    protocol_number,
)
from regionmesh.policy.hostlocal import EndpointToHostAction
from regionmesh.policy.snapshot import Endpoint, Snapshot
from regionmesh.policy.trace import FlowVerdict
from regionmesh.policy.verdicts import evaluate_flow

__all__ = [
    "EXPECTATIONS",
    "PORT_PROTOCOLS",
    "EndpointRef",
    "FlowCheck",
    "FlowSpec",
    "ResolvedFlow",
    "check_flow",
    "load_flow_file",
    "load_flow_file_partial",
    "parse_endpoint_name",
    "parse_flow_entries",
    "parse_flow_entries_partial",
    "parse_flow_entry",
    "resolve_flow",
]

PORT_PROTOCOLS = frozenset({6, 17, 132, 136})
"""TCP, UDP, SCTP, UDPLite: the protocols with ports."""
ICMP_PROTOCOLS = frozenset({PROTOCOL_ICMP, PROTOCOL_ICMPV6})
EXPECTATIONS = ("allow", "deny")
_ENTRY_KEYS = frozenset({"from", "to", "protocol", "port", "srcPort", "icmp", "expect"})
_SIDE_KEYS = frozenset({"endpoint", "ip"})


@dataclass(frozen=True, slots=True)
class EndpointRef:
    """One side of a flow: a WorkloadEndpoint (``namespace``/``name``), an IP, or both."""

    namespace: str | None = None
    name: str | None = None
    ip: IPAddress | None = None

    def __str__(self) -> str:
        parts = []
        if self.name is not None:
            parts.append(f"{self.namespace}/{self.name}")
        if self.ip is not None:
            parts.append(str(self.ip))
        return " ".join(parts) if len(parts) < 2 else f"{parts[0]} ({parts[1]})"

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form (as written in a verify file)."""
        out: dict[str, str] = {}
        if self.name is not None:
            out["endpoint"] = f"{self.namespace}/{self.name}"
        if self.ip is not None:
            out["ip"] = str(self.ip)
        return out


@dataclass(frozen=True, slots=True)
class FlowSpec:
    """A checked flow specification (not yet tied to a snapshot)."""

    source: EndpointRef
    destination: EndpointRef
    protocol: int
    dst_port: int | None = None
    src_port: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    expect: str | None = None
    """``allow`` / ``deny`` for verify entries; None for explain."""

    def describe(self) -> str:
        """``one/vm-a → two/vm-b TCP/80`` style summary."""
        what = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMPv6", 132: "SCTP", 136: "UDPLite"}.get(
            self.protocol, f"protocol {self.protocol}"
        )
        if self.dst_port is not None:
            what += f"/{self.dst_port}"
        if self.icmp_type is not None:
            what += f" type {self.icmp_type}"
            if self.icmp_code is not None:
                what += f" code {self.icmp_code}"
        return f"{self.source} → {self.destination} {what}"


def parse_endpoint_name(text: str) -> tuple[str, str]:
    """``NS/NAME`` → (namespace, name); ValueError when it is not of that form."""
    ns, sep, name = text.partition("/")
    if not sep or not ns or not name or "/" in name:
        raise ValueError("expected NAMESPACE/NAME of a WorkloadEndpoint")
    return ns, name


def _int_field(value: Any, path: str, low: int, high: int, errors: list[FieldError]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        else:
            errors.append(FieldError(path, value, f"must be an integer {low}-{high}"))
            return None
    if not low <= value <= high:
        errors.append(FieldError(path, value, f"must be an integer {low}-{high}"))
        return None
    return int(value)


def _side(value: Any, path: str, errors: list[FieldError]) -> EndpointRef | None:
    if not isinstance(value, Mapping):
        errors.append(FieldError(path, value, "must be a mapping with 'endpoint' and/or 'ip'"))
        return None
    unknown = sorted(str(k) for k in value if k not in _SIDE_KEYS)
    for key in unknown:
        errors.append(FieldError(f"{path}.{key}", value[key], "unknown field"))
    if "endpoint" not in value and "ip" not in value:
        errors.append(FieldError(path, dict(value), "needs 'endpoint' (NS/NAME) and/or 'ip'"))
        return None
    ns = name = None
    ip: IPAddress | None = None
    ok = not unknown
    if "endpoint" in value:
        text = value["endpoint"]
        try:
            if not isinstance(text, str):
                raise ValueError("expected NAMESPACE/NAME of a WorkloadEndpoint")
            ns, name = parse_endpoint_name(text)
        except ValueError as exc:
            errors.append(FieldError(f"{path}.endpoint", text, str(exc)))
            ok = False
    if "ip" in value:
        text = value["ip"]
        try:
            ip = ipaddress.ip_address(str(text))
        except ValueError:
            errors.append(FieldError(f"{path}.ip", text, "not an IP address"))
            ok = False
    return EndpointRef(ns, name, ip) if ok else None


def parse_flow_entry(entry: Any, prefix: str = "") -> FlowSpec:
    """Check one entry (a mapping in the verify-file format); ValidationError lists every bad
    field, each path prefixed with ``prefix`` (e.g. ``[3]``)."""
    errors: list[FieldError] = []
    spec = _parse_entry(entry, prefix, errors)
    if errors or spec is None:
        raise ValidationError(errors or [FieldError(prefix, entry, "invalid flow")])
    return spec


def _dot(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _parse_entry(entry: Any, prefix: str, errors: list[FieldError]) -> FlowSpec | None:
    before = len(errors)  # ``errors`` also holds earlier entries' problems
    if not isinstance(entry, Mapping):
        errors.append(FieldError(prefix, entry, "a flow entry must be a mapping"))
        return None
    for key in sorted(str(k) for k in entry if k not in _ENTRY_KEYS):
        errors.append(FieldError(_dot(prefix, key), entry[key], "unknown field"))
    src = dst = None
    for key in ("from", "to"):
        if key not in entry:
            errors.append(FieldError(_dot(prefix, key), None, "required"))
            continue
        side = _side(entry[key], _dot(prefix, key), errors)
        if key == "from":
            src = side
        else:
            dst = side
    protocol: int | None = None
    if "protocol" not in entry:
        errors.append(FieldError(_dot(prefix, "protocol"), None, "required (a name or number)"))
    else:
        raw = entry["protocol"]
        try:
            if isinstance(raw, bool) or not isinstance(raw, (int, str)):
                raise ValueError("not a protocol")
            protocol = protocol_number(raw)
        except ValueError:
            errors.append(
                FieldError(
                    _dot(prefix, "protocol"),
                    raw,
                    "must be TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 0-255",
                )
            )
    port = _int_field(entry.get("port"), _dot(prefix, "port"), 0, 65535, errors)
    src_port = _int_field(entry.get("srcPort"), _dot(prefix, "srcPort"), 0, 65535, errors)
    icmp_type = icmp_code = None
    if "icmp" in entry:
        icmp = entry["icmp"]
        path = _dot(prefix, "icmp")
        if not isinstance(icmp, Mapping) or "type" not in icmp:
            errors.append(FieldError(path, icmp, "must be a mapping {type: T[, code: C]}"))
        else:
            for key in sorted(str(k) for k in icmp if k not in ("type", "code")):
                errors.append(FieldError(f"{path}.{key}", icmp[key], "unknown field"))
            icmp_type = _int_field(icmp.get("type"), f"{path}.type", 0, 255, errors)
            icmp_code = _int_field(icmp.get("code"), f"{path}.code", 0, 255, errors)
    if protocol is not None:
        if (port is not None or src_port is not None) and protocol not in PORT_PROTOCOLS:
            field = "port" if port is not None else "srcPort"
            errors.append(
                FieldError(
                    _dot(prefix, field),
                    entry.get(field),
                    "ports need protocol TCP, UDP, SCTP or UDPLite",
                )
            )
        if "icmp" in entry and protocol not in ICMP_PROTOCOLS:
            errors.append(
                FieldError(_dot(prefix, "icmp"), entry["icmp"], "icmp needs protocol ICMP/ICMPv6")
            )
    expect: str | None = None
    if "expect" in entry:
        raw_expect = entry["expect"]
        if not isinstance(raw_expect, str) or raw_expect.lower() not in EXPECTATIONS:
            errors.append(FieldError(_dot(prefix, "expect"), raw_expect, "must be allow or deny"))
        else:
            expect = raw_expect.lower()
    if len(errors) > before or src is None or dst is None or protocol is None:
        return None
    return FlowSpec(src, dst, protocol, port, src_port, icmp_type, icmp_code, expect)


def parse_flow_entries_partial(
    data: Any, *, require_expect: bool = True
) -> tuple[list[tuple[int, FlowSpec]], list[FieldError]]:
    """Parse every entry of a verify document; return the valid ones (with their index) and
    the problems of the others (``[i].field``), so callers can report everything at once."""
    if isinstance(data, Mapping) and "flows" in data:
        data = data["flows"]
    if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
        return [], [FieldError("", data, "expected a list of flow entries")]
    errors: list[FieldError] = []
    specs: list[tuple[int, FlowSpec]] = []
    for i, entry in enumerate(data):
        spec = _parse_entry(entry, f"[{i}]", errors)
        if spec is not None:
            if require_expect and spec.expect is None:
                errors.append(FieldError(f"[{i}].expect", None, "required (allow or deny)"))
            else:
                specs.append((i, spec))
    if not data:
        errors.append(FieldError("", [], "the file lists no flows"))
    return specs, errors


def parse_flow_entries(data: Any, *, require_expect: bool = True) -> list[FlowSpec]:
    """Check a whole verify document (a list of entries); ValidationError lists every problem
    of every entry (``[i].field``) — nothing is returned unless all entries are valid."""
    specs, errors = parse_flow_entries_partial(data, require_expect=require_expect)
    if errors:
        raise ValidationError(errors)
    return [spec for _, spec in specs]


def load_flow_file_partial(
    text: str, source: str = ""
) -> tuple[list[tuple[int, FlowSpec]], list[FieldError]]:
    """Like :func:`load_flow_file`, but returns the valid entries and every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return [], [FieldError(where, "", f"not valid YAML/JSON: {problem}")]
    return parse_flow_entries_partial(data)


def load_flow_file(text: str, source: str = "") -> list[FlowSpec]:
    """Parse YAML/JSON text of a verify file; ValidationError (``where`` = ``source``) for
    syntax errors and for every invalid entry."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError(
            [FieldError(where, "", f"not valid YAML/JSON: {problem}")], where=source
        ) from exc
    try:
        return parse_flow_entries(data)
    except ValidationError as exc:
        raise ValidationError(exc.fields, where=source) from None


@dataclass(frozen=True, slots=True)
class ResolvedFlow:
    """A spec tied to a snapshot: the policed endpoints (None = not a Calico endpoint)."""

    spec: FlowSpec
    source: Endpoint | None
    destination: Endpoint | None
    flow: Flow


def _endpoint_ips(endpoint: Endpoint) -> list[IPAddress]:
    nets = endpoint.spec.ip_networks if hasattr(endpoint.spec, "ip_networks") else []
    out: list[IPAddress] = []
    for text in nets:
        try:
            out.append(parse_net(text).network_address)
        except ValueError:
            continue
    return out


def _resolve_side(
    snapshot: Snapshot, ref: EndpointRef, path: str, errors: list[FieldError]
) -> tuple[Endpoint | None, list[IPAddress]]:
    """The endpoint and its candidate addresses (the given IP, or every IP of the endpoint)."""
    if ref.name is not None:
        assert ref.namespace is not None
        ep = snapshot.workload_endpoint(ref.namespace, ref.name)
        if ep is None:
            # convenience: NAME may also be the workload (Nova instance id) of one endpoint
            by_workload = [
                e
                for e in snapshot.endpoints()
                if isinstance(e, WorkloadEndpoint)
                and e.metadata.namespace == ref.namespace
                and e.spec.workload == ref.name
            ]
            if len(by_workload) == 1:
                ep = by_workload[0]
        if ep is None:
            errors.append(
                FieldError(
                    f"{path}.endpoint",
                    f"{ref.namespace}/{ref.name}",
                    "no such WorkloadEndpoint in the datastore",
                )
            )
            return None, []
        ips = _endpoint_ips(ep)
        if ref.ip is not None:
            if ref.ip not in ips:
                errors.append(
                    FieldError(
                        f"{path}.ip",
                        str(ref.ip),
                        f"not an address of {ref.namespace}/{ref.name} "
                        f"(it has {', '.join(map(str, ips)) or 'none'})",
                    )
                )
                return None, []
            return ep, [ref.ip]
        if not ips:
            errors.append(
                FieldError(
                    f"{path}.endpoint",
                    f"{ref.namespace}/{ref.name}",
                    "the endpoint has no IP address; give one with ip",
                )
            )
            return None, []
        return ep, ips
    assert ref.ip is not None
    owners = snapshot.endpoints_at(ref.ip)
    if len(owners) > 1:
        names = ", ".join(f"{e.metadata.namespace}/{e.metadata.name}" for e in owners)
        errors.append(
            FieldError(
                f"{path}.ip",
                str(ref.ip),
                f"owned by {len(owners)} endpoints ({names}); name the endpoint too",
            )
        )
        return None, []
    return (owners[0] if owners else None), [ref.ip]


def resolve_flow(snapshot: Snapshot, spec: FlowSpec, prefix: str = "") -> ResolvedFlow:
    """Tie ``spec`` to ``snapshot``; ValidationError (paths under ``prefix``) for an unknown
    endpoint, a foreign IP, an ambiguous IP, or sides with no common IP version."""
    errors: list[FieldError] = []
    src, src_ips = _resolve_side(snapshot, spec.source, _dot(prefix, "from"), errors)
    dst, dst_ips = _resolve_side(snapshot, spec.destination, _dot(prefix, "to"), errors)
    if errors:
        raise ValidationError(errors)
    pair = next(((s, d) for s in src_ips for d in dst_ips if s.version == d.version), None)
    if pair is None:
        raise ValidationError(
            [
                FieldError(
                    _dot(prefix, "to"),
                    ", ".join(map(str, dst_ips)),
                    f"no IP version in common with the source ({', '.join(map(str, src_ips))})",
                )
            ]
        )
    flow = Flow(
        pair[0],
        pair[1],
        spec.protocol,
        spec.src_port,
        spec.dst_port,
        spec.icmp_type,
        spec.icmp_code,
    )
    return ResolvedFlow(spec, src, dst, flow)


@dataclass(frozen=True, slots=True)
class FlowCheck:
    """A resolved flow with its verdict (and, for verify entries, whether it met ``expect``)."""

    resolved: ResolvedFlow
    verdict: FlowVerdict

    @property
    def outcome(self) -> str:
        """``allow`` or ``deny``."""
        return "allow" if self.verdict.allowed else "deny"

    @property
    def ok(self) -> bool:
        """True when there is no expectation or the verdict meets it."""
        return self.resolved.spec.expect is None or self.resolved.spec.expect == self.outcome


def check_flow(
    snapshot: Snapshot,
    spec: FlowSpec,
    prefix: str = "",
    *,
    endpoint_to_host: EndpointToHostAction | str | None = None,
) -> FlowCheck:
    """Resolve ``spec`` and evaluate it with :func:`regionmesh.policy.evaluate_flow`
    (``endpoint_to_host``: the hosts' ``DefaultEndpointToHostAction``, default ``Drop``)."""
    resolved = resolve_flow(snapshot, spec, prefix)
    verdict = evaluate_flow(
        snapshot,
        resolved.source,
        resolved.destination,
        resolved.flow,
        endpoint_to_host=endpoint_to_host,
    )
    return FlowCheck(resolved, verdict)
