"""The seam between regionmesh and Neutron's data: the :class:`NeutronReader` protocol.

:mod:`regionmesh.openstack.sync` (the ML2 hooks' decisions) and
:mod:`regionmesh.openstack.resync` read Neutron only through this protocol, so both run
against :class:`MemoryNeutron` (in-memory records: unit tests, benchmarks, the cloud file) as
well as against the real database (:class:`regionmesh.openstack.neutron_db.NeutronDbSource`).
This module imports neither Neutron nor oslo and decides nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Protocol

from regionmesh.openstack.records import NeutronPort, NeutronSecurityGroup, NeutronSubnet

SecurityGroupData = tuple[NeutronSecurityGroup, dict[str, list[str]]]
"""A security group and ``{address_group_id: [cidr, ...]}`` for the groups its rules name."""


class NeutronReader(Protocol):
    """What regionmesh reads from one region's Neutron.

    Bulk reads (each call a handful of queries, not one per row) for resync, and the one-port
    re-read the ML2 hooks use. Implemented by :class:`regionmesh.openstack.neutron_db.
    NeutronDbSource` (the real database, errors translated to
    :class:`~regionmesh.errors.NeutronUnavailable`) and by :class:`MemoryNeutron`.
    """

    def ports(
        self,
        *,
        ids: Collection[str] | None = None,
        network_ids: Collection[str] | None = None,
        subnet_ids: Collection[str] | None = None,
    ) -> list[NeutronPort]:
        """Ports (all, or those matching every filter given), with their extra data."""
        ...

    def port(self, port_id: str) -> NeutronPort | None:
        """One port re-read now, or None when it is gone."""
        ...

    def security_groups(self, ids: Collection[str] | None = None) -> list[SecurityGroupData]:
        """Security groups with their rules and the addresses of referenced address groups."""
        ...

    def subnets(
        self, *, ids: Collection[str] | None = None, network_ids: Collection[str] | None = None
    ) -> list[NeutronSubnet]:
        """Subnets (all, or those matching every filter given)."""
        ...


class MemoryNeutron:
    """A :class:`NeutronReader` over in-memory records (tests, benchmarks, the cloud file)."""

    def __init__(
        self,
        ports: Iterable[NeutronPort] = (),
        security_groups: Iterable[NeutronSecurityGroup] = (),
        subnets: Iterable[NeutronSubnet] = (),
        address_groups: dict[str, list[str]] | None = None,
    ) -> None:
        self.port_records = {p.id: p for p in ports}
        self.sg_records = {sg.id: sg for sg in security_groups}
        self.subnet_records = {s.id: s for s in subnets}
        self.address_groups = dict(address_groups or {})

    def ports(
        self,
        *,
        ids: Collection[str] | None = None,
        network_ids: Collection[str] | None = None,
        subnet_ids: Collection[str] | None = None,
    ) -> list[NeutronPort]:
        out = []
        for port in self.port_records.values():
            if ids is not None and port.id not in ids:
                continue
            if network_ids is not None and port.network_id not in network_ids:
                continue
            if subnet_ids is not None and not any(
                ip.subnet_id in subnet_ids for ip in port.fixed_ips
            ):
                continue
            out.append(port)
        return out

    def port(self, port_id: str) -> NeutronPort | None:
        return self.port_records.get(port_id)

    def security_groups(self, ids: Collection[str] | None = None) -> list[SecurityGroupData]:
        return [
            (sg, self._groups_for(sg))
            for sg in self.sg_records.values()
            if ids is None or sg.id in ids
        ]

    def _groups_for(self, sg: NeutronSecurityGroup) -> dict[str, list[str]]:
        wanted = {r.remote_address_group_id for r in sg.rules if r.remote_address_group_id}
        return {k: v for k, v in self.address_groups.items() if k in wanted}

    def subnets(
        self, *, ids: Collection[str] | None = None, network_ids: Collection[str] | None = None
    ) -> list[NeutronSubnet]:
        return [
            s
            for s in self.subnet_records.values()
            if (ids is None or s.id in ids) and (network_ids is None or s.network_id in network_ids)
        ]
