"""``regionmesh resync`` and ``regionmesh cloud apply|delete``: the OpenStack-side commands.

``resync`` needs Neutron importable, so it runs from the venv neutron-server runs from
(here: ``/var/tmp/regionmesh-neutron-venv/bin/regionmesh resync --config-file
/etc/neutron/neutron.conf --config-file /etc/neutron/plugins/ml2/ml2_conf.ini``). It loads
Neutron's config and ML2 plugin (Neutron DB connection from ``[database]``, region and
datastore from ``[calico]``), then runs :func:`regionmesh.openstack.resync.resync` and reports
the drift per kind (a rich progress bar on a terminal, a table, or ``-o json``). Exit status:
0 ok, 1 failed, 2 bad arguments.

``cloud apply -f cloud.yaml`` / ``cloud delete -f cloud.yaml`` need no Neutron: the file is
validated completely (errors name file and path) and written through the driver's own
translation and write path (:mod:`regionmesh.openstack.cloud`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from regionmesh.cli.context import CONTEXT, cli_context, datastore_options, fail
from regionmesh.errors import RegionmeshError, ValidationError
from regionmesh.openstack import cloud as cloud_mod
from regionmesh.openstack import resync as resync_mod

NEUTRON_VENV_HINT = (
    "run it with the Python that runs neutron-server, e.g. "
    "/var/tmp/regionmesh-neutron-venv/bin/regionmesh resync --config-file /etc/neutron/neutron.conf"
)


def _phase_table(result: resync_mod.ResyncResult) -> Table:
    table = Table(title=f"resync of region {result.region or '(none)'} ({result.scope})"
                  + (" — dry run, nothing written" if result.dry_run else ""))  # fmt: skip
    for col in ("kind", "datastore", "neutron", "correct", "create", "update", "delete",
                "conflicts", "errors", "ms"):  # fmt: skip
        table.add_column(col, justify="left" if col == "kind" else "right")
    for kind, p in result.phases.items():
        verbs = {
            a: sum(1 for c in p.changes if c.action == a) for a in ("create", "update", "delete")
        }
        table.add_row(
            kind, str(p.etcd_items), str(p.neutron_items), str(p.correct),
            str(verbs["create"]), str(verbs["update"]), str(verbs["delete"]),
            str(p.conflicts), str(p.errors), f"{p.total_ms:.0f}",
        )  # fmt: skip
    return table


@click.command("resync", context_settings=CONTEXT)
@click.option(
    "--config-file", "config_files", multiple=True, metavar="FILE",
    help="Neutron config file (repeatable; default /etc/neutron/neutron.conf)",
)  # fmt: skip
@click.option("--region", default=None, help="must match [calico] openstack_region when set")
@click.option("--network", default=None, metavar="ID", help="only this network")
@click.option("--subnet", default=None, metavar="ID", help="only this subnet")
@click.option("--port", default=None, metavar="ID", help="only this port")
@click.option("--security-group", default=None, metavar="ID", help="only this security group")
@click.option("--dry-run", is_flag=True, help="report the drift, write nothing")
@click.option("-o", "--output", "out", default="text", type=click.Choice(["text", "json"]))
def resync_cmd(
    config_files: tuple[str, ...],
    region: str | None,
    network: str | None,
    subnet: str | None,
    port: str | None,
    security_group: str | None,
    dry_run: bool,
    out: str,
) -> None:
    """Resync this region's WorkloadEndpoints, SG policies and DHCP subnets from Neutron."""
    try:
        scope = resync_mod.Scope(network, subnet, port, security_group)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        from regionmesh.openstack import calico_options as os_config
        from regionmesh.openstack import neutron_db
    except ImportError as exc:
        fail(f"resync: Neutron is not importable here ({exc}); {NEUTRON_VENV_HINT}")
    try:
        plugin, context = neutron_db.open_neutron(
            list(config_files) or ["/etc/neutron/neutron.conf"]
        )
        opts = os_config.load_options()
    except RegionmeshError as exc:  # open_neutron translates oslo/Neutron start-up failures
        fail(f"resync: {exc}")
    if region and opts.openstack_region and region != opts.openstack_region:
        fail(
            f"resync: --region {region} does not match [calico] openstack_region = "
            f"{opts.openstack_region}; refusing to write one region's Neutron into another"
        )
    region = opts.openstack_region or region
    from regionmesh.datastore import open_datastore
    from regionmesh.openstack.writer import RegionWriter

    try:
        store = open_datastore(os_config.datastore_url(opts))
    except RegionmeshError as exc:
        fail(f"resync: cannot open the datastore: {exc}")
    try:
        writer = RegionWriter(store, region)
        source = neutron_db.NeutronDbSource(plugin, context)
        if sys.stderr.isatty():
            result = _with_progress(writer, source, scope, dry_run)
        else:
            result = resync_mod.resync(writer, source, scope, dry_run=dry_run)
        mirrors = _mirrors(store, plugin, context, opts, scope, dry_run)
    finally:
        store.close()
    mirrors_ok = mirrors is None or mirrors.ok
    if out == "json":
        doc = result.to_dict()
        if mirrors is not None:
            doc["addressGroupMirrors"] = {
                "mirrors": mirrors.mirrors, "dryRun": mirrors.dry_run, "ok": mirrors.ok,
                "actions": [str(a) for a in mirrors.actions],
                "failed": [f"{a}: {why}" for a, why in mirrors.failed],
            }  # fmt: skip
        click.echo(json.dumps(doc, indent=2))
    else:
        console = Console()
        console.print(_phase_table(result))
        for p in result.phases.values():
            for change in p.changes:
                state = "conflict, left alone" if change.conflict else (
                    "done" if change.done else "would do")  # fmt: skip
                console.print(f"  {p.kind}: {change.action} {change.name} ({state})")
            for message in p.messages:
                console.print(f"  {p.kind}: {message}")
        if result.error:
            console.print(f"[red]error:[/red] {result.error}")
        if mirrors is not None:
            verb = "would" if mirrors.dry_run else "done:"
            console.print(f"address-group mirrors: {mirrors.mirrors} wanted")
            for action in mirrors.actions:
                console.print(f"  mirrors: {verb} {action}")
            for action, why in mirrors.failed:
                console.print(f"  mirrors: [red]refused[/red] {action}: {why}")
        console.print(
            f"{'in sync' if result.in_sync else 'drift found'}; total {result.total_ms:.0f} ms"
        )
    raise SystemExit(0 if result.ok and mirrors_ok else 1)


