"""regionmesh's ML2 mechanism driver: thin glue between Neutron's hooks and the datastore.

Loaded by neutron-server 29 through the entry point ``neutron.ml2.mechanism_drivers:
regionmesh`` (``[ml2] mechanism_drivers = regionmesh``). It

* reads ``[calico]`` at :meth:`initialize` and refuses to start on an invalid region
  (the error names option, value and rule);
* binds ports with vif type ``tap`` on ``local``/``flat`` segments, only on hosts whose agent
  row ("Calico per-host agent (felix)") is alive. The rows come from :class:`RegionmeshWorker`,
  which ``neutron-periodic-workers`` runs: in the region's elected master it watches this
  region's heartbeat keys (``/calico/felix/v2/region-<r>/host/<h>/status``) into Neutron agent
  rows and the agents' per-port status keys into port status (no RPC involved), and runs the
  startup resync.
  When a bind finds no live agent but the host heartbeats under another region, it logs an
  ERROR naming host, regions and the fix and records a finding in the datastore;
* writes WorkloadEndpoints (port hooks), NetworkPolicies (security-group and rule callbacks)
  and DHCP subnet records (subnet hooks) with CAS through :class:`~regionmesh.openstack.writer.
  RegionWriter`;
* refuses, in ``create_subnet_precommit``, a subnet overlapping another region's (HTTP 409),
  and refuses security-group rules it could not translate faithfully (HTTP 400).

Translation is :mod:`regionmesh.openstack.translate`; reading Neutron's DB is
:mod:`regionmesh.openstack.neutron_db`; resync, election and the status watch live in
:mod:`~regionmesh.openstack.resync`, :mod:`~regionmesh.openstack.election` and
:mod:`~regionmesh.openstack.status`. Without a region, :meth:`initialize` refuses to start
when the datastore already holds ``openstack-region-*`` data.
"""

from __future__ import annotations

# neutron must be imported before anything from oslo_service (recipe §4)
from neutron.plugins.ml2.drivers import mech_agent  # isort: skip

from neutron.db import provisioning_blocks  # isort: skip

import os
import threading
import time
from typing import Any

from neutron_lib import constants as n_const
from neutron_lib import context as n_context
from neutron_lib import exceptions as n_exc
from neutron_lib import worker as n_worker
from neutron_lib.api.definitions import portbindings
from neutron_lib.callbacks import events, registry, resources
from neutron_lib.plugins import directory
from neutron_lib.plugins.ml2 import api
from oslo_config import cfg
from oslo_log import log as logging

from regionmesh.datastore import Datastore, open_datastore
from regionmesh.errors import (
    AuthenticationFailed,
    ConfigError,
    PermissionDenied,
    RegionmeshError,
    TranslationError,
)
from regionmesh.openstack import neutron_db, resync, translate
from regionmesh.openstack.calico_options import CalicoOptions, datastore_url, load_options
from regionmesh.openstack.compaction import Compactor
from regionmesh.openstack.election import Elector
from regionmesh.openstack.status import StatusWatcher
from regionmesh.openstack.writer import RegionWriter

LOG = logging.getLogger(__name__)

AGENT_TYPE = "Calico per-host agent (felix)"
AGENT_BINARY = "calico-felix"
NETWORK_TYPES = (n_const.TYPE_LOCAL, n_const.TYPE_FLAT)
REGION_MISMATCH = "region-mismatch"
UNTRANSLATABLE_SG = "untranslatable-security-group"
# ML2 calls bind_port up to 10 times per request: look a host up (and log) once per window
MISMATCH_REPORT_INTERVAL = 60.0


class CrossRegionSubnetOverlap(n_exc.Conflict):
    """A subnet overlaps another region's subnet (HTTP 409)."""

    message = "%(reason)s"


def _open_datastore(url: str) -> Datastore:
    return open_datastore(url)


_STATUS_ONLY_FIELDS = frozenset({"status", "updated_at", "revision_number"})


def _status_only_change(old: Any, new: Any) -> bool:
    """True when a port update changed nothing but its status (networking-calico's rule)."""
    if not old or not new:
        return False
    changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
    return bool(changed) and changed <= _STATUS_ONLY_FIELDS


class _Shared:
    """Per-process state: options and a lazily opened datastore (re-opened after a fork)."""

    def __init__(self, opts: CalicoOptions) -> None:
        self.opts = opts
        self.url = datastore_url(opts)
        self._lock = threading.Lock()
        self._pid = -1
        self._writer: RegionWriter | None = None

    def writer(self) -> RegionWriter:
        with self._lock:
            if self._writer is None or self._pid != os.getpid():
                self._writer = RegionWriter(_open_datastore(self.url), self.opts.openstack_region)
                self._pid = os.getpid()
            return self._writer


