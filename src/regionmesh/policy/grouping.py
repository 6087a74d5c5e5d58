"""Partitioning workload endpoints into groups of equivalent endpoints (:class:`VmGroup`).

Same region/namespace, effective labels, profiles, declared ports, address sharers and
membership in every CIDR a rule mentions: one representative pair per group pair then decides
for all members (see :mod:`regionmesh.policy.connectivity`). Evaluating pairs is
:mod:`regionmesh.policy.pair_evaluation`'s job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from regionmesh.model import WorkloadEndpoint
from regionmesh.model.regions import region_of_namespace
from regionmesh.policy.flows import (
    CompiledRule,
    IPAddress,
    IPNetwork,
    parse_net,
)
from regionmesh.policy.ordering import Direction
from regionmesh.policy.snapshot import Snapshot

_SG_NAME = "sg-name.projectcalico.org/openstack-"
_SG_ID = "sg.projectcalico.org/openstack-"


@dataclass(frozen=True, slots=True)
class VmGroup:
    """Equivalent workload endpoints (see the module docstring)."""

    key: int
    region: str
    """The region (from ``openstack-region-<r>``), or the namespace for other namespaces."""
    name: str
    """Display name: security-group names/ids, else a few labels."""
    members: tuple[WorkloadEndpoint, ...]

    @property
    def size(self) -> int:
        """Number of VMs (endpoints) in the group."""
        return len(self.members)

    @property
    def representative(self) -> WorkloadEndpoint:
        """The member whose flows are evaluated for the group."""
        return self.members[0]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "region": self.region,
            "name": self.name,
            "vms": self.size,
            "members": [f"{m.metadata.namespace}/{m.metadata.name}" for m in self.members[:20]],
        }


def region_label(namespace: str) -> str:
    """The region of a namespace, or the namespace itself."""
    return region_of_namespace(namespace) or namespace


def group_display_name(labels: Mapping[str, str]) -> str:
    """Security groups by name (else id prefix), else up to three plain labels."""
    names = sorted(k[len(_SG_NAME) :] for k in labels if k.startswith(_SG_NAME))
    if not names:
        names = sorted(k[len(_SG_ID) :][:8] for k in labels if k.startswith(_SG_ID))
    if names:
        return "+".join(names)
    plain = sorted(
        f"{k}={v}" if v else k
        for k, v in labels.items()
        if not k.startswith("projectcalico.org/") and "openstack-" not in k
    )
    if not plain:
        return "(no labels)"
    return ",".join(plain[:3]) + (",…" if len(plain) > 3 else "")


def first_ips(ep: WorkloadEndpoint) -> tuple[IPAddress | None, IPAddress | None]:
    v4: IPAddress | None = None
    v6: IPAddress | None = None
    for text in ep.spec.ip_networks:
        try:
            addr = parse_net(text).network_address
        except ValueError:
            continue
        if addr.version == 4 and v4 is None:
            v4 = addr
        elif addr.version == 6 and v6 is None:
            v6 = addr
    return v4, v6


def rule_sources(snapshot: Snapshot) -> Iterator[CompiledRule]:
    for pol in snapshot.policies:
        for d in (Direction.INGRESS, Direction.EGRESS):
            yield from pol.rules(d)
    for name in snapshot.profiles:
        prof = snapshot.profile_record(name)
        if prof is not None:
            for d in (Direction.INGRESS, Direction.EGRESS):
                yield from prof.rules(d)


class _CidrIndex:
    """Every CIDR rules mention, for "which of them contain this address" lookups."""

    def __init__(self, snapshot: Snapshot) -> None:
        nets: set[IPNetwork] = set()
        for rule in rule_sources(snapshot):
            for side in (rule.source, rule.destination):
                nets.update(side.nets)
                nets.update(side.not_nets)
        self._by_len: dict[tuple[int, int], set[int]] = defaultdict(set)
        for net in nets:
            self._by_len[(net.version, net.prefixlen)].add(int(net.network_address))

    def containing(self, ip: IPAddress) -> tuple[tuple[int, int], ...]:
        """(prefixlen, network int) of every mentioned CIDR containing ``ip``."""
        value = int(ip)
        bits = 32 if ip.version == 4 else 128
        out: list[tuple[int, int]] = []
        for (version, plen), nets in self._by_len.items():
            if version != ip.version:
                continue
            masked = value & (((1 << plen) - 1) << (bits - plen)) if plen else 0
            if masked in nets:
                out.append((plen, masked))
        return tuple(sorted(out))


class GroupIndex:
    """Signature of each workload endpoint in one snapshot (equal signature ⇒ equivalent)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._cidrs = _CidrIndex(snapshot)

    def signature(self, ep: WorkloadEndpoint) -> tuple[object, ...]:
        """Everything the verdict algorithm reads about ``ep`` (see the module docstring)."""
        snap = self.snapshot
        rec = snap.record_for(ep)
        sig: list[object] = [ep.metadata.namespace, rec.group.gid, tuple(ep.spec.profiles)]
        sig.append(rec.ports)
        for ip in first_ips(ep):
            if ip is None:
                sig.append(None)
                continue
            others = tuple(
                sorted(
                    (r.group.gid, r.ports)
                    for r in snap.entities_at(ip)
                    if r.resource is not ep and r.resource != ep
                )
            )
            sig.append((others, self._cidrs.containing(ip)))
        return tuple(sig)


def group_endpoints(
    endpoints: Iterable[WorkloadEndpoint],
    key: Callable[[WorkloadEndpoint], Sequence[object]],
    labels_of: Callable[[WorkloadEndpoint], Mapping[str, str]],
) -> list[VmGroup]:
    """Partition ``endpoints`` by ``key``; groups ordered by region, name, then first member."""
    buckets: dict[tuple[object, ...], list[WorkloadEndpoint]] = {}
    for ep in endpoints:
        buckets.setdefault(tuple(key(ep)), []).append(ep)
    raw = []
    for members in buckets.values():
        members.sort(key=lambda e: (e.metadata.namespace, e.metadata.name))
        first = members[0]
        raw.append(
            (
                region_label(first.metadata.namespace),
                group_display_name(labels_of(first)),
                first.metadata.namespace,
                first.metadata.name,
                tuple(members),
            )
        )
    raw.sort(key=lambda t: t[:4])
    return [VmGroup(i, r, n, m) for i, (r, n, _ns, _nm, m) in enumerate(raw)]
