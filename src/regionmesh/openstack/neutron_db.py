"""Read Neutron's database into :mod:`regionmesh.openstack.records`' input dataclasses.

With :mod:`~regionmesh.openstack.mech_driver` and :mod:`~regionmesh.openstack.worker`, the
only place that imports Neutron, and the boundary where Neutron's, oslo's and the database's
exceptions become regionmesh's: :class:`~regionmesh.errors.NeutronUnavailable` (the DB or
plugin failed a read) and :class:`~regionmesh.errors.ConfigError` (Neutron's configuration or
plugin cannot be loaded), always ``from`` the original. Every function takes the ML2 core
plugin and a Neutron context, re-reads what it needs (ports are re-read rather than trusted
from the hook's dict, as networking-calico does) and returns plain frozen dataclasses.
:class:`NeutronDbSource` implements :class:`~regionmesh.openstack.reader.NeutronReader` (bulk:
one query per table, not per port; and the one-port re-read); :func:`open_neutron` boots
Neutron's config and ML2 plugin outside neutron-server (the ``regionmesh resync`` CLI).
Translating, writing and deciding belong to the callers.

Kept as one module on purpose (just over 500 lines): it is the one Neutron boundary that the
import-linter contract names; splitting it would spread Neutron imports over more modules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy.exc
from neutron.db.models import l3 as l3_models
from neutron_lib import exceptions as n_exc
from neutron_lib.db import api as db_api
from oslo_config import cfg
from oslo_db import exception as db_exc

from regionmesh.errors import ConfigError, NeutronUnavailable
from regionmesh.openstack.address_groups import (
    MIRROR_PROJECT,
    AddressGroupRecord,
    MirrorConflict,
    MirroredGroup,
    parse_mirror,
)
from regionmesh.openstack.records import (
    FixedIP,
    FloatingIP,
    HostRoute,
    NeutronPort,
    NeutronRule,
    NeutronSecurityGroup,
    NeutronSubnet,
    SecurityGroupRef,
)

_NEUTRON_ERRORS = (n_exc.NeutronException, db_exc.DBError, sqlalchemy.exc.SQLAlchemyError)


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn Neutron, oslo.db and SQLAlchemy errors into NeutronUnavailable naming ``what``."""
    try:
        yield
    except _NEUTRON_ERRORS as exc:
        raise NeutronUnavailable(f"cannot read {what} from Neutron: {exc}") from exc


def port_from_dict(
    port: Mapping[str, Any],
    *,
    gateways: Mapping[str, str | None],
    sg_names: Mapping[str, str],
    floating_ips: Iterable[FloatingIP] = (),
    network_name: str | None = None,
) -> NeutronPort:
    """Build a :class:`NeutronPort` from an API-shaped port dict plus the looked-up extras."""
    profile = port.get("binding:profile") or {}
    dns = port.get("dns_assignment") or []
    return NeutronPort(
        id=port["id"],
        network_id=port["network_id"],
        device_id=port.get("device_id") or "",
        device_owner=port.get("device_owner") or "",
        mac_address=port.get("mac_address") or "",
        host_id=port.get("binding:host_id") or "",
        vif_type=port.get("binding:vif_type") or "unbound",
        fixed_ips=tuple(
            FixedIP(ip["ip_address"], ip["subnet_id"], gateways.get(ip["subnet_id"]))
            for ip in port.get("fixed_ips") or ()
        ),
        allowed_address_pairs=tuple(
            str(aap["ip_address"]) for aap in port.get("allowed_address_pairs") or ()
        ),
        security_groups=tuple(
            SecurityGroupRef(sg_id, sg_names.get(sg_id, ""))
            for sg_id in port.get("security_groups") or ()
        ),
        floating_ips=tuple(floating_ips),
        project_id=port.get("project_id") or port.get("tenant_id"),
        project=None,  # Keystone project names: a later phase
        network_name=network_name,
        dns_fqdn=(dns[0].get("fqdn") or None) if dns else None,
        migrating_to=profile.get("migrating_to") if isinstance(profile, Mapping) else None,
    )


