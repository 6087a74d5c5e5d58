"""``regionmesh explain | verify | diff | graph`` and ``apply --dry-run``.

Thin click layer over :mod:`regionmesh.policy`: it reads every policy-relevant resource from the
datastore into a :class:`~regionmesh.policy.Snapshot`, asks :mod:`regionmesh.policy.flowspec`
(explain/verify), :mod:`regionmesh.policy.whatif` (diff, apply --dry-run) or
:mod:`regionmesh.policy.connectivity` (graph, matrices) and prints text or JSON. Verdicts and
traces are never computed here. Reading the snapshot is :mod:`.snapshots`; text rendering is
:mod:`.views`, drawing :mod:`.graph_render`; the demo is :mod:`.demo`.
Exit status: 0 on success, 1 on any error (unknown endpoint, invalid file, datastore problem)
and, for ``verify``, when any flow differs from its expectation.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from regionmesh.cli.context import CONTEXT, CliContext, cli_context, datastore_options, fail
from regionmesh.cli.graph_render import render_html, render_svg
from regionmesh.cli.snapshots import flow_context, read_snapshot
from regionmesh.cli.verbs import Prepared, prepare
from regionmesh.cli.views import (
    render_edges,
    render_explanation,
    render_matrix,
    render_what_if,
    rule_note,
)
from regionmesh.datastore.resource_client import does_not_exist, policy_tier_name
from regionmesh.errors import RegionmeshError, ValidationError
from regionmesh.model import Resource
from regionmesh.model.regions import region_of_namespace
from regionmesh.policy import FlowVerdict
from regionmesh.policy.connectivity import compute_connectivity
from regionmesh.policy.flowspec import (
    FlowCheck,
    check_flow,
    load_flow_file_partial,
    parse_flow_entry,
    resolve_flow,
)
from regionmesh.policy.whatif import WhatIf, what_if

_OPTION_OF = {
    "from.endpoint": "--from",
    "from.ip": "--from-ip",
    "from": "--from/--from-ip",
    "to.endpoint": "--to",
    "to.ip": "--to-ip",
    "to": "--to/--to-ip",
    "protocol": "--protocol",
    "port": "--port",
    "srcPort": "--src-port",
    "icmp": "--icmp-type",
    "icmp.type": "--icmp-type",
    "icmp.code": "--icmp-code",
}


# ----------------------------------------------------------------------------- explain


def _explain_entry(
    src: str | None,
    src_ip: str | None,
    dst: str | None,
    dst_ip: str | None,
    protocol: str,
    port: int | None,
    src_port: int | None,
    icmp_type: int | None,
    icmp_code: int | None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"protocol": protocol}
    for key, name, ip in (("from", src, src_ip), ("to", dst, dst_ip)):
        side: dict[str, Any] = {}
        if name is not None:
            side["endpoint"] = name
        if ip is not None:
            side["ip"] = ip
        entry[key] = side
    if port is not None:
        entry["port"] = port
    if src_port is not None:
        entry["srcPort"] = src_port
    if icmp_type is not None:
        entry["icmp"] = {
            "type": icmp_type,
            **({"code": icmp_code} if icmp_code is not None else {}),
        }
    elif icmp_code is not None:
        fail("--icmp-code needs --icmp-type")
    return entry


def _option_errors(exc: ValidationError) -> str:
    lines = []
    for f in exc.fields:
        opt = _OPTION_OF.get(f.path, f.path)
        lines.append(f"{opt}: {f.reason}" + (f" (got {f.value!r})" if f.value else ""))
    return "\n".join(lines)


@click.command("explain", context_settings=CONTEXT)
@click.option("--from", "src", metavar="NS/NAME", help="source WorkloadEndpoint")
@click.option(
    "--from-ip", "src_ip", metavar="IP", help="source address (alone, or narrowing --from)"
)
@click.option("--to", "dst", metavar="NS/NAME", help="destination WorkloadEndpoint")
@click.option("--to-ip", "dst_ip", metavar="IP", help="destination address")
@click.option("--protocol", "-p", required=True, help="TCP, UDP, ICMP, ICMPv6, SCTP or a number")
@click.option("--port", type=int, default=None, help="destination port")
@click.option("--src-port", type=int, default=None, help="source port")
@click.option("--icmp-type", type=int, default=None)
@click.option("--icmp-code", type=int, default=None)
@click.option("-o", "--output", "out", default="text", type=click.Choice(["text", "json"]))
@datastore_options
@click.pass_context
def explain_cmd(
    ctx: click.Context,
    src: str | None,
    src_ip: str | None,
    dst: str | None,
    dst_ip: str | None,
    protocol: str,
    port: int | None,
    src_port: int | None,
    icmp_type: int | None,
    icmp_code: int | None,
    out: str,
) -> None:
    """Can this flow pass, and which tier/policy/rule decided? (egress of the source, ingress
    of the destination)."""
    entry = _explain_entry(src, src_ip, dst, dst_ip, protocol, port, src_port, icmp_type, icmp_code)
    try:
        spec = parse_flow_entry(entry)
    except ValidationError as exc:
        fail(f"invalid flow:\n{_option_errors(exc)}")
    resources, snap, actions = flow_context(cli_context(ctx))
    try:
        check = check_flow(snap, spec, endpoint_to_host=actions)
    except ValidationError as exc:
        fail(f"cannot explain {spec.describe()}:\n{_option_errors(exc)}")
    if out == "json":
        doc = {"verdict": check.outcome, **check.verdict.to_dict()}
        notes = _json_notes(resources, check.verdict)
        if notes:
            doc["notes"] = notes
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(render_explanation(check.verdict, resources))


def _json_notes(resources: list[Resource], verdict: FlowVerdict) -> list[dict[str, Any]]:
    notes = []
    for direction, dv in (("egress", verdict.egress), ("ingress", verdict.ingress)):
        for step in dv.trace if dv is not None else ():
            note = rule_note(resources, direction, step)
            if note and step.policy is not None:
                notes.append(
                    {"direction": direction, "policy": step.policy.to_dict(),
                     "ruleIndex": step.rule_index, "note": note}
                )  # fmt: skip
    return notes


# ----------------------------------------------------------------------------- verify


def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as exc:
        fail(f"failed to read {path}: {exc.strerror or exc}")


def _entry_index(path: str) -> int:
    """The entry number of a ``[i].field`` path (-1 for file-level problems)."""
    if path.startswith("[") and "]" in path:
        try:
            return int(path[1 : path.index("]")])
        except ValueError:
            return -1
    return -1


def run_verify(cli: CliContext, filename: str, out: str) -> None:
    """Check every flow of a verify file; exit 1 on an error or any unexpected verdict."""
    text = _read_text(filename)
    indexed, errors = load_flow_file_partial(text, filename)
    _resources, snap, actions = flow_context(cli)
    for i, spec in indexed:  # unknown endpoints etc. are reported with the syntax problems
        try:
            resolve_flow(snap, spec, f"[{i}]")
        except ValidationError as exc:
            errors.extend(exc.fields)
    if errors:
        errors.sort(key=lambda f: _entry_index(f.path))
        fail(f"invalid flow file {filename}:\n" + "\n".join(f"  {f}" for f in errors))
    specs = [spec for _, spec in indexed]
    checks: list[FlowCheck] = [
        check_flow(snap, spec, f"[{i}]", endpoint_to_host=actions) for i, spec in enumerate(specs)
    ]
    if out == "json":
        report = [
            {
                "index": i,
                "expect": c.resolved.spec.expect,
                "verdict": c.outcome,
                "ok": c.ok,
                "trace": c.verdict.to_dict(),
            }
            for i, c in enumerate(checks)
        ]
        click.echo(json.dumps(report, indent=2))
    else:
        for i, c in enumerate(checks):
            mark = "ok  " if c.ok else "FAIL"
            click.echo(
                f"{mark} [{i}] {c.resolved.spec.describe()}: {c.outcome} "
                f"(expected {c.resolved.spec.expect})"
            )
            if not c.ok:
                decided = [
                    f"{v.direction}: {v.decided_by.message}"
                    for v in (c.verdict.egress, c.verdict.ingress)
                    if v is not None and v.decided_by is not None
                ]
                for line in decided:
                    click.echo(f"       {line}")
        good = sum(c.ok for c in checks)
        click.echo(f"{good} of {len(checks)} flow(s) as expected")
    if not all(c.ok for c in checks):
        raise SystemExit(1)


@click.command("verify", context_settings=CONTEXT)
@click.option("-f", "--filename", required=True, metavar="FILE|-", help="YAML/JSON list of flows")
@click.option("-o", "--output", "out", default="text", type=click.Choice(["text", "json"]))
@datastore_options
@click.pass_context
def verify_cmd(ctx: click.Context, filename: str, out: str) -> None:
    """Check a list of expected flows (allow/deny); exit 1 if any differs."""
    run_verify(cli_context(ctx), filename, out)


# ----------------------------------------------------------------------------- what-if


def _load_changes(filename: str, namespace: str | None, recursive: bool) -> list[Prepared]:
    try:
        items: list[Prepared] = prepare(filename, namespace, recursive=recursive)
    except RegionmeshError as exc:
        fail(f"failed to read {filename}: {exc}")
    except OSError as exc:
        fail(f"failed to read {filename}: {exc.strerror or exc}")
    if not items:
        fail("No resources specified in file")
    bad = [p for p in items if not p.valid]
    if bad:
        lines = [f"{len(bad)} of {len(items)} document(s) invalid:"]
        for p in bad:
            lines.append(f"  {p.label()}:")
            lines += [f"    {e}" for e in p.errors or ["document could not be decoded"]]
        fail("\n".join(lines))
    return items


def _check_tiers(items: Sequence[Prepared], current: Sequence[Resource]) -> None:
    """As ``apply`` does: every policy's tier exists in the datastore or in the same input."""
    known = {r.metadata.name for r in current if r.kind == "Tier"} | {
        p.resource.metadata.name
        for p in items
        if p.resource is not None and p.resource.kind == "Tier"
    }
    bad = []
    for p in items:
        tier = policy_tier_name(p.resource) if p.resource is not None else None
        if tier is not None and tier not in known:
            bad.append(f"  {p.label()}:\n    {does_not_exist('Tier', tier, None)}")
    if bad:
        fail("\n".join([f"{len(bad)} of {len(items)} document(s) name a missing tier:", *bad]))


