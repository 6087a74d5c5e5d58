"""``regionmesh doctor``: find multi-region problems before VMs fail to launch.

``doctor`` collects the datastore's facts and runs the pure engine of
:mod:`regionmesh.diagnosis.findings`; ``doctor config`` compares one host's felix.cfg and
neutron.conf offline (:func:`check_config_files`, which needs both the agent's and the Neutron
side's config readers, so it lives here, above both). This module only wires and prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import click

from regionmesh.cli.context import cli_context, datastore_options, fail
from regionmesh.datastore import keys
from regionmesh.diagnosis.findings import Finding, collect, diagnose
from regionmesh.errors import ConfigError, RegionmeshError
from regionmesh.model.regions import region_problem


def check_config_files(
    felix_config: str, neutron_config: str, env: Mapping[str, str] | None = None
) -> list[Finding]:
    """Compare one host's felix.cfg and neutron.conf regions offline (the seed's caution).

    The agent's effective region also honours ``FELIX_OPENSTACKREGION`` in ``env`` (it beats the
    file, as in Felix), so an override in the environment is compared, not the file's value.
    """
    # oslo.config is loaded only for ``doctor config``, not for every ``doctor`` run
    from regionmesh.agent.felix_settings import read_config_file, read_env  # noqa: PLC0415
    from regionmesh.openstack.calico_options import (  # noqa: PLC0415
        raw_region,
        read_config_files,
    )

    if not os.path.exists(felix_config):
        raise ConfigError(f"cannot read {felix_config}: config file does not exist")
    findings: list[Finding] = []
    felix_raw = read_config_file(felix_config)
    felix_region = felix_raw.get("openstackregion") or None
    env_raw = read_env(os.environ if env is None else env)
    env_region = env_raw.get("openstackregion") or None
    if env_region is not None:
        if env_region != felix_region:
            findings.append(
                Finding(
                    "felix-env-override",
                    "this host",
                    f"FELIX_OPENSTACKREGION={env_region!r} in the environment overrides "
                    f"OpenstackRegion={felix_region!r} in {felix_config}; the agent uses "
                    f"{env_region!r}",
                    "set the region in one place (the file), or make both say the same",
                    severity="warning",
                    values={"env_region": env_region, "file_region": felix_region},
                )
            )
        felix_region = env_region
    try:
        neutron_region = raw_region(read_config_files([neutron_config]))
    except ConfigError as exc:
        raise ConfigError(f"cannot read {neutron_config}: {exc}") from exc
    for where, option, value in (
        (felix_config, "OpenstackRegion", felix_region),
        (neutron_config, "[calico] openstack_region", neutron_region),
    ):
        if value is not None:
            problem = region_problem(value)
            if problem:
                findings.append(
                    Finding(
                        "invalid-region-name",
                        where,
                        f"{option} = {value!r} in {where} is invalid: must be {problem}",
                        f"set {option} in {where} to a valid region name",
                        values={"file": where, "option": option, "value": value},
                    )
                )
    if felix_region != neutron_region:
        findings.append(
            Finding(
                "region-mismatch",
                "this host",
                f"OpenstackRegion in {felix_config} is {felix_region!r} but [calico] "
                f"openstack_region in {neutron_config} is {neutron_region!r}: the agent heartbeats "
                f"under {keys.felix_hosts_prefix(felix_region)} while the DHCP agent and Neutron "
                f"of region {neutron_region!r} look under {keys.felix_hosts_prefix(neutron_region)}; "
                "ports on this host will fail to bind",
                "make both files name the same region, then restart the agent and the DHCP agent",
                values={"felix_region": felix_region, "neutron_region": neutron_region},
            )
        )
    return findings


def print_findings(findings: list[Finding], out: str, ok_text: str) -> None:
    """Print findings as text or JSON; exit 1 if there is any."""
    if out == "json":
        click.echo(json.dumps([f.to_dict() for f in findings], indent=2))
    elif not findings:
        click.echo(ok_text)
    else:
        for f in findings:
            click.echo(f"[{f.severity}] {f.code}: {f.object}")
            click.echo(f"    {f.message}")
            click.echo(f"    fix: {f.fix}")
        click.echo(f"{len(findings)} finding(s)")
    if findings:
        raise SystemExit(1)


@click.group("doctor", invoke_without_command=True)
@click.option("-o", "--output", "out", default="text", type=click.Choice(["text", "json"]))
@datastore_options
@click.pass_context
def doctor_cmd(ctx: click.Context, out: str) -> None:
    """Check the datastore for multi-region problems (exit 1 on any finding)."""
    if ctx.invoked_subcommand is not None:
        return
    cli = cli_context(ctx)
    try:
        facts = collect(cli.store())
    except RegionmeshError as exc:
        fail(f"doctor: cannot read the datastore: {exc}")
    print_findings(diagnose(facts), out, "no problems found")


@doctor_cmd.command("config")
@click.option("--felix-config", required=True, metavar="FILE", help="the host's felix.cfg")
@click.option("--neutron-config", required=True, metavar="FILE", help="the host's neutron.conf")
@click.option("-o", "--output", "out", default="text", type=click.Choice(["text", "json"]))
def doctor_config_cmd(felix_config: str, neutron_config: str, out: str) -> None:
    """Check one host's felix.cfg and neutron.conf offline: valid and equal regions."""
    try:
        findings = check_config_files(felix_config, neutron_config)
    except RegionmeshError as exc:
        fail(f"doctor config: {exc}")
    print_findings(findings, out, "regions valid and equal")
