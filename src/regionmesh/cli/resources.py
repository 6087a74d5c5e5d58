"""calicoctl's resource verbs: create, apply, replace, delete, get, label, validate.

Reads input with :mod:`regionmesh.model.codec`, defaults and validates with
:mod:`regionmesh.model.validation`, writes through
:class:`regionmesh.datastore.resources.ResourceClient`, prints with :mod:`.output`.
Unlike calicoctl, create/apply/replace validate *every* document first and write nothing if
any is invalid, and a batch is written all or nothing; references (a policy's tier) are
resolved against the datastore plus the whole input, and tiers are written first
(:meth:`~regionmesh.datastore.resources.ResourceClient.write_all`). Exit status 1 on any error.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from regionmesh.cli import bgp_output, output
from regionmesh.cli.context import CliContext, fail
from regionmesh.datastore.resources import ResourceClient, with_metadata
from regionmesh.errors import (
    FieldError,
    NotFound,
    RegionmeshError,
    ValidationError,
)
from regionmesh.model import Resource, codec, validation
from regionmesh.model.bgp import DEFAULT_BGP_CONFIGURATION, BGPPeer, node_bgp_configuration_name
from regionmesh.model.kinds import KINDS, KindInfo, lookup_kind

VERB_PAST = {"create": "created", "apply": "applied", "replace": "replaced", "delete": "deleted"}


@dataclass
class Prepared:
    """One input document after decoding, namespacing, defaulting and validation."""

    index: int
    source: str
    kind: str | None
    name: str | None
    resource: Resource | None
    errors: list[str] = field(default_factory=list)
    position: str = ""

    @property
    def valid(self) -> bool:
        return self.resource is not None and not self.errors

    def label(self) -> str:
        what = f"{self.kind or '?'} {self.name!r}" if self.name else f"{self.kind or 'document'}"
        at = f" at {self.position}" if self.position else ""
        return f"{self.source}, document {self.index}{at} ({what})"


KNP_PREFIX = "knp.default."
KNP_MESSAGE = "kubernetes network policies must be managed through the kubernetes API"


def _namespace_errors(
    res: Resource, info: KindInfo, namespace_flag: str | None
) -> list[FieldError]:
    md = res.metadata
    if info.kind == "NetworkPolicy" and md.name.startswith(KNP_PREFIX):
        return [FieldError("metadata.name", md.name, KNP_MESSAGE)]
    if info.namespaced:
        if namespace_flag and md.namespace and md.namespace != namespace_flag:
            return [
                FieldError(
                    "metadata.namespace",
                    md.namespace,
                    f"namespace does not match the -n/--namespace flag ({namespace_flag})",
                )
            ]
        return []
    if namespace_flag:
        return [FieldError("metadata.namespace", namespace_flag, f"{info.kind} is not namespaced")]
    if md.namespace:
        return [FieldError("metadata.namespace", md.namespace, f"{info.kind} is not namespaced")]
    return []


def prepare(path: str, namespace_flag: str | None, *, recursive: bool = False) -> list[Prepared]:
    """Load every document of ``path`` and validate each; never raises for bad documents."""
    prepared: list[Prepared] = []
    for doc in codec.load_path(path, recursive=recursive):
        item = Prepared(
            doc.index, doc.source, doc.kind, doc.name, None, [str(e) for e in doc.errors],
            doc.position,
        )  # fmt: skip
        res = doc.resource
        if res is not None and not doc.errors:
            info = KINDS[res.kind]
            ns_errors = _namespace_errors(res, info, namespace_flag)
            if ns_errors:
                item.errors = [str(e) for e in ns_errors]
            else:
                if info.namespaced and not res.metadata.namespace and namespace_flag:
                    res = with_metadata(res, namespace=namespace_flag)
                res = validation.apply_defaults(res)
                item.errors = [str(e) for e in validation.validate(res)]
                item.resource = res
        prepared.append(item)
    return prepared


def _kind_word(items: Sequence[Prepared]) -> str:
    kinds = {p.kind for p in items}
    return f"'{kinds.pop()}' " if len(kinds) == 1 else ""


def _report_invalid(verb: str, items: Sequence[Prepared]) -> None:
    bad = [p for p in items if not p.valid]
    click.echo(
        f"failed to {verb} {_kind_word(items)}resources: {len(bad)} of {len(items)} "
        "document(s) invalid, nothing was written:",
        err=True,
    )
    for p in bad:
        click.echo(f"  {p.label()}:", err=True)
        for e in p.errors or ["document could not be decoded"]:
            for line in e.splitlines():
                click.echo(f"    {line}", err=True)


def _load_or_fail(
    verb: str, filename: str, namespace: str | None, recursive: bool, skip_empty: bool
) -> list[Prepared] | None:
    try:
        items = prepare(filename, namespace, recursive=recursive)
    except RegionmeshError as exc:
        fail(f"failed to {verb} resources: {exc}")
    except OSError as exc:
        fail(f"failed to read {filename}: {exc.strerror or exc}")
    if not items:
        if skip_empty:
            click.echo("No resources specified in file")
            return None
        fail("No resources specified in file")
    if any(not p.valid for p in items):
        _report_invalid(verb, items)
        raise SystemExit(1)
    return items


def write_verb(verb: str) -> Callable[..., None]:
    """Build the click callback for create/apply/replace."""

    def run(
        ctx: click.Context,
        filename: str,
        namespace: str | None,
        recursive: bool,
        skip_empty: bool,
        skip_exists: bool = False,
        **_: Any,
    ) -> None:
        cli: CliContext = ctx.find_object(CliContext)  # type: ignore[assignment]
        items = _load_or_fail(verb, filename, namespace, recursive, skip_empty)
        if items is None:
            return
        client = cli.client()
        resources = [p.resource for p in items if p.resource is not None]
        if verb == "create" and skip_exists:
            resources = [
                r
                for r in resources
                if client.find(r.kind, r.metadata.name, r.metadata.namespace) is None
            ]
        try:
            client.write_all(verb, resources)
        except RegionmeshError as exc:
            fail(f"failed to {verb} {_kind_word(items)}resource: [{exc}]\nnothing was written")
        click.echo(f"Successfully {VERB_PAST[verb]} {len(items)} {_kind_word(items)}resource(s)")

    return run


_KNOWN_COLUMNS = frozenset(
    {"NAME", "NAMESPACE"} | {c for k in KINDS.values() for c in (*k.columns, *k.wide_columns)}
)


def check_output_format(value: str) -> str:
    """Validate ``get -o``: ps, wide, yaml, json, name or custom-columns=COL[,COL…]."""
    if value in ("ps", "wide", "yaml", "json", "name"):
        return value
    if value.startswith("custom-columns="):
        cols = [c.strip().upper() for c in value.split("=", 1)[1].split(",") if c.strip()]
        unknown = [c for c in cols if c not in _KNOWN_COLUMNS]
        if cols and not unknown:
            return "custom-columns=" + ",".join(cols)
        raise click.BadParameter(
            f"unknown column(s) {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(sorted(_KNOWN_COLUMNS))}"
        )
    raise click.BadParameter(
        f"unrecognized output format {value!r}: use ps, wide, yaml, json, name or "
        "custom-columns=COL[,COL…]"
    )


def resolve_kind(word: str) -> KindInfo:
    """A kind from a CLI word, or exit 1 with calicoctl's message."""
    info = lookup_kind(word)
    if info is None:
        fail(f"resource type '{word}' is not supported")
    return info


