"""The ML2 driver's background process: election, status watch, startup resync.

:class:`RegionmeshWorker` is what the driver's ``get_workers`` hands to Neutron;
``neutron-periodic-workers`` runs it (never the API workers). It takes part in the region's
election (:class:`~regionmesh.openstack.election.Elector`); while this process is the master it
runs the status watcher (:class:`~regionmesh.openstack.status.StatusWatcher`: agent heartbeats
→ Neutron agent rows, per-port status → Neutron port status, no RPC involved), the periodic
etcd compaction (:class:`~regionmesh.openstack.compaction.Compactor`) and, once per
mastership, the startup resync (:func:`regionmesh.openstack.resync.resync`, unless
``[calico] startup_resync = never``). :class:`Shared` is the per-process state the driver and
the worker share. Binding, hooks and translation are elsewhere
(:mod:`~regionmesh.openstack.mech_driver`, :mod:`~regionmesh.openstack.sync`).
"""

from __future__ import annotations

# neutron must be imported before anything from oslo_service (recipe §4)
from neutron.db import provisioning_blocks  # isort: skip

import os
import threading
from typing import Any

from neutron_lib import constants as n_const
from neutron_lib import context as n_context
from neutron_lib import worker as n_worker
from neutron_lib.callbacks import resources
from neutron_lib.plugins import directory
from oslo_log import log as logging

from regionmesh.datastore import Datastore, open_datastore
from regionmesh.errors import PermissionDenied, RegionmeshError
from regionmesh.openstack import neutron_db, resync
from regionmesh.openstack.calico_options import CalicoOptions, datastore_url
from regionmesh.openstack.compaction import Compactor
from regionmesh.openstack.election import Elector
from regionmesh.openstack.mirror_worker import MirrorWorker
from regionmesh.openstack.status import StatusWatcher
from regionmesh.openstack.writer import RegionWriter

LOG = logging.getLogger(__name__)

AGENT_TYPE = "Calico per-host agent (felix)"
AGENT_BINARY = "calico-felix"


class Shared:
    """Per-process state of the driver and its worker: options and a lazily opened datastore
    (re-opened after a fork)."""

    def __init__(self, opts: CalicoOptions) -> None:
        self.opts = opts
        self.url = datastore_url(opts)
        self._lock = threading.Lock()
        self._pid = -1
        self._writer: RegionWriter | None = None

    def writer(self) -> RegionWriter:
        with self._lock:
            if self._writer is None or self._pid != os.getpid():
                self._writer = RegionWriter(open_datastore(self.url), self.opts.openstack_region)
                self._pid = os.getpid()
            return self._writer


def _mirror_backend() -> neutron_db.NeutronAddressGroups:
    return neutron_db.NeutronAddressGroups(directory.get_plugin(), n_context.get_admin_context())


class RegionmeshWorker(n_worker.BaseWorker):
    """The driver's background roles, run by ``neutron-periodic-workers`` (never the API).

    Takes part in the region's election (:class:`~regionmesh.openstack.election.Elector`).
    While this process is the master it runs the status watcher (agent heartbeats → Neutron
    agent rows, per-port status → Neutron port status), the periodic etcd compaction (unless
    ``[calico] etcd_compaction_period_mins = 0``; one compactor across all regions, see
    :mod:`~regionmesh.openstack.compaction`) and, once per mastership, the startup resync
    (unless ``[calico] startup_resync = never``).
    """

    def __init__(self, shared: Shared) -> None:
        super().__init__(worker_process_count=1, desc="regionmesh worker")
        self._shared = shared
        self._lock = threading.Lock()
        self._elector: Elector | None = None
        self._elector_thread: threading.Thread | None = None
        self._watcher: StatusWatcher | None = None
        self._mirrors: MirrorWorker | None = None
        self._compactor: Compactor | None = None
        self._stores: list[Datastore] = []

    def _store(self) -> Datastore:
        store = open_datastore(self._shared.url)
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
                self._start_mirrors()
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
                self._stop_mirrors()

    def _start_mirrors(self) -> None:
        """The address-group mirrors of the other regions' SGs (issue 13), master only."""
        opts = self._shared.opts
        if not opts.address_group_mirrors or self._mirrors is not None:
            return
        self._mirrors = MirrorWorker(
            self._store(), opts.openstack_region, _mirror_backend,
            regions=opts.address_group_mirror_regions or None,
            interval=float(opts.address_group_mirror_interval),
        )  # fmt: skip
        self._mirrors.start()

    def _stop_mirrors(self) -> None:
        if self._mirrors is not None:
            self._mirrors.stop()
            self._mirrors = None

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
        except RegionmeshError:
            LOG.exception("regionmesh: cannot update FelixConfiguration/ClusterInformation")
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
            self._stop_mirrors()
            if self._compactor is not None:
                self._compactor.stop()
                self._compactor = None
        if self._elector is not None:
            self._elector.stop()  # steps down: another server takes over at once
            if self._elector_thread is not None:
                self._elector_thread.join(5.0)

    def reset(self) -> None:
        pass
