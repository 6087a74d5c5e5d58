"""What the DHCP agent reads: subnet records and this host's WorkloadEndpoints, decoded and checked.

* :func:`parse_subnet_record` decodes a subnet key's JSON (``/calico/dhcp/v2/region-<r>/subnet/<id>``,
  or the legacy ``/calico/dhcp/v1/subnet/<id>``; openstack-driver.md §1.3) into a
  :class:`DhcpSubnet`, with a :class:`~regionmesh.errors.ValidationError` naming the bad field;
  :class:`SubnetIndex` picks the subnet of an address (region's records first, then legacy;
  the endpoint's ``openstack.projectcalico.org/network-id`` annotation decides when CIDRs
  repeat across networks);
* :func:`endpoint_prefix` is the key prefix of THIS host's endpoints in ITS region's namespace;
  :func:`decode_endpoint` decodes one, :func:`why_not_served` re-checks namespace, ``spec.node``
  and orchestrator, and :func:`dhcp_endpoint` keeps what DHCP needs (:class:`DhcpEndpoint`).

Pure: no I/O. Writing the records is the Neutron side's (:mod:`regionmesh.openstack`); what to
serve from them is :mod:`.render`'s.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from regionmesh.datastore import keys
from regionmesh.errors import FieldError, ValidationError
from regionmesh.model import codec
from regionmesh.model.endpoints import WorkloadEndpoint, split_workload_endpoint_name
from regionmesh.model.regions import region_namespace

LOG = logging.getLogger(__name__)

ORCHESTRATOR = "openstack"
NETWORK_ID_ANNOTATION = "openstack.projectcalico.org/network-id"
FQDN_ANNOTATION = "openstack.projectcalico.org/fqdn"
WEP_PLURAL = "workloadendpoints"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class HostRoute:
    """One ``host_routes`` entry of a subnet record (the reader's view of the record)."""

    destination: str
    nexthop: str


# ---------------------------------------------------------------------------- subnets


@dataclass(frozen=True, slots=True)
class DhcpSubnet:
    """A subnet record (openstack-driver.md §1.3) as the agent uses it."""

    id: str
    network_id: str
    cidr: IPNetwork
    gateway_ip: str | None = None
    host_routes: tuple[HostRoute, ...] = ()
    dns_servers: tuple[str, ...] = ()
    legacy: bool = False

    @property
    def tag(self) -> str:
        """dnsmasq tag of the subnet's range and options (Neutron's ``subnet-<id>``)."""
        return f"subnet-{self.id}"


def parse_subnet_record(subnet_id: str, value: bytes, *, legacy: bool = False) -> DhcpSubnet:
    """Decode the JSON value of a subnet key; ValidationError naming the bad field."""
    where = f"subnet record {subnet_id}"
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise ValidationError([FieldError("", value[:80], f"not JSON: {exc}")], where) from None
    if not isinstance(data, dict):
        raise ValidationError([FieldError("", data, "not a JSON object")], where)
    errors: list[FieldError] = []

    def text(name: str, required: bool) -> str | None:
        item = data.get(name)
        if item is None and not required:
            return None
        if not isinstance(item, str) or not item:
            errors.append(FieldError(name, item, "must be a non-empty string"))
            return None
        return item

    network_id = text("network_id", True)
    cidr_text = text("cidr", True)
    gateway = text("gateway_ip", False)
    cidr: IPNetwork | None = None
    if cidr_text is not None:
        try:
            cidr = ipaddress.ip_network(cidr_text, strict=False)
        except ValueError as exc:
            errors.append(FieldError("cidr", cidr_text, str(exc)))
    if gateway is not None:
        try:
            ipaddress.ip_address(gateway)
        except ValueError as exc:
            errors.append(FieldError("gateway_ip", gateway, str(exc)))
    routes: list[HostRoute] = []
    for i, route in enumerate(data.get("host_routes") or []):
        if (
            not isinstance(route, dict)
            or not isinstance(route.get("destination"), str)
            or not isinstance(route.get("nexthop"), str)
        ):
            errors.append(FieldError(f"host_routes[{i}]", route, "needs destination and nexthop"))
            continue
        try:
            dest = ipaddress.ip_network(route["destination"], strict=False)
            ipaddress.ip_address(route["nexthop"])
        except ValueError as exc:
            errors.append(FieldError(f"host_routes[{i}]", route, str(exc)))
            continue
        routes.append(HostRoute(str(dest), route["nexthop"]))
    dns = data.get("dns_servers") or []
    if not isinstance(dns, list) or not all(isinstance(d, str) for d in dns):
        errors.append(FieldError("dns_servers", dns, "must be a list of addresses"))
        dns = []
    if errors or network_id is None or cidr is None:
        raise ValidationError(errors, where)
    return DhcpSubnet(
        id=subnet_id,
        network_id=network_id,
        cidr=cidr,
        gateway_ip=gateway,
        host_routes=tuple(routes),
        dns_servers=tuple(dns),
        legacy=legacy,
    )


@dataclass
class SubnetIndex:
    """The subnets the agent knows: the region's (v2) and the legacy (v1) ones, by id."""

    v2: dict[str, DhcpSubnet] = field(default_factory=dict)
    v1: dict[str, DhcpSubnet] = field(default_factory=dict)

    @staticmethod
    def _match(
        subnets: Iterable[DhcpSubnet],
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
        network_id: str | None,
    ) -> DhcpSubnet | None:
        found = [
            s
            for s in subnets
            if ip in s.cidr and (network_id is None or s.network_id == network_id)
        ]
        if len({s.network_id for s in found}) > 1:
            return None  # repeated CIDR and no network id to choose by: refuse to guess
        return min(found, key=lambda s: (s.cidr.prefixlen * -1, s.id)) if found else None

    def subnet_for(self, address: str, network_id: str | None) -> DhcpSubnet | None:
        """The subnet serving ``address`` of an endpoint on ``network_id`` (v2 first, then v1).

        Without a network id an address inside subnets of several networks is ambiguous and
        gets None, rather than another network's gateway and routes.
        """
        ip = ipaddress.ip_address(address)
        return self._match(self.v2.values(), ip, network_id) or self._match(
            self.v1.values(), ip, network_id
        )


# ---------------------------------------------------------------------------- endpoints


@dataclass(frozen=True, slots=True)
class DhcpEndpoint:
    """What DHCP needs from a WorkloadEndpoint this host serves."""

    name: str
    port_id: str
    network_id: str | None
    interface: str
    mac: str
    addresses: tuple[str, ...]
    fqdn: str | None = None


def endpoint_prefix(region: str | None, host: str) -> str:
    """Key prefix of this host's OpenStack WorkloadEndpoints in ``region``'s namespace."""
    return keys.resource_prefix(WEP_PLURAL, region_namespace(region)) + (
        host.replace("-", "--") + f"-{ORCHESTRATOR}-"
    )


def why_not_served(wep: WorkloadEndpoint, *, host: str, region: str | None) -> str | None:
    """Why this host must not serve ``wep`` (None when it must)."""
    namespace = region_namespace(region)
    if wep.metadata.namespace != namespace:
        return f"namespace {wep.metadata.namespace!r} is not this region's {namespace!r}"
    spec = wep.spec
    if spec.node != host:
        return f"node {spec.node!r} is not this host {host!r}"
    if spec.orchestrator != ORCHESTRATOR:
        return f"orchestrator {spec.orchestrator!r} is not {ORCHESTRATOR!r}"
    parts = split_workload_endpoint_name(wep.metadata.name)
    if len(parts) != 4 or parts[0] != host:
        return f"name {wep.metadata.name!r} does not name this host"
    if not spec.interface_name or not spec.mac or not spec.ip_networks:
        return "interfaceName, mac or ipNetworks missing"
    return None


def dhcp_endpoint(wep: WorkloadEndpoint) -> DhcpEndpoint:
    """The DHCP view of a served endpoint: its addresses without the ``allowedIps`` ones."""
    spec = wep.spec
    allowed = {a.split("/")[0] for a in spec.allowed_ips}
    addresses: list[str] = []
    for net in spec.ip_networks:
        address = net.split("/")[0]
        if address not in allowed and address not in addresses:
            addresses.append(address)
    parts = split_workload_endpoint_name(wep.metadata.name)
    return DhcpEndpoint(
        name=wep.metadata.name,
        port_id=spec.endpoint or parts[-1],
        network_id=wep.metadata.annotations.get(NETWORK_ID_ANNOTATION) or None,
        interface=spec.interface_name,
        mac=spec.mac.lower(),
        addresses=tuple(addresses),
        fqdn=wep.metadata.annotations.get(FQDN_ANNOTATION) or None,
    )


def decode_endpoint(key: str, value: bytes, revision: int) -> WorkloadEndpoint:
    """Decode a stored WorkloadEndpoint value; ValidationError when it is not one."""
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise ValidationError([FieldError("", key, f"not JSON: {exc}")], key) from None
    if not isinstance(data, dict):
        raise ValidationError([FieldError("", key, "not a JSON object")], key)
    resource = codec.from_storage(data, resource_version=str(revision))
    if not isinstance(resource, WorkloadEndpoint):
        raise ValidationError([FieldError("kind", resource.kind, "not a WorkloadEndpoint")], key)
    return resource