def _ns_for(info: KindInfo, namespace: str | None) -> str | None:
    if not info.namespaced:
        if namespace:
            fail(f"{info.kind} is not namespaced")
        return None
    return namespace or "default"


def run_delete(
    cli: CliContext,
    filename: str | None,
    args: Sequence[str],
    namespace: str | None,
    skip_not_exists: bool,
    recursive: bool,
    skip_empty: bool,
) -> None:
    """calicoctl delete: by file or KIND NAME...; continues past errors, exit 1 if any."""
    targets: list[tuple[str, str, str | None, str]] = []
    if filename:
        items = _load_or_fail("delete", filename, namespace, recursive, skip_empty)
        if items is None:
            return
        for p in items:
            assert p.resource is not None
            md = p.resource.metadata
            targets.append((p.resource.kind, md.name, md.namespace, md.resource_version or ""))
    else:
        if len(args) < 2:
            fail("delete needs -f FILE or KIND NAME [NAME...]")
        info = resolve_kind(args[0])
        ns = _ns_for(info, namespace)
        if info.kind == "NetworkPolicy" and any(n.startswith(KNP_PREFIX) for n in args[1:]):
            fail(KNP_MESSAGE)
        targets = [(info.kind, name, ns, "") for name in args[1:]]
    client = cli.client()
    errors: list[str] = []
    done = 0
    for kind, name, ns, rv in targets:
        try:
            if kind == "Node":
                _delete_node_configuration(client, name)
            client.delete(kind, name, ns, resource_version=rv)
            done += 1
        except NotFound as exc:
            if skip_not_exists:
                done += 1
            else:
                errors.append(str(exc))
        except RegionmeshError as exc:
            errors.append(str(exc))
    kinds = {t[0] for t in targets}
    kw = f"'{kinds.pop()}' " if len(kinds) == 1 else ""
    if errors and done:
        click.echo(
            f"Partial success: deleted the first {done} out of {len(targets)} {kw}resources:",
            err=True,
        )
        click.echo(f"hit error: [{'; '.join(errors)}]", err=True)
        raise SystemExit(1)
    if errors:
        fail(f"failed to delete {kw}resource: [{'; '.join(errors)}]")
    click.echo(f"Successfully deleted {done} {kw}resource(s)")


