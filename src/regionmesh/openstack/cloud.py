"""``regionmesh cloud apply|delete``: write what a cloud file describes, as Neutron servers would.

A :class:`~regionmesh.openstack.cloudfile.Cloud` (parsed and validated by
:mod:`regionmesh.openstack.cloudfile`, re-exported here) is translated by the SAME
translators as the ML2 driver (:mod:`~regionmesh.openstack.endpoints`,
:mod:`~regionmesh.openstack.security_groups`, :mod:`~regionmesh.openstack.subnets`) into typed,
validated resources, all of them before the first write, and written through the same write
path (:class:`~regionmesh.openstack.writer.RegionWriter`: the model-validated CAS sync of
:meth:`ResourceClient.sync <regionmesh.datastore.resource_client.ResourceClient.sync>` and the
cross-region subnet claim). Overlaps with other regions' subnets already in the datastore are
checked before the first write. If anything fails while writing, every write made so far is
undone in reverse order, each CAS'd at the revision this apply wrote
(:func:`~regionmesh.datastore.resource_client.restore`): a key another writer changed in between is
left with its newer value (and named in a note on the raised error), never clobbered.
Applying a file again changes nothing; :func:`delete_cloud` removes what a file describes.

Apply is additive: objects removed from the file are not deleted by the next apply (use
``cloud delete`` with the old file, or resync against a real Neutron). The CLI lives in
:mod:`regionmesh.cli.openstack_cmds`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from regionmesh.datastore.api import Datastore
from regionmesh.datastore.resource_client import Synced, SyncOutcome, restore
from regionmesh.errors import (
    AlreadyExists,
    FieldError,
    NotFound,
    RegionmeshError,
    RevisionConflict,
    ValidationError,
)
from regionmesh.model import NetworkPolicy, WorkloadEndpoint
from regionmesh.openstack.cloudfile import (
    CLOUD_NAMESPACE,
    DEVICE_OWNER,
    VIF_TYPE,
    Cloud,
    CloudRegion,
    _mac_for,
    cloud_id,
    load_cloud,
    parse_cloud,
)
from regionmesh.openstack.endpoints import endpoint_hosts, workload_endpoint
from regionmesh.openstack.security_groups import policy_name, security_group_policy
from regionmesh.openstack.subnets import subnet_to_dhcp_record
from regionmesh.openstack.writer import RegionWriter

__all__ = [
    "CLOUD_NAMESPACE", "DEVICE_OWNER", "VIF_TYPE", "Cloud", "CloudChange", "CloudRegion",
    "CloudResult", "_mac_for", "apply_cloud", "check_overlaps", "cloud_id", "delete_cloud",
    "load_cloud", "parse_cloud",
]  # fmt: skip


@dataclass
class CloudChange:
    """One write of apply/delete: what (``kind``/``name``, region) and its outcome."""

    region: str
    kind: str
    name: str
    result: SyncOutcome
    label: str = ""  # the file's name for it (VM or security group), when it differs


@dataclass
class CloudResult:
    """What an apply or delete did."""

    changes: list[CloudChange] = field(default_factory=list)

    def count(self, result: SyncOutcome | str) -> int:
        """How many writes ended with ``result``."""
        return sum(1 for ch in self.changes if ch.result == result)


def check_overlaps(ds: Datastore, cloud: Cloud) -> list[str]:
    """Messages for subnets of ``cloud`` that overlap another region's subnet in ``ds``
    (subnets of the same ids, i.e. this file applied before, do not count)."""
    ours = {s.id for r in cloud.regions for s in r.subnets}
    problems: list[str] = []
    for region in cloud.regions:
        writer = RegionWriter(ds, region.name)
        for subnet in region.subnets:
            overlap = writer.find_overlap(subnet.id, subnet.cidr)
            if overlap is not None and overlap.other_subnet_id not in ours:
                problems.append(f"{region.subnet_paths[subnet.id]}.cidr: {overlap.message()}")
    return problems


@dataclass
class _RegionPlan:
    """One region's typed, validated resources, each with the file's name for it."""

    region: CloudRegion
    policies: list[tuple[str, NetworkPolicy]] = field(default_factory=list)
    endpoints: list[tuple[str, WorkloadEndpoint]] = field(default_factory=list)


def _plan(region: CloudRegion) -> _RegionPlan:
    plan = _RegionPlan(region)
    for sg in region.security_groups:
        plan.policies.append((sg.name, security_group_policy(sg, region=region.name)))
    for port in region.ports:
        for host in endpoint_hosts(port):
            plan.endpoints.append(
                (region.vm_names.get(port.id, ""),
                 workload_endpoint(port, region=region.name, host=host))
            )  # fmt: skip
    return plan


def _claim(writer: RegionWriter, region: CloudRegion, subnet_id: str) -> Synced:
    """Claim a subnet for the region (refusing an overlap); the write, for undoing it."""
    subnet = next(s for s in region.subnets if s.id == subnet_id)
    key = writer.subnet_registry_key(subnet.id)
    before = writer.ds.get(key)
    overlap = writer.claim_subnet(subnet.id, subnet.cidr, subnet.network_id)
    if overlap is not None:
        raise RegionmeshError(f"{region.subnet_paths[subnet.id]}.cidr: {overlap.message()}")
    after = writer.ds.get(key)
    if after is None or (before is not None and before.value == after.value):
        return Synced(SyncOutcome.UNCHANGED, key, before)
    outcome = SyncOutcome.CREATED if before is None else SyncOutcome.UPDATED
    return Synced(outcome, key, before, after.mod_revision)


def _undo(ds: Datastore, writes: list[Synced], error: BaseException) -> None:
    """Undo ``writes`` in reverse, CAS-safely; keys moved by another writer are kept and named
    in a note on ``error``."""
    kept: list[str] = []
    for synced in reversed(writes):
        try:
            restore(ds, synced)
        except (AlreadyExists, RevisionConflict, NotFound):
            kept.append(synced.key)
    if kept:
        error.add_note(
            "rollback left these keys alone (another writer changed them meanwhile): "
            + ", ".join(kept)
        )


def apply_cloud(
    ds: Datastore, cloud: Cloud, *, progress: Callable[[CloudChange], None] | None = None
) -> CloudResult:
    """Write ``cloud`` (subnets, then policies, then endpoints, per region); all or nothing."""
    problems = check_overlaps(ds, cloud)
    if problems:
        raise ValidationError(
            [FieldError("", "", p) for p in problems], where=cloud.source
        )  # fmt: skip
    plans = [_plan(region) for region in cloud.regions]  # TranslationError before any write
    result = CloudResult()
    writes: list[Synced] = []

    def record(region: str, kind: str, name: str, synced: Synced, label: str = "") -> None:
        writes.append(synced)
        change = CloudChange(region, kind, name, synced.outcome, label)
        result.changes.append(change)
        if progress is not None:
            progress(change)

    try:
        if cloud.regions:
            writes.extend(RegionWriter(ds, cloud.regions[0].name).ensure_cluster_config())
        for plan in plans:
            region = plan.region
            writer = RegionWriter(ds, region.name)
            for subnet in region.subnets:
                writes.append(_claim(writer, region, subnet.id))
                synced = writer.sync_dhcp_record(subnet.id, subnet_to_dhcp_record(subnet))
                record(region.name, "Subnet", subnet.name, synced)
            for label, policy in plan.policies:
                name = policy.metadata.name
                record(region.name, policy.kind, name,
                       writer.sync(writer.policy_key(name), policy), label)  # fmt: skip
            for label, endpoint in plan.endpoints:
                name = endpoint.metadata.name
                record(region.name, endpoint.kind, name,
                       writer.sync(writer.workload_endpoint_key(name), endpoint), label)  # fmt: skip
    except BaseException as exc:
        _undo(ds, writes, exc)
        raise
    return result


def delete_cloud(
    ds: Datastore, cloud: Cloud, *, progress: Callable[[CloudChange], None] | None = None
) -> CloudResult:
    """Remove what ``cloud`` describes (endpoints, then policies, then subnets), CAS'd."""
    result = CloudResult()

    def record(region: str, kind: str, name: str, synced: Synced, label: str = "") -> None:
        change = CloudChange(region, kind, name, synced.outcome, label)
        result.changes.append(change)
        if progress is not None:
            progress(change)

    for plan in (_plan(region) for region in cloud.regions):
        region = plan.region
        writer = RegionWriter(ds, region.name)
        for label, endpoint in plan.endpoints:
            name = endpoint.metadata.name
            record(region.name, endpoint.kind, name,
                   writer.sync(writer.workload_endpoint_key(name), None), label)  # fmt: skip
        for sg in region.security_groups:
            name = policy_name(sg.id)
            record(region.name, NetworkPolicy.KIND, name,
                   writer.sync(writer.policy_key(name), None), sg.name)  # fmt: skip
        for subnet in region.subnets:
            record(region.name, "Subnet", subnet.name, writer.sync_dhcp_record(subnet.id, None))
            writer.release_subnet(subnet.id)
    return result
