"""Resync: make one region's data in the datastore match Neutron (openstack-driver.md §6.3–6.4).

:func:`resync` runs three phases, in networking-calico's order: DHCP ``subnets``,
``policies`` (only ``ossg.default.*`` NetworkPolicies; operator policies in the namespace are
never touched) and ``endpoints`` (WorkloadEndpoints). Each phase

1. reads the datastore FIRST (one prefix list at one revision, under this region's own
   namespace / subnet directory only),
2. then Neutron, in bulk (through a :class:`~regionmesh.openstack.reader.NeutronReader`),
3. compares by name and repairs with compare-and-swap: only-in-Neutron → re-read that object
   and create-only-if-absent (in bulk: up to ``CREATE_BATCH`` objects per
   :meth:`~regionmesh.datastore.api.Datastore.create_many`, create-only transactions of at most
   ``--max-txn-ops`` keys; a key that exists by then gets its own create-if-absent attempt, so
   the outcome per key is the per-key path's); different → update at the mod revision read in step 1;
   only-in-datastore → delete at that revision. A failed CAS means another writer moved the
   key after step 1: it is counted as a conflict and left alone (the writer is newer).

The prefixes make a regioned server unable to touch another region's namespace or the
unregioned ``openstack`` namespace (and every delete key is checked against them once more);
the legacy-data deletes of networking-calico are deliberately not done. ``dry_run`` computes
the same plan and writes nothing. The :class:`ResyncResult` carries per-phase counts
(created/updated/deleted/correct/conflicts/errors), timings and the list of changes.

Where Neutron data comes from is behind :class:`~regionmesh.openstack.reader.NeutronReader`:
the real database in :mod:`regionmesh.openstack.neutron_db` (``NeutronDbSource``), or
:class:`~regionmesh.openstack.reader.MemoryNeutron`, fed with in-memory records (tests,
benchmarks). Every repair goes through the one write path,
:meth:`ResourceClient.sync_document <regionmesh.datastore.resource_client.ResourceClient.sync_document>`
/ :meth:`~regionmesh.datastore.resource_client.ResourceClient.sync` with the revision read in
step 1 (and :func:`~regionmesh.datastore.resource_client.sync_json` for the DHCP records): what is
created or updated is first decoded and validated by the model, so a translation Calico would
refuse is counted as an error and not written (the bytes written are the compared document's,
identical to the typed resource's layout). Comparing (step 3) works on the documents, so
a steady resync builds no model objects. This module imports neither Neutron nor oslo.

Kept as one module on purpose (just over 500 lines): the three phases share one plan/compare/
repair loop whose safety rules (read etcd first, CAS at the revision read, bulk creates that
fall back per key) are only checkable in one place.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from regionmesh.datastore.api import KeyValue
from regionmesh.datastore.resource_client import (
    create_many_json,
    load_document,
    same_resource,
    sync_json,
    timestamp_now,
)
from regionmesh.errors import (
    AlreadyExists,
    NotFound,
    RegionmeshError,
    RevisionConflict,
    TranslationError,
)
from regionmesh.model import Resource
from regionmesh.openstack import endpoints, security_groups, subnets
from regionmesh.openstack.reader import NeutronReader, SecurityGroupData
from regionmesh.openstack.records import NeutronPort
from regionmesh.openstack.resync_result import Change, PhaseResult, ResyncResult, Scope
from regionmesh.openstack.writer import RegionWriter

__all__ = [
    "ENDPOINTS", "PHASES", "POLICIES", "SUBNETS", "Change", "PhaseResult", "Progress",
    "ResyncResult", "Scope", "phases_for", "resync",
]  # fmt: skip

LOG = logging.getLogger(__name__)

SUBNETS, POLICIES, ENDPOINTS = "subnets", "policies", "endpoints"
PHASES = (SUBNETS, POLICIES, ENDPOINTS)
Progress = Callable[[str, int, int], None]
Document = dict[str, Any]
CREATE_BATCH = 512
"""Create-phase repairs collected before one bulk create (the datastore splits it further
into transactions of at most ``--max-txn-ops`` keys)."""
Typed = Callable[[str, Document], Resource]
"""Decode + validate one desired document (its name given) into the resource to write."""


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)


# ---------------------------------------------------------------------------- engine


class _Phase:
    """The compare-and-repair core shared by the three kinds.

    ``typed`` (v3 kinds) turns a desired document into the model resource that is written;
    without it (the DHCP records) documents are plain JSON compared for equality.
    """

    def __init__(
        self,
        writer: RegionWriter,
        result: PhaseResult,
        *,
        prefix: str,
        dry_run: bool,
        progress: Progress | None,
        typed: Typed | None,
    ) -> None:
        self.writer = writer
        self.result = result
        self.prefix = prefix
        self.dry_run = dry_run
        self.progress = progress
        self.typed = typed

    def same(self, existing: Document | None, desired: Document) -> bool:
        if existing is None:
            return False
        if self.typed is None:
            return existing == desired
        return same_resource(existing, desired)

    def run(
        self,
        stored: dict[str, KeyValue],
        desired: dict[str, Document],
        reread: Callable[[str], Document | None],
    ) -> None:
        t0 = time.perf_counter()
        res = self.result
        names = sorted(set(stored) | set(desired))
        plan: list[tuple[str, str]] = []
        for name in names:
            kv, want = stored.get(name), desired.get(name)
            if kv is not None and want is not None:
                if self.same(load_document(kv), want):
                    res.correct += 1
                else:
                    plan.append(("update", name))
            elif want is not None:
                plan.append(("create", name))
            else:
                plan.append(("delete", name))
        res.compare_ms = _ms(t0)
        t1 = time.perf_counter()
        total = len(plan)
        done = 0
        creates: list[Change] = []

        def report(n: int) -> None:
            nonlocal done
            for _ in range(n):
                done += 1
                if self.progress is not None:
                    self.progress(res.kind, done, total)

        for action, name in plan:
            change = Change(action, name)
            res.changes.append(change)
            if self.dry_run:
                report(1)
            elif action == "create":
                creates.append(change)
                if len(creates) >= CREATE_BATCH:
                    self._create_batch(creates, reread)
                    report(len(creates))
                    creates = []
            else:
                self._apply(change, stored.get(name), desired.get(name), reread)
                report(1)
        if creates:
            self._create_batch(creates, reread)
            report(len(creates))
        res.write_ms = _ms(t1)

    def _key(self, name: str) -> str:
        key = self.prefix + name
        if not key.startswith(self.prefix) or "/" in name:
            raise RegionmeshError(f"refusing to write {key!r} outside {self.prefix!r}")
        return key

    def _create_batch(
        self, changes: list[Change], reread: Callable[[str], Document | None]
    ) -> None:
        """Create-phase repairs in bulk: re-read and validate each object as :meth:`_apply`
        does, then create all that are still absent in few create-only transactions
        (:meth:`~regionmesh.datastore.api.Datastore.create_many`). A key another writer
        created since step 1 goes through the per-key path (:meth:`_apply`'s create-if-absent:
        a conflict, unless it is gone again). Counts and messages are those of :meth:`_apply`.
        """
        res = self.result
        ready: list[tuple[Change, str, Document]] = []
        for change in changes:
            key = self._key(change.name)
            fresh = reread(change.name)
            if fresh is None:  # gone from Neutron since the bulk read
                change.conflict = True
                res.conflicts += 1
                continue
            try:
                if self.typed is not None:
                    self.typed(change.name, fresh)
            except TranslationError as exc:  # the model refuses it: report, write nothing
                res.errors += 1
                res.messages.append(f"{change.name}: not written: {exc}")
                continue
            ready.append((change, key, fresh))
        if not ready:
            return
        items = [(key, doc) for _, key, doc in ready]
        if self.typed is None:
            synced = create_many_json(self.writer.ds, items)
        else:
            synced = self.writer.resources.create_documents(items)
        for (change, key, doc), outcome in zip(ready, synced, strict=True):
            if outcome is not None:
                res.created += 1
                change.done = True
                continue
            try:  # it exists now: one create-if-absent attempt of its own
                self._write(key, change.name, doc, None)
                res.created += 1
                change.done = True
            except (AlreadyExists, RevisionConflict, NotFound):
                change.conflict = True  # another writer created it after our read: it is newer
                res.conflicts += 1

    def _write(self, key: str, name: str, doc: Document | None, kv: KeyValue | None) -> None:
        """One CAS attempt at the revision read in step 1 (``kv``; None: create).

        A v3 document is decoded and validated by the model first (TranslationError: not
        written); the bytes stored are those of the document that was compared, which is
        byte-for-byte the typed resource's networking-calico layout (``test_layout.py``), so
        the bulk path does not lay every resource out a second time.
        """
        if self.typed is None:
            sync_json(self.writer.ds, key, doc, current=kv)
            return
        if doc is not None:
            self.typed(name, doc)
        self.writer.resources.sync_document(key, doc, current=kv)

    def _apply(
        self,
        change: Change,
        kv: KeyValue | None,
        want: Document | None,
        reread: Callable[[str], Document | None],
    ) -> None:
        key = self._key(change.name)
        res = self.result
        try:
            if change.action == "create":
                fresh = reread(change.name)
                if fresh is None:  # gone from Neutron since the bulk read
                    change.conflict = True
                    res.conflicts += 1
                    return
                self._write(key, change.name, fresh, None)
                res.created += 1
            elif change.action == "update":
                assert kv is not None and want is not None
                self._write(key, change.name, want, kv)
                res.updated += 1
            else:
                assert kv is not None
                self._write(key, change.name, None, kv)
                res.deleted += 1
            change.done = True
        except TranslationError as exc:  # the model refuses it: report, write nothing
            res.errors += 1
            res.messages.append(f"{change.name}: not written: {exc}")
        except (AlreadyExists, RevisionConflict, NotFound):
            change.conflict = True  # another writer moved it after our read: it is newer
            res.conflicts += 1


def _list(writer: RegionWriter, prefix: str) -> dict[str, KeyValue]:
    return {
        kv.key[len(prefix) :]: kv
        for kv in writer.ds.list(prefix).items
        if "/" not in kv.key[len(prefix) :]
    }


def _in_net(cidrs: Iterable[str], subnet_cidr: str) -> bool:
    try:
        net = ipaddress.ip_network(subnet_cidr, strict=False)
        return any(
            ipaddress.ip_network(c, strict=False).subnet_of(net)  # type: ignore[arg-type]
            for c in cidrs
            if ipaddress.ip_network(c, strict=False).version == net.version
        )
    except (ValueError, TypeError):
        return False


def _scoped_ports(source: NeutronReader, scope: Scope) -> list[NeutronPort]:
    if scope.port is not None:
        return source.ports(ids=[scope.port])
    if scope.network is not None:
        return source.ports(network_ids=[scope.network])
    if scope.subnet is not None:
        return source.ports(subnet_ids=[scope.subnet])
    return source.ports()


def _subnets_phase(
    writer: RegionWriter, source: NeutronReader, scope: Scope, res: PhaseResult, **kw: Any
) -> None:
    prefix = writer.dhcp_subnet_prefix()
    t0 = time.perf_counter()
    stored = _list(writer, prefix)
    res.etcd_read_ms = _ms(t0)
    t0 = time.perf_counter()
    if scope.subnet is not None:
        found_subnets = source.subnets(ids=[scope.subnet])
    elif scope.network is not None:
        found_subnets = source.subnets(network_ids=[scope.network])
    else:
        found_subnets = source.subnets()
    res.neutron_read_ms = _ms(t0)
    desired: dict[str, Document] = {}
    for subnet in found_subnets:
        record = subnets.subnet_to_dhcp_record(subnet)
        if record is not None:
            desired[subnet.id] = record
    if scope.subnet is not None:
        stored = {k: v for k, v in stored.items() if k == scope.subnet}
    elif scope.network is not None:
        ids = {s.id for s in found_subnets}
        stored = {
            k: v
            for k, v in stored.items()
            if k in ids or (load_document(v) or {}).get("network_id") == scope.network
        }
    res.etcd_items, res.neutron_items = len(stored), len(found_subnets)

    def reread(subnet_id: str) -> Document | None:
        found = source.subnets(ids=[subnet_id])
        return subnets.subnet_to_dhcp_record(found[0]) if found else None

    _Phase(writer, res, prefix=prefix, typed=None, **kw).run(stored, desired, reread)


def _policy_doc(writer: RegionWriter, data: SecurityGroupData, res: PhaseResult) -> Document:
    sg, groups = data
    spec, errors = security_groups.policy_spec_partial(sg.id, sg.rules, groups)
    for err in errors:
        res.errors += 1
        res.messages.append(f"security group {sg.id}: rule left out (fail closed): {err}")
    return security_groups.policy_document(sg.id, spec, region=writer.region)


def _policies_phase(
    writer: RegionWriter, source: NeutronReader, scope: Scope, res: PhaseResult, **kw: Any
) -> None:
    prefix = writer.policy_prefix()
    t0 = time.perf_counter()
    stored = {
        k: v
        for k, v in _list(writer, prefix).items()
        if k.startswith(security_groups.SG_POLICY_PREFIX)
    }
    res.etcd_read_ms = _ms(t0)
    t0 = time.perf_counter()
    ids: set[str] | None = None
    if scope.security_group is not None:
        ids = {scope.security_group}
    elif not scope.everything:
        ids = {sg.id for p in _scoped_ports(source, scope) for sg in p.security_groups}
    groups = source.security_groups(None if ids is None else sorted(ids))
    res.neutron_read_ms = _ms(t0)
    desired = {security_groups.policy_name(d[0].id): _policy_doc(writer, d, res) for d in groups}
    if ids is not None:
        names = {security_groups.policy_name(i) for i in ids}
        stored = {k: v for k, v in stored.items() if k in names}
    res.etcd_items, res.neutron_items = len(stored), len(groups)

    def reread(name: str) -> Document | None:
        found = source.security_groups([name[len(security_groups.SG_POLICY_PREFIX) :]])
        return _policy_doc(writer, found[0], PhaseResult(POLICIES)) if found else None

    def typed(name: str, doc: Document) -> Resource:
        return security_groups.to_network_policy(doc)

    _Phase(writer, res, prefix=prefix, typed=typed, **kw).run(stored, desired, reread)


def _endpoint_docs(
    writer: RegionWriter, port: NeutronPort, res: PhaseResult | None
) -> dict[str, Document]:
    docs: dict[str, Document] = {}
    for host in endpoints.endpoint_hosts(port):
        try:
            doc = endpoints.endpoint_document(port, region=writer.region, host=host)
        except TranslationError as exc:
            if res is not None:
                res.errors += 1
                res.messages.append(str(exc))
            continue
        docs[doc["metadata"]["name"]] = doc
    return docs


def _endpoints_phase(
    writer: RegionWriter, source: NeutronReader, scope: Scope, res: PhaseResult, **kw: Any
) -> None:
    prefix = writer.workload_endpoint_prefix()
    t0 = time.perf_counter()
    stored = _list(writer, prefix)
    res.etcd_read_ms = _ms(t0)
    t0 = time.perf_counter()
    ports = _scoped_ports(source, scope)
    subnet_cidr: str | None = None
    subnet_net: str | None = None
    if scope.subnet is not None:
        found = source.subnets(ids=[scope.subnet])
        if found:
            subnet_cidr, subnet_net = found[0].cidr, found[0].network_id
    res.neutron_read_ms = _ms(t0)
    desired: dict[str, Document] = {}
    port_of: dict[str, str] = {}
    for port in ports:
        for name, doc in _endpoint_docs(writer, port, res).items():
            desired[name] = doc
            port_of[name] = port.id
    if not scope.everything:
        port_ids = {p.id for p in ports}

        def in_scope(name: str, kv: KeyValue) -> bool:
            if name in desired:
                return True
            doc = load_document(kv) or {}
            spec = doc.get("spec") or {}
            annotations = (doc.get("metadata") or {}).get("annotations") or {}
            network = annotations.get(endpoints.NETWORK_ID_ANNOTATION)
            if spec.get("endpoint") in port_ids or spec.get("endpoint") == scope.port:
                return True
            if scope.network is not None:
                return bool(network == scope.network)
            if scope.subnet is not None and subnet_cidr is not None:
                return network == subnet_net and _in_net(spec.get("ipNetworks") or [], subnet_cidr)
            return False

        stored = {k: v for k, v in stored.items() if in_scope(k, v)}
    res.etcd_items, res.neutron_items = len(stored), len(ports)

    def reread(name: str) -> Document | None:
        port = source.port(port_of[name])
        return None if port is None else _endpoint_docs(writer, port, None).get(name)

    def typed(name: str, doc: Document) -> Resource:
        return endpoints.to_workload_endpoint(doc, port_of[name])

    _Phase(writer, res, prefix=prefix, typed=typed, **kw).run(stored, desired, reread)


_PHASE_FUNCS = {SUBNETS: _subnets_phase, POLICIES: _policies_phase, ENDPOINTS: _endpoints_phase}


def phases_for(scope: Scope) -> tuple[str, ...]:
    """Which phases a scope runs (a security-group scope has no subnets or endpoints)."""
    if scope.security_group is not None:
        return (POLICIES,)
    if scope.port is not None:
        return (POLICIES, ENDPOINTS)
    return PHASES


def resync(
    writer: RegionWriter,
    source: NeutronReader,
    scope: Scope | None = None,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ResyncResult:
    """Resync ``writer``'s region from ``source`` (see the module docstring). Never raises for
    a datastore or Neutron failure (any :class:`~regionmesh.errors.RegionmeshError`): the
    result then has ``ok=False`` and ``error``, and the failure is logged with its traceback.
    Anything else is a bug and propagates."""
    scope = scope or Scope()
    result = ResyncResult(
        writer.region, scope.describe(), dry_run, started_at=timestamp_now(microseconds=True)
    )
    t0 = time.perf_counter()
    for kind in phases_for(scope):
        phase = PhaseResult(kind)
        result.phases[kind] = phase
        tp = time.perf_counter()
        try:
            _PHASE_FUNCS[kind](writer, source, scope, phase, dry_run=dry_run, progress=progress)
        except RegionmeshError as exc:  # datastore/Neutron failure: report, keep the server up
            LOG.warning("resync phase %s failed", kind, exc_info=True)
            result.ok = False
            result.error = f"{kind}: {type(exc).__name__}: {exc}"
            phase.total_ms = _ms(tp)
            break
        phase.total_ms = _ms(tp)
    result.total_ms = _ms(t0)
    result.finished_at = timestamp_now(microseconds=True)
    return result
