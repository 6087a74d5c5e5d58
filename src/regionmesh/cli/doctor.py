"""``regionmesh doctor``: find multi-region problems before VMs fail to launch.

``doctor`` collects the datastore's facts and runs the pure engine of
:mod:`regionmesh.diagnosis.findings`; ``doctor config`` compares one host's felix.cfg and
neutron.conf offline (:func:`check_config_files`, which needs both the agent's and the Neutron
side's config readers, so it lives here, above both); :func:`local_bgp_findings` asks this
host's BIRD (``regionmesh bgp``'s control socket) for sessions that are not Established, and
``doctor etcd-auth`` (:mod:`.etcd_auth_cmds`) audits etcd's users and roles. This module only
wires and prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping

import click

from regionmesh.bgp.status import PeerRow
from regionmesh.cli.context import cli_context, datastore_options, fail
from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore
from regionmesh.diagnosis.findings import Finding, StoreFacts, collect, diagnose
from regionmesh.errors import ConfigError, RegionmeshError
from regionmesh.model.regions import region_problem
from regionmesh.openstack.mirror_worker import mirror_lag


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


# --- BGP: this host's sessions (the local BIRD's control socket) --------------------------------


def bgp_session_findings(rows: Iterable[PeerRow], socket_path: str) -> list[Finding]:
    """One finding per BGP session of this host's BIRD that is not Established."""
    out: list[Finding] = []
    for row in rows:
        if row.info.split(" ", 1)[0] == "Established":
            continue
        out.append(
            Finding(
                "bgp-peer-not-established",
                f"BGP peer {row.address} ({row.peer_type}, protocol {row.protocol})",
                f"the session with {row.address} is {row.state} / {row.info or 'no info'} "
                f"since {row.since}: routes to and from that host's VMs are missing here",
                f"check that regionmesh bgp runs on the peer and that TCP 179 between the two "
                f"hosts' addresses is open; details: birdc -s {socket_path} show protocols all "
                f"{row.protocol}",
                values={"address": row.address, "state": row.state, "info": row.info},
            )
        )
    return out


def local_bgp_findings(run_dir: str) -> list[Finding]:
    """Findings about this host's BGP daemon; none when no daemon was ever set up here."""
    # BIRD's control client loads only when doctor runs, not with every command listing
    from regionmesh.bgp.bird import BirdControl, RunDir  # noqa: PLC0415
    from regionmesh.bgp.status import bgp_peers, parse_protocols  # noqa: PLC0415

    sock = RunDir(run_dir).socket
    if not os.path.exists(sock):
        return []
    try:
        rows = bgp_peers(parse_protocols(BirdControl(sock).command("show protocols all")))
    except RegionmeshError as exc:
        return [
            Finding(
                "bgp-daemon-not-running",
                f"BGP daemon ({sock})",
                f"{exc}",
                f"start regionmesh bgp --run-dir {run_dir} on this host",
            )
        ]
    return bgp_session_findings(rows, sock)


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


class _DoctorGroup(click.Group):
    """``doctor``'s sub-commands; ``etcd-auth`` is imported only when asked for.

    :mod:`.etcd_auth_cmds` builds on this module's findings, so importing it here at the top
    would be a circle (and would load the etcd-auth code for every ``doctor`` run).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, "etcd-auth"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "etcd-auth" and cmd_name not in self.commands:
            from regionmesh.cli.etcd_auth_cmds import doctor_etcd_auth_cmd  # noqa: PLC0415

            self.add_command(doctor_etcd_auth_cmd)
        return super().get_command(ctx, cmd_name)


@click.group("doctor", cls=_DoctorGroup, invoke_without_command=True)
@click.option("-o", "--output", "out", default="text", type=click.Choice(["text", "json"]))
@click.option(
    "--bgp-run-dir",
    default="/var/run/calico",
    show_default=True,
    metavar="DIR",
    help="run directory of this host's regionmesh bgp (its BIRD's sessions are checked when "
    "its control socket exists there)",
)
@datastore_options
@click.pass_context
def doctor_cmd(ctx: click.Context, out: str, bgp_run_dir: str) -> None:
    """Check the datastore for multi-region problems (exit 1 on any finding)."""
    if ctx.invoked_subcommand is not None:
        return
    cli = cli_context(ctx)
    store = cli.store()
    try:
        facts = collect(store)
        findings = diagnose(facts) + mirror_findings(facts)
        findings += _etcd_state(store)
    except RegionmeshError as exc:
        fail(f"doctor: cannot read the datastore: {exc}")
    findings += local_bgp_findings(bgp_run_dir)
    print_findings(findings, out, "no problems found")


def mirror_findings(facts: StoreFacts) -> list[Finding]:
    """Address-group mirrors (issue 13) that fell behind the other regions' changes.

    Here rather than in :mod:`regionmesh.diagnosis` because what "behind" means is the
    Neutron side's rule (:func:`~regionmesh.openstack.mirror_worker.mirror_lag`), and the
    diagnosis engine sits beside, not above, the Neutron side.
    """
    out: list[Finding] = []
    now = facts.now.timestamp()
    for status in facts.mirror_status:
        why = mirror_lag(status, facts.namespace_revisions, now)
        if why is None:
            continue
        region = status.get("region") or "(no region)"
        out.append(
            Finding(
                "address-group-mirrors-out-of-date",
                f"the address-group mirrors of region {region}",
                f"region {region}'s Neutron address groups mirroring other regions' security "
                f"groups may be stale (rules naming them still select the remote VMs live): {why}",
                f"check region {region}'s neutron-server (periodic workers) and its datastore "
                "connection; `regionmesh resync` reconciles the mirrors",
                severity="warning",
                values=dict(status),
            )
        )
    return out


def _etcd_state(store: Datastore) -> list[Finding]:
    """etcd only: authentication off, NOSPACE alarm (see ``doctor etcd-auth``)."""
    # the etcd client and the etcd-auth audit load only for an etcd store
    from regionmesh.datastore.etcd import EtcdDatastore  # noqa: PLC0415

    if not isinstance(store, EtcdDatastore):
        return []
    from regionmesh.cli.etcd_auth_cmds import etcd_state_findings  # noqa: PLC0415

    return etcd_state_findings(store, auth_off_severity="warning")


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