def read_port(plugin: Any, context: Any, port_id: str) -> NeutronPort | None:
    """Re-read a port with its gateways, SG names, floating IPs and network name."""
    try:
        port = plugin.get_port(context, port_id)
    except n_exc.PortNotFound:
        return None
    subnet_ids = sorted({ip["subnet_id"] for ip in port.get("fixed_ips") or ()})
    gateways: dict[str, str | None] = {}
    if subnet_ids:
        for subnet in plugin.get_subnets(
            context, filters={"id": subnet_ids}, fields=["id", "gateway_ip"]
        ):
            gateways[subnet["id"]] = subnet.get("gateway_ip")
    sg_ids = list(port.get("security_groups") or ())
    sg_names: dict[str, str] = {}
    if sg_ids:
        for sg in plugin.get_security_groups(
            context, filters={"id": sg_ids}, fields=["id", "name"], default_sg=True
        ):
            sg_names[sg["id"]] = sg.get("name") or ""
    with db_api.CONTEXT_READER.using(context):
        fips = [
            FloatingIP(str(row.fixed_ip_address), str(row.floating_ip_address))
            for row in context.session.query(l3_models.FloatingIP).filter_by(fixed_port_id=port_id)
            if row.fixed_ip_address
        ]
    network_name: str | None = None
    try:
        network_name = plugin.get_network(context, port["network_id"], fields=["name"]).get("name")
    except n_exc.NetworkNotFound:
        network_name = None
    return port_from_dict(
        port,
        gateways=gateways,
        sg_names=sg_names,
        floating_ips=fips,
        network_name=network_name,
    )


def rule_from_dict(rule: Mapping[str, Any]) -> NeutronRule:
    """A :class:`NeutronRule` from Neutron's rule dict."""
    prefix = rule.get("remote_ip_prefix")
    return NeutronRule(
        id=rule.get("id") or "",
        security_group_id=rule["security_group_id"],
        direction=rule["direction"],
        ethertype=rule.get("ethertype") or "IPv4",
        protocol=rule.get("protocol"),
        port_range_min=rule.get("port_range_min"),
        port_range_max=rule.get("port_range_max"),
        remote_ip_prefix=None if prefix is None else str(prefix),
        remote_group_id=rule.get("remote_group_id"),
        remote_address_group_id=rule.get("remote_address_group_id"),
    )


def read_security_group(
    plugin: Any, context: Any, sg_id: str
) -> tuple[NeutronSecurityGroup, dict[str, list[str]]] | None:
    """A security group with its rules and the addresses of every address group they name."""
    try:
        sg = plugin.get_security_group(context, sg_id)
    except n_exc.NotFound:
        return None
    rules = plugin.get_security_group_rules(context, filters={"security_group_id": [sg_id]})
    rules = sorted(rules, key=lambda r: r.get("id") or "")
    group = NeutronSecurityGroup(
        id=sg["id"], name=sg.get("name") or "", rules=tuple(rule_from_dict(r) for r in rules)
    )
    return group, read_address_groups(plugin, context, group.rules)


def read_address_groups(
    plugin: Any, context: Any, rules: Iterable[NeutronRule]
) -> dict[str, list[str]]:
    """``{address_group_id: [cidr, ...]}`` for the address groups ``rules`` reference.

    A group that cannot be read is left out, so translating its rule fails (closed). One of
    regionmesh's mirrors of another region's security group is a
    :class:`~regionmesh.openstack.address_groups.MirroredGroup` (translated to a selector).
    """
    groups: dict[str, list[str]] = {}
    for ag_id in sorted({r.remote_address_group_id for r in rules if r.remote_address_group_id}):
        try:
            ag = plugin.get_address_group(context, ag_id)
        except (n_exc.NotFound, AttributeError):
            continue
        groups[ag_id] = address_group_value(ag)
    return groups


def address_group_value(ag: Mapping[str, Any]) -> list[str]:
    """An address group dict as translation takes it: its CIDRs, or a MirroredGroup."""
    addresses = [str(a) for a in ag.get("addresses") or ()]
    ref = parse_mirror(ag.get("project_id") or ag.get("tenant_id"), ag.get("description"))
    if ref is None:
        return addresses
    return MirroredGroup(addresses, ref=ref, group_id=ag["id"], name=ag.get("name") or "")


