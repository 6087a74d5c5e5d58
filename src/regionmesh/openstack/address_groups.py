"""Other regions' security groups as Neutron address groups ("mirrors"): the pure logic.

In every region the elected master keeps, in its own Neutron, one address group per security
group of every OTHER region (issue 13). This module decides, without Neutron or the
datastore, everything about those mirrors:

* what marks an address group as a mirror: it belongs to the project :data:`MIRROR_PROJECT`
  (only an admin can create an address group in another project) and its description is
  :func:`mirror_description` (region and SG id, parsed back by :func:`parse_mirror`);
* which mirrors a region wants (:func:`remote_groups`): from the shared datastore's
  WorkloadEndpoints (their ``sg.projectcalico.org/openstack-<id>`` labels and
  ``ipNetworks``) and the other regions' ``ossg.default.<id>`` NetworkPolicies (one per
  security group, so an SG without ports still has a mirror);
* their names (:func:`mirror_names`): ``<region>.<sg name>``, with ``.<first 8 of the SG
  id>`` appended when two SGs of a region share a name; the SG id is in the description;
* the Neutron calls that turn what the region has into what it wants (:func:`plan_mirrors`):
  address diffs (Neutron's ``add_addresses``/``remove_addresses`` are not idempotent),
  renames, RBAC sharing to every project, emptying the mirror of a gone SG and deleting it
  once no rule uses it (Neutron answers 409 before that);
* :func:`apply_plan` runs a plan over a :class:`MirrorBackend` (the real one is
  :class:`regionmesh.openstack.neutron_db.NeutronAddressGroups`; :class:`MemoryAddressGroups`
  behaves like Neutron for tests, refusing the same non-idempotent calls);
* :class:`MirroredGroup`: what translation (:mod:`regionmesh.openstack.security_groups`)
  is handed for a rule that names a mirror, so the rule becomes a live label selector of the
  remote SG's endpoints instead of a copy of its addresses.

Watching the datastore and running the loop is :mod:`regionmesh.openstack.mirror_worker`'s.

Kept as one module on purpose (over 500 lines): naming, wanting, planning and applying
mirrors are one decision procedure over one data shape; apart, the rules that keep an
operator's address group from ever being taken for a mirror would live in several places.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from regionmesh.errors import RegionmeshError
from regionmesh.model.regions import region_of_namespace
from regionmesh.openstack.endpoints import SG_LABEL_PREFIX

MIRROR_PROJECT = "regionmesh"
"""The Neutron project that owns every mirror (tenants cannot create groups in it)."""

ANNOTATION_ADDRESS_GROUP = "regionmesh.io/address-group"
ANNOTATION_ADDRESS_GROUP_NAME = "regionmesh.io/address-group-name"
ANNOTATION_MIRRORS = "regionmesh.io/mirrors"
"""Rule annotations on a translated mirror rule: group id, group name, ``<region>/<sg-id>``."""

_DESCRIPTION = (
    "regionmesh mirror of security group {sg_id} in OpenStack region {region}; "
    "managed by regionmesh, edits are reverted"
)
_DESCRIPTION_RE = re.compile(
    r"^regionmesh mirror of security group (?P<sg>[A-Za-z0-9_.-]+) in OpenStack region "
    r"(?P<region>[a-z0-9-]+);"
)
_SHORT_ID = 8
SG_POLICY_PREFIX = "ossg.default."  # security_groups.SG_POLICY_PREFIX (which imports this module)


class MirrorConflict(RegionmeshError):
    """Neutron refused a mirror change because the group moved under us (a lost race:
    addresses already there / not there, group gone, group still in use)."""


@dataclass(frozen=True, slots=True, order=True)
class MirrorRef:
    """Which security group a mirror mirrors: its region and id."""

    region: str
    sg_id: str

    def __str__(self) -> str:
        return f"{self.region}/{self.sg_id}"


def mirror_description(ref: MirrorRef) -> str:
    """The description that (with the owner project) marks a group as our mirror of ``ref``."""
    return _DESCRIPTION.format(sg_id=ref.sg_id, region=ref.region)


def parse_mirror(project_id: str | None, description: str | None) -> MirrorRef | None:
    """The mirrored SG when a group is ours (owner project and description), else None."""
    if project_id != MIRROR_PROJECT or not description:
        return None
    m = _DESCRIPTION_RE.match(description)
    if m is None:
        return None
    return MirrorRef(m.group("region"), m.group("sg"))


class MirroredGroup(list[str]):
    """A mirror's addresses (a list, like any address group's) plus what it mirrors.

    Translation turns a rule naming one into a selector of the remote SG's endpoints; the
    addresses are what OpenStack shows and are not used for enforcement.
    """

    def __init__(self, addresses: Iterable[str], *, ref: MirrorRef, group_id: str, name: str):
        super().__init__(addresses)
        self.ref = ref
        self.group_id = group_id
        self.name = name


def mirror_rule_annotations(group: MirroredGroup) -> dict[str, str]:
    """The annotations a translated mirror rule carries (read back by ``explain``)."""
    return {
        ANNOTATION_ADDRESS_GROUP: group.group_id,
        ANNOTATION_ADDRESS_GROUP_NAME: group.name,
        ANNOTATION_MIRRORS: str(group.ref),
    }


def describe_mirror_annotations(annotations: Mapping[str, str]) -> str | None:
    """``via address group two.client (<id>), mirror of security group <sg> in region two``,
    or None when the annotations are not a mirror rule's."""
    mirrors = annotations.get(ANNOTATION_MIRRORS)
    if not mirrors or "/" not in mirrors:
        return None
    region, sg_id = mirrors.split("/", 1)
    name = annotations.get(ANNOTATION_ADDRESS_GROUP_NAME, "?")
    ag_id = annotations.get(ANNOTATION_ADDRESS_GROUP, "?")
    return (
        f"via address group {name} ({ag_id}), mirror of security group {sg_id} in region {region}"
    )