class RegionmeshWorker(n_worker.BaseWorker):
    """The driver's background roles, run by ``neutron-periodic-workers`` (never the API).

    Takes part in the region's election (:class:`~regionmesh.openstack.election.Elector`).
    While this process is the master it runs the status watcher (agent heartbeats → Neutron
    agent rows, per-port status → Neutron port status), the periodic etcd compaction (unless
    ``[calico] etcd_compaction_period_mins = 0``; one compactor across all regions, see
    :mod:`~regionmesh.openstack.compaction`) and, once per mastership, the startup resync
    (unless ``[calico] startup_resync = never``).
    """

    def __init__(self, shared: _Shared) -> None:
        super().__init__(worker_process_count=1, desc="regionmesh worker")
        self._shared = shared
        self._lock = threading.Lock()
        self._elector: Elector | None = None
        self._elector_thread: threading.Thread | None = None
        self._watcher: StatusWatcher | None = None
        self._compactor: Compactor | None = None
        self._stores: list[Datastore] = []

    def _store(self) -> Datastore:
        store = _open_datastore(self._shared.url)
        self._stores.append(store)
        return store

    def start(self, **kwargs: Any) -> None:
        super().start(**kwargs)
        plugin = directory.get_plugin()
        revive = getattr(plugin, "_rebind_on_revive_agent_types", None)
        if isinstance(revive, list) and AGENT_TYPE not in revive:
            revive.append(AGENT_TYPE)  # private ML2 attribute: rebind failed ports on revival
        opts = self._shared.opts
        self._elector = Elector(
            self._store(), opts.openstack_region, name=opts.elector_name,
            on_change=self._on_mastership,
        )  # fmt: skip
        self._elector_thread = self._elector.start()
        LOG.info(
            "regionmesh worker started for region %s (pid %d)", opts.openstack_region, os.getpid()
        )

    def _on_mastership(self, master: bool) -> None:
        with self._lock:
            if master and self._watcher is None:
                self._watcher = StatusWatcher(
                    self._store(), self._shared.opts.openstack_region,
                    on_agent=self._report_agent, on_port_status=self._report_port_status,
                    refresh_interval=float(self._shared.opts.felix_status_interval),
                )  # fmt: skip
                self._watcher.start()
                opts = self._shared.opts
                if opts.etcd_compaction_period_mins > 0:
                    self._compactor = Compactor(
                        self._store(), period_secs=60 * opts.etcd_compaction_period_mins,
                        min_revisions=opts.etcd_compaction_min_revisions,
                    )  # fmt: skip
                    self._compactor.start()
                if self._shared.opts.startup_resync:
                    threading.Thread(
                        target=self._startup_resync, name="regionmesh-resync", daemon=True
                    ).start()
            elif not master and self._watcher is not None:
                self._watcher.stop()
                self._watcher = None
                if self._compactor is not None:
                    self._compactor.stop()
                    self._compactor = None

    def _startup_resync(self) -> None:
        plugin = directory.get_plugin()
        source = neutron_db.NeutronDbSource(plugin, n_context.get_admin_context())
        writer = RegionWriter(self._store(), self._shared.opts.openstack_region)
        try:
            writer.ensure_cluster_config()
        except PermissionDenied as exc:
            LOG.error(
                "regionmesh: FelixConfiguration/ClusterInformation 'default' lack the OpenStack "
                "settings and this region may not write them (%s); the operator sets them once "
                "with 'regionmesh etcd-auth apply'",
                exc,
            )
        except RegionmeshError as exc:
            LOG.error("regionmesh: cannot update FelixConfiguration/ClusterInformation: %s", exc)
        result = resync.resync(writer, source)
        summary = ", ".join(
            f"{k}: {p.correct} correct, {p.created} created, {p.updated} updated, "
            f"{p.deleted} deleted, {p.conflicts} conflicts"
            for k, p in result.phases.items()
        )
        if result.ok:
            LOG.info("regionmesh startup resync done in %.0f ms (%s)", result.total_ms, summary)
        else:
            LOG.error("regionmesh startup resync failed: %s (%s)", result.error, summary)

    def _report_agent(self, host: str, first: bool) -> None:
        status, _ = directory.get_plugin().create_or_update_agent(
            n_context.get_admin_context(),
            {
                "agent_type": AGENT_TYPE,
                "binary": AGENT_BINARY,
                "host": host,
                "topic": n_const.L2_AGENT_TOPIC,
                "configurations": {"region": self._shared.opts.openstack_region},
                "start_flag": first,
            },
        )
        if status != "alive":
            LOG.info("regionmesh: agent on %s is %s", host, status)

    def _report_port_status(self, host: str, port_id: str, status: str) -> None:
        plugin = directory.get_plugin()
        ctx = n_context.get_admin_context()
        if status == n_const.PORT_STATUS_ACTIVE:
            provisioning_blocks.provisioning_complete(
                ctx, port_id, resources.PORT, provisioning_blocks.L2_AGENT_ENTITY
            )
        plugin.update_port_status(ctx, port_id, status, host=host)
        LOG.debug("regionmesh: port %s on %s is %s", port_id, host, status)

    def wait(self) -> None:
        if self._elector_thread is not None:
            self._elector_thread.join()

    def stop(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            if self._watcher is not None:
                self._watcher.stop()
                self._watcher = None
            if self._compactor is not None:
                self._compactor.stop()
                self._compactor = None
        if self._elector is not None:
            self._elector.stop()  # steps down: another server takes over at once
            if self._elector_thread is not None:
                self._elector_thread.join(5.0)

    def reset(self) -> None:
        pass


class RegionmeshMechanismDriver(mech_agent.SimpleAgentMechanismDriverBase):
    """ML2 mechanism driver writing Calico-compatible data for one OpenStack region."""

    def __init__(self) -> None:
        super().__init__(
            AGENT_TYPE, portbindings.VIF_TYPE_TAP, {portbindings.CAP_PORT_FILTER: True}
        )
        self._shared: _Shared | None = None
        self._mismatch_checked: dict[str, float] = {}
        self._mismatch_lock = threading.Lock()

    # ------------------------------------------------------------------ start-up

    def initialize(self) -> None:
        super().initialize()
        try:
            opts = load_options(cfg.CONF)
            self._shared = _Shared(opts)
        except ConfigError as exc:
            LOG.critical("regionmesh: %s", exc)
            raise SystemExit(f"regionmesh mechanism driver: {exc}") from exc
        self._check_credentials()
        if opts.openstack_region is None:
            self._refuse_unregioned_in_multiregion_store()
            LOG.warning(
                "regionmesh: [calico] openstack_region is not set; every region that shares "
                "one datastore must set it"
            )
        LOG.info(
            "regionmesh: region %s, datastore %s",
            opts.openstack_region,
            self._shared.url.split("@")[-1],
        )
        for event in (events.AFTER_CREATE, events.AFTER_UPDATE, events.AFTER_DELETE):
            registry.subscribe(self._on_security_group, resources.SECURITY_GROUP, event)
            registry.subscribe(self._on_security_group_rule, resources.SECURITY_GROUP_RULE, event)
        registry.subscribe(
            self._check_security_group_rule, resources.SECURITY_GROUP_RULE, events.PRECOMMIT_CREATE
        )

    def _check_credentials(self) -> None:
        """Refuse to start when etcd rejects the configured user or password (a wrong password
        is a start-up error, not an error on every later write); an unreachable etcd is not."""
        try:
            self.shared.writer().ds.current_revision()
        except AuthenticationFailed as exc:
            LOG.critical("regionmesh: %s", exc)
            raise SystemExit(f"regionmesh mechanism driver: {exc}") from exc
        except RegionmeshError as exc:
            LOG.warning("regionmesh: cannot reach the datastore at start-up: %s", exc)

    def _refuse_unregioned_in_multiregion_store(self) -> None:
        """Without a region, stop when the store already holds regions' data (§1.4 hazard)."""
        try:
            namespaces = self.shared.writer().regioned_namespaces()
        except RegionmeshError as exc:
            LOG.critical("regionmesh: cannot read the datastore: %s", exc)
            raise SystemExit(
                f"regionmesh mechanism driver: cannot read the datastore: {exc}"
            ) from exc
        if not namespaces:
            return
        message = (
            "[calico] openstack_region is not set, but the datastore already holds data of "
            f"OpenStack regions ({', '.join(namespaces)}). A server without a region would "
            "write into the shared 'openstack' namespace next to them; every region that "
            "shares one datastore must set [calico] openstack_region. Refusing to start."
        )
        LOG.critical("regionmesh: %s", message)
        raise SystemExit(f"regionmesh mechanism driver: {message}")

    @property
    def shared(self) -> _Shared:
        if self._shared is None:
            raise RegionmeshError("regionmesh mechanism driver used before initialize()")
        return self._shared

    def get_workers(self) -> list[Any]:
        return [RegionmeshWorker(self.shared)]

    # ------------------------------------------------------------------ binding

    def get_allowed_network_types(self, agent: Any = None) -> tuple[str, ...]:
        return NETWORK_TYPES

    def get_mappings(self, agent: Any) -> dict[str, Any]:
        return {}

    def check_segment_for_agent(self, segment: Any, agent: Any) -> bool:
        return bool(
            agent["agent_type"] == self.agent_type
            and segment[api.NETWORK_TYPE] in self.get_allowed_network_types()
        )

    def bind_port(self, context: Any) -> None:
        super().bind_port(context)
        if getattr(context, "_new_bound_segment", None) is not None:
            return
        host = context.host
        if not host or any(a["alive"] for a in context.host_agents(self.agent_type)):
            return
        self._report_region_mismatch(host)

    def _report_region_mismatch(self, host: str) -> None:
        now = time.monotonic()
        with self._mismatch_lock:
            last = self._mismatch_checked.get(host)
            if last is not None and now - last < MISMATCH_REPORT_INTERVAL:
                return
            if len(self._mismatch_checked) > 10000:
                self._mismatch_checked.clear()
            self._mismatch_checked[host] = now
        writer = self.shared.writer()
        try:
            regions = [r for r in writer.heartbeat_regions(host) if r != writer.region]
        except RegionmeshError:
            LOG.exception("regionmesh: cannot read heartbeats for %s", host)
            return
        if not regions:
            return
        mine = writer.region
        theirs = ", ".join(r or "(no region)" for r in regions)
        message = (
            f"cannot bind ports on host {host}: its agent heartbeats under OpenStack region "
            f"{theirs}, but this neutron-server serves region {mine or '(no region)'}. "
            f"Fix: set OpenstackRegion={mine} for the agent on {host} (felix.cfg [global] "
            f"OpenstackRegion, or FELIX_OPENSTACKREGION) or set binding:host_id to a host of "
            f"region {mine}"
        )
        LOG.error("regionmesh: %s", message)
        try:
            writer.record_finding(
                REGION_MISMATCH, host, message, host=host, host_regions=regions, server_region=mine
            )
        except RegionmeshError:
            LOG.exception("regionmesh: cannot record the region-mismatch finding for %s", host)

    # ------------------------------------------------------------------ ports

    def create_port_postcommit(self, context: Any) -> None:
        self._sync_port(context, context.current["id"], [context.current])

    def update_port_postcommit(self, context: Any) -> None:
        if _status_only_change(context.original, context.current):
            return
        self._sync_port(context, context.current["id"], [context.original, context.current])

    def delete_port_postcommit(self, context: Any) -> None:
        port = context.current
        writer = self.shared.writer()
        for host in self._candidate_hosts([port]):
            name = translate.workload_endpoint_name(
                host, translate.ORCHESTRATOR, port.get("device_id") or "", port["id"]
            )
            self._guarded(writer.sync_resource, writer.workload_endpoint_key(name), None)

    @staticmethod
    def _candidate_hosts(ports: list[Any]) -> list[str]:
        hosts: list[str] = []
        for port in ports:
            if not port:
                continue
            profile = port.get(portbindings.PROFILE) or {}
            for host in (port.get(portbindings.HOST_ID), profile.get("migrating_to")):
                if host and host not in hosts:
                    hosts.append(host)
        return hosts

    def _sync_port(self, context: Any, port_id: str, versions: list[Any]) -> None:
        writer = self.shared.writer()
        plugin = directory.get_plugin()
        port = neutron_db.read_port(plugin, context.plugin_context, port_id)
        old_names: set[str] = set()
        for version in versions:
            if not version:
                continue
            for host in self._candidate_hosts([version]):
                old_names.add(
                    translate.workload_endpoint_name(
                        host, translate.ORCHESTRATOR, version.get("device_id") or "", version["id"]
                    )
                )
        wanted: dict[str, dict[str, Any]] = {}
        if port is not None:
            for host in translate.endpoint_hosts(port):
                doc = translate.port_to_workload_endpoint(port, region=writer.region, host=host)
                wanted[doc["metadata"]["name"]] = doc
            if wanted:  # Felix should see the policy before the endpoint
                for sg in port.security_groups:
                    self._sync_security_group(context.plugin_context, sg.id)
        for name in sorted(old_names - set(wanted)):
            self._guarded(writer.sync_resource, writer.workload_endpoint_key(name), None)
        for name, doc in wanted.items():
            result = self._guarded(writer.sync_resource, writer.workload_endpoint_key(name), doc)
            LOG.debug("regionmesh: WorkloadEndpoint %s %s", name, result)

    @staticmethod
    def _guarded(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except PermissionDenied as exc:  # a role problem, not a bug: one line, no traceback
            LOG.error("regionmesh: datastore write of %s refused: %s", args[0], exc)
            return None
        except RegionmeshError:
            LOG.exception("regionmesh: datastore write failed (%s); resync will repair it", args[0])
            return None

    # ------------------------------------------------------------------ subnets

    def create_subnet_precommit(self, context: Any) -> None:
        subnet = context.current
        try:
            overlap = self.shared.writer().claim_subnet(
                subnet["id"], str(subnet["cidr"]), subnet["network_id"]
            )
        except RegionmeshError as exc:
            raise n_exc.InvalidInput(
                error_message=f"regionmesh cannot check subnet {subnet['cidr']} against other "
                f"regions: {exc}"
            ) from exc
        if overlap is not None:
            LOG.warning("regionmesh: refusing subnet %s: %s", subnet["id"], overlap.message())
            raise CrossRegionSubnetOverlap(reason=overlap.message())

    def create_subnet_postcommit(self, context: Any) -> None:
        self._sync_subnet(context.current)

    def update_subnet_postcommit(self, context: Any) -> None:
        self._sync_subnet(context.current)

    def delete_subnet_postcommit(self, context: Any) -> None:
        writer = self.shared.writer()
        self._guarded(writer.sync_dhcp_subnet, context.current["id"], None)
        self._guarded(writer.release_subnet, context.current["id"])

    def _sync_subnet(self, subnet: Any) -> None:
        record = translate.subnet_to_dhcp_record(neutron_db.subnet_from_dict(subnet))
        self._guarded(self.shared.writer().sync_dhcp_subnet, subnet["id"], record)

    # ------------------------------------------------------------------ security groups

    def _check_security_group_rule(
        self, resource: str, event: str, trigger: Any, payload: Any = None
    ) -> None:
        """PRECOMMIT_CREATE: refuse a rule regionmesh could not enforce faithfully."""
        rule = payload.states[0] if payload is not None and payload.states else None
        if not isinstance(rule, dict):
            return
        parsed = neutron_db.rule_from_dict(dict(rule, id=payload.resource_id or ""))
        groups: dict[str, list[str]] = {}
        if parsed.remote_address_group_id:
            groups = neutron_db.read_address_groups(
                directory.get_plugin(), payload.context, [parsed]
            )
        try:
            translate.rule_to_calico(parsed, groups)
        except TranslationError as exc:
            raise n_exc.InvalidInput(
                error_message=f"regionmesh cannot enforce this rule: {exc}"
            ) from exc

    def _on_security_group(
        self, resource: str, event: str, trigger: Any, payload: Any = None
    ) -> None:
        if payload is None or not payload.resource_id:
            return
        self._sync_security_group(payload.context, payload.resource_id)

    def _on_security_group_rule(
        self, resource: str, event: str, trigger: Any, payload: Any = None
    ) -> None:
        if payload is None:
            return
        sg_id = (payload.metadata or {}).get("security_group_id")
        state = payload.states[0] if payload.states else None
        if not sg_id and isinstance(state, dict):
            sg_id = state.get("security_group_id")
        if sg_id:
            self._sync_security_group(payload.context, sg_id)

    def _sync_security_group(self, context: Any, sg_id: str) -> None:
        writer = self.shared.writer()
        key = writer.policy_key(translate.policy_name(sg_id))
        admin = n_context.get_admin_context() if context is None else context.elevated()
        found = neutron_db.read_security_group(directory.get_plugin(), admin, sg_id)
        if found is None:
            self._guarded(writer.sync_resource, key, None)
            return
        sg, groups = found
        spec, errors = translate.policy_spec_partial(sg.id, sg.rules, groups)
        if errors:
            message = "; ".join(str(e) for e in errors)
            LOG.error(
                "regionmesh: security group %s: %d rule(s) left out (fail closed): %s",
                sg.id, len(errors), message,
            )  # fmt: skip
            self._guarded(writer.record_finding, UNTRANSLATABLE_SG, sg.id, message)
        doc = translate.policy_document(sg.id, spec, region=writer.region)
        self._guarded(writer.sync_resource, key, doc)
