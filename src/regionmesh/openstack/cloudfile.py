"""The declarative cloud file: parsing and validating it into the translators' input records.

``regionmesh cloud apply -f cloud.yaml`` describes what Neutron servers would hold: per
region, networks with subnets (cidr, gateway, dhcp, dns, host routes), security groups with
Neutron-style rules (``remote_group_id`` by NAME within the region, or an id) and VMs (host,
network, security groups by name, IPs, optional MAC). :func:`load_cloud` parses and validates
the whole file first, collecting every problem with its path (``regions[0].vms[2].
security_groups[1]``) into one :class:`~regionmesh.errors.ValidationError`, and returns a
:class:`Cloud` of :mod:`regionmesh.openstack.records` (the same records the Neutron DB reader
produces). Ids are deterministic (uuid5 of region + kind + name, or explicit ``id``), so
parsing a file again gives the same objects. Writing them is :mod:`regionmesh.openstack.cloud`'s
job; this module does no I/O beyond reading the file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from regionmesh.errors import FieldError, TranslationError, ValidationError
from regionmesh.model.regions import region_problem
from regionmesh.openstack.records import (
    FixedIP,
    HostRoute,
    NeutronPort,
    NeutronRule,
    NeutronSecurityGroup,
    NeutronSubnet,
    SecurityGroupRef,
)
from regionmesh.openstack.security_groups import rule_to_calico
from regionmesh.openstack.subnets import overlapping

# every id of a cloud file is uuid5(CLOUD_NAMESPACE, "<region>/<kind>/<name>")
CLOUD_NAMESPACE = uuid.UUID("6f0d3c1e-5a52-4f38-9d8e-2b1f7c0a9e41")
DEVICE_OWNER = "compute:nova"
VIF_TYPE = "tap"

_TOP_KEYS = {"regions"}
_REGION_KEYS = {"name", "project_id", "networks", "security_groups", "vms"}
_NETWORK_KEYS = {"name", "id", "subnets"}
_SUBNET_KEYS = {"name", "id", "cidr", "gateway", "dhcp", "dns", "host_routes"}
_SG_KEYS = {"name", "id", "rules"}
_RULE_KEYS = {
    "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
    "remote_ip_prefix", "remote_group_id",
}  # fmt: skip
_VM_KEYS = {"name", "host", "network", "security_groups", "ips", "mac", "id"}


def cloud_id(region: str, kind: str, name: str) -> str:
    """The deterministic id of a named object of a cloud file."""
    return str(uuid.uuid5(CLOUD_NAMESPACE, f"{region}/{kind}/{name}"))


def _mac_for(port_id: str) -> str:
    digest = hashlib.sha256(port_id.encode()).digest()
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in digest[:3])


# ---------------------------------------------------------------------------- parsed model


@dataclass
class CloudRegion:
    """One region of a cloud file, as translate's input records."""

    name: str
    subnets: list[NeutronSubnet] = field(default_factory=list)
    security_groups: list[NeutronSecurityGroup] = field(default_factory=list)
    ports: list[NeutronPort] = field(default_factory=list)
    subnet_paths: dict[str, str] = field(default_factory=dict)  # subnet id -> path in file
    vm_names: dict[str, str] = field(default_factory=dict)  # port id -> VM name


@dataclass
class Cloud:
    """A validated cloud file."""

    source: str
    regions: list[CloudRegion]


# ---------------------------------------------------------------------------- validation


class _Checker:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def error(self, path: str, value: object, reason: str) -> None:
        self.errors.append(FieldError(path, value, reason))

    def mapping(self, value: Any, path: str, allowed: set[str]) -> dict[str, Any] | None:
        if not isinstance(value, Mapping):
            self.error(path, value, "must be a mapping")
            return None
        for key in value:
            if key not in allowed:
                self.error(f"{path}.{key}" if path else str(key), value[key], "unknown field")
        return dict(value)

    def seq(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, value, "must be a list")
            return []
        return value

    def name(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str) or not value or "/" in value:
            self.error(path, value, "must be a non-empty string without '/'")
            return None
        return value

    def uuid_or_none(self, value: Any, path: str) -> str | None:
        if value is None:
            return None
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            self.error(path, value, "must be a UUID")
            return None

    def unique(self, seen: dict[str, str], key: str, path: str, what: str) -> None:
        if key in seen:
            self.error(path, key, f"duplicate {what} (also at {seen[key]})")
        else:
            seen[key] = path


