"""calicoctl's verbs as click commands: create, apply, replace, delete, get, label, validate.

Only the command-line surface (flags, help, argument parsing) lives here; each verb's behaviour
is in :mod:`.resources` (and ``apply --dry-run`` in :mod:`.explain_cmds`, imported only when
asked for). :mod:`.main` registers these same objects in both ``calicoctl`` and ``regionmesh``,
loading this module on first use.
"""

from __future__ import annotations

from typing import Any

import click

from regionmesh.cli import resources
from regionmesh.cli.context import CliContext, datastore_options

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _file_options(func: Any) -> Any:
    func = click.option(
        "-f",
        "--filename",
        "filename",
        required=True,
        metavar="FILE|DIR|-",
        help="YAML or JSON file, directory, or - for stdin",
    )(func)
    func = click.option("-n", "--namespace", default=None, help="namespace of namespaced kinds")(
        func
    )
    func = click.option("-R", "--recursive", is_flag=True, help="recurse into directories")(func)
    func = click.option(
        "--skip-empty", is_flag=True, help="do not fail on an input with no resources"
    )(func)
    return func


def _obj(ctx: click.Context) -> CliContext:
    return ctx.ensure_object(CliContext)


@click.command("create", context_settings=CONTEXT)
@_file_options
@click.option("--skip-exists", is_flag=True, help="do not fail for resources that already exist")
@datastore_options
@click.pass_context
def create_cmd(ctx: click.Context, /, **kw: Any) -> None:
    """Create resources from a file (all or nothing)."""
    resources.write_verb("create")(ctx, **kw)


@click.command("apply", context_settings=CONTEXT)
@_file_options
@click.option("--dry-run", is_flag=True, help="show which flows would open/close; write nothing")
@datastore_options
@click.pass_context
def apply_cmd(ctx: click.Context, /, **kw: Any) -> None:
    """Create or replace resources from a file (all or nothing)."""
    if kw.pop("dry_run"):
        from regionmesh.cli import explain_cmds

        explain_cmds.run_what_if(_obj(ctx), **kw)
        return
    resources.write_verb("apply")(ctx, **kw)


@click.command("replace", context_settings=CONTEXT)
@_file_options
@datastore_options
@click.pass_context
def replace_cmd(ctx: click.Context, /, **kw: Any) -> None:
    """Replace existing resources from a file (all or nothing)."""
    resources.write_verb("replace")(ctx, **kw)


@click.command("delete", context_settings=CONTEXT)
@click.argument("args", nargs=-1)
@click.option("-f", "--filename", default=None, metavar="FILE|DIR|-")
@click.option("-n", "--namespace", default=None)
@click.option("-R", "--recursive", is_flag=True)
@click.option("--skip-empty", is_flag=True)
@click.option("--skip-not-exists", is_flag=True, help="do not fail for resources that do not exist")
@datastore_options
@click.pass_context
def delete_cmd(
    ctx: click.Context,
    args: tuple[str, ...],
    filename: str | None,
    namespace: str | None,
    recursive: bool,
    skip_empty: bool,
    skip_not_exists: bool,
) -> None:
    """Delete resources: -f FILE, or KIND NAME [NAME...]."""
    resources.run_delete(
        _obj(ctx), filename, args, namespace, skip_not_exists, recursive, skip_empty
    )


@click.command("get", context_settings=CONTEXT)
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option(
    "-o",
    "--output",
    "out",
    default="ps",
    metavar="ps|wide|yaml|json|name|custom-columns=COL,…",
    callback=lambda _ctx, _param, value: resources.check_output_format(value),
    show_default=True,
)
@click.option("-n", "--namespace", default=None)
@click.option("-A", "-a", "--all-namespaces", is_flag=True)
@click.option(
    "--export", is_flag=True, help="strip uid, resourceVersion, creationTimestamp, namespace"
)
@datastore_options
@click.pass_context
def get_cmd(
    ctx: click.Context,
    kind: str,
    names: tuple[str, ...],
    out: str,
    namespace: str | None,
    all_namespaces: bool,
    export: bool,
) -> None:
    """Show resources of one KIND (all, or the NAMEs given)."""
    resources.run_get(_obj(ctx), kind, names, namespace, all_namespaces, out, export)


@click.command("label", context_settings=CONTEXT)
@click.argument("kind")
@click.argument("name")
@click.argument("label")
@click.option("-n", "--namespace", default=None)
@click.option("--overwrite", is_flag=True, help="change the value of an existing label")
@click.option("--remove", is_flag=True, help="remove the label KEY")
@datastore_options
@click.pass_context
def label_cmd(
    ctx: click.Context,
    kind: str,
    name: str,
    label: str,
    namespace: str | None,
    overwrite: bool,
    remove: bool,
) -> None:
    """Set (key=value) or remove (key --remove) a label on a resource."""
    resources.run_label(_obj(ctx), kind, name, label, namespace, overwrite, remove)


@click.command("validate", context_settings=CONTEXT)
@click.option("-f", "--filename", "filename", required=True, metavar="FILE|DIR|-")
@click.option("-n", "--namespace", default=None)
@click.option("-R", "--recursive", is_flag=True)
@click.option("-o", "--output", "out", default="text", type=click.Choice(["text", "json"]))
@click.option("--skip-empty", is_flag=True, help="do not fail on an input with no resources")
def validate_cmd(
    filename: str, namespace: str | None, recursive: bool, out: str, skip_empty: bool
) -> None:
    """Validate resources offline (no datastore); every document is reported."""
    resources.run_validate(filename, namespace, out, recursive, skip_empty=skip_empty)


RESOURCE_COMMANDS = [
    create_cmd,
    apply_cmd,
    replace_cmd,
    delete_cmd,
    get_cmd,
    label_cmd,
    validate_cmd,
]
