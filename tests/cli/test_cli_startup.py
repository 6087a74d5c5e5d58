"""CLI start-up: a command imports only what it uses, and the lazy help listing tells the truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from regionmesh.cli import main as cli_main

HEAVY = ("etcd3gw", "requests", "rich", "pyroute2", "oslo_config", "regionmesh.agent",
         "regionmesh.policy", "regionmesh.dataplane", "regionmesh.openstack")  # fmt: skip


def _loaded_after(tool: str, *args: str) -> tuple[int, str, set[str]]:
    """Run ``tool args`` in a fresh interpreter, in-process; which modules did it load?"""
    code = (
        "import json, sys\n"
        "from regionmesh.cli.main import calicoctl_main, main\n"
        f"sys.argv = [{tool!r}, *json.loads(sys.argv[1])]\n"
        "status = 0\n"
        "try:\n"
        f"    {'calicoctl_main' if tool == 'calicoctl' else 'main'}()\n"
        "except SystemExit as exc:\n"
        "    status = exc.code or 0\n"
        "print('\\n@@' + json.dumps([status, sorted(sys.modules)]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    out, _, tail = proc.stdout.rpartition("\n@@")
    assert tail, proc.stderr
    status, modules = json.loads(tail)
    return status, out, set(modules)


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_get_gnp_on_sqlite_imports_only_what_it_uses(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    status, out, modules = _loaded_after("calicoctl", "--datastore", url, "get", "gnp")
    assert status == 0
    assert out.split() == ["NAME", "TIER"]
    assert "regionmesh.datastore.sqlite" in modules  # it did talk to the store
    assert _heavy(modules) == []
    assert "regionmesh.datastore.etcd" not in modules


def test_version_and_help_import_neither_model_nor_datastore() -> None:
    for tool, args in (("calicoctl", ("version",)), ("regionmesh", ("--help",)),
                       ("calicoctl", ("--help",))):  # fmt: skip
        status, out, modules = _loaded_after(tool, *args)
        assert status == 0, out
        assert _heavy(modules) == []
        assert not any(m.startswith(("regionmesh.model", "regionmesh.datastore")) for m in modules)
        assert "pydantic" not in modules and "yaml" not in modules


def test_apply_dry_run_still_loads_the_policy_engine(tmp_path: Path) -> None:
    from regionmesh.examples import POLICY, example_path

    url = f"sqlite:///{tmp_path}/store.db"
    path = str(example_path(POLICY))
    status, _, modules = _loaded_after("calicoctl", "--datastore", url, "apply", "--dry-run",
                                       "-f", path)  # fmt: skip
    assert status == 0
    assert "regionmesh.policy.whatif" in modules


@pytest.mark.parametrize("group", [cli_main.regionmesh_cli, cli_main.calicoctl_cli])
def test_lazy_table_matches_each_command(group: cli_main.LazyGroup) -> None:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        entry = group.lazy[name]
        cmd = group.get_command(ctx, name)
        assert cmd is not None and cmd.name == name, entry.target
        for limit in (40, 60, 80, 1000):
            assert cli_main._shorten(entry.short_help, limit) == (cmd.get_short_help_str(limit)), (
                f"{name}: short help in cli/main.py differs from the command's help"
            )


def test_unknown_command_is_still_an_error() -> None:
    status, out, _ = _loaded_after("calicoctl", "frobnicate")
    assert status == 1