def _parse_subnet(
    c: _Checker, raw: Any, path: str, region: str, network_id: str
) -> NeutronSubnet | None:
    data = c.mapping(raw, path, _SUBNET_KEYS)
    if data is None:
        return None
    name = c.name(data.get("name"), f"{path}.name")
    try:
        net = ipaddress.ip_network(str(data.get("cidr")), strict=True)
    except ValueError as exc:
        c.error(f"{path}.cidr", data.get("cidr"), f"must be a network CIDR ({exc})")
        return None
    gateway: str | None
    if "gateway" in data and data["gateway"] is None:
        gateway = None
    elif "gateway" in data:
        try:
            gw = ipaddress.ip_address(str(data["gateway"]))
        except ValueError:
            c.error(f"{path}.gateway", data["gateway"], "must be an IP address or null")
            return None
        if gw not in net:
            c.error(f"{path}.gateway", data["gateway"], f"not inside {net}")
        gateway = str(gw)
    else:
        gateway = str(next(net.hosts()))
    dhcp = data.get("dhcp", True)
    if not isinstance(dhcp, bool):
        c.error(f"{path}.dhcp", dhcp, "must be true or false")
        dhcp = True
    dns: list[str] = []
    for i, server in enumerate(c.seq(data.get("dns"), f"{path}.dns")):
        try:
            dns.append(str(ipaddress.ip_address(str(server))))
        except ValueError:
            c.error(f"{path}.dns[{i}]", server, "must be an IP address")
    routes: list[HostRoute] = []
    for i, route in enumerate(c.seq(data.get("host_routes"), f"{path}.host_routes")):
        rpath = f"{path}.host_routes[{i}]"
        r = c.mapping(route, rpath, {"destination", "nexthop"})
        if r is None:
            continue
        try:
            dest = str(ipaddress.ip_network(str(r.get("destination")), strict=True))
            hop = str(ipaddress.ip_address(str(r.get("nexthop"))))
        except ValueError as exc:
            c.error(rpath, route, f"needs destination (CIDR) and nexthop (IP): {exc}")
            continue
        routes.append(HostRoute(dest, hop))
    if name is None:
        return None
    sid = c.uuid_or_none(data.get("id"), f"{path}.id") or cloud_id(region, "subnet", name)
    return NeutronSubnet(
        id=sid, network_id=network_id, cidr=str(net), gateway_ip=gateway, enable_dhcp=dhcp,
        host_routes=tuple(routes), dns_nameservers=tuple(dns), name=name,
    )  # fmt: skip