def run_what_if(
    cli: CliContext,
    filename: str,
    namespace: str | None = None,
    recursive: bool = False,
    out: str = "text",
    delete: bool = False,
    **_: Any,
) -> WhatIf:
    """Print which flows applying (or deleting) ``filename`` would open or close; writes
    nothing. Shared by ``diff`` and ``apply --dry-run``."""
    items = _load_changes(filename, namespace, recursive)
    changes = [p.resource for p in items if p.resource is not None]
    resources, _snap = read_snapshot(cli)
    if not delete:
        _check_tiers(items, resources)
    result = what_if(resources, changes, delete=delete)
    if out == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(render_what_if(result))
    return result


@click.command("diff", context_settings=CONTEXT)
@click.option("-f", "--filename", required=True, metavar="FILE|DIR|-")
@click.option("-n", "--namespace", default=None, help="namespace of namespaced kinds")
@click.option("-R", "--recursive", is_flag=True)
@click.option("--delete", is_flag=True, help="preview deleting the file's resources instead")
@click.option("-o", "--output", "out", default="text", type=click.Choice(["text", "json"]))
@datastore_options
@click.pass_context
def diff_cmd(
    ctx: click.Context,
    filename: str,
    namespace: str | None,
    recursive: bool,
    delete: bool,
    out: str,
) -> None:
    """Which flows would open or close if FILE were applied (nothing is written)."""
    run_what_if(cli_context(ctx), filename, namespace, recursive, out, delete)