def _mirrors(
    store: Any, plugin: Any, context: Any, opts: Any, scope: resync_mod.Scope, dry_run: bool
) -> Any:
    """Reconcile this region's address-group mirrors (issue 13) on a full resync, when on."""
    if not opts.address_group_mirrors or not scope.everything:
        return None
    from regionmesh.openstack import address_groups, neutron_db
    from regionmesh.openstack.mirror_worker import load_view

    wanted = load_view(store).wanted(
        opts.openstack_region, opts.address_group_mirror_regions or None
    )
    backend = neutron_db.NeutronAddressGroups(plugin, context)
    try:
        return address_groups.reconcile(wanted, backend, dry_run=dry_run)
    except RegionmeshError as exc:
        fail(f"resync: address-group mirrors: {exc}")


def _with_progress(
    writer: Any, source: Any, scope: resync_mod.Scope, dry_run: bool
) -> resync_mod.ResyncResult:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(kind: str, done: int, total: int) -> None:
            if kind not in tasks:
                tasks[kind] = bar.add_task(f"{kind} repairs", total=total)
            bar.update(tasks[kind], completed=done)

        return resync_mod.resync(writer, source, scope, dry_run=dry_run, progress=progress)


# ---------------------------------------------------------------------------- cloud file


@click.group("cloud", context_settings=CONTEXT)
def cloud_group() -> None:
    """Declare OpenStack regions, networks, security groups and VMs in a file (no Neutron)."""


def _load(filename: str) -> cloud_mod.Cloud:
    try:
        return cloud_mod.load_cloud(filename)
    except ValidationError as exc:
        fail(str(exc))


def _report(result: cloud_mod.CloudResult, out: str, verb: str) -> None:
    if out == "json":
        click.echo(json.dumps([c.__dict__ for c in result.changes], indent=2))
        return
    for c in result.changes:
        what = f"{c.label} ({c.name})" if c.label else c.name
        click.echo(f"{c.region:>12}  {c.kind:<17} {what}  {c.result}")
    counts = ", ".join(
        f"{result.count(r)} {r}"
        for r in ("created", "updated", "unchanged", "deleted", "absent")
        if result.count(r)
    )
    click.echo(f"{verb}: {counts or 'nothing to do'}")


@cloud_group.command("apply", context_settings=CONTEXT)
@click.option("-f", "--filename", required=True, metavar="FILE", help="the cloud file (YAML)")
@click.option("-o", "--output", "out", default="text", type=click.Choice(["text", "json"]))
@datastore_options
@click.pass_context
def cloud_apply_cmd(ctx: click.Context, filename: str, out: str) -> None:
    """Create or update everything the file describes (validated first; all or nothing)."""
    cloud = _load(filename)
    store = cli_context(ctx).store()
    try:
        result = cloud_mod.apply_cloud(store, cloud)
    except RegionmeshError as exc:
        fail(f"{filename}: nothing written: {exc}")
    _report(result, out, "applied")


@cloud_group.command("delete", context_settings=CONTEXT)
@click.option("-f", "--filename", required=True, metavar="FILE", help="the cloud file (YAML)")
@click.option("-o", "--output", "out", default="text", type=click.Choice(["text", "json"]))
@datastore_options
@click.pass_context
def cloud_delete_cmd(ctx: click.Context, filename: str, out: str) -> None:
    """Delete everything the file describes."""
    cloud = _load(filename)
    store = cli_context(ctx).store()
    try:
        result = cloud_mod.delete_cloud(store, cloud)
    except RegionmeshError as exc:
        fail(f"{filename}: {exc}")
    _report(result, out, "deleted")


@click.group("regionmesh-openstack", context_settings=CONTEXT)
@datastore_options
@click.pass_context
def openstack_cli(ctx: click.Context) -> None:
    """The OpenStack commands alone (``python -m regionmesh.cli.openstack_cmds``)."""
    obj = cli_context(ctx)
    ctx.call_on_close(obj.close)


openstack_cli.add_command(resync_cmd)
openstack_cli.add_command(cloud_group)

if __name__ == "__main__":
    openstack_cli(prog_name="regionmesh")