def security_groups_using_address_group(plugin: Any, context: Any, ag_id: str) -> list[str]:
    """The ids of the security groups with a rule naming address group ``ag_id``."""
    with translated(f"rules of address group {ag_id}"):
        rules = plugin.get_security_group_rules(
            context, filters={"remote_address_group_id": [ag_id]}, fields=["security_group_id"]
        )
    return sorted({r["security_group_id"] for r in rules})


class NeutronAddressGroups:
    """The :class:`~regionmesh.openstack.address_groups.MirrorBackend` over the ML2 plugin
    (which is Neutron's address-group DB mixin) and its RBAC mixin, as admin.

    Neutron's refusals of a lost race (addresses already there / absent, group gone or in
    use, duplicate RBAC entry) become :class:`~regionmesh.openstack.address_groups.
    MirrorConflict`; any other failure :class:`~regionmesh.errors.NeutronUnavailable`.
    """

    def __init__(self, plugin: Any, context: Any) -> None:
        self.plugin = plugin
        self.context = context

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        try:
            yield
        except (n_exc.NotFound, n_exc.Conflict, n_exc.InUse, n_exc.BadRequest) as exc:
            raise MirrorConflict(f"Neutron refused to {what}: {exc}") from exc
        except _NEUTRON_ERRORS as exc:
            raise NeutronUnavailable(f"cannot {what} in Neutron: {exc}") from exc

    def address_groups(self) -> list[AddressGroupRecord]:
        with self._call("list the mirror project's address groups"):
            groups = self.plugin.get_address_groups(
                self.context, filters={"project_id": [MIRROR_PROJECT]}
            )
            shared: set[str] = set()
            if groups:
                shared = {
                    p["object_id"]
                    for p in self.plugin.get_rbac_policies(
                        self.context,
                        filters={
                            "object_type": ["address_group"],
                            "object_id": [g["id"] for g in groups],
                            "action": ["access_as_shared"],
                            "target_project": ["*"],
                        },
                    )
                }
        return [
            AddressGroupRecord(
                id=g["id"],
                name=g.get("name") or "",
                description=g.get("description") or "",
                addresses=tuple(str(a) for a in g.get("addresses") or ()),
                shared=g["id"] in shared,
                project_id=g.get("project_id") or "",
            )
            for g in groups
        ]

    def in_use(self, group_ids: Collection[str]) -> set[str]:
        if not group_ids:
            return set()
        with self._call("read the rules using mirrors"):
            rules = self.plugin.get_security_group_rules(
                self.context,
                filters={"remote_address_group_id": list(group_ids)},
                fields=["remote_address_group_id"],
            )
        return {r["remote_address_group_id"] for r in rules}

    def create(self, name: str, description: str, addresses: Collection[str]) -> str:
        body = {
            "address_group": {
                "name": name,
                "description": description,
                "project_id": MIRROR_PROJECT,
                "addresses": list(addresses),
            }
        }
        with self._call(f"create address group {name}"):
            return str(self.plugin.create_address_group(self.context, body)["id"])

    def add_addresses(self, group_id: str, addresses: Collection[str]) -> None:
        with self._call(f"add addresses to address group {group_id}"):
            self.plugin.add_addresses(self.context, group_id, {"addresses": list(addresses)})

    def remove_addresses(self, group_id: str, addresses: Collection[str]) -> None:
        with self._call(f"remove addresses from address group {group_id}"):
            self.plugin.remove_addresses(self.context, group_id, {"addresses": list(addresses)})

    def update(self, group_id: str, name: str, description: str) -> None:
        body = {"address_group": {"name": name, "description": description}}
        with self._call(f"update address group {group_id}"):
            self.plugin.update_address_group(self.context, group_id, body)

    def share(self, group_id: str) -> None:
        body = {
            "rbac_policy": {
                "object_type": "address_group",
                "object_id": group_id,
                "action": "access_as_shared",
                "target_tenant": "*",
                "project_id": MIRROR_PROJECT,
            }
        }
        with self._call(f"share address group {group_id}"):
            self.plugin.create_rbac_policy(self.context, body)

    def delete(self, group_id: str) -> None:
        with self._call(f"delete address group {group_id}"):
            self.plugin.delete_address_group(self.context, group_id)