# ----------------------------------------------------------------------------- matrix/graph


@click.command("graph", context_settings=CONTEXT)
@click.option(
    "-o", "--output", "fmt", default="html", type=click.Choice(["svg", "html", "json", "text"])
)
@click.option("--region", default=None, help="only flows from or to this region")
@click.option("--file", "path", default=None, metavar="PATH", help="write here instead of stdout")
@datastore_options
@click.pass_context
def graph_cmd(ctx: click.Context, fmt: str, region: str | None, path: str | None) -> None:
    """Draw who may reach whom: regions as clusters, security groups as nodes, allowed flows as
    edges labelled with protocol/port."""
    _resources, snap = read_snapshot(cli_context(ctx))
    if region is not None:
        known = sorted(
            {r for e in snap.endpoints() if (r := region_of_namespace(e.metadata.namespace))}
        )
        if region not in known:
            fail(
                f"graph: no endpoints in region {region!r} (regions in the datastore: "
                f"{', '.join(known) or 'none'})"
            )
    conn = compute_connectivity(snap, region=region)
    if fmt == "json":
        text = json.dumps(conn.to_dict(), indent=2)
    elif fmt == "text":
        text = render_matrix(conn) + "\n\nallowed flows:\n" + render_edges(conn)
    elif fmt == "svg":
        text = render_svg(conn, title=_title(region))
    else:
        text = render_html(conn, title=_title(region))
    if path:
        Path(path).write_text(text + "\n")
        click.echo(f"wrote {path}", err=True)
    else:
        click.echo(text)


def _title(region: str | None) -> str:
    return f"regionmesh connectivity — region {region}" if region else "regionmesh connectivity"


EXPLAIN_COMMANDS: Sequence[click.Command] = (explain_cmd, verify_cmd, diff_cmd, graph_cmd)
