"""The Neutron objects regionmesh translates, as small frozen dataclasses (no Neutron import).

:mod:`regionmesh.openstack.neutron_db` fills them from Neutron's database, the cloud file
(:mod:`regionmesh.openstack.cloudfile`) from YAML, :class:`~regionmesh.openstack.memory.
MemoryNeutron` holds them in memory. Turning them into Calico resources is
:mod:`~regionmesh.openstack.endpoints`', :mod:`~regionmesh.openstack.security_groups`' and
:mod:`~regionmesh.openstack.subnets`' job.
"""

from __future__ import annotations

from dataclasses import dataclass

UNBOUND = "unbound"


@dataclass(frozen=True, slots=True)
class FixedIP:
    """One fixed IP of a port, with the gateway of its subnet (None when it has none)."""

    ip_address: str
    subnet_id: str = ""
    gateway_ip: str | None = None


@dataclass(frozen=True, slots=True)
class FloatingIP:
    """A floating IP whose ``fixed_port_id`` is the port."""

    fixed_ip_address: str
    floating_ip_address: str


@dataclass(frozen=True, slots=True)
class SecurityGroupRef:
    """A security group bound to a port: its id and (raw, unsanitised) name."""

    id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    """Keystone data for a project, when it could be looked up."""

    name: str
    parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class NeutronPort:
    """A port as the driver re-reads it from the Neutron DB, with the extra data it needs."""

    id: str
    network_id: str
    device_id: str
    device_owner: str
    mac_address: str
    host_id: str = ""
    vif_type: str = UNBOUND
    fixed_ips: tuple[FixedIP, ...] = ()
    allowed_address_pairs: tuple[str, ...] = ()
    security_groups: tuple[SecurityGroupRef, ...] = ()
    floating_ips: tuple[FloatingIP, ...] = ()
    project_id: str | None = None
    project: ProjectInfo | None = None
    network_name: str | None = None
    dns_fqdn: str | None = None
    migrating_to: str | None = None


@dataclass(frozen=True, slots=True)
class NeutronRule:
    """One security group rule, fields as in Neutron's API (protocol may be str, int or None)."""

    id: str
    security_group_id: str
    direction: str
    ethertype: str = "IPv4"
    protocol: str | int | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None
    remote_address_group_id: str | None = None


@dataclass(frozen=True, slots=True)
class NeutronSecurityGroup:
    """A security group and its rules."""

    id: str
    name: str = ""
    rules: tuple[NeutronRule, ...] = ()


@dataclass(frozen=True, slots=True)
class HostRoute:
    """One ``host_routes`` entry of a subnet."""

    destination: str
    nexthop: str


@dataclass(frozen=True, slots=True)
class NeutronSubnet:
    """The subnet fields the DHCP record and the overlap check need."""

    id: str
    network_id: str
    cidr: str
    gateway_ip: str | None = None
    enable_dhcp: bool = True
    host_routes: tuple[HostRoute, ...] = ()
    dns_nameservers: tuple[str, ...] = ()
    ipv6_ra_mode: str | None = None
    ipv6_address_mode: str | None = None
    name: str = ""