# ---------------------------------------------------------------------------- wanted state


@dataclass(frozen=True, slots=True)
class EndpointFacts:
    """What mirroring needs of one WorkloadEndpoint: region, SGs (id → label value), IPs."""

    region: str
    groups: Mapping[str, str]
    addresses: tuple[str, ...]


def _host_network(cidr: str) -> str | None:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None
    return str(net)


def endpoint_facts(namespace: str, doc: Mapping[str, Any]) -> EndpointFacts | None:
    """The facts of a stored WorkloadEndpoint document of an OpenStack region, or None."""
    region = region_of_namespace(namespace)
    if region is None:
        return None
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
    spec = doc.get("spec") if isinstance(doc.get("spec"), Mapping) else {}
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    groups = {
        k[len(SG_LABEL_PREFIX) :]: str(v)
        for k, v in (labels or {}).items()
        if isinstance(k, str) and k.startswith(SG_LABEL_PREFIX) and len(k) > len(SG_LABEL_PREFIX)
    }
    addresses: list[str] = []
    for cidr in spec.get("ipNetworks") or () if isinstance(spec, Mapping) else ():
        net = _host_network(str(cidr))
        if net is not None and net not in addresses:
            addresses.append(net)
    return EndpointFacts(region, groups, tuple(addresses))


def endpoint_facts_from_json(namespace: str, value: bytes) -> EndpointFacts | None:
    """:func:`endpoint_facts` of a stored value (None when it is not a JSON object)."""
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    return endpoint_facts(namespace, doc) if isinstance(doc, dict) else None


def policy_sg(namespace: str, name: str) -> MirrorRef | None:
    """The SG an ``ossg.default.<id>`` NetworkPolicy of an OpenStack region stands for."""
    region = region_of_namespace(namespace)
    if region is None or not name.startswith(SG_POLICY_PREFIX):
        return None
    sg_id = name[len(SG_POLICY_PREFIX) :]
    return MirrorRef(region, sg_id) if sg_id else None


@dataclass(frozen=True, slots=True)
class RemoteGroup:
    """A security group of another region as the datastore shows it."""

    ref: MirrorRef
    sg_name: str
    addresses: frozenset[str]


def region_mirrored(region: str, my_region: str | None, regions: Collection[str] | None) -> bool:
    """Whether ``region``'s SGs are mirrored here (never our own; ``regions`` None = all)."""
    return region != my_region and (regions is None or region in regions)