def _delete_node_configuration(client: ResourceClient, node: str) -> None:
    """What Calico's client removes with a Node: its BGPPeers (``spec.node``) and its
    ``node.<name>`` FelixConfiguration and BGPConfiguration. Endpoints stay: in OpenStack they
    belong to Neutron (calicoctl would delete them too, and resync would write them back)."""
    for peer in client.list("BGPPeer").items:
        if isinstance(peer, BGPPeer) and peer.spec.node == node:
            with contextlib.suppress(NotFound):
                client.delete("BGPPeer", peer.name, None)
    for kind in ("FelixConfiguration", "BGPConfiguration"):
        with contextlib.suppress(NotFound):
            client.delete(kind, node_bgp_configuration_name(node), None)


def run_get(
    cli: CliContext,
    kind_word: str,
    names: Sequence[str],
    namespace: str | None,
    all_namespaces: bool,
    out: str,
    export: bool,
) -> None:
    """calicoctl get."""
    info = resolve_kind(kind_word)
    if all_namespaces and not info.namespaced:
        all_namespaces = False
    ns = None if all_namespaces else _ns_for(info, namespace)
    client = cli.client()
    docs: list[dict[str, Any]] = []
    revision = 0
    errors: list[str] = []
    if names:
        for name in names:
            try:
                res = client.get(info.kind, name, ns)
                docs.append(codec.to_output(res))
                revision = max(revision, int(res.metadata.resource_version or 0))
            except NotFound as exc:
                errors.append(str(exc))
    else:
        listed = client.list(info.kind, ns)
        docs = [codec.to_output(r) for r in listed.items]
        revision = listed.revision
    if export:
        for d in docs:
            md = d.get("metadata", {})
            for k in ("uid", "resourceVersion", "creationTimestamp", "namespace"):
                md.pop(k, None)
    single = len(names) == 1 and len(docs) == 1
    if out in ("yaml", "json"):
        obj: Any = docs[0] if single else output.as_list(info, docs, revision)
        if docs or not errors:
            click.echo(output.dump_yaml(obj) if out == "yaml" else output.dump_json(obj), nl=False)
    elif out == "name":
        for d in docs:
            click.echo(d["metadata"]["name"])
    elif out.startswith("custom-columns="):
        cols = out.split("=", 1)[1].split(",")
        cluster_as = _cluster_as(client, info, cols)
        rows = [[output.cell(d, c, cluster_as=cluster_as) for c in cols] for d in docs]
        click.echo(output.table([cols, *rows]), nl=False)
    else:
        with_ns = all_namespaces or namespace is not None
        wide = out == "wide"
        cluster_as = _cluster_as(client, info, info.wide_columns if wide else info.columns)
        click.echo(
            output.render_table(
                info, docs, wide=wide, with_namespace=with_ns, cluster_as=cluster_as
            ),
            nl=False,
        )
    if errors:
        for e in errors:
            click.echo(e, err=True)
        raise SystemExit(1)


