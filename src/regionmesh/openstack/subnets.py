"""Neutron subnet → the DHCP record agents read, and the CIDR overlap test (openstack-driver.md §1.3).

:func:`subnet_to_dhcp_record` builds the ``/calico/dhcp/v2/<region_string>/subnet/<id>`` value
(plain JSON, not a v3 resource), byte-compatible with networking-calico; :func:`overlapping`
is the cross-region overlap test :class:`~regionmesh.openstack.writer.RegionWriter` and the
cloud file use. Writing is the writer's; nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from regionmesh.openstack.records import NeutronSubnet


def subnet_to_dhcp_record(subnet: NeutronSubnet) -> dict[str, Any] | None:
    """The DHCP subnet value (§1.3), or None when DHCP is off (the record must be deleted)."""
    if not subnet.enable_dhcp:
        return None
    record: dict[str, Any] = {
        "network_id": subnet.network_id,
        "cidr": str(ipaddress.ip_network(subnet.cidr, strict=False)),
        "host_routes": [{"destination": r.destination, "nexthop": r.nexthop} for r in subnet.host_routes],
        "gateway_ip": subnet.gateway_ip,
    }  # fmt: skip
    if subnet.dns_nameservers:
        record["dns_servers"] = list(subnet.dns_nameservers)
    if subnet.ipv6_ra_mode and subnet.ipv6_address_mode:
        record["ipv6_ra_mode"] = subnet.ipv6_ra_mode
        record["ipv6_address_mode"] = subnet.ipv6_address_mode
    return record


def overlapping(cidr: str, others: Iterable[str]) -> list[str]:
    """Those of ``others`` (CIDRs) that overlap ``cidr``, in input order."""
    net = ipaddress.ip_network(cidr, strict=False)
    found: list[str] = []
    for other in others:
        o = ipaddress.ip_network(other, strict=False)
        if o.version == net.version and o.overlaps(net):
            found.append(other)
    return found