def _int_or_none(c: _Checker, value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        c.error(path, value, "must be an integer")
        return None
    return value


def _parse_rules(
    c: _Checker, raw_rules: list[Any], path: str, sg_id: str, sg_ids: Mapping[str, str]
) -> list[NeutronRule]:
    rules: list[NeutronRule] = []
    for j, raw in enumerate(raw_rules):
        rpath = f"{path}[{j}]"
        r = c.mapping(raw, rpath, _RULE_KEYS)
        if r is None:
            continue
        remote = r.get("remote_group_id")
        remote_id: str | None = None
        if remote is not None:
            if str(remote) in sg_ids:
                remote_id = sg_ids[str(remote)]
            elif str(remote) in sg_ids.values():
                remote_id = str(remote)
            else:
                c.error(
                    f"{rpath}.remote_group_id", remote,
                    "no security group with this name (or id) in this region",
                )  # fmt: skip
                continue
        protocol = r.get("protocol")
        if protocol is not None and not isinstance(protocol, str | int):
            c.error(f"{rpath}.protocol", protocol, "must be a name or a number")
            continue
        prefix = r.get("remote_ip_prefix")
        rule = NeutronRule(
            id=f"{sg_id}-{j:04d}",
            security_group_id=sg_id,
            direction=str(r.get("direction", "")),
            ethertype=str(r.get("ethertype", "IPv4")),
            protocol=protocol,
            port_range_min=_int_or_none(c, r.get("port_range_min"), f"{rpath}.port_range_min"),
            port_range_max=_int_or_none(c, r.get("port_range_max"), f"{rpath}.port_range_max"),
            remote_ip_prefix=None if prefix is None else str(prefix),
            remote_group_id=remote_id,
        )
        try:
            rule_to_calico(rule)
        except TranslationError as exc:
            for f in exc.fields:
                c.error(f"{rpath}.{f.path}", f.value, f.reason)
            continue
        rules.append(rule)
    return rules


def _parse_region(c: _Checker, raw: Any, path: str) -> CloudRegion | None:
    data = c.mapping(raw, path, _REGION_KEYS)
    if data is None:
        return None
    region = data.get("name")
    if not isinstance(region, str) or region_problem(region) is not None:
        c.error(f"{path}.name", region, "must be " + (region_problem(str(region)) or "a string"))
        return None
    project = data.get("project_id")
    if project is not None and not isinstance(project, str):
        c.error(f"{path}.project_id", project, "must be a string")
        project = None
    out = CloudRegion(region)
    networks: dict[str, tuple[str, list[NeutronSubnet]]] = {}
    seen: dict[str, str] = {}
    for i, raw_net in enumerate(c.seq(data.get("networks"), f"{path}.networks")):
        npath = f"{path}.networks[{i}]"
        net = c.mapping(raw_net, npath, _NETWORK_KEYS)
        if net is None:
            continue
        name = c.name(net.get("name"), f"{npath}.name")
        if name is None:
            continue
        c.unique(seen, f"network {name}", f"{npath}.name", "network name")
        net_id = c.uuid_or_none(net.get("id"), f"{npath}.id") or cloud_id(region, "network", name)
        subnets: list[NeutronSubnet] = []
        for k, raw_sub in enumerate(c.seq(net.get("subnets"), f"{npath}.subnets")):
            spath = f"{npath}.subnets[{k}]"
            subnet = _parse_subnet(c, raw_sub, spath, region, net_id)
            if subnet is not None:
                c.unique(seen, f"subnet {subnet.name}", f"{spath}.name", "subnet name")
                subnets.append(subnet)
                out.subnet_paths[subnet.id] = spath
        networks[name] = (net_id, subnets)
        out.subnets += subnets

    # security groups: ids first (rules may reference any group of the region by name)
    raw_sgs = c.seq(data.get("security_groups"), f"{path}.security_groups")
    sg_ids: dict[str, str] = {}
    sg_data: list[tuple[int, str, dict[str, Any]]] = []
    for i, raw_sg in enumerate(raw_sgs):
        gpath = f"{path}.security_groups[{i}]"
        sg = c.mapping(raw_sg, gpath, _SG_KEYS)
        if sg is None:
            continue
        name = c.name(sg.get("name"), f"{gpath}.name")
        if name is None:
            continue
        c.unique(seen, f"sg {name}", f"{gpath}.name", "security group name")
        sg_id = c.uuid_or_none(sg.get("id"), f"{gpath}.id") or cloud_id(
            region, "security-group", name
        )
        sg_ids[name] = sg_id
        sg_data.append((i, name, sg))
    for i, name, sg in sg_data:
        gpath = f"{path}.security_groups[{i}]"
        rules = _parse_rules(
            c, c.seq(sg.get("rules"), f"{gpath}.rules"), f"{gpath}.rules", sg_ids[name], sg_ids
        )
        out.security_groups.append(NeutronSecurityGroup(sg_ids[name], name, tuple(rules)))

    used_ips: dict[str, str] = {}
    for i, raw_vm in enumerate(c.seq(data.get("vms"), f"{path}.vms")):
        port = _parse_vm(
            c, raw_vm, f"{path}.vms[{i}]", region, project, networks, sg_ids, seen, used_ips
        )
        if port is not None:
            out.ports.append(port)
            out.vm_names[port.id] = str(raw_vm.get("name"))
    return out


def _parse_vm(
    c: _Checker,
    raw: Any,
    path: str,
    region: str,
    project: str | None,
    networks: Mapping[str, tuple[str, list[NeutronSubnet]]],
    sg_ids: Mapping[str, str],
    seen: dict[str, str],
    used_ips: dict[str, str],
) -> NeutronPort | None:
    vm = c.mapping(raw, path, _VM_KEYS)
    if vm is None:
        return None
    name = c.name(vm.get("name"), f"{path}.name")
    host = c.name(vm.get("host"), f"{path}.host")
    net_name = vm.get("network")
    if net_name not in networks:
        c.error(f"{path}.network", net_name, "no network with this name in this region")
        return None
    if name is None or host is None:
        return None
    c.unique(seen, f"vm {name}", f"{path}.name", "VM name")
    net_id, subnets = networks[str(net_name)]
    groups: list[SecurityGroupRef] = []
    for j, sg_name in enumerate(c.seq(vm.get("security_groups"), f"{path}.security_groups")):
        if not isinstance(sg_name, str) or sg_name not in sg_ids:
            c.error(
                f"{path}.security_groups[{j}]", sg_name,
                "no security group with this name in this region",
            )  # fmt: skip
            continue
        groups.append(SecurityGroupRef(sg_ids[sg_name], sg_name))
    fixed: list[FixedIP] = []
    raw_ips = c.seq(vm.get("ips"), f"{path}.ips")
    if not raw_ips:
        c.error(f"{path}.ips", vm.get("ips"), "a VM needs at least one IP")
    for j, raw_ip in enumerate(raw_ips):
        ipath = f"{path}.ips[{j}]"
        try:
            ip = ipaddress.ip_address(str(raw_ip))
        except ValueError:
            c.error(ipath, raw_ip, "must be an IP address")
            continue
        subnet = next(
            (s for s in subnets if ip in ipaddress.ip_network(s.cidr)), None
        )  # fmt: skip
        if subnet is None:
            c.error(ipath, raw_ip, f"not inside any subnet of network {net_name}")
            continue
        if str(ip) == subnet.gateway_ip:
            c.error(ipath, raw_ip, "is the subnet's gateway")
            continue
        c.unique(used_ips, f"{net_id}/{ip}", ipath, "IP address in this network")
        fixed.append(FixedIP(str(ip), subnet.id, subnet.gateway_ip))
    port_id = c.uuid_or_none(vm.get("id"), f"{path}.id") or cloud_id(region, "port", name)
    mac = vm.get("mac")
    if mac is None:
        mac = _mac_for(port_id)
    elif not isinstance(mac, str) or len(mac.split(":")) != 6:
        c.error(f"{path}.mac", mac, "must be a MAC address aa:bb:cc:dd:ee:ff")
        return None
    return NeutronPort(
        id=port_id, network_id=net_id, device_id=cloud_id(region, "vm", name),
        device_owner=DEVICE_OWNER, mac_address=str(mac).lower(), host_id=host,
        vif_type=VIF_TYPE, fixed_ips=tuple(fixed), security_groups=tuple(groups),
        project_id=project, network_name=str(net_name),
    )  # fmt: skip


def parse_cloud(data: Any, source: str = "cloud file") -> Cloud:
    """Validate a loaded cloud document; ValidationError (``where`` = ``source``) listing
    every problem with its path."""
    c = _Checker()
    top = c.mapping(data, "", _TOP_KEYS)
    regions: list[CloudRegion] = []
    seen_regions: dict[str, str] = {}
    if top is not None:
        raw_regions = c.seq(top.get("regions"), "regions")
        if not raw_regions:
            c.error("regions", top.get("regions"), "at least one region is needed")
        for i, raw in enumerate(raw_regions):
            region = _parse_region(c, raw, f"regions[{i}]")
            if region is not None:
                c.unique(seen_regions, region.name, f"regions[{i}].name", "region name")
                regions.append(region)
    _check_overlaps(c, regions)
    if c.errors:
        raise ValidationError(c.errors, where=source)
    return Cloud(source, regions)


def _check_overlaps(c: _Checker, regions: list[CloudRegion]) -> None:
    """Subnets of a cloud file must not overlap each other (Calico is one flat L3 network)."""
    seen: list[tuple[str, NeutronSubnet, str]] = []
    for region in regions:
        for subnet in region.subnets:
            for other_region, other, other_path in seen:
                if overlapping(subnet.cidr, [other.cidr]):
                    c.error(
                        f"{region.subnet_paths[subnet.id]}.cidr", subnet.cidr,
                        f"overlaps {other.cidr} of region {other_region} ({other_path})",
                    )  # fmt: skip
            seen.append((region.name, subnet, region.subnet_paths[subnet.id]))


def load_cloud(path: str | Path) -> Cloud:
    """Read and validate a cloud file (YAML or JSON)."""
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValidationError([FieldError("", path, f"cannot read: {exc}")], where=source) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError([FieldError("", "", f"not valid YAML: {exc}")], where=source) from exc
    return parse_cloud(data, source)
