"""What the ML2 hooks decide to write for one Neutron change, over a :class:`NeutronReader`.

The driver's hooks (:mod:`regionmesh.openstack.mech_driver`) are glue: each one builds a
reader over Neutron's DB and calls one function here. The decisions live here so they can be
unit-tested against :class:`~regionmesh.openstack.reader.MemoryNeutron` and a real datastore:

* :func:`sync_port`: the port is re-read (the hook's dict is not trusted, as in
  networking-calico); the endpoints it needs (bound host, live-migration destination) are
  translated into typed, validated WorkloadEndpoints BEFORE anything is written (a
  translation the model refuses raises :class:`~regionmesh.errors.TranslationError`, loudly,
  and writes nothing); the policies of its security groups are written before the endpoints
  (Felix should see a policy before the endpoint that uses it); endpoints under names the
  port no longer has (old host, finished migration, changed device id) are deleted;
* :func:`delete_port`: every name the deleted port could have had is deleted;
* :func:`sync_security_group`: the group's ``ossg.default.<id>`` NetworkPolicy, fail closed
  (untranslatable rules are left out and recorded as a finding), or its deletion when the
  group is gone;
* :func:`sync_subnet` / :func:`delete_subnet`: the DHCP record and the subnet claim;
* :func:`region_mismatch`: whether a host that cannot be bound heartbeats under another
  region, and the operator message (recorded as a finding).

Each datastore write is guarded: a :class:`~regionmesh.errors.DatastoreError` is logged with
its traceback and kept in the :class:`SyncReport` (resync repairs it later); the next write
still happens. Writing is :class:`~regionmesh.openstack.writer.RegionWriter`'s; nothing here
imports Neutron.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from regionmesh.datastore import keys
from regionmesh.datastore.resources import Synced, SyncOutcome
from regionmesh.errors import DatastoreError, PermissionDenied
from regionmesh.model import Resource, WorkloadEndpoint, workload_endpoint_name
from regionmesh.openstack.endpoints import ORCHESTRATOR, endpoint_hosts, workload_endpoint
from regionmesh.openstack.reader import NeutronReader
from regionmesh.openstack.records import NeutronSubnet
from regionmesh.openstack.security_groups import network_policy, policy_name, policy_spec_partial
from regionmesh.openstack.subnets import subnet_to_dhcp_record
from regionmesh.openstack.writer import RegionWriter

LOG = logging.getLogger(__name__)

HOST_ID = "binding:host_id"
PROFILE = "binding:profile"


@dataclass
class SyncReport:
    """What one hook wrote: each key's outcome, and the writes that failed (with the error)."""

    outcomes: dict[str, SyncOutcome] = field(default_factory=dict)
    failures: dict[str, DatastoreError] = field(default_factory=dict)

    def _guard(self, key: str, write: Callable[[], Synced | SyncOutcome]) -> None:
        try:
            done = write()
        except PermissionDenied as exc:  # a role problem, not a bug: one line, no traceback
            LOG.error("regionmesh: datastore write of %s refused: %s", key, exc)
            self.failures[key] = exc
            return
        except DatastoreError as exc:
            LOG.exception("regionmesh: datastore write failed (%s); resync will repair it", key)
            self.failures[key] = exc
            return
        self.outcomes[key] = done.outcome if isinstance(done, Synced) else done

    def write(self, writer: RegionWriter, key: str, resource: Resource | None) -> None:
        """Sync one resource key, guarded."""
        self._guard(key, lambda: writer.sync(key, resource))


def candidate_hosts(ports: Iterable[Mapping[str, Any] | None]) -> list[str]:
    """Every host an API-shaped port dict names: its bound host and a migration target."""
    hosts: list[str] = []
    for port in ports:
        if not port:
            continue
        profile = port.get(PROFILE) or {}
        migrating_to = profile.get("migrating_to") if isinstance(profile, Mapping) else None
        for host in (port.get(HOST_ID), migrating_to):
            if host and host not in hosts:
                hosts.append(host)
    return hosts


def endpoint_names(versions: Iterable[Mapping[str, Any] | None]) -> set[str]:
    """The WorkloadEndpoint names the given versions of a port (hook dicts) could have had."""
    names: set[str] = set()
    for version in versions:
        if not version:
            continue
        for host in candidate_hosts([version]):
            names.add(
                workload_endpoint_name(
                    host, ORCHESTRATOR, version.get("device_id") or "", version["id"]
                )
            )
    return names


