"""The ``[calico]`` options of neutron.conf that regionmesh's Neutron driver reads.

Option names are networking-calico's (``openstack_region``, ``etcd_host``, ``etcd_port``,
``etcd_ca_cert_file``, ``etcd_cert_file``, ``etcd_key_file``, ``etcd_username``,
``etcd_password``), so an existing neutron.conf works unchanged, plus regionmesh's own
``datastore = URL`` which, when set, wins over the ``etcd_*`` options. This module registers
the options with oslo.config, reads them into a plain :class:`CalicoOptions` (validating the
region with :func:`regionmesh.model.regions.validate_region`, so a bad value stops the driver
with a :class:`~regionmesh.errors.ConfigError` naming option, value and rule) and turns them
into a datastore URL with the pure :func:`datastore_url`. Opening the datastore is
:mod:`regionmesh.datastore`'s business.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from oslo_config import cfg

from regionmesh.datastore.selection import DatastoreConfig, choose_datastore
from regionmesh.errors import ConfigError
from regionmesh.model.regions import validate_region

GROUP = "calico"

OPTIONS = [
    cfg.StrOpt(
        "openstack_region",
        help="When in a multi-region OpenStack deployment, a unique name for the region that "
        "this node (controller or compute) belongs to. Every region sharing one datastore "
        "must set it: a DNS-1123 label of at most 46 characters.",
    ),
    cfg.StrOpt(
        "datastore",
        help="regionmesh: the datastore URL (etcd://host:port[,host:port], etcds://..., "
        "sqlite:///path). When set, the etcd_* options are ignored.",
    ),
    cfg.StrOpt(
        "etcd_host",
        default="127.0.0.1",
        help="The hostname or IP of etcd. regionmesh also accepts a comma-separated list of "
        "cluster members, each 'host' (using etcd_port) or 'host:port' ('[v6]:port'); the "
        "client fails over between them.",
    ),
    cfg.PortOpt("etcd_port", default=2379, help="The port to use for the etcd node(s)."),
    cfg.StrOpt("etcd_ca_cert_file", help="Path to the CA certificate of the etcd server."),
    cfg.StrOpt("etcd_cert_file", help="Path to the client certificate for etcd."),
    cfg.StrOpt("etcd_key_file", help="Path to the client key for etcd."),
    cfg.StrOpt("etcd_username", help="Username for etcd authentication."),
    cfg.StrOpt("etcd_password", secret=True, help="Password for etcd authentication."),
    cfg.IntOpt(
        "felix_status_interval",
        default=5,
        min=1,
        help="regionmesh: seconds between refreshes of the Neutron agent rows of this "
        "region's live agents (from the master's watch, no datastore reads).",
    ),
    cfg.StrOpt(
        "startup_resync",
        default="always",
        choices=["always", "never"],
        help="Whether the elected master resyncs the region from Neutron when it takes over.",
    ),
    cfg.BoolOpt(
        "address_group_mirrors",
        default=False,
        help="regionmesh: keep, in this region's Neutron, one address group per security "
        "group of every other region (named <region>.<sg name>, owned by project "
        "'regionmesh', shared with every project), so tenants can write cross-region rules "
        "with --remote-address-group. Cost: one address group per remote security group; with etcd authentication the Neutron user needs `etcd-auth apply --address-group-mirrors`.",
    ),
    cfg.ListOpt(
        "address_group_mirror_regions",
        default=[],
        help="regionmesh: the regions whose security groups are mirrored (empty: every "
        "other region that shares the datastore).",
    ),
    cfg.IntOpt(
        "address_group_mirror_interval",
        default=10,
        min=1,
        help="regionmesh: seconds between full checks of the mirrors (restores mirrors "
        "edited or deleted by hand); changes in other regions are followed at once.",
    ),
    cfg.StrOpt(
        "elector_name",
        help="Name used in the election key value <name>:<pid> (default: the hostname).",
    ),
    cfg.IntOpt(
        "etcd_compaction_period_mins",
        default=60,
        min=0,
        help="Interval in minutes between periodic etcd compactions (by one elected master "
        "across all regions, sharing /calico/compaction/v1/ with networking-calico). 0 "
        "disables compaction; the deployment must then compact etcd by other means.",
    ),
    cfg.IntOpt(
        "etcd_compaction_min_revisions",
        default=1000,
        min=0,
        help="The minimum number of revisions to keep when compacting etcd; the history of "
        "the previous etcd_compaction_period_mins interval is always kept too.",
    ),
]


@dataclass(frozen=True, slots=True)
class CalicoOptions:
    """The ``[calico]`` options as plain values (region already validated)."""

    openstack_region: str | None = None
    datastore: str | None = None
    etcd_host: str = "127.0.0.1"
    etcd_port: int = 2379
    etcd_ca_cert_file: str | None = None
    etcd_cert_file: str | None = None
    etcd_key_file: str | None = None
    etcd_username: str | None = None
    etcd_password: str | None = None
    felix_status_interval: int = 5
    startup_resync: bool = True
    elector_name: str | None = None
    address_group_mirrors: bool = False
    address_group_mirror_regions: tuple[str, ...] = ()
    address_group_mirror_interval: int = 10
    etcd_compaction_period_mins: int = 60
    etcd_compaction_min_revisions: int = 1000


def register_options(conf: Any = None) -> Any:
    """Register the options under ``[calico]`` (idempotent); returns the ConfigOpts used."""
    conf = cfg.CONF if conf is None else conf
    for opt in OPTIONS:
        try:
            conf.register_opt(opt, group=GROUP)
        except cfg.DuplicateOptError:
            pass  # registered by another module with a different definition; keep theirs
    return conf


def load_options(conf: Any = None) -> CalicoOptions:
    """Read ``[calico]`` from ``conf`` (default ``cfg.CONF``); ConfigError on a bad region."""
    conf = register_options(conf)
    group = conf[GROUP]
    region = validate_region(group.openstack_region, option=f"[{GROUP}] openstack_region")
    return CalicoOptions(
        openstack_region=region,
        datastore=group.datastore or None,
        etcd_host=group.etcd_host,
        etcd_port=int(group.etcd_port),
        etcd_ca_cert_file=group.etcd_ca_cert_file or None,
        etcd_cert_file=group.etcd_cert_file or None,
        etcd_key_file=group.etcd_key_file or None,
        etcd_username=group.etcd_username or None,
        etcd_password=group.etcd_password or None,
        felix_status_interval=int(group.felix_status_interval),
        startup_resync=group.startup_resync != "never",
        elector_name=group.elector_name or None,
        address_group_mirrors=bool(group.address_group_mirrors),
        address_group_mirror_regions=tuple(
            validate_region(r.strip(), option=f"[{GROUP}] address_group_mirror_regions") or ""
            for r in group.address_group_mirror_regions or ()
            if r.strip()
        ),
        address_group_mirror_interval=int(group.address_group_mirror_interval),
        etcd_compaction_period_mins=int(group.etcd_compaction_period_mins),
        etcd_compaction_min_revisions=int(group.etcd_compaction_min_revisions),
    )


def datastore_url(opts: CalicoOptions) -> str:
    """The datastore URL the options describe (pure).

    ``datastore`` wins when set. Otherwise ``etcd://host:port[,host:port…]`` (every member in
    ``etcd_host``), or ``etcds://`` when any of
    the TLS files is set (networking-calico's rule), with ``?ca=&cert=&key=`` for the files
    and ``user:password@`` for etcd authentication.
    """
    if opts.datastore:
        return opts.datastore
    if not opts.etcd_host:
        raise ConfigError(f"invalid value {opts.etcd_host!r} for [{GROUP}] etcd_host: empty")
    tls = {
        name: value
        for name, value in (
            ("ca", opts.etcd_ca_cert_file),
            ("cert", opts.etcd_cert_file),
            ("key", opts.etcd_key_file),
        )
        if value
    }
    if bool(opts.etcd_cert_file) != bool(opts.etcd_key_file):
        raise ConfigError(
            f"[{GROUP}] etcd_cert_file and etcd_key_file must be set together "
            f"(etcd_cert_file={opts.etcd_cert_file!r}, etcd_key_file={opts.etcd_key_file!r})"
        )
    if opts.etcd_password and not opts.etcd_username:
        raise ConfigError(f"[{GROUP}] etcd_password is set but etcd_username is not")
    auth = ""
    if opts.etcd_username:
        auth = quote(opts.etcd_username, safe="")
        if opts.etcd_password:
            auth += ":" + quote(opts.etcd_password, safe="")
        auth += "@"
    members = ",".join(_etcd_members(opts.etcd_host, opts.etcd_port))
    scheme = "etcds" if tls else "etcd"
    query = f"?{urlencode(tls)}" if tls else ""
    return f"{scheme}://{auth}{members}{query}"


def _etcd_members(etcd_host: str, etcd_port: int) -> list[str]:
    """``etcd_host`` as ``host:port`` items: a name or IP gets ``etcd_port``; a bare IPv6
    address is bracketed; ``host:port`` and ``[v6]:port`` are kept."""
    members = []
    for raw in etcd_host.split(","):
        item = raw.strip()
        if not item:
            raise ConfigError(
                f"invalid value {etcd_host!r} for [{GROUP}] etcd_host: empty entry in the "
                "comma-separated list"
            )
        if item.startswith("["):
            members.append(item if "]:" in item else f"{item}:{etcd_port}")
        elif item.count(":") > 1:
            members.append(f"[{item}]:{etcd_port}")
        elif ":" in item:
            members.append(item)
        else:
            members.append(f"{item}:{etcd_port}")
    return members


def read_config_files(paths: list[str]) -> Any:
    """Parse neutron.conf-style files into a fresh ConfigOpts with ``[calico]`` registered.

    ``[DEFAULT] host`` is registered too (as Neutron does). Raises ConfigError naming the file
    when it is missing or malformed. The region is NOT validated here, so callers that only
    inspect a file (``regionmesh doctor config``) can report an invalid one.
    """
    for path in paths:
        if not os.path.exists(path):
            raise ConfigError(f"config file {path} does not exist")
    conf = cfg.ConfigOpts()
    register_options(conf)
    try:
        conf.register_opt(cfg.StrOpt("host", default=None))
    except cfg.DuplicateOptError:
        pass
    try:
        conf(args=[], project="neutron", default_config_files=paths, default_config_dirs=[])
    except cfg.Error as exc:
        raise ConfigError(f"cannot read {', '.join(paths)}: {exc}") from exc
    return conf


def raw_region(conf: Any) -> str | None:
    """The ``[calico] openstack_region`` value as written (not validated), or None."""
    value = register_options(conf)[GROUP].openstack_region
    return str(value) if value else None


# ---------------------------------------------------------------------------- compute nodes
# Added for the DHCP agent (``regionmesh dhcp-agent``, :mod:`regionmesh.dhcp.agent`):
# read neutron.conf files the way a compute node's agent does, without touching ``cfg.CONF``.


@dataclass(frozen=True, slots=True)
class ComputeNodeConfig:
    """What a compute-node agent reads from neutron.conf.

    ``host`` is ``[DEFAULT] host`` (None when unset: use the system host name);
    ``datastore_configured`` is True when ``[calico] datastore`` or any ``etcd_*`` option was
    set in a file (rather than left at its default).
    """

    calico: CalicoOptions
    host: str | None
    datastore_configured: bool


def load_config_files(paths: list[str]) -> ComputeNodeConfig:
    """Parse neutron.conf-style ``paths`` (later files win, via :func:`read_config_files`) into
    a :class:`ComputeNodeConfig`. A missing or unparsable file, a bad value or a bad region
    raises ConfigError naming the option, value and rule.
    """
    conf = read_config_files(paths)
    try:
        calico = load_options(conf)
        host = conf.host or None
        group = conf[GROUP]
        configured = any(
            group[opt.dest] != opt.default
            for opt in OPTIONS
            if opt.dest == "datastore" or opt.dest.startswith("etcd_")
        )
    except cfg.Error as exc:
        raise ConfigError(f"cannot read {', '.join(paths)}: {exc}") from exc
    except ValueError as exc:  # oslo's ConfigFileValueError (e.g. etcd_port = abc)
        raise ConfigError(f"invalid value in {', '.join(paths)}: {exc}") from exc
    return ComputeNodeConfig(calico=calico, host=host, datastore_configured=configured)


def compute_node_datastore(
    url: str | None, node: ComputeNodeConfig, env: Mapping[str, str]
) -> DatastoreConfig:
    """The datastore a compute node's DHCP agent uses, first match wins:

    ``--datastore``; ``$REGIONMESH_DATASTORE``; ``[calico] datastore`` or ``etcd_*`` set in
    neutron.conf; Calico's ``DATASTORE_TYPE``/``ETCD_ENDPOINTS`` environment; finally
    neutron.conf's etcd defaults (``127.0.0.1:2379``, as networking-calico). The precedence is
    :func:`regionmesh.datastore.selection.choose_datastore`'s.
    """
    return choose_datastore(
        url,
        env,
        file_url=datastore_url(node.calico),
        file_configured=node.datastore_configured,
        file_source="[calico] in neutron.conf",
        default_source="[calico] defaults",
    )
