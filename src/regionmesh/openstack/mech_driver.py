"""regionmesh's ML2 mechanism driver: thin glue between Neutron's hooks and the datastore.

Loaded by neutron-server 29 through the entry point ``neutron.ml2.mechanism_drivers:
regionmesh`` (``[ml2] mechanism_drivers = regionmesh``). It

* reads ``[calico]`` at :meth:`initialize` and refuses to start on an invalid region
  (the error names option, value and rule); without a region it refuses to start when the
  datastore already holds ``openstack-region-*`` data;
* binds ports with vif type ``tap`` on ``local``/``flat`` segments, only on hosts whose agent
  row ("Calico per-host agent (felix)") is alive. The rows come from
  :class:`~regionmesh.openstack.worker.RegionmeshWorker` (election, status watch, startup
  resync). When a bind finds no live agent but the host heartbeats under another region, it
  logs an ERROR naming host, regions and the fix and records a finding in the datastore;
* turns each port, subnet and security-group hook into one call of
  :mod:`regionmesh.openstack.sync` over a :class:`~regionmesh.openstack.neutron_db.
  NeutronDbSource` reader (the decisions, unit-tested without Neutron, live there);
* refuses, in ``create_subnet_precommit``, a subnet overlapping another region's (HTTP 409),
  and refuses security-group rules it could not translate faithfully (HTTP 400).

A WorkloadEndpoint the model refuses (``TranslationError``) is logged at ERROR and recorded
as an ``untranslatable-port`` finding; it is never written for the hosts to drop.
"""

from __future__ import annotations

# neutron must be imported before anything from oslo_service (recipe §4)
from neutron.plugins.ml2.drivers import mech_agent  # isort: skip

import threading
import time
from typing import Any

from neutron_lib import constants as n_const
from neutron_lib import context as n_context
from neutron_lib import exceptions as n_exc
from neutron_lib.api.definitions import portbindings
from neutron_lib.callbacks import events, registry, resources
from neutron_lib.plugins import directory
from neutron_lib.plugins.ml2 import api
from oslo_config import cfg
from oslo_log import log as logging

from regionmesh.datastore import keys
from regionmesh.errors import AuthenticationFailed, ConfigError, RegionmeshError, TranslationError
from regionmesh.openstack import neutron_db, sync, translate
from regionmesh.openstack.calico_options import load_options
from regionmesh.openstack.worker import AGENT_TYPE, RegionmeshWorker, Shared

LOG = logging.getLogger(__name__)

NETWORK_TYPES = (n_const.TYPE_LOCAL, n_const.TYPE_FLAT)
# ML2 calls bind_port up to 10 times per request: look a host up (and log) once per window
MISMATCH_REPORT_INTERVAL = 60.0


class CrossRegionSubnetOverlap(n_exc.Conflict):
    """A subnet overlaps another region's subnet (HTTP 409)."""

    message = "%(reason)s"


_STATUS_ONLY_FIELDS = frozenset({"status", "updated_at", "revision_number"})


def _status_only_change(old: Any, new: Any) -> bool:
    """True when a port update changed nothing but its status (networking-calico's rule)."""
    if not old or not new:
        return False
    changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
    return bool(changed) and changed <= _STATUS_ONLY_FIELDS


def _reader(context: Any) -> neutron_db.NeutronDbSource:
    """A reader over Neutron's DB in the hook's context (security groups read as admin, as
    a port may use a group of another project)."""
    admin = n_context.get_admin_context() if context is None else context.elevated()
    return neutron_db.NeutronDbSource(
        directory.get_plugin(), admin if context is None else context, sg_context=admin
    )


class RegionmeshMechanismDriver(mech_agent.SimpleAgentMechanismDriverBase):
    """ML2 mechanism driver writing Calico-compatible data for one OpenStack region."""

    def __init__(self) -> None:
        super().__init__(
            AGENT_TYPE, portbindings.VIF_TYPE_TAP, {portbindings.CAP_PORT_FILTER: True}
        )
        self._shared: Shared | None = None
        self._mismatch_checked: dict[str, float] = {}
        self._mismatch_lock = threading.Lock()

    # ------------------------------------------------------------------ start-up

    def initialize(self) -> None:
        super().initialize()
        try:
            opts = load_options(cfg.CONF)
            self._shared = Shared(opts)
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
        for event in (events.AFTER_UPDATE, events.AFTER_DELETE):
            registry.subscribe(self._on_address_group, resources.ADDRESS_GROUP, event)

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
    def shared(self) -> Shared:
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
        try:
            message = sync.region_mismatch(self.shared.writer(), host)
        except RegionmeshError:
            LOG.exception("regionmesh: cannot read heartbeats for %s", host)
            return
        if message is not None:
            LOG.error("regionmesh: %s", message)

    # ------------------------------------------------------------------ ports

    def create_port_postcommit(self, context: Any) -> None:
        self._sync_port(context, [context.current])

    def update_port_postcommit(self, context: Any) -> None:
        if _status_only_change(context.original, context.current):
            return
        self._sync_port(context, [context.original, context.current])

    def delete_port_postcommit(self, context: Any) -> None:
        sync.delete_port(self.shared.writer(), context.current)

    def _sync_port(self, context: Any, versions: list[Any]) -> None:
        port_id = context.current["id"]
        writer = self.shared.writer()
        try:
            sync.sync_port(_reader(context.plugin_context), writer, port_id, versions)
        except TranslationError as exc:
            LOG.error("regionmesh: port %s cannot be written: %s", port_id, exc)
            try:
                writer.record_finding(keys.UNTRANSLATABLE_PORT_FINDING, port_id, str(exc))
            except RegionmeshError:
                LOG.exception("regionmesh: cannot record the finding for port %s", port_id)

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
        sync.sync_subnet(self.shared.writer(), neutron_db.subnet_from_dict(context.current))

    def update_subnet_postcommit(self, context: Any) -> None:
        sync.sync_subnet(self.shared.writer(), neutron_db.subnet_from_dict(context.current))

    def delete_subnet_postcommit(self, context: Any) -> None:
        sync.delete_subnet(self.shared.writer(), context.current["id"])

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

    def _on_address_group(
        self, resource: str, event: str, trigger: Any, payload: Any = None
    ) -> None:
        """An address group changed or went: rewrite, at once, every policy that uses it
        (a deleted group's rules are left out: fail closed)."""
        if payload is None or not payload.resource_id:
            return
        admin = n_context.get_admin_context()
        try:
            sg_ids = neutron_db.security_groups_using_address_group(
                directory.get_plugin(), admin, payload.resource_id
            )
        except RegionmeshError:
            LOG.exception("regionmesh: cannot find the rules of address group %s",
                          payload.resource_id)  # fmt: skip
            return
        for sg_id in sg_ids:
            self._sync_security_group(admin, sg_id)

    def _sync_security_group(self, context: Any, sg_id: str) -> None:
        try:
            sync.sync_security_group(_reader(context), self.shared.writer(), sg_id)
        except TranslationError as exc:
            LOG.error("regionmesh: security group %s cannot be written: %s", sg_id, exc)
