"""What one region's Neutron server reads and writes in the shared datastore (no Neutron here).

:class:`RegionWriter` wraps a :class:`~regionmesh.datastore.api.Datastore` for one region:

* :meth:`RegionWriter.sync_resource` makes a v3 resource key hold a document (or be absent)
  with create-only-if-absent / compare-and-swap on the mod revision, retrying a few times,
  keeping ``uid``/``creationTimestamp`` as networking-calico does, and not writing at all when
  spec, labels and annotations already match;
* DHCP subnet records (``/calico/dhcp/v2/<region_string>/subnet/<id>``);
* a cross-region subnet registry (``/calico/regionmesh/v1/subnets/<region_string>/<id>``,
  every subnet whatever its DHCP setting) and :meth:`RegionWriter.claim_subnet`, which refuses
  a CIDR that overlaps another region's subnet. Races between regions are settled by etcd's
  create revision: of two overlapping claims, the later one loses;
* agent heartbeats (``/calico/felix/v2/<region_string>/host/<host>/status``): the live hosts
  of this region, and the other regions a host heartbeats under;
* findings (``/calico/regionmesh/v1/findings/<region_string>/<kind>/<host>``) for operators.

Translation is :mod:`regionmesh.openstack.translate`'s job; Neutron hooks are
:mod:`regionmesh.openstack.mech_driver`'s.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore, KeyValue
from regionmesh.errors import AlreadyExists, NotFound, RevisionConflict
from regionmesh.model.regions import REGION_NAMESPACE_PREFIX, region_namespace, region_string
from regionmesh.openstack import translate

MAX_CAS_ATTEMPTS = 5
REGIONMESH_PREFIX = keys.REGIONMESH_PREFIX
SUBNET_REGISTRY_PREFIX = keys.SUBNET_REGISTRY_PREFIX
FINDINGS_PREFIX = keys.FINDINGS_PREFIX
_REGION_STRING_PREFIX = "region-"


def timestamp_now() -> str:
    """UTC ``YYYY-MM-DDTHH:MM:SSZ`` (networking-calico's ``timestamp_now``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def region_of_region_string(value: str) -> str | None:
    """``region-one`` → ``one``; ``no-region`` → None."""
    return value[len(_REGION_STRING_PREFIX) :] if value.startswith(_REGION_STRING_PREFIX) else None


def _load(kv: KeyValue | None) -> dict[str, Any] | None:
    if kv is None:
        return None
    try:
        doc = json.loads(kv.value)
    except ValueError:
        return None  # corrupt: overwrite it under CAS
    return doc if isinstance(doc, dict) else None


def _dump(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@dataclass(frozen=True, slots=True)
class SubnetOverlap:
    """Another region's subnet that a new CIDR overlaps."""

    cidr: str
    other_region: str | None
    other_subnet_id: str
    other_cidr: str

    def message(self) -> str:
        """The operator-facing explanation, naming both subnets and the other region."""
        return (
            f"subnet {self.cidr} overlaps subnet {self.other_subnet_id} ({self.other_cidr}) of "
            f"OpenStack region {self.other_region or '(none)'}; subnets must not overlap "
            "across regions that share one Calico datastore"
        )


class RegionWriter:
    """One region's view of the shared datastore."""

    def __init__(
        self,
        datastore: Datastore,
        region: str | None,
        *,
        now: Callable[[], str] = timestamp_now,
        new_uid: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.ds = datastore
        self.region = region
        self.region_string = region_string(region)
        self.now = now
        self.new_uid = new_uid

    # ------------------------------------------------------------------ resources

    def sync_resource(self, key: str, doc: dict[str, Any] | None) -> str:
        """Make ``key`` hold ``doc`` (None: be absent). Returns ``created``, ``updated``,
        ``unchanged``, ``deleted`` or ``absent``; RevisionConflict after MAX_CAS_ATTEMPTS."""
        for _ in range(MAX_CAS_ATTEMPTS):
            kv = self.ds.get(key)
            try:
                if doc is None:
                    if kv is None:
                        return "absent"
                    self.ds.delete(key, revision=kv.mod_revision)
                    return "deleted"
                existing = _load(kv)
                if (
                    existing is not None
                    and existing.get("kind") == doc.get("kind")
                    and existing.get("apiVersion") == doc.get("apiVersion")
                    and translate.same_content(existing, doc)
                ):
                    return "unchanged"
                value = _dump(
                    translate.with_server_metadata(
                        doc, existing, new_uid=self.new_uid, now=self.now
                    )
                )
                if kv is None:
                    self.ds.create(key, value)
                    return "created"
                self.ds.update(key, value, revision=kv.mod_revision)
                return "updated"
            except (AlreadyExists, RevisionConflict, NotFound):
                continue  # someone else wrote in between: re-read and try again
        raise RevisionConflict(f"{key}: still changing after {MAX_CAS_ATTEMPTS} attempts")

    def ensure_cluster_config(self) -> None:
        """Merge what OpenStack needs into the global ``default`` objects (CAS, idempotent).

        As networking-calico does: FelixConfiguration ``default`` gets ``tap`` in
        ``interfacePrefix`` and ``endpointReportingEnabled: true`` (so agents police VM taps and
        report port status); ClusterInformation ``default`` gets ``openstack`` in
        ``clusterType``, ``datastoreReady: true`` and a ``clusterGUID``. Other fields and other
        regions' additions are kept; every region's server may run this.
        """

        def merge_list(current: str, item: str) -> str:
            parts = [p.strip() for p in (current or "").split(",") if p.strip()]
            return ",".join(parts if item in parts else [*parts, item])

        def felix(spec: dict[str, Any]) -> dict[str, Any]:
            return {**spec, "interfacePrefix": merge_list(spec.get("interfacePrefix", ""), "tap"),
                    "endpointReportingEnabled": True}  # fmt: skip

        def cluster(spec: dict[str, Any]) -> dict[str, Any]:
            return {
                **spec,
                "clusterType": merge_list(spec.get("clusterType", ""), "openstack"),
                "datastoreReady": True,
                "clusterGUID": spec.get("clusterGUID") or uuid.uuid4().hex,
            }

        for kind, plural, change in (
            ("FelixConfiguration", "felixconfigurations", felix),
            ("ClusterInformation", "clusterinformations", cluster),
        ):
            key = keys.resource_key(plural, "default")
            existing = self.get_document(key)
            spec = dict((existing or {}).get("spec") or {})
            new_spec = change(spec)
            if existing is not None and new_spec == spec:
                continue
            doc = {"kind": kind, "apiVersion": "projectcalico.org/v3",
                   "metadata": {"name": "default"}, "spec": new_spec}  # fmt: skip
            if existing is not None:
                doc["metadata"] = {**(existing.get("metadata") or {}), "name": "default"}
            self.sync_resource(key, doc)

    def workload_endpoint_key(self, name: str) -> str:
        """Key of a WorkloadEndpoint of this region."""
        return keys.resource_key("workloadendpoints", name, self._namespace())

    def policy_key(self, name: str) -> str:
        """Key of a NetworkPolicy of this region."""
        return keys.resource_key("networkpolicies", name, self._namespace())

    def workload_endpoint_prefix(self) -> str:
        """``…/workloadendpoints/<this region's namespace>/`` (trailing slash: no other
        namespace, not even ``openstack`` vs ``openstack-region-*``, shares it)."""
        return keys.resource_prefix("workloadendpoints", self._namespace())

    def policy_prefix(self) -> str:
        """``…/networkpolicies/<this region's namespace>/``."""
        return keys.resource_prefix("networkpolicies", self._namespace())

    def dhcp_subnet_prefix(self) -> str:
        """``/calico/dhcp/v2/<region_string>/subnet/``."""
        return keys.subnet_dir(self.region) + "/"

    def _namespace(self) -> str:
        return region_namespace(self.region)

    def get_document(self, key: str) -> dict[str, Any] | None:
        """The stored JSON document at ``key``, or None."""
        return _load(self.ds.get(key))

    # ------------------------------------------------------------------ subnets

    def sync_dhcp_subnet(self, subnet_id: str, record: dict[str, Any] | None) -> str:
        """Write (or with None delete) the DHCP record of a subnet; plain JSON, CAS'd."""
        key = keys.subnet_key(self.region, subnet_id)
        for _ in range(MAX_CAS_ATTEMPTS):
            kv = self.ds.get(key)
            try:
                if record is None:
                    if kv is None:
                        return "absent"
                    self.ds.delete(key, revision=kv.mod_revision)
                    return "deleted"
                if kv is not None and _load(kv) == record:
                    return "unchanged"
                if kv is None:
                    self.ds.create(key, _dump(record))
                    return "created"
                self.ds.update(key, _dump(record), revision=kv.mod_revision)
                return "updated"
            except (AlreadyExists, RevisionConflict, NotFound):
                continue
        raise RevisionConflict(f"{key}: still changing after {MAX_CAS_ATTEMPTS} attempts")

    def subnet_registry_key(self, subnet_id: str) -> str:
        """``/calico/regionmesh/v1/subnets/<region_string>/<subnet_id>``."""
        return keys.region_subnet_registry_prefix(self.region) + subnet_id

    def claim_subnet(self, subnet_id: str, cidr: str, network_id: str) -> SubnetOverlap | None:
        """Register this region's subnet, unless it overlaps another region's.

        The claim is written first and the registry read afterwards, so two regions claiming
        overlapping CIDRs at once both see each other: the claim with the higher create
        revision withdraws and reports the overlap. DHCP records of other regions (written by
        networking-calico servers) count as older claims.
        """
        key = self.subnet_registry_key(subnet_id)
        value = {"cidr": cidr, "network_id": network_id, "region": self.region}
        existing = self.ds.get(key)
        if existing is None:
            try:
                self.ds.create(key, _dump(value))
            except AlreadyExists:
                pass
        elif _load(existing) != value:
            self.ds.put(key, _dump(value))
        mine = self.ds.get(key)
        my_rev = mine.create_revision if mine is not None else 0
        overlap = self._find_overlap(subnet_id, cidr, my_rev)
        if overlap is not None:
            self.release_subnet(subnet_id)
        return overlap

    def find_overlap(self, subnet_id: str, cidr: str) -> SubnetOverlap | None:
        """Read-only: another region's subnet (claimed at any time) that ``cidr`` overlaps."""
        return self._find_overlap(subnet_id, cidr, sys.maxsize)

    def _find_overlap(self, subnet_id: str, cidr: str, my_rev: int) -> SubnetOverlap | None:
        candidates: list[tuple[int, str | None, str, str]] = []
        for kv in self.ds.list(SUBNET_REGISTRY_PREFIX).items:
            parts = kv.key[len(SUBNET_REGISTRY_PREFIX) :].split("/")
            if len(parts) != 2 or parts[0] == self.region_string:
                continue
            data = _load(kv) or {}
            other_cidr = data.get("cidr")
            if isinstance(other_cidr, str) and kv.create_revision < my_rev:
                candidates.append(
                    (kv.create_revision, region_of_region_string(parts[0]), parts[1], other_cidr)
                )
        for kv in self.ds.list(keys.DHCP_V2_PREFIX).items:
            parsed = keys.parse_subnet_key(kv.key)
            if parsed is None or parsed[0] in (None, self.region_string):
                continue
            data = _load(kv) or {}
            other_cidr = data.get("cidr")
            if isinstance(other_cidr, str):
                region = region_of_region_string(parsed[0] or "")
                candidates.append((0, region, parsed[1], other_cidr))
        for _, region, other_id, other_cidr in sorted(candidates, key=lambda c: c[0]):
            if other_id != subnet_id and translate.overlapping(cidr, [other_cidr]):
                return SubnetOverlap(cidr, region, other_id, other_cidr)
        return None

    def release_subnet(self, subnet_id: str) -> None:
        """Drop this region's registry entry for a subnet (no-op when absent)."""
        try:
            self.ds.delete(self.subnet_registry_key(subnet_id))
        except NotFound:
            pass

    # ------------------------------------------------------------------ heartbeats

    def live_hosts(self) -> list[str]:
        """Hosts with a live heartbeat key under this region's region string."""
        hosts: list[str] = []
        for kv in self.ds.list(keys.felix_hosts_prefix(self.region)).items:
            parsed = keys.parse_felix_status_key(kv.key)
            if parsed is not None and not parsed.last:
                hosts.append(parsed.hostname)
        return hosts

    def heartbeat_regions(self, host: str) -> list[str | None]:
        """Every region (None: no region) that ``host`` currently heartbeats under."""
        found: list[str | None] = []
        for kv in self.ds.list(keys.FELIX_V2_PREFIX).items:
            if not kv.key.endswith("/status"):
                continue
            parsed = keys.parse_felix_status_key(kv.key)
            if parsed is not None and not parsed.last and parsed.hostname == host:
                found.append(region_of_region_string(parsed.region_string))
        return found

    # ------------------------------------------------------------------ other regions

    def regioned_namespaces(self) -> list[str]:
        """Every ``openstack-region-*`` namespace that holds WorkloadEndpoints or
        NetworkPolicies, plus the regions with subnet claims or DHCP records (as namespaces).

        A server without a region must not run against such a store (§1.4 hazard)."""
        found: set[str] = set()
        for plural in ("workloadendpoints", "networkpolicies"):
            prefix = keys.resource_prefix(plural) + REGION_NAMESPACE_PREFIX
            for kv in self.ds.list(prefix).items:
                parsed = keys.parse_resource_key(kv.key)
                if parsed is not None and parsed[1]:
                    found.add(parsed[1])
        for prefix in (SUBNET_REGISTRY_PREFIX, keys.DHCP_V2_PREFIX):
            for kv in self.ds.list(prefix + _REGION_STRING_PREFIX).items:
                region = region_of_region_string(kv.key[len(prefix) :].split("/")[0])
                if region:
                    found.add(region_namespace(region))
        return sorted(found)

    # ------------------------------------------------------------------ findings

    def finding_key(self, kind: str, subject: str) -> str:
        """``/calico/regionmesh/v1/findings/<region_string>/<kind>/<subject>``."""
        return f"{keys.findings_prefix(self.region)}{kind}/{subject}"

    def record_finding(self, kind: str, subject: str, message: str, **details: Any) -> None:
        """Write (overwrite) a finding for operators: what, when, and the details."""
        value = {
            "kind": kind,
            "subject": subject,
            "region": self.region,
            "message": message,
            "time": self.now(),
            "unix_time": time.time(),
            **details,
        }
        self.ds.put(self.finding_key(kind, subject), _dump(value))

    def findings(self, kind: str | None = None) -> list[dict[str, Any]]:
        """This region's findings (of one kind, or all)."""
        prefix = f"{FINDINGS_PREFIX}{self.region_string}/" + (f"{kind}/" if kind else "")
        return [d for d in (_load(kv) for kv in self.ds.list(prefix).items) if d is not None]
