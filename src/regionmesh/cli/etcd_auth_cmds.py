"""``regionmesh etcd-auth plan|apply`` and ``regionmesh doctor etcd-auth``: per-region etcd users.

``plan`` prints the users, roles and key ranges :func:`regionmesh.datastore.etcd_roles.build_plan`
derives from our key layout (text table, JSON, YAML or etcdctl commands). ``apply`` makes the
selected etcd (``--datastore``/``-c``/``ETCD_*`` as every command, root credentials) hold that
plan: roles and users created or updated idempotently, passwords generated or read from a file
and shown once or written to a ``0600`` file, the operator's one-time global objects
(ClusterInformation and FelixConfiguration ``default``) written, and authentication enabled
last, after a ``root`` user with the ``root`` role exists. ``doctor etcd-auth`` reports auth
switched off, a raised NOSPACE alarm, and users whose permissions miss or exceed the plan.

The plan and the etcd auth calls live in :mod:`regionmesh.datastore.etcd_roles`; this module
only parses options, prints and turns audits into doctor findings.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import click
import yaml

from regionmesh.cli.context import CliContext, datastore_options, fail
from regionmesh.cli.doctor import print_findings
from regionmesh.datastore import etcd_roles
from regionmesh.datastore.api import Datastore
from regionmesh.diagnosis.findings import Finding
from regionmesh.errors import ConfigError, RegionmeshError

if TYPE_CHECKING:
    from regionmesh.datastore.etcd import EtcdDatastore

_REGIONS_HELP = "comma-separated OpenStack regions sharing the etcd, e.g. one,two"
_HOSTS_HELP = (
    "REGION=HOST[,HOST…]: per-host agent users for that region (each writes only its own "
    "…/host/<hostname>/) instead of one shared agent user; repeatable"
)


_MIRRORS_HELP = (
    "the Neutron servers keep address-group mirrors ([calico] address_group_mirrors = true): "
    "let them read every region's WorkloadEndpoints and NetworkPolicies"
)
mirrors_option = click.option(
    "--address-group-mirrors", "mirrors", is_flag=True, help=_MIRRORS_HELP
)


def _plan(regions: str, agent_hosts: tuple[str, ...], mirrors: bool = False) -> etcd_roles.Plan:
    try:
        return etcd_roles.build_plan(
            etcd_roles.parse_regions(regions),
            etcd_roles.parse_agent_hosts(agent_hosts),
            address_group_mirrors=mirrors,
        )
    except ConfigError as exc:
        fail(f"etcd-auth: {exc}")


def _etcd(store: Datastore, what: str) -> EtcdDatastore:
    # the etcd client loads only when the store is etcd
    from regionmesh.datastore.etcd import EtcdDatastore  # noqa: PLC0415

    if not isinstance(store, EtcdDatastore):
        fail(f"{what}: the selected datastore is not etcd ({store!r}); etcd users need etcd")
    return store


def _plan_text(plan: etcd_roles.Plan) -> str:
    lines = ["users (each holds only the role of the same name; root holds role root):"]
    for role in plan.roles:
        where = f"region {role.region}" if role.region else "global"
        if role.host:
            where += f", host {role.host}"
        lines.append(f"  {role.name}  ({role.component}, {where})")
        width = max(len(g.perm) for g in role.grants)
        for g in role.grants:
            lines.append(f"    {g.perm:<{width}}  {g.range}    # {g.why}")
    lines.append("(a range ending in * is a --prefix grant; all others are single keys)")
    return "\n".join(lines)


@click.group("etcd-auth")
def etcd_auth_group() -> None:
    """Per-region least-privilege etcd users and roles (plan, apply)."""


@etcd_auth_group.command("plan")
@click.option("--regions", required=True, help=_REGIONS_HELP)
@click.option("--agent-hosts", multiple=True, metavar="REGION=HOSTS", help=_HOSTS_HELP)
@mirrors_option
@click.option(
    "-o", "--output", "out", default="text", type=click.Choice(["text", "json", "yaml", "etcdctl"])
)
def plan_cmd(regions: str, agent_hosts: tuple[str, ...], mirrors: bool, out: str) -> None:
    """Print the users, roles and key ranges for REGIONS (nothing is contacted)."""
    plan = _plan(regions, agent_hosts, mirrors)
    if out == "json":
        click.echo(json.dumps(plan.to_dict(), indent=2))
    elif out == "yaml":
        click.echo(yaml.safe_dump(plan.to_dict(), sort_keys=False), nl=False)
    elif out == "etcdctl":
        click.echo("\n".join(plan.etcdctl_commands()))
    else:
        click.echo(_plan_text(plan))


def _read_passwords(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        fail(f"etcd-auth apply: cannot read --password-file {path}: {exc.strerror}")
    except yaml.YAMLError as exc:
        fail(f"etcd-auth apply: --password-file {path} is not YAML: {exc}")
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in data.items()
    ):
        fail(f"etcd-auth apply: --password-file {path}: expected a mapping of user: password")
    return dict(data)


def _read_secret(path: str | None, what: str) -> str | None:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read().strip()
    except OSError as exc:
        fail(f"etcd-auth apply: cannot read {what} {path}: {exc.strerror}")
    if not value:
        fail(f"etcd-auth apply: {what} {path} is empty")
    return value


def write_private(path: str, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (``0600``, whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@etcd_auth_group.command("apply")
@click.option("--regions", required=True, help=_REGIONS_HELP)
@click.option("--agent-hosts", multiple=True, metavar="REGION=HOSTS", help=_HOSTS_HELP)
@click.option(
    "--password-file",
    metavar="FILE",
    help="YAML mapping user: password; listed users get that password (new or existing)",
)
@click.option(
    "--root-password-file",
    metavar="FILE",
    help="the root user's password, when root is created here (default: the connection's "
    "password if it connects as root, else generated)",
)
@click.option(
    "--write-passwords",
    metavar="FILE",
    help="write the passwords set by this run to FILE (mode 0600) instead of printing them",
)
@click.option(
    "--no-enable", is_flag=True, help="create users and roles but leave authentication as it is"
)
@mirrors_option
@datastore_options
@click.pass_obj
def apply_cmd(
    cli: CliContext,
    regions: str,
    agent_hosts: tuple[str, ...],
    password_file: str | None,
    root_password_file: str | None,
    write_passwords: str | None,
    no_enable: bool,
    mirrors: bool,
) -> None:
    """Create/update the plan's roles and users in etcd, then enable authentication."""
    # the Neutron side's writer (findings) loads only for `etcd-auth apply`
    from regionmesh.openstack.writer import RegionWriter  # noqa: PLC0415

    plan = _plan(regions, agent_hosts, mirrors)
    passwords = _read_passwords(password_file)
    root_password = _read_secret(root_password_file, "--root-password-file")
    store = _etcd(cli.store(), "etcd-auth apply")
    try:
        # the operator's one-time global objects, so no region needs write on them
        RegionWriter(store, None).ensure_cluster_config()
        report = etcd_roles.apply_plan(
            store,
            plan,
            passwords=passwords,
            root_password=root_password,
            enable=not no_enable,
        )
    except RegionmeshError as exc:
        fail(f"etcd-auth apply: {exc}")
    for name in report.roles_created:
        click.echo(f"role {name} created")
    for name, grant in report.grants_added:
        click.echo(f"role {name}: granted {grant.perm} {grant.range}")
    for name, grant in report.grants_removed:
        click.echo(f"role {name}: revoked {grant.perm} {grant.range} (not in the plan)")
    if report.root_created:
        click.echo("user root created with role root")
    for name in report.users_created:
        click.echo(f"user {name} created with role {name}")
    if report.auth_enabled_now:
        click.echo("authentication enabled")
    if report.passwords_set:
        if write_passwords:
            try:
                write_private(write_passwords, yaml.safe_dump(report.passwords_set))
            except OSError as exc:
                fail(
                    f"etcd-auth apply: cannot write --write-passwords {write_passwords}: "
                    f"{exc.strerror}; the passwords set were: "
                    + ", ".join(f"{u}={p}" for u, p in report.passwords_set.items())
                )
            click.echo(f"passwords of {len(report.passwords_set)} user(s) written to "
                       f"{write_passwords} (mode 0600)")  # fmt: skip
        else:
            click.echo("passwords set now (shown once, store them safely):")
            for user, pw in report.passwords_set.items():
                click.echo(f"  {user}: {pw}")
    if not report.changed:
        click.echo("etcd already matches the plan")


