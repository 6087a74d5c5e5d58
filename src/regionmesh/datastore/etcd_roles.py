"""Least-privilege etcd users and roles for a multi-region cloud, derived from our key layout.

:func:`build_plan` turns a list of regions into a :class:`Plan`: one etcd role and one user of
the same name per component and region (Neutron server, agent, DHCP agent) plus the global
operator, each role a list of :class:`Grant` (read / write / readwrite on one key or one key
prefix). Every range is built by the functions of :mod:`regionmesh.datastore.keys` that build
the keys the components use, so code and permissions cannot drift apart; every prefix ends in
``/`` (a grant on ``…/openstack-region-one`` would also cover ``openstack-region-one-b``).

:func:`apply_plan` makes an etcd match a plan through the JSON gateway (``/v3/auth/...``, root
credentials): it creates or updates roles and users idempotently, makes sure a ``root`` user
with the ``root`` role exists, and only then enables authentication. :func:`audit_user`
compares what a user really holds with what the plan says it needs (missing and extra
grants); :func:`auth_enabled` and :func:`alarms` read the cluster state doctor reports.

What each component needs, and why, is documented in docs/security.md; turning the results
into CLI output and findings is :mod:`regionmesh.cli.etcd_auth_cmds`'s job. This module does
not write any Calico resource.

Kept as one module on purpose (over 500 lines): the plan (who may touch which range), applying
it and auditing a user against it are one table read three ways; apart, the plan and its
check could drift.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from regionmesh.datastore import keys
from regionmesh.errors import (
    AuthenticationFailed,
    ConfigError,
    DatastoreError,
    PermissionDenied,
)
from regionmesh.model.kinds import KINDS
from regionmesh.model.regions import region_namespace, region_problem, region_string

if TYPE_CHECKING:  # the etcd client (and etcd3gw) is imported only by whoever opens etcd
    from regionmesh.datastore.etcd import EtcdDatastore

READ = "read"
WRITE = "write"
READWRITE = "readwrite"
_ETCD_PERM = {READ: "READ", WRITE: "WRITE", READWRITE: "READWRITE"}
_FROM_ETCD = {v: k for k, v in _ETCD_PERM.items()}
ROOT_USER = "root"
ROOT_ROLE = "root"

NEUTRON = "neutron"
AGENT = "agent"
DHCP = "dhcp"
OPERATOR = "operator"
COMPONENTS = (NEUTRON, AGENT, DHCP, OPERATOR)
OPERATOR_USER = "calico-operator"

WEP = "workloadendpoints"
CALICOCTL_ONLY_GLOBAL_PLURALS = (
    "stagedglobalnetworkpolicies",
    "bgpconfigurations",
    "bgppeers",
    "bgpfilters",
    "ippools",
)
"""Cluster-scoped Calico kinds regionmesh does not model but an operator's calicoctl writes."""
NP = "networkpolicies"


def _covers_perm(have: str, want: str) -> bool:
    return have == want or have == READWRITE


@dataclass(frozen=True, slots=True, order=True)
class KeyRange:
    """One etcd permission range: a single key (``end`` None) or ``[key, end)``."""

    key: str
    end: str | None = None

    @classmethod
    def prefix(cls, prefix: str) -> KeyRange:
        """Every key starting with ``prefix``, which must end in ``/``."""
        if not prefix.endswith("/"):
            raise ValueError(f"permission prefix {prefix!r} must end in '/'")
        end = keys.prefix_range_end(prefix.encode())
        assert end is not None
        return cls(prefix, end.decode())

    @classmethod
    def single(cls, key: str) -> KeyRange:
        """Exactly one key."""
        return cls(key, None)

    @property
    def is_prefix(self) -> bool:
        """True for a ``--prefix`` range."""
        return self.end is not None and keys.prefix_range_end(self.key.encode()) == (
            self.end.encode()
        )

    def _bounds(self) -> tuple[bytes, bytes | None]:
        lo = self.key.encode()
        if self.end is None:
            return lo, lo + b"\0"
        if self.end == "\0":
            return lo, None
        return lo, self.end.encode()

    def contains(self, other: KeyRange) -> bool:
        """True when every key of ``other`` is in this range."""
        lo, hi = self._bounds()
        olo, ohi = other._bounds()
        if olo < lo:
            return False
        if hi is None:
            return True
        return ohi is not None and ohi <= hi

    def __str__(self) -> str:
        if self.end is None:
            return self.key
        if self.is_prefix:
            return f"{self.key}*"
        return f"[{self.key}, {self.end})"

    def etcdctl(self) -> str:
        """The etcdctl arguments of this range (``--prefix=true KEY`` or ``KEY [END]``)."""
        if self.end is None:
            return self.key
        if self.is_prefix:
            return f"--prefix=true {self.key}"
        return f"{self.key} {self.end}"


