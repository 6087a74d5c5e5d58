"""What one region's Neutron server reads and writes in the shared datastore (no Neutron here).

:class:`RegionWriter` wraps a :class:`~regionmesh.datastore.api.Datastore` for one region:

* :meth:`RegionWriter.sync` makes a v3 resource key hold a typed resource (or be absent)
  through the one write path, :meth:`ResourceClient.sync
  <regionmesh.datastore.resource_client.ResourceClient.sync>` (model validation, create-if-absent /
  CAS with bounded retries, ``uid``/``creationTimestamp`` kept as networking-calico does, no
  write when spec, labels and annotations already match), stored in networking-calico's
  byte layout (:mod:`regionmesh.openstack.layout`);
* DHCP subnet records (``/calico/dhcp/v2/<region_string>/subnet/<id>``, plain JSON, through
  :func:`~regionmesh.datastore.resource_client.sync_json`, the same CAS loop);
* a cross-region subnet registry (``/calico/regionmesh/v1/subnets/<region_string>/<id>``,
  every subnet whatever its DHCP setting) and :meth:`RegionWriter.claim_subnet`, which refuses
  a CIDR that overlaps another region's subnet. Races between regions are settled by etcd's
  create revision: of two overlapping claims, the later one loses;
* agent heartbeats (``/calico/felix/v2/<region_string>/host/<host>/status``): the live hosts
  of this region, and the other regions a host heartbeats under;
* findings (``/calico/regionmesh/v1/findings/<region_string>/<kind>/<host>``) for operators.

Key layouts are :mod:`regionmesh.datastore.keys`'; translation is
:mod:`regionmesh.openstack.translate`'s job; deciding what to write for a Neutron change is
:mod:`regionmesh.openstack.sync`'s.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore
from regionmesh.datastore.resource_client import (
    ResourceClient,
    Synced,
    SyncOutcome,
    load_document,
    new_uid,
    sync_json,
    timestamp_now,
)
from regionmesh.errors import AlreadyExists, NotFound
from regionmesh.model import ClusterInformation, FelixConfiguration, Resource, codec, kind_info
from regionmesh.model.kinds import API_VERSION
from regionmesh.model.regions import (
    REGION_NAMESPACE_PREFIX,
    REGION_STRING_PREFIX,
    region_namespace,
    region_of_region_string,
    region_string,
)
from regionmesh.openstack.layout import NETWORKING_CALICO_LAYOUT
from regionmesh.openstack.subnets import overlapping

WORKLOAD_ENDPOINTS = kind_info("WorkloadEndpoint").plural
NETWORK_POLICIES = kind_info("NetworkPolicy").plural


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
        new_uid: Callable[[], str] = new_uid,
    ) -> None:
        self.ds = datastore
        self.region = region
        self.region_string = region_string(region)
        self.now = now
        self.new_uid = new_uid
        self.resources = ResourceClient(
            datastore, layout=NETWORKING_CALICO_LAYOUT, now=now, new_uid=new_uid
        )

    # ------------------------------------------------------------------ resources

    def sync(self, key: str, resource: Resource | None) -> Synced:
        """Make ``key`` hold ``resource`` (None: be absent), through
        :meth:`ResourceClient.sync <regionmesh.datastore.resource_client.ResourceClient.sync>`
        (validated, CAS'd, retried, uid/creationTimestamp kept, no write when unchanged)."""
        return self.resources.sync(key, resource)

    def sync_resource(self, key: str, doc: Resource | dict[str, Any] | None) -> SyncOutcome:
        """:meth:`sync` returning only the outcome; a document is decoded by the model first
        (ValidationError naming it and its bad fields)."""
        if isinstance(doc, dict):
            doc = codec.decode(doc)
        return self.sync(key, doc).outcome

    def ensure_cluster_config(self) -> list[Synced]:
        """Merge what OpenStack needs into the global ``default`` objects (CAS, idempotent).

        As networking-calico does: FelixConfiguration ``default`` gets ``tap`` in
        ``interfacePrefix`` and ``endpointReportingEnabled: true`` (so agents police VM taps and
        report port status); ClusterInformation ``default`` gets ``openstack`` in
        ``clusterType``, ``datastoreReady: true`` and a ``clusterGUID``. Other fields and other
        regions' additions are kept (the stored document is merged, not re-encoded through
        the model, so fields regionmesh does not model survive); every region's server may
        run this. Returns the writes made, for a caller that may have to undo them.
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

        done: list[Synced] = []
        for kind, change in ((FelixConfiguration.KIND, felix), (ClusterInformation.KIND, cluster)):
            key = keys.resource_key(kind_info(kind).plural, "default")
            kv = self.ds.get(key)
            existing = load_document(kv)
            spec = dict((existing or {}).get("spec") or {})
            new_spec = change(spec)
            if existing is not None and new_spec == spec:
                continue
            doc = {"kind": kind, "apiVersion": API_VERSION,
                   "metadata": {"name": "default"}, "spec": new_spec}  # fmt: skip
            if existing is not None:
                doc["metadata"] = {**(existing.get("metadata") or {}), "name": "default"}
            done.append(self.resources.sync_document(key, doc))
        return done

    def workload_endpoint_key(self, name: str) -> str:
        """Key of a WorkloadEndpoint of this region."""
        return keys.resource_key(WORKLOAD_ENDPOINTS, name, self._namespace())

    def policy_key(self, name: str) -> str:
        """Key of a NetworkPolicy of this region."""
        return keys.resource_key(NETWORK_POLICIES, name, self._namespace())

    def workload_endpoint_prefix(self) -> str:
        """``…/workloadendpoints/<this region's namespace>/`` (trailing slash: no other
        namespace, not even ``openstack`` vs ``openstack-region-*``, shares it)."""
        return keys.resource_prefix(WORKLOAD_ENDPOINTS, self._namespace())

    def policy_prefix(self) -> str:
        """``…/networkpolicies/<this region's namespace>/``."""
        return keys.resource_prefix(NETWORK_POLICIES, self._namespace())

    def dhcp_subnet_prefix(self) -> str:
        """``/calico/dhcp/v2/<region_string>/subnet/``."""
        return keys.subnet_dir(self.region) + "/"

    def _namespace(self) -> str:
        return region_namespace(self.region)

    def get_document(self, key: str) -> dict[str, Any] | None:
        """The stored JSON document at ``key``, or None."""
        return load_document(self.ds.get(key))

    # ------------------------------------------------------------------ subnets

    def sync_dhcp_subnet(self, subnet_id: str, record: dict[str, Any] | None) -> SyncOutcome:
        """Write (or with None delete) the DHCP record of a subnet; plain JSON, CAS'd."""
        return self.sync_dhcp_record(subnet_id, record).outcome

    def sync_dhcp_record(self, subnet_id: str, record: dict[str, Any] | None) -> Synced:
        """:meth:`sync_dhcp_subnet` with the full result (for a caller that may undo it)."""
        return sync_json(self.ds, keys.subnet_key(self.region, subnet_id), record)

    def subnet_registry_key(self, subnet_id: str) -> str:
        """``/calico/regionmesh/v1/subnets/<region_string>/<subnet_id>``."""
        return keys.subnet_registry_key(self.region, subnet_id)

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
        elif load_document(existing) != value:
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
        for kv in self.ds.list(keys.SUBNET_REGISTRY_PREFIX).items:
            parts = kv.key[len(keys.SUBNET_REGISTRY_PREFIX) :].split("/")
            if len(parts) != 2 or parts[0] == self.region_string:
                continue
            data = load_document(kv) or {}
            other_cidr = data.get("cidr")
            if isinstance(other_cidr, str) and kv.create_revision < my_rev:
                candidates.append(
                    (kv.create_revision, region_of_region_string(parts[0]), parts[1], other_cidr)
                )
        for kv in self.ds.list(keys.DHCP_V2_PREFIX).items:
            parsed = keys.parse_subnet_key(kv.key)
            if parsed is None or parsed[0] in (None, self.region_string):
                continue
            data = load_document(kv) or {}
            other_cidr = data.get("cidr")
            if isinstance(other_cidr, str):
                region = region_of_region_string(parsed[0] or "")
                candidates.append((0, region, parsed[1], other_cidr))
        for _, region, other_id, other_cidr in sorted(candidates, key=lambda c: c[0]):
            if other_id != subnet_id and overlapping(cidr, [other_cidr]):
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
        for plural in (WORKLOAD_ENDPOINTS, NETWORK_POLICIES):
            prefix = keys.resource_prefix(plural) + REGION_NAMESPACE_PREFIX
            for kv in self.ds.list(prefix).items:
                parsed = keys.parse_resource_key(kv.key)
                if parsed is not None and parsed[1]:
                    found.add(parsed[1])
        for prefix in (keys.SUBNET_REGISTRY_PREFIX, keys.DHCP_V2_PREFIX):
            for kv in self.ds.list(prefix + REGION_STRING_PREFIX).items:
                region = region_of_region_string(kv.key[len(prefix) :].split("/")[0])
                if region:
                    found.add(region_namespace(region))
        return sorted(found)

    # ------------------------------------------------------------------ findings

    def finding_key(self, kind: str, subject: str) -> str:
        """``/calico/regionmesh/v1/findings/<region_string>/<kind>/<subject>``."""
        return keys.finding_key(self.region, kind, subject)

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
        prefix = keys.findings_prefix(self.region, kind)
        return [
            d for d in (load_document(kv) for kv in self.ds.list(prefix).items) if d is not None
        ]