def subnet_from_dict(subnet: Mapping[str, Any]) -> NeutronSubnet:
    """A :class:`NeutronSubnet` from Neutron's subnet dict."""
    return NeutronSubnet(
        id=subnet["id"],
        network_id=subnet["network_id"],
        cidr=str(subnet["cidr"]),
        gateway_ip=subnet.get("gateway_ip"),
        enable_dhcp=bool(subnet.get("enable_dhcp", True)),
        host_routes=tuple(
            HostRoute(str(r["destination"]), str(r["nexthop"]))
            for r in subnet.get("host_routes") or ()
        ),
        dns_nameservers=tuple(str(d) for d in subnet.get("dns_nameservers") or ()),
        ipv6_ra_mode=subnet.get("ipv6_ra_mode"),
        ipv6_address_mode=subnet.get("ipv6_address_mode"),
        name=subnet.get("name") or "",
    )


# ---------------------------------------------------------------------------- bulk reads


class NeutronDbSource:
    """A :class:`~regionmesh.openstack.reader.NeutronReader` over the ML2 plugin (bulk reads for
    resync, one-port re-reads for the hooks).

    Ports come with their gateways, SG names, floating IPs and network names from one query
    per table (networking-calico's ``_prefetch_bulk_port_data``). Reads are not wrapped in an
    outer transaction, so Neutron's own retry decorators keep working.
    """

    def __init__(self, plugin: Any, context: Any, *, sg_context: Any = None) -> None:
        self.plugin = plugin
        self.context = context
        self.sg_context = context if sg_context is None else sg_context

    def ports(
        self,
        *,
        ids: Collection[str] | None = None,
        network_ids: Collection[str] | None = None,
        subnet_ids: Collection[str] | None = None,
    ) -> list[NeutronPort]:
        filters: dict[str, Any] = {}
        if ids is not None:
            filters["id"] = list(ids)
        if network_ids is not None:
            filters["network_id"] = list(network_ids)
        if subnet_ids is not None:
            filters["fixed_ips"] = {"subnet_id": list(subnet_ids)}
        with translated("ports"):
            ports = [
                p
                for p in self.plugin.get_ports(self.context, filters=filters or None)
                if (p.get("device_owner") or "").startswith(("compute:", "kuryr:container"))
            ]
            return self._complete(ports)

    def port(self, port_id: str) -> NeutronPort | None:
        with translated(f"port {port_id}"):
            return read_port(self.plugin, self.context, port_id)

    def _complete(self, ports: Sequence[Mapping[str, Any]]) -> list[NeutronPort]:
        if not ports:
            return []
        ctx, plugin = self.context, self.plugin
        subnet_ids = sorted({ip["subnet_id"] for p in ports for ip in p.get("fixed_ips") or ()})
        gateways: dict[str, str | None] = {}
        if subnet_ids:
            for subnet in plugin.get_subnets(
                ctx, filters={"id": subnet_ids}, fields=["id", "gateway_ip"]
            ):
                gateways[subnet["id"]] = subnet.get("gateway_ip")
        sg_ids = sorted({sg for p in ports for sg in p.get("security_groups") or ()})
        sg_names: dict[str, str] = {}
        if sg_ids:
            for sg in plugin.get_security_groups(
                ctx, filters={"id": sg_ids}, fields=["id", "name"], default_sg=True
            ):
                sg_names[sg["id"]] = sg.get("name") or ""
        net_ids = sorted({p["network_id"] for p in ports})
        net_names = {
            n["id"]: n.get("name")
            for n in plugin.get_networks(ctx, filters={"id": net_ids}, fields=["id", "name"])
        }
        port_ids = [p["id"] for p in ports]
        fips: dict[str, list[FloatingIP]] = {}
        with db_api.CONTEXT_READER.using(ctx):
            query = ctx.session.query(l3_models.FloatingIP).filter(
                l3_models.FloatingIP.fixed_port_id.in_(port_ids)
            )
            for row in query:
                if row.fixed_ip_address:
                    fips.setdefault(row.fixed_port_id, []).append(
                        FloatingIP(str(row.fixed_ip_address), str(row.floating_ip_address))
                    )
        return [
            port_from_dict(
                p,
                gateways=gateways,
                sg_names=sg_names,
                floating_ips=fips.get(p["id"], ()),
                network_name=net_names.get(p["network_id"]),
            )
            for p in ports
        ]

    def security_groups(
        self, ids: Collection[str] | None = None
    ) -> list[tuple[NeutronSecurityGroup, dict[str, list[str]]]]:
        with translated("security groups"):
            return self._security_groups(ids)

    def _security_groups(
        self, ids: Collection[str] | None
    ) -> list[tuple[NeutronSecurityGroup, dict[str, list[str]]]]:
        ctx = self.sg_context
        filters = None if ids is None else {"id": list(ids)}
        sgs = self.plugin.get_security_groups(ctx, filters=filters, default_sg=True)
        if not sgs:
            return []
        rules = self.plugin.get_security_group_rules(
            ctx, filters={"security_group_id": [sg["id"] for sg in sgs]}
        )
        by_sg: dict[str, list[NeutronRule]] = {}
        for rule in sorted(rules, key=lambda r: r.get("id") or ""):
            by_sg.setdefault(rule["security_group_id"], []).append(rule_from_dict(rule))
        all_rules = [r for rs in by_sg.values() for r in rs]
        groups = read_address_groups(self.plugin, ctx, all_rules)
        out = []
        for sg in sgs:
            sg_rules = tuple(by_sg.get(sg["id"], ()))
            wanted = {r.remote_address_group_id for r in sg_rules if r.remote_address_group_id}
            out.append(
                (
                    NeutronSecurityGroup(id=sg["id"], name=sg.get("name") or "", rules=sg_rules),
                    {k: v for k, v in groups.items() if k in wanted},
                )
            )
        return out

    def subnets(
        self, *, ids: Collection[str] | None = None, network_ids: Collection[str] | None = None
    ) -> list[NeutronSubnet]:
        filters: dict[str, Any] = {}
        if ids is not None:
            filters["id"] = list(ids)
        if network_ids is not None:
            filters["network_id"] = list(network_ids)
        with translated("subnets"):
            return [
                subnet_from_dict(s)
                for s in self.plugin.get_subnets(self.context, filters=filters or None)
            ]