def _cluster_as(client: ResourceClient, info: KindInfo, columns: Sequence[str]) -> str | None:
    """The default AS calicoctl shows as ``(N)`` for Nodes without one (only read when shown)."""
    if info.kind != "Node" or "ASN" not in columns:
        return None
    default = client.find("BGPConfiguration", DEFAULT_BGP_CONFIGURATION)
    return bgp_output.default_as_number(codec.to_output(default) if default is not None else None)


def run_label(
    cli: CliContext,
    kind_word: str,
    name: str,
    label: str,
    namespace: str | None,
    overwrite: bool,
    remove: bool,
) -> None:
    """calicoctl label KIND NAME key=value [--overwrite] | key --remove."""
    info = resolve_kind(kind_word)
    ns = _ns_for(info, namespace)
    client = cli.client()
    try:
        res = client.get(info.kind, name, ns)
    except NotFound as exc:
        fail(str(exc))
    labels = dict(res.metadata.labels or {})
    if remove:
        if "=" in label:
            fail("when removing a label, give only its key")
        if label not in labels:
            fail(f"can not remove label of {info.kind}({name}): label key {label!r} does not exist")
        del labels[label]
        verb = "removed"
    else:
        if "=" not in label:
            fail("invalid label: expected key=value")
        key, value = label.split("=", 1)
        if key in labels and not overwrite:
            if labels[key] == value:
                click.echo(f"{info.kind}({name}) already has label {key}={value}")
                return
            fail(
                f"failed to label {info.kind}({name}): key {key!r} is already present; "
                "use --overwrite to change its value"
            )
        labels[key] = value
        verb = "set"
    res = with_metadata(res, labels=labels)
    problems = validation.validate(res)
    if problems:
        fail(str(ValidationError(problems, f"{info.kind}({name})")))
    try:
        client.update(res)
    except RegionmeshError as exc:
        fail(f"failed to label {info.kind}({name}): {exc}")
    click.echo(
        f"Successfully {verb} label {label!r} {'of' if remove else 'on'} {info.kind}({name})"
    )


def run_validate(
    filename: str, namespace: str | None, out: str, recursive: bool, *, skip_empty: bool = False
) -> None:
    """Offline validation: every document is reported, in input order; exit 1 if any invalid."""
    try:
        items = prepare(filename, namespace, recursive=recursive)
    except OSError as exc:
        fail(f"failed to read {filename}: {exc.strerror or exc}")
    if not items:
        if out == "json":
            click.echo("[]")
        if skip_empty:
            click.echo("No resources specified in file", err=True)
            return
        fail("No resources specified in file")
    if out == "json":
        report = [
            {"index": p.index, "kind": p.kind, "name": p.name, "valid": p.valid, "errors": p.errors}
            for p in items
        ]
        click.echo(json.dumps(report, indent=2))
    else:
        for p in items:
            if p.valid:
                click.echo(f"{p.label()}: valid")
            else:
                click.echo(f"{p.label()}: invalid", err=True)
                for e in p.errors:
                    for line in e.splitlines():
                        click.echo(f"    {line}", err=True)
        good = sum(p.valid for p in items)
        click.echo(f"{good} of {len(items)} document(s) valid", err=good != len(items))
    if any(not p.valid for p in items):
        raise SystemExit(1)