@dataclass(frozen=True, slots=True)
class Grant:
    """One permission of a role, with the reason the component needs it."""

    perm: str
    range: KeyRange
    why: str = ""

    def covers(self, other: Grant) -> bool:
        """True when this grant allows everything ``other`` allows."""
        return _covers_perm(self.perm, other.perm) and self.range.contains(other.range)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready form."""
        d: dict[str, Any] = {
            "permission": self.perm,
            "key": self.range.key,
            "prefix": self.range.is_prefix,
        }
        if self.range.end is not None and not self.range.is_prefix:
            d["range_end"] = self.range.end
        d["why"] = self.why
        return d


@dataclass(frozen=True, slots=True)
class Role:
    """An etcd role (and the user of the same name that holds only it)."""

    name: str
    component: str
    region: str | None
    grants: tuple[Grant, ...]
    host: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready form."""
        d: dict[str, Any] = {"name": self.name, "component": self.component}
        if self.region is not None:
            d["region"] = self.region
        if self.host is not None:
            d["host"] = self.host
        d["grants"] = [g.to_dict() for g in self.grants]
        return d


@dataclass(frozen=True, slots=True)
class Plan:
    """Every role of a cloud; each role's user has the role's name."""

    regions: tuple[str, ...]
    roles: tuple[Role, ...]

    def role(self, name: str) -> Role | None:
        """The role (= user) called ``name``, or None."""
        return next((r for r in self.roles if r.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready form."""
        return {
            "regions": list(self.regions),
            "root": {"user": ROOT_USER, "role": ROOT_ROLE},
            "users": [{"name": r.name, "roles": [r.name]} for r in self.roles],
            "roles": [r.to_dict() for r in self.roles],
        }

    def etcdctl_commands(self) -> list[str]:
        """The etcdctl commands that build this plan by hand (passwords prompted)."""
        lines: list[str] = []
        for role in self.roles:
            lines.append(f"etcdctl role add {role.name}")
            for g in role.grants:
                lines.append(
                    f"etcdctl role grant-permission {role.name} {g.perm} {g.range.etcdctl()}"
                )
            lines.append(f"etcdctl user add {role.name}")
            lines.append(f"etcdctl user grant-role {role.name} {role.name}")
        return lines


# --- the layout ------------------------------------------------------------------------------


def neutron_user(region: str) -> str:
    """``neutron-region-<r>``."""
    return f"neutron-{region_string(region)}"


def agent_user(region: str, host: str | None = None) -> str:
    """``felix-region-<r>`` (or ``felix-region-<r>-<host>`` for a per-host user)."""
    return f"felix-{region_string(region)}" + (f"-{host}" if host else "")


def dhcp_user(region: str) -> str:
    """``dhcp-region-<r>``."""
    return f"dhcp-{region_string(region)}"


def cluster_singletons() -> list[str]:
    """The global ``default`` objects networking-calico's master writes from every region."""
    return [
        keys.resource_key("clusterinformations", "default"),
        keys.resource_key("felixconfigurations", "default"),
    ]


def neutron_grants(region: str, *, address_group_mirrors: bool = False) -> tuple[Grant, ...]:
    """What region ``region``'s Neutron servers (ML2 driver, ``regionmesh resync``) need.

    With ``address_group_mirrors`` (``[calico] address_group_mirrors = true``) also read access
    to every region's WorkloadEndpoints and NetworkPolicies and its mirror status key: the
    mirrors are built from other regions' VM inventories, which a Neutron server may
    otherwise not read."""
    ns = region_namespace(region)
    p = KeyRange.prefix
    k = KeyRange.single
    grants = [
        Grant(READWRITE, p(keys.resource_prefix(WEP, ns)), "its ports' WorkloadEndpoints"),
        Grant(READWRITE, p(keys.resource_prefix(NP, ns)), "its security groups' NetworkPolicies"),
        Grant(READWRITE, p(keys.dhcp_region_prefix(region)), "its DHCP subnet records"),
        Grant(READWRITE, p(keys.openstack_region_prefix(region)), "its master election key"),
        Grant(READWRITE, p(keys.region_subnet_registry_prefix(region)), "its subnet claims"),
        Grant(READWRITE, p(keys.findings_prefix(region)), "findings it records for doctor"),
        Grant(READWRITE, k(keys.round_trip_key(region)), "the status watcher's liveness probe"),
        Grant(READWRITE, k(keys.compaction_last_key()), "shared compaction bookkeeping"),
        Grant(READWRITE, k(keys.compaction_trigger_key()), "shared compaction schedule"),
        Grant(
            READ,
            p(keys.FELIX_V2_PREFIX),
            "agent heartbeats and port status of its region; other regions' heartbeats for "
            "the host-in-the-wrong-region check",
        ),
        Grant(READ, p(keys.DHCP_V2_PREFIX), "every region's DHCP subnets (overlap guard)"),
        Grant(READ, p(keys.SUBNET_REGISTRY_PREFIX), "every region's subnet claims (overlap guard)"),
    ]
    if address_group_mirrors:
        grants += [
            Grant(
                READ,
                p(keys.resource_prefix(WEP)),
                "every region's WorkloadEndpoints (address-group mirrors of their SGs)",
            ),
            Grant(
                READ,
                p(keys.resource_prefix(NP)),
                "every region's NetworkPolicies (which SGs exist, for the mirrors)",
            ),
            Grant(READWRITE, k(keys.mirror_status_key(region)), "its address-group mirror status"),
        ]
    grants += [
        Grant(READ, k(key), "checks the operator set these up (written by etcd-auth apply)")
        for key in cluster_singletons()
    ]
    return tuple(grants)


def agent_grants(region: str, host: str | None = None) -> tuple[Grant, ...]:
    """What an agent (Felix equivalent) of ``region`` needs; ``host`` narrows its writes."""
    own = keys.felix_host_dir(region, host) + "/" if host else keys.felix_hosts_prefix(region)
    return (
        Grant(
            READ,
            KeyRange.prefix(keys.RESOURCES_PREFIX),
            "every resource it evaluates: all regions' endpoints for cross-region selectors",
        ),
        Grant(READWRITE, KeyRange.prefix(own), "its heartbeat and endpoint status keys"),
    )


def dhcp_grants(region: str) -> tuple[Grant, ...]:
    """What a DHCP agent of ``region`` needs: its region's endpoints and subnets."""
    return (
        Grant(
            READ,
            KeyRange.prefix(keys.resource_prefix(WEP, region_namespace(region))),
            "its region's WorkloadEndpoints (the ports it serves)",
        ),
        Grant(READ, KeyRange.prefix(keys.subnet_dir(region) + "/"), "its region's subnets"),
        Grant(
            READ,
            KeyRange.prefix(keys.LEGACY_SUBNET_DIR + "/"),
            "legacy v1 subnets (fallback, as networking-calico's DHCP agent)",
        ),
    )


def operator_grants() -> tuple[Grant, ...]:
    """The global operator (calicoctl, doctor): every cluster-scoped kind, read everything."""
    grants = [
        Grant(READWRITE, KeyRange.prefix(keys.resource_prefix(info.plural)), f"{info.kind}s")
        for info in KINDS.values()
        if not info.namespaced
    ]
    grants += [
        Grant(READWRITE, KeyRange.prefix(keys.resource_prefix(plural)), f"{plural} (calicoctl)")
        for plural in CALICOCTL_ONLY_GLOBAL_PLURALS
    ]
    grants.append(Grant(READ, KeyRange.prefix(keys.CALICO_ROOT), "get/explain/doctor read all"))
    return tuple(grants)


def parse_regions(text: str | Sequence[str]) -> tuple[str, ...]:
    """``one,two`` → ``("one", "two")``; ConfigError naming a bad or repeated region."""
    items = [r.strip() for r in (text.split(",") if isinstance(text, str) else text)]
    regions = tuple(r for r in items if r)
    if not regions:
        raise ConfigError("--regions: at least one region is needed (e.g. --regions one,two)")
    for r in regions:
        problem = region_problem(r)
        if problem:
            raise ConfigError(f"--regions: region {r!r} is invalid: must be {problem}")
    if len(set(regions)) != len(regions):
        raise ConfigError(f"--regions: a region is listed twice in {','.join(regions)!r}")
    return regions


def build_plan(
    regions: Sequence[str],
    agent_hosts: Mapping[str, Sequence[str]] | None = None,
    *,
    address_group_mirrors: bool = False,
) -> Plan:
    """The roles of a cloud of ``regions``; ``agent_hosts[r]`` gives region r per-host agent
    users (one role per host, writing only ``…/host/<hostname>/``) instead of one shared one;
    ``address_group_mirrors`` adds what the Neutron servers' mirrors read (see
    :func:`neutron_grants`)."""
    regions = parse_regions(regions)
    agent_hosts = dict(agent_hosts or {})
    unknown = sorted(set(agent_hosts) - set(regions))
    if unknown:
        raise ConfigError(f"--agent-hosts: region(s) {', '.join(unknown)} not in --regions")
    roles: list[Role] = []
    for r in regions:
        grants = neutron_grants(r, address_group_mirrors=address_group_mirrors)
        roles.append(Role(neutron_user(r), NEUTRON, r, grants))
        hosts = list(agent_hosts.get(r, ()))
        if hosts:
            for h in hosts:
                if not h or "/" in h:
                    raise ConfigError(f"--agent-hosts: invalid hostname {h!r} for region {r}")
                roles.append(Role(agent_user(r, h), AGENT, r, agent_grants(r, h), host=h))
        else:
            roles.append(Role(agent_user(r), AGENT, r, agent_grants(r)))
        roles.append(Role(dhcp_user(r), DHCP, r, dhcp_grants(r)))
    roles.append(Role(OPERATOR_USER, OPERATOR, None, operator_grants()))
    return Plan(regions, tuple(roles))


def parse_agent_hosts(values: Iterable[str]) -> dict[str, list[str]]:
    """``["one=h1,h2", "two=h3"]`` → ``{"one": ["h1", "h2"], "two": ["h3"]}``."""
    out: dict[str, list[str]] = {}
    for value in values:
        region, sep, hosts = value.partition("=")
        if not sep or not region.strip() or not hosts.strip():
            raise ConfigError(f"--agent-hosts {value!r}: expected REGION=HOST[,HOST…]")
        out.setdefault(region.strip(), []).extend(h.strip() for h in hosts.split(",") if h.strip())
    return out


# --- talking to etcd's auth API ---------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def _unb64(text: str | None) -> str:
    return base64.b64decode(text or "").decode(errors="replace")


def _grant_from_etcd(perm: Mapping[str, Any]) -> Grant:
    key = _unb64(perm.get("key"))
    end = _unb64(perm.get("range_end")) if perm.get("range_end") else None
    # the gateway leaves out the enum's zero value (READ)
    return Grant(_FROM_ETCD.get(str(perm.get("permType", "READ")), READ), KeyRange(key, end))


def auth_enabled(client: EtcdDatastore) -> bool:
    """Whether authentication is on (etcd 3.4 has no auth status call: ask for a token)."""
    try:
        client.request("/auth/authenticate", {"name": "", "password": ""})
    except AuthenticationFailed:
        return True
    except DatastoreError as exc:
        if "authentication is not enabled" in str(exc):
            return False
        raise
    return True


def alarms(client: EtcdDatastore) -> list[tuple[str, str]]:
    """``(member id, alarm)`` for every raised alarm (NOSPACE, CORRUPT); any user may ask."""
    result = client.request("/maintenance/alarm", {"action": "GET"})
    return [
        (str(a.get("memberID", "")), str(a.get("alarm", "NONE")))
        for a in result.get("alarms") or []
    ]


def user_roles(client: EtcdDatastore, user: str) -> list[str] | None:
    """The roles of ``user`` (None: no such user). A user may read its own; others need root."""
    try:
        result = client.request("/auth/user/get", {"name": user})
    except DatastoreError as exc:
        if "user name not found" in str(exc):
            return None
        raise
    return [str(r) for r in result.get("roles") or []]


def role_grants(client: EtcdDatastore, role: str) -> list[Grant] | None:
    """The permissions of ``role`` (None: no such role)."""
    try:
        result = client.request("/auth/role/get", {"role": role})
    except DatastoreError as exc:
        if "role name not found" in str(exc):
            return None
        raise
    return [_grant_from_etcd(p) for p in result.get("perm") or []]


@dataclass
class ApplyReport:
    """What :func:`apply_plan` changed."""

    roles_created: list[str] = field(default_factory=list)
    grants_added: list[tuple[str, Grant]] = field(default_factory=list)
    grants_removed: list[tuple[str, Grant]] = field(default_factory=list)
    users_created: list[str] = field(default_factory=list)
    passwords_set: dict[str, str] = field(default_factory=dict)
    root_created: bool = False
    auth_enabled_now: bool = False

    @property
    def changed(self) -> bool:
        """True when anything was changed."""
        return bool(
            self.roles_created
            or self.grants_added
            or self.grants_removed
            or self.users_created
            or self.passwords_set
            or self.root_created
            or self.auth_enabled_now
        )


def _ignore_exists(client: EtcdDatastore, path: str, body: dict[str, Any], what: str) -> bool:
    """POST, and return False when etcd says ``what`` already exists."""
    try:
        client.request(path, body)
    except DatastoreError as exc:
        if f"{what} already exists" in str(exc):
            return False
        raise
    return True


def new_password() -> str:
    """A random password (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


def apply_plan(  # noqa: C901 - the ordered steps of turning auth on, kept together so the order shows
    client: EtcdDatastore,
    plan: Plan,
    *,
    passwords: Mapping[str, str] | None = None,
    root_password: str | None = None,
    enable: bool = True,
) -> ApplyReport:
    """Make etcd hold exactly the plan's roles and users (idempotent), then enable auth.

    ``client`` must be able to administer etcd: authenticated as root when auth is on; any
    client when it is off (then a ``root`` user is created first, with ``root_password`` or the
    client's own password when the client is configured as root, else a generated one that the
    report returns). Users already present keep their password unless ``passwords`` names
    them; new users get the password from ``passwords`` or a generated one (in the report).
    Each plan user ends with exactly its role; users outside the plan are left alone.
    """
    passwords = dict(passwords or {})
    report = ApplyReport()
    enabled = auth_enabled(client)
    if enabled and client.username is None:
        raise AuthenticationFailed(
            "etcd authentication is on: run etcd-auth apply with the root user's credentials"
        )
    # root first, so that enabling auth can never lock the operator out
    _ignore_exists(client, "/auth/role/add", {"name": ROOT_ROLE}, "role name")
    existing_root = user_roles(client, ROOT_USER)
    if existing_root is None:
        if enabled:
            raise DatastoreError("etcd auth is on but there is no root user")  # cannot happen
        pw = root_password or (client_password(client) if client.username == ROOT_USER else None)
        pw = pw or new_password()
        client.request("/auth/user/add", {"name": ROOT_USER, "password": pw})
        report.root_created = True
        if pw != client_password(client) or client.username != ROOT_USER:
            report.passwords_set[ROOT_USER] = pw
        existing_root = []
    elif root_password:
        client.request("/auth/user/changepw", {"name": ROOT_USER, "password": root_password})
        report.passwords_set[ROOT_USER] = root_password
    if ROOT_ROLE not in existing_root:
        client.request("/auth/user/grant", {"user": ROOT_USER, "role": ROOT_ROLE})

    for role in plan.roles:
        if _ignore_exists(client, "/auth/role/add", {"name": role.name}, "role name"):
            report.roles_created.append(role.name)
        have = role_grants(client, role.name) or []
        want = {(g.perm, g.range) for g in role.grants}
        have_set = {(g.perm, g.range) for g in have}
        for g in have:
            if (g.perm, g.range) not in want:
                body = {"role": role.name, "key": _b64(g.range.key)}
                if g.range.end is not None:
                    body["range_end"] = _b64(g.range.end)
                client.request("/auth/role/revoke", body)
                report.grants_removed.append((role.name, g))
        for g in role.grants:
            if (g.perm, g.range) in have_set:
                continue
            perm: dict[str, Any] = {"permType": _ETCD_PERM[g.perm], "key": _b64(g.range.key)}
            if g.range.end is not None:
                perm["range_end"] = _b64(g.range.end)
            client.request("/auth/role/grant", {"name": role.name, "perm": perm})
            report.grants_added.append((role.name, g))

        roles = user_roles(client, role.name)
        if roles is None:
            pw = passwords.get(role.name) or new_password()
            client.request("/auth/user/add", {"name": role.name, "password": pw})
            report.users_created.append(role.name)
            report.passwords_set[role.name] = pw
            roles = []
        elif role.name in passwords:
            client.request(
                "/auth/user/changepw", {"name": role.name, "password": passwords[role.name]}
            )
            report.passwords_set[role.name] = passwords[role.name]
        for other in roles:
            if other != role.name:
                client.request("/auth/user/revoke", {"name": role.name, "role": other})
        if role.name not in roles:
            client.request("/auth/user/grant", {"user": role.name, "role": role.name})

    if enable and not enabled:
        client.request("/auth/enable", {})
        report.auth_enabled_now = True
    return report


def client_password(client: EtcdDatastore) -> str | None:
    """The password the client authenticates with (for creating root as that same user)."""
    return client.password if client.username else None


# --- auditing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserAudit:
    """How one user's real permissions compare with its plan role."""

    user: str
    exists: bool
    roles: tuple[str, ...]
    missing: tuple[Grant, ...]
    extra: tuple[Grant, ...]
    is_root: bool = False

    @property
    def ok(self) -> bool:
        """No missing and no extra permission."""
        return self.exists and not self.missing and not self.extra and not self.is_root


def compare(want: Sequence[Grant], have: Sequence[Grant]) -> tuple[list[Grant], list[Grant]]:
    """``(missing, extra)``: plan grants no real grant covers, real grants no plan grant covers."""
    missing = [w for w in want if not any(h.covers(w) for h in have)]
    extra = [h for h in have if not any(w.covers(h) for w in want)]
    return missing, extra


def audit_user(client: EtcdDatastore, role: Role) -> UserAudit:
    """Read ``role.name``'s roles and their permissions and compare them with ``role``.

    Works as root for any user, and as the user itself (etcd lets a user read its own user and
    its own roles); PermissionDenied otherwise.
    """
    roles = user_roles(client, role.name)
    if roles is None:
        return UserAudit(role.name, False, (), role.grants, ())
    have: list[Grant] = []
    for name in roles:
        if name == ROOT_ROLE:
            continue
        have += role_grants(client, name) or []
    missing, extra = compare(role.grants, have)
    return UserAudit(
        role.name, True, tuple(roles), tuple(missing), tuple(extra), is_root=ROOT_ROLE in roles
    )


def is_root_client(client: EtcdDatastore) -> bool:
    """Whether the client's user holds the root role (may read every user)."""
    if client.username is None:
        return False
    try:
        roles = user_roles(client, client.username)
    except PermissionDenied:
        return False
    return ROOT_ROLE in (roles or [])