def open_neutron(config_files: Sequence[str]) -> tuple[Any, Any]:
    """Load Neutron's configuration and ML2 plugin in this process (outside neutron-server);
    returns ``(plugin, admin_context)``. The ``[calico]`` options are then in ``cfg.CONF``.

    Every start-up failure becomes a :class:`~regionmesh.errors.ConfigError` naming the
    config files: oslo.config errors, Neutron's plugin loading (ImportError, a driver's
    ``SystemExit`` such as regionmesh's own refusal of a bad ``[calico]`` section) and Neutron
    exceptions. A bug elsewhere keeps its traceback.
    """
    from neutron import manager
    from neutron.common import config as common_config
    from neutron.db.migration.models import head  # noqa: F401  every model, as the server has
    from neutron_lib import context as n_context
    from neutron_lib.db import model_base
    from neutron_lib.plugins import directory

    args: list[str] = []
    for path in config_files:
        args += ["--config-file", path]
    where = ", ".join(config_files)
    try:
        common_config.register_common_config_options()
        common_config.init(args)
        common_config.set_config_defaults()
        manager.init()
        model_base.BASEV2.registry.configure()  # makes backrefs such as Port.port_forwardings
        return directory.get_plugin(), n_context.get_admin_context()
    except (cfg.Error, ImportError, SystemExit, *_NEUTRON_ERRORS) as exc:
        detail = exc.code if isinstance(exc, SystemExit) else exc
        raise ConfigError(
            f"cannot load Neutron's configuration and ML2 plugin from {where}: {detail}"
        ) from exc