def remote_groups(
    endpoints: Iterable[EndpointFacts],
    security_groups: Iterable[MirrorRef],
    *,
    my_region: str | None,
    regions: Collection[str] | None = None,
) -> dict[MirrorRef, RemoteGroup]:
    """Every security group of the mirrored regions, with its members' addresses.

    ``security_groups`` are the refs of the other regions' ``ossg.default.*`` policies (an SG
    exists while its policy does). Members whose SG has no policy (yet) are still counted:
    the datastore is the truth about where the VMs are.
    """
    names: dict[MirrorRef, str] = {}
    addresses: dict[MirrorRef, set[str]] = {}
    for ref in security_groups:
        if region_mirrored(ref.region, my_region, regions):
            addresses.setdefault(ref, set())
    for ep in endpoints:
        if not region_mirrored(ep.region, my_region, regions):
            continue
        for sg_id, sg_name in ep.groups.items():
            ref = MirrorRef(ep.region, sg_id)
            addresses.setdefault(ref, set()).update(ep.addresses)
            if sg_name:
                names[ref] = min(names.get(ref, sg_name), sg_name)
    return {
        ref: RemoteGroup(ref, names.get(ref, ""), frozenset(addrs))
        for ref, addrs in addresses.items()
    }


_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def mirror_names(
    groups: Iterable[RemoteGroup], known: Mapping[MirrorRef, str] | None = None
) -> dict[MirrorRef, str]:
    """The address-group name of each mirror: ``<region>.<sg name>``.

    An SG without a known name (no member carries its label) keeps the name its mirror
    already has (``known``), else is named by its id. When two SGs of one region share a
    name, both get ``.<first 8 characters of the SG id>`` appended.
    """
    known = known or {}
    base: dict[MirrorRef, str] = {}
    for g in groups:
        if g.sg_name:
            base[g.ref] = f"{g.ref.region}.{_NAME_BAD.sub('_', g.sg_name)}"
        elif g.ref in known:
            base[g.ref] = known[g.ref]
        else:
            base[g.ref] = f"{g.ref.region}.{g.ref.sg_id}"
    counts: dict[str, int] = {}
    for name in base.values():
        counts[name] = counts.get(name, 0) + 1
    out = {}
    for ref, name in base.items():
        suffix = f".{ref.sg_id[:_SHORT_ID]}"
        out[ref] = name + suffix if counts[name] > 1 and not name.endswith(suffix) else name
    return out


# ---------------------------------------------------------------------------- what Neutron has


@dataclass(frozen=True, slots=True)
class AddressGroupRecord:
    """An address group of :data:`MIRROR_PROJECT` as Neutron holds it."""

    id: str
    name: str
    description: str
    addresses: tuple[str, ...]
    shared: bool
    project_id: str = MIRROR_PROJECT

    @property
    def ref(self) -> MirrorRef | None:
        return parse_mirror(self.project_id, self.description)


Op = Literal["create", "add", "remove", "update", "share", "delete"]


@dataclass(frozen=True, slots=True)
class MirrorAction:
    """One Neutron call of a plan (``group_id`` is None for a create)."""

    op: Op
    group_id: str | None
    ref: MirrorRef | None
    name: str = ""
    addresses: tuple[str, ...] = ()

    def __str__(self) -> str:
        what = {
            "create": f"create address group {self.name} ({len(self.addresses)} addresses)",
            "add": f"add {', '.join(self.addresses)} to {self.name} ({self.group_id})",
            "remove": f"remove {', '.join(self.addresses)} from {self.name} ({self.group_id})",
            "update": f"restore name/description of {self.name} ({self.group_id})",
            "share": f"share {self.name} ({self.group_id}) with every project",
            "delete": f"delete unused address group {self.name} ({self.group_id})",
        }[self.op]
        return what + (f" [mirror of {self.ref}]" if self.ref else "")


def _sorted_addresses(addresses: Iterable[str]) -> tuple[str, ...]:
    def key(a: str) -> tuple[int, int, int]:
        net = ipaddress.ip_network(a, strict=False)
        return (net.version, int(net.network_address), net.prefixlen)

    return tuple(sorted(set(addresses), key=key))


