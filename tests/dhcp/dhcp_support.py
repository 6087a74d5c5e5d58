"""Builders shared by the DHCP-agent tests: Neutron ports/subnets as the driver translates them.

Everything goes through the real translation (:mod:`regionmesh.openstack.translate`) so the
tests see exactly the stored shapes the Neutron driver writes.
"""

from __future__ import annotations

import json
from typing import Any

from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore
from regionmesh.datastore.resource_client import ResourceClient
from regionmesh.model import codec
from regionmesh.model.endpoints import WorkloadEndpoint
from regionmesh.openstack.translate import (
    FixedIP,
    HostRoute,
    NeutronPort,
    NeutronSubnet,
    port_to_workload_endpoint,
    subnet_to_dhcp_record,
)

NET_A = "aaaa0000-0000-4000-8000-00000000000a"
NET_B = "bbbb0000-0000-4000-8000-00000000000b"


def port(
    port_id: str,
    host: str,
    ips: list[str],
    *,
    network_id: str = NET_A,
    mac: str = "fa:16:3e:00:00:01",
    gateway: str | None = "10.65.0.1",
    allowed_pairs: tuple[str, ...] = (),
    fqdn: str | None = None,
) -> NeutronPort:
    """A bound compute port on ``host``."""
    return NeutronPort(
        id=port_id,
        network_id=network_id,
        device_id=f"vm-{port_id[:8]}",
        device_owner="compute:nova",
        mac_address=mac,
        host_id=host,
        vif_type="tap",
        fixed_ips=tuple(FixedIP(ip, "sub", gateway) for ip in ips),
        allowed_address_pairs=allowed_pairs,
        project_id="proj-1",
        dns_fqdn=fqdn,
    )


def wep_doc(p: NeutronPort, region: str | None) -> dict[str, Any]:
    """The WorkloadEndpoint document the driver writes for ``p``."""
    return port_to_workload_endpoint(p, region=region)


def wep(p: NeutronPort, region: str | None) -> WorkloadEndpoint:
    """The decoded WorkloadEndpoint."""
    resource = codec.decode(wep_doc(p, region))
    assert isinstance(resource, WorkloadEndpoint)
    return resource


def stored_wep(p: NeutronPort, region: str | None) -> tuple[str, bytes]:
    """(key, value) of the endpoint as the driver stores it."""
    doc = wep_doc(p, region)
    md = doc["metadata"]
    key = keys.resource_key("workloadendpoints", md["name"], md["namespace"])
    return key, json.dumps(doc).encode()


def apply_wep(store: Datastore, p: NeutronPort, region: str | None) -> None:
    """Create or replace the endpoint through the normal write path."""
    ResourceClient(store).apply(wep(p, region))


def delete_wep(store: Datastore, p: NeutronPort, region: str | None) -> None:
    """Delete the endpoint through the normal write path."""
    resource = wep(p, region)
    ResourceClient(store).delete(
        "WorkloadEndpoint", resource.metadata.name, resource.metadata.namespace
    )


def subnet(
    subnet_id: str,
    cidr: str,
    *,
    network_id: str = NET_A,
    gateway: str | None = "10.65.0.1",
    routes: tuple[tuple[str, str], ...] = (),
    dns: tuple[str, ...] = (),
) -> NeutronSubnet:
    """A DHCP-enabled Neutron subnet."""
    return NeutronSubnet(
        id=subnet_id,
        network_id=network_id,
        cidr=cidr,
        gateway_ip=gateway,
        host_routes=tuple(HostRoute(d, n) for d, n in routes),
        dns_nameservers=dns,
    )


def subnet_value(s: NeutronSubnet) -> bytes:
    """The stored JSON of the subnet record (openstack-driver.md §1.3)."""
    record = subnet_to_dhcp_record(s)
    assert record is not None
    return json.dumps(record).encode()


def put_subnet(
    store: Datastore, s: NeutronSubnet, region: str | None, *, legacy: bool = False
) -> str:
    """Write the subnet record at its v2 key (or the legacy v1 key); return the key."""
    key = keys.legacy_subnet_key(s.id) if legacy else keys.subnet_key(region, s.id)
    store.put(key, subnet_value(s))
    return key