# --- doctor ---------------------------------------------------------------------------------


def etcd_state_findings(store: EtcdDatastore, auth_off_severity: str = "error") -> list[Finding]:
    """Findings any user can see: authentication off, raised alarms (NOSPACE)."""
    findings: list[Finding] = []
    where = ",".join(store.endpoints)
    if not etcd_roles.auth_enabled(store):
        findings.append(
            Finding(
                "etcd-auth-disabled",
                f"etcd {where}",
                "etcd authentication is off: every client (any region's Neutron, any agent) may "
                "read and write every key, including other regions' endpoints and the global "
                "policies",
                "regionmesh etcd-auth apply --regions … (with root credentials), then give each "
                "component its own user; if auth was on before, someone turned it off (with a "
                "NOSPACE alarm raised, any user can): check the alarm and the etcd logs",
                severity=auth_off_severity,
                values={"endpoints": store.endpoints},
            )
        )
    for member, alarm in etcd_roles.alarms(store):
        if alarm == "NOSPACE":
            findings.append(
                Finding(
                    "etcd-nospace-alarm",
                    f"etcd member {member}",
                    "etcd's NOSPACE alarm is raised: the backend quota is full, writes fail, and "
                    "on etcd 3.4 permission checks are bypassed while it lasts (a restricted user "
                    "can delete keys outside its range and disable authentication)",
                    "compact (the regionmesh/networking-calico compactor must be running), "
                    "'etcdctl defrag', raise --quota-backend-bytes if needed, then "
                    "'etcdctl alarm disarm'; afterwards check 'regionmesh doctor etcd-auth'",
                    values={"member": member, "alarm": alarm},
                )
            )
        elif alarm not in ("NONE", ""):
            findings.append(
                Finding(
                    "etcd-alarm",
                    f"etcd member {member}",
                    f"etcd alarm {alarm} is raised",
                    "see the etcd logs; disarm once repaired",
                    values={"member": member, "alarm": alarm},
                )
            )
    return findings