def plan_mirrors(
    wanted: Mapping[MirrorRef, RemoteGroup],
    current: Iterable[AddressGroupRecord],
    in_use: Collection[str],
) -> list[MirrorAction]:
    """The calls that make Neutron's mirrors (``current``: every group of the mirror project)
    match ``wanted``; ``in_use`` are the ids of groups some rule references.

    * a wanted SG without a group gets one, created with its addresses and shared;
    * every group of a wanted SG gets its addresses diffed (add and remove only what
      differs), its name and description restored, and RBAC sharing when it lacks it; a
      second group of the same SG (a lost race, or a copy made by hand) is deleted when no
      rule uses it, else kept in step;
    * a group of the mirror project that mirrors nothing wanted (the SG is gone, its region
      is no longer mirrored, or its description was broken) is emptied at once and deleted
      once no rule references it.
    """
    groups = list(current)
    known = {g.ref: g.name for g in sorted(groups, key=lambda g: g.id) if g.ref is not None}
    names = mirror_names(wanted.values(), known)
    by_ref: dict[MirrorRef, list[AddressGroupRecord]] = {}
    orphans: list[AddressGroupRecord] = []
    for g in sorted(groups, key=lambda g: g.id):
        ref = g.ref
        if ref is not None and ref in wanted:
            by_ref.setdefault(ref, []).append(g)
        else:
            orphans.append(g)
    actions: list[MirrorAction] = []
    for ref in sorted(wanted):
        want = wanted[ref]
        name = names[ref]
        have = by_ref.get(ref, [])
        if not have:
            actions.append(
                MirrorAction("create", None, ref, name, _sorted_addresses(want.addresses))
            )
            continue
        for i, g in enumerate(have):
            if i > 0 and g.id not in in_use:
                actions += _emptied(g, ref)
                actions.append(MirrorAction("delete", g.id, ref, g.name))
                continue
            current_addrs = set(g.addresses)
            missing = want.addresses - current_addrs
            extra = current_addrs - want.addresses
            if g.name != name or g.description != mirror_description(ref):
                actions.append(MirrorAction("update", g.id, ref, name))
            if extra:
                actions.append(MirrorAction("remove", g.id, ref, name, _sorted_addresses(extra)))
            if missing:
                actions.append(MirrorAction("add", g.id, ref, name, _sorted_addresses(missing)))
            if not g.shared:
                actions.append(MirrorAction("share", g.id, ref, name))
    for g in orphans:
        actions += _emptied(g, g.ref)
        if g.id not in in_use:
            actions.append(MirrorAction("delete", g.id, g.ref, g.name))
    return actions


def _emptied(g: AddressGroupRecord, ref: MirrorRef | None) -> list[MirrorAction]:
    if not g.addresses:
        return []
    return [MirrorAction("remove", g.id, ref, g.name, _sorted_addresses(g.addresses))]


# ---------------------------------------------------------------------------- applying


class MirrorBackend(Protocol):
    """The Neutron calls mirroring needs, over the mirror project's address groups."""

    def address_groups(self) -> list[AddressGroupRecord]:
        """Every address group of :data:`MIRROR_PROJECT`, with whether it is shared."""
        ...

    def in_use(self, group_ids: Collection[str]) -> set[str]:
        """The ids among ``group_ids`` that some security-group rule references."""
        ...

    def create(self, name: str, description: str, addresses: Collection[str]) -> str:
        """Create a group in the mirror project; returns its id."""
        ...

    def add_addresses(self, group_id: str, addresses: Collection[str]) -> None:
        """Neutron's ``add_addresses`` (MirrorConflict when one is already there)."""
        ...

    def remove_addresses(self, group_id: str, addresses: Collection[str]) -> None:
        """Neutron's ``remove_addresses`` (MirrorConflict when one is absent)."""
        ...

    def update(self, group_id: str, name: str, description: str) -> None:
        """Set name and description."""
        ...

    def share(self, group_id: str) -> None:
        """An ``access_as_shared`` RBAC policy for every project (``*``)."""
        ...

    def delete(self, group_id: str) -> None:
        """Delete the group (MirrorConflict while a rule uses it)."""
        ...


@dataclass
class MirrorReport:
    """What one reconciliation did (or, in a dry run, would do)."""

    actions: list[MirrorAction] = field(default_factory=list)
    failed: list[tuple[MirrorAction, str]] = field(default_factory=list)
    mirrors: int = 0
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.actions:
            out[a.op] = out.get(a.op, 0) + 1
        return out


def apply_plan(
    actions: Iterable[MirrorAction], backend: MirrorBackend, report: MirrorReport
) -> None:
    """Run each call; a refused one (:class:`MirrorConflict`) is recorded and the rest still
    run (the next reconciliation re-reads Neutron and repairs what a race left)."""
    for action in actions:
        try:
            if action.op == "create":
                assert action.ref is not None
                new_id = backend.create(
                    action.name, mirror_description(action.ref), action.addresses
                )
                backend.share(new_id)
            elif action.op == "add":
                assert action.group_id is not None
                backend.add_addresses(action.group_id, action.addresses)
            elif action.op == "remove":
                assert action.group_id is not None
                backend.remove_addresses(action.group_id, action.addresses)
            elif action.op == "update":
                assert action.group_id is not None and action.ref is not None
                backend.update(action.group_id, action.name, mirror_description(action.ref))
            elif action.op == "share":
                assert action.group_id is not None
                backend.share(action.group_id)
            else:
                assert action.group_id is not None
                backend.delete(action.group_id)
        except MirrorConflict as exc:
            report.failed.append((action, str(exc)))
            continue
        report.actions.append(action)


