"""Entry points: ``regionmesh`` (every command) and ``calicoctl`` (the resource verbs).

The command tree is assembled here, lazily: each sub-command is named by ``module:attribute``
and imported only when it is run (or its own ``--help`` is asked for), so ``calicoctl get``
never loads the agent, the dataplane, oslo.config, rich or the etcd client. The short help
shown by ``regionmesh --help`` is kept in :data:`COMMANDS` next to the import path (a test
checks it matches each command's docstring). Each verb's behaviour lives in a sibling module
(:mod:`.resource_cmds` / :mod:`.resources` for calicoctl's verbs); the same click command
objects are used by both groups, so ``calicoctl apply`` and ``regionmesh apply`` behave
identically.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import click

from regionmesh import __version__
from regionmesh.cli.context import CliContext, datastore_options
from regionmesh.errors import RegionmeshError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclass(frozen=True)
class LazyCommand:
    """Where a sub-command lives (``module:attribute`` under regionmesh.cli) and its help text.

    ``short_help`` is the first paragraph of the command's help, as one line; the listing
    shortens it exactly as click would.
    """

    target: str
    short_help: str


@click.command("version", context_settings=CONTEXT)
def version_cmd() -> None:
    """Print the client version."""
    click.echo(f"Client Version:    v{__version__} (regionmesh)")


_R = "resource_cmds"
_X = "explain_cmds"
_O = "openstack_cmds"
# name: (where, first paragraph of the command's help — click shortens it for the listing)
RESOURCE_COMMANDS: dict[str, LazyCommand] = {
    "create": LazyCommand(f"{_R}:create_cmd", "Create resources from a file (all or nothing)."),
    "apply": LazyCommand(
        f"{_R}:apply_cmd", "Create or replace resources from a file (all or nothing)."
    ),
    "replace": LazyCommand(
        f"{_R}:replace_cmd", "Replace existing resources from a file (all or nothing)."
    ),
    "delete": LazyCommand(f"{_R}:delete_cmd", "Delete resources: -f FILE, or KIND NAME [NAME...]."),
    "get": LazyCommand(f"{_R}:get_cmd", "Show resources of one KIND (all, or the NAMEs given)."),
    "label": LazyCommand(
        f"{_R}:label_cmd", "Set (key=value) or remove (key --remove) a label on a resource."
    ),
    "validate": LazyCommand(
        f"{_R}:validate_cmd",
        "Validate resources offline (no datastore); every document is reported.",
    ),
    "version": LazyCommand("main:version_cmd", "Print the client version."),
}

NODE_COMMAND = LazyCommand("bgp_cmds:node_group", "Commands about this host's Calico node.")
# calicoctl's command set: the resource verbs plus ``node status``
CALICOCTL_COMMANDS: dict[str, LazyCommand] = {**RESOURCE_COMMANDS, "node": NODE_COMMAND}

REGIONMESH_COMMANDS: dict[str, LazyCommand] = {
    **RESOURCE_COMMANDS,
    "agent": LazyCommand(
        "agent_cmd:agent_cmd",
        "Run the per-host agent: watch the datastore and program this host's nftables.",
    ),
    "resync": LazyCommand(
        f"{_O}:resync_cmd",
        "Resync this region's WorkloadEndpoints, SG policies and DHCP subnets from Neutron.",
    ),
    "cloud": LazyCommand(
        f"{_O}:cloud_group",
        "Declare OpenStack regions, networks, security groups and VMs in a file (no Neutron).",
    ),
    "doctor": LazyCommand(
        "doctor:doctor_cmd",
        "Check the datastore for multi-region problems (exit 1 on any finding).",
    ),
    "explain": LazyCommand(
        f"{_X}:explain_cmd",
        "Can this flow pass, and which tier/policy/rule decided? (egress of the source, "
        "ingress of the destination).",
    ),
    "verify": LazyCommand(
        f"{_X}:verify_cmd", "Check a list of expected flows (allow/deny); exit 1 if any differs."
    ),
    "diff": LazyCommand(
        f"{_X}:diff_cmd",
        "Which flows would open or close if FILE were applied (nothing is written).",
    ),
    "graph": LazyCommand(
        f"{_X}:graph_cmd",
        "Draw who may reach whom: regions as clusters, security groups as nodes, allowed "
        "flows as edges labelled with protocol/port.",
    ),
    "demo": LazyCommand(
        f"{_X}:demo_cmd",
        "Build the two-region cloud, apply allow-tcp-80, show who can reach whom "
        "before/after, explain one cross-region flow, and (as root) prove it with real TCP.",
    ),
    "etcd-auth": LazyCommand(
        "etcd_auth_cmds:etcd_auth_group",
        "Per-region least-privilege etcd users and roles (plan, apply).",
    ),
    "bgp": LazyCommand(
        "bgp_cmds:bgp_cmd",
        "Run BIRD for this host: register its Node, peer with the others, announce its VMs.",
    ),
    "node": NODE_COMMAND,
    "dhcp-agent": LazyCommand(
        "dhcp_cmd:dhcp_agent_cmd",
        "Serve DHCP to this host's VMs in its region (one dnsmasq per network).",
    ),
}


def _shorten(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` exactly as click shortens a command's help in a listing."""
    return click.Command(None, help=text).get_short_help_str(limit)


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use.

    ``list_commands`` and the help listing use only the :class:`LazyCommand` table, so
    ``--help`` imports nothing; ``get_command`` imports the one module a command lives in.
    """

    def __init__(self, *args: Any, lazy: dict[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = self.lazy.get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry.target.split(":")
        module = importlib.import_module(f"regionmesh.cli.{module_name}")
        cmd = getattr(module, attr)
        assert isinstance(cmd, click.Command), entry.target
        self.commands[cmd_name] = cmd
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        # the same shortening as click.Group.format_commands, without importing the commands
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.lazy:
                text = _shorten(self.lazy[name].short_help, limit)
            else:
                text = self.commands[name].get_short_help_str(limit)
            rows.append((name, text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group("regionmesh", cls=LazyGroup, lazy=REGIONMESH_COMMANDS, context_settings=CONTEXT)
@datastore_options
@click.version_option(__version__, prog_name="regionmesh")
@click.pass_context
def regionmesh_cli(ctx: click.Context) -> None:
    """Calico-compatible network security for multi-region OpenStack."""
    obj = ctx.ensure_object(CliContext)
    ctx.call_on_close(obj.close)


@click.group("calicoctl", cls=LazyGroup, lazy=CALICOCTL_COMMANDS, context_settings=CONTEXT)
@datastore_options
@click.pass_context
def calicoctl_cli(ctx: click.Context) -> None:
    """calicoctl-compatible resource commands (regionmesh)."""
    obj = ctx.ensure_object(CliContext)
    ctx.call_on_close(obj.close)


def _run(group: click.Group, prog_name: str) -> None:
    """Run a command group with calicoctl's exit codes: 0 on success, 1 on ANY error.

    Usage errors (click's own exit 2) become 1, and a RegionmeshError that a command did not
    turn into a message itself (e.g. the datastore went away mid-command) is printed as one
    line instead of a traceback.
    """
    try:
        group.main(prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        raise SystemExit(1) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(1) from None
    except RegionmeshError as exc:
        click.echo(f"{prog_name}: {exc}", err=True)
        raise SystemExit(1) from None


def main() -> None:
    """Run ``regionmesh``."""
    _run(regionmesh_cli, "regionmesh")


def calicoctl_main() -> None:
    """Run ``calicoctl``."""
    _run(calicoctl_cli, "calicoctl")