def sync_port(
    reader: NeutronReader,
    writer: RegionWriter,
    port_id: str,
    versions: Iterable[Mapping[str, Any] | None],
    report: SyncReport | None = None,
) -> SyncReport:
    """Make the datastore match one port (see the module docstring); ``versions`` are the
    hook's port dicts (original and current), whose names are candidates for deletion."""
    report = report if report is not None else SyncReport()
    port = reader.port(port_id)
    old_names = endpoint_names(versions)
    wanted: dict[str, WorkloadEndpoint] = {}
    if port is not None:
        for host in endpoint_hosts(port):
            endpoint = workload_endpoint(port, region=writer.region, host=host)
            wanted[endpoint.metadata.name] = endpoint
        if wanted:  # Felix should see the policy before the endpoint
            for sg in port.security_groups:
                sync_security_group(reader, writer, sg.id, report)
    for name in sorted(old_names - set(wanted)):
        report.write(writer, writer.workload_endpoint_key(name), None)
    for name, endpoint in wanted.items():
        key = writer.workload_endpoint_key(name)
        report.write(writer, key, endpoint)
        LOG.debug("regionmesh: WorkloadEndpoint %s %s", name, report.outcomes.get(key))
    return report


def delete_port(writer: RegionWriter, port: Mapping[str, Any]) -> SyncReport:
    """Delete every WorkloadEndpoint the deleted port (its last hook dict) could have had."""
    report = SyncReport()
    for name in sorted(endpoint_names([port])):
        report.write(writer, writer.workload_endpoint_key(name), None)
    return report


def sync_security_group(
    reader: NeutronReader, writer: RegionWriter, sg_id: str, report: SyncReport | None = None
) -> SyncReport:
    """Write the group's NetworkPolicy (fail closed), or delete it when the group is gone."""
    report = report if report is not None else SyncReport()
    key = writer.policy_key(policy_name(sg_id))
    found = reader.security_groups([sg_id])
    if not found:
        report.write(writer, key, None)
        return report
    sg, groups = found[0]
    spec, errors = policy_spec_partial(sg.id, sg.rules, groups)
    policy = network_policy(sg.id, spec, region=writer.region)
    if errors:
        message = "; ".join(str(e) for e in errors)
        LOG.error(
            "regionmesh: security group %s: %d rule(s) left out (fail closed): %s",
            sg.id, len(errors), message,
        )  # fmt: skip
        finding = writer.finding_key(keys.UNTRANSLATABLE_SG_FINDING, sg.id)
        report._guard(
            finding,
            lambda: _recorded(writer, keys.UNTRANSLATABLE_SG_FINDING, sg.id, message),
        )
    report.write(writer, key, policy)
    return report


def _recorded(writer: RegionWriter, kind: str, subject: str, message: str) -> SyncOutcome:
    writer.record_finding(kind, subject, message)
    return SyncOutcome.UPDATED


def sync_subnet(writer: RegionWriter, subnet: NeutronSubnet) -> SyncReport:
    """Write (or, with DHCP off, delete) a subnet's DHCP record."""
    report = SyncReport()
    key = keys.subnet_key(writer.region, subnet.id)
    record = subnet_to_dhcp_record(subnet)
    report._guard(key, lambda: writer.sync_dhcp_record(subnet.id, record))
    return report


def delete_subnet(writer: RegionWriter, subnet_id: str) -> SyncReport:
    """Delete a subnet's DHCP record and release its cross-region claim."""
    report = SyncReport()
    report._guard(
        keys.subnet_key(writer.region, subnet_id),
        lambda: writer.sync_dhcp_record(subnet_id, None),
    )
    registry = writer.subnet_registry_key(subnet_id)
    report._guard(registry, lambda: _released(writer, subnet_id))
    return report


def _released(writer: RegionWriter, subnet_id: str) -> SyncOutcome:
    writer.release_subnet(subnet_id)
    return SyncOutcome.ABSENT


def region_mismatch(writer: RegionWriter, host: str) -> str | None:
    """When ``host`` (which has no live agent in this region) heartbeats under other regions:
    record a ``region-mismatch`` finding and return the operator message; else None.

    Raises DatastoreError when the heartbeats cannot be read; a failure to record the finding
    is logged and the message still returned.
    """
    regions = [r for r in writer.heartbeat_regions(host) if r != writer.region]
    if not regions:
        return None
    mine = writer.region
    theirs = ", ".join(r or "(no region)" for r in regions)
    message = (
        f"cannot bind ports on host {host}: its agent heartbeats under OpenStack region "
        f"{theirs}, but this neutron-server serves region {mine or '(no region)'}. "
        f"Fix: set OpenstackRegion={mine} for the agent on {host} (felix.cfg [global] "
        f"OpenstackRegion, or FELIX_OPENSTACKREGION) or set binding:host_id to a host of "
        f"region {mine}"
    )
    try:
        writer.record_finding(
            keys.REGION_MISMATCH_FINDING, host, message,
            host=host, host_regions=regions, server_region=mine,
        )  # fmt: skip
    except DatastoreError:
        LOG.exception("regionmesh: cannot record the region-mismatch finding for %s", host)
    return message