def reconcile(
    wanted: Mapping[MirrorRef, RemoteGroup],
    backend: MirrorBackend,
    *,
    dry_run: bool = False,
    attempts: int = 3,
) -> MirrorReport:
    """Make Neutron's mirrors match ``wanted``: read, plan, apply; re-read and repeat (up to
    ``attempts`` times) while a call lost a race. A dry run only plans."""
    report = MirrorReport(mirrors=len(wanted), dry_run=dry_run)
    for _ in range(max(1, attempts)):
        current = backend.address_groups()
        in_use = backend.in_use([g.id for g in current])
        actions = plan_mirrors(wanted, current, in_use)
        if dry_run:
            report.actions = actions
            return report
        report.failed = []
        apply_plan(actions, backend, report)
        if report.ok:
            return report
    return report


# ---------------------------------------------------------------------------- in memory


@dataclass
class _MemoryGroup:
    id: str
    name: str
    description: str
    project_id: str
    addresses: list[str]
    shared: bool = False


class MemoryAddressGroups:
    """A :class:`MirrorBackend` in memory that refuses what Neutron refuses (tests)."""

    def __init__(self) -> None:
        self.groups: dict[str, _MemoryGroup] = {}
        self.references: dict[str, int] = {}
        self.calls: list[str] = []
        self._next = 0

    def _get(self, group_id: str) -> _MemoryGroup:
        if group_id not in self.groups:
            raise MirrorConflict(f"address group {group_id} not found")
        return self.groups[group_id]

    def add_group(
        self, name: str, description: str, addresses: Iterable[str], *, project_id: str
    ) -> str:
        """An address group made by someone else (an operator, a tenant)."""
        self._next += 1
        group_id = f"ag-{self._next:04d}"
        norm = [str(ipaddress.ip_network(a, strict=False)) for a in addresses]
        self.groups[group_id] = _MemoryGroup(group_id, name, description, project_id, norm)
        return group_id

    def address_groups(self) -> list[AddressGroupRecord]:
        return [
            AddressGroupRecord(
                g.id, g.name, g.description, tuple(g.addresses), g.shared, g.project_id
            )
            for g in self.groups.values()
            if g.project_id == MIRROR_PROJECT
        ]

    def in_use(self, group_ids: Collection[str]) -> set[str]:
        return {g for g in group_ids if self.references.get(g, 0) > 0}

    def create(self, name: str, description: str, addresses: Collection[str]) -> str:
        self.calls.append(f"create {name}")
        return self.add_group(name, description, addresses, project_id=MIRROR_PROJECT)

    def add_addresses(self, group_id: str, addresses: Collection[str]) -> None:
        g = self._get(group_id)
        norm = [str(ipaddress.ip_network(a, strict=False)) for a in addresses]
        if already := [a for a in norm if a in g.addresses]:
            raise MirrorConflict(f"addresses {already} already in address group {group_id}")
        self.calls.append(f"add {group_id} {' '.join(norm)}")
        g.addresses.extend(norm)

    def remove_addresses(self, group_id: str, addresses: Collection[str]) -> None:
        g = self._get(group_id)
        norm = [str(ipaddress.ip_network(a, strict=False)) for a in addresses]
        if absent := [a for a in norm if a not in g.addresses]:
            raise MirrorConflict(f"addresses {absent} not in address group {group_id}")
        self.calls.append(f"remove {group_id} {' '.join(norm)}")
        g.addresses = [a for a in g.addresses if a not in norm]

    def update(self, group_id: str, name: str, description: str) -> None:
        g = self._get(group_id)
        self.calls.append(f"update {group_id} {name}")
        g.name, g.description = name, description

    def share(self, group_id: str) -> None:
        self.calls.append(f"share {group_id}")
        self._get(group_id).shared = True

    def delete(self, group_id: str) -> None:
        self._get(group_id)
        if self.references.get(group_id, 0) > 0:
            raise MirrorConflict(f"address group {group_id} is in use")
        self.calls.append(f"delete {group_id}")
        del self.groups[group_id]