def _audit_findings(audit: etcd_roles.UserAudit, role: etcd_roles.Role) -> list[Finding]:
    findings: list[Finding] = []
    what = f"etcd user {audit.user}"
    if not audit.exists:
        return [
            Finding(
                "etcd-user-missing",
                what,
                f"etcd has no user {audit.user} ({role.component}"
                + (f" of region {role.region}" if role.region else "")
                + ")",
                "regionmesh etcd-auth apply --regions …",
                values={"user": audit.user},
            )
        ]
    if audit.is_root:
        findings.append(
            Finding(
                "etcd-user-is-root",
                what,
                f"{audit.user} holds the root role: it can read and write everything and "
                "administer etcd",
                f"etcdctl user revoke-role {audit.user} root",
                values={"user": audit.user, "roles": list(audit.roles)},
            )
        )
    for g in audit.missing:
        findings.append(
            Finding(
                "etcd-permission-missing",
                what,
                f"{audit.user} lacks {g.perm} on {g.range} ({g.why}); the {role.component} "
                "will get 'permission denied' there",
                "regionmesh etcd-auth apply --regions … (or etcdctl role grant-permission "
                f"{role.name} {g.perm} {g.range.etcdctl()})",
                values={"user": audit.user, "permission": g.perm, "range": str(g.range)},
            )
        )
    for g in audit.extra:
        writes = g.perm in (etcd_roles.WRITE, etcd_roles.READWRITE)
        findings.append(
            Finding(
                "etcd-permission-extra",
                what,
                f"{audit.user} holds {g.perm} on {g.range}, which the {role.component}"
                + (f" of region {role.region}" if role.region else "")
                + " does not need"
                + (
                    "; a leaked credential could change data it has no business changing"
                    if writes
                    else ""
                ),  # fmt: skip
                "regionmesh etcd-auth apply --regions … revokes it (or etcdctl role "
                f"revoke-permission <role> {g.range.etcdctl()})",
                severity="error" if writes else "warning",
                values={"user": audit.user, "permission": g.perm, "range": str(g.range)},
            )
        )
    return findings


def credential_findings(store: EtcdDatastore, plan: etcd_roles.Plan) -> list[Finding]:
    """As root: every plan user against the plan; as another user: that user only."""
    if etcd_roles.is_root_client(store):
        findings: list[Finding] = []
        for role in plan.roles:
            findings += _audit_findings(etcd_roles.audit_user(store, role), role)
        return findings
    user = store.username
    if user is None:
        return []
    own = plan.role(user)
    if own is None:
        return [
            Finding(
                "etcd-user-not-in-plan",
                f"etcd user {user}",
                f"the credentials in use ({user}) are not a user of the plan for regions "
                f"{','.join(plan.regions)}, so their permissions cannot be checked",
                "run doctor etcd-auth as root to check every component user, or with the "
                "component's own credentials",
                severity="warning",
                values={"user": user},
            )
        ]
    return _audit_findings(etcd_roles.audit_user(store, own), own)


@click.command("etcd-auth")
@click.option("--regions", required=True, help=_REGIONS_HELP)
@click.option("--agent-hosts", multiple=True, metavar="REGION=HOSTS", help=_HOSTS_HELP)
@mirrors_option
@click.option("-o", "--output", "out", default="text", type=click.Choice(["text", "json"]))
@datastore_options
@click.pass_obj
def doctor_etcd_auth_cmd(
    cli: CliContext, regions: str, agent_hosts: tuple[str, ...], mirrors: bool, out: str
) -> None:
    """Check etcd auth: on, no NOSPACE alarm, users' permissions equal to the plan."""
    plan = _plan(regions, agent_hosts, mirrors)
    store = _etcd(cli.store(), "doctor etcd-auth")
    try:
        findings = etcd_state_findings(store) + credential_findings(store, plan)
    except RegionmeshError as exc:
        fail(f"doctor etcd-auth: {exc}")
    print_findings(findings, out, "etcd auth on, no alarm, users match the plan")
