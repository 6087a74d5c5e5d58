"""The region-aware DHCP agent of a compute host: the loop that keeps dnsmasq serving its VMs.

networking-calico's ``calico-dhcp-agent`` (openstack-driver.md §6.8), rebuilt. A compute host
serves DHCP to the VMs plugged into it, and to nothing else: it mirrors three key prefixes —
THIS host's WorkloadEndpoints in ITS region's namespace
(:func:`~regionmesh.dhcp.records.endpoint_prefix`), the region's subnet records
``/calico/dhcp/v2/region-<r>/subnet/`` and the legacy ``/calico/dhcp/v1/subnet/`` — each with
the datastore's :class:`~regionmesh.datastore.mirror.Mirror` (list, then watch; a compacted
watch is re-listed as a diff, an outage is retried with exponential backoff). :class:`DhcpState`
holds what was read, and :class:`DhcpAgent` hands the desired
:class:`~regionmesh.dhcp.render.NetworkDhcp` per network to a :class:`Supervisor`.

Decoding is :mod:`.records`, what to serve and how to say it to dnsmasq :mod:`.render`,
spawning and supervising dnsmasq and the alias interfaces :mod:`.dnsmasq`; choosing the
datastore is :func:`regionmesh.datastore.selection.choose_datastore` (fed from neutron.conf by
:mod:`regionmesh.cli.dhcp_cmd`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from regionmesh.backoff import Backoff
from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore
from regionmesh.datastore.mirror import Change, Mirror
from regionmesh.dhcp.records import (
    DhcpEndpoint,
    SubnetIndex,
    decode_endpoint,
    dhcp_endpoint,
    endpoint_prefix,
    parse_subnet_record,
    why_not_served,
)
from regionmesh.dhcp.render import DEFAULT_LEASE_SECONDS, NetworkDhcp, desired_networks
from regionmesh.errors import DatastoreError, ValidationError
from regionmesh.model.regions import region_namespace

LOG = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- state


@dataclass
class DhcpState:
    """The agent's view of the datastore: this host's endpoints and the known subnets.

    ``apply_*`` take raw key/values (None value = deleted). Endpoints that decode badly or must
    not be served are dropped (and logged once per revision).
    """

    host: str
    region: str | None
    endpoints: dict[str, DhcpEndpoint] = field(default_factory=dict)
    subnets: SubnetIndex = field(default_factory=SubnetIndex)

    def apply_endpoint(self, key: str, value: bytes | None, revision: int) -> None:
        """A WorkloadEndpoint key changed."""
        if value is None:
            self.endpoints.pop(key, None)
            return
        try:
            wep = decode_endpoint(key, value, revision)
        except ValidationError as exc:
            LOG.warning("ignoring endpoint %s: %s", key, exc)
            self.endpoints.pop(key, None)
            return
        reason = why_not_served(wep, host=self.host, region=self.region)
        if reason is not None:
            LOG.info("not serving %s: %s", key, reason)
            self.endpoints.pop(key, None)
            return
        self.endpoints[key] = dhcp_endpoint(wep)

    def apply_subnet(self, key: str, value: bytes | None) -> None:
        """A subnet key (v2 of this region, or legacy v1) changed."""
        parsed = keys.parse_subnet_key(key)
        if parsed is None:
            return
        region_str, subnet_id = parsed
        table = self.subnets.v1 if region_str is None else self.subnets.v2
        if value is None:
            table.pop(subnet_id, None)
            return
        try:
            table[subnet_id] = parse_subnet_record(subnet_id, value, legacy=region_str is None)
        except ValidationError as exc:
            LOG.warning("ignoring %s: %s", key, exc)
            table.pop(subnet_id, None)

    def reset(self, prefix: str) -> None:
        """Forget everything under ``prefix`` (before a re-list)."""
        if prefix.startswith(keys.RESOURCES_PREFIX):
            self.endpoints.clear()
        elif prefix.startswith(keys.LEGACY_SUBNET_DIR):
            self.subnets.v1.clear()
        else:
            self.subnets.v2.clear()

    def desired(
        self,
        mtu_of: Callable[[str], int | None],
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> dict[str, NetworkDhcp]:
        """What every network's dnsmasq should serve now."""
        return desired_networks(
            self.endpoints.values(), self.subnets, mtu_of, lease_seconds=lease_seconds
        )


# ---------------------------------------------------------------------------- the loop


class Supervisor(Protocol):
    """Runs one dnsmasq per network (implemented by :mod:`regionmesh.dhcp.dnsmasq`)."""

    def apply(self, networks: Mapping[str, NetworkDhcp]) -> None:
        """Make the running instances serve exactly ``networks``."""
        ...

    def tick(self) -> None:
        """Restart crashed instances whose backoff has passed; retry deferred signals."""
        ...

    def close(self) -> None:
        """Stop every instance and remove what it created."""
        ...


@dataclass(frozen=True, slots=True)
class _Batch:
    prefix: str
    changes: tuple[Change, ...]


class DhcpAgent:
    """Mirror this host's endpoints and the region's subnets; keep the supervisor in step.

    One thread per key prefix drives a :class:`~regionmesh.datastore.mirror.Mirror` of it
    (list, then watch; a re-list diff after :class:`~regionmesh.errors.Compacted`, backoff after
    a lost store); the calling thread applies the changes, polls tap MTUs every ``tick`` seconds
    and calls the supervisor. Nothing is served before every prefix has been listed once.
    """

    def __init__(
        self,
        store: Datastore,
        supervisor: Supervisor,
        *,
        host: str,
        region: str | None,
        mtu_of: Callable[[str], int | None],
        tick: float = 1.0,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.supervisor = supervisor
        self.state = DhcpState(host=host, region=region)
        self.mtu_of = mtu_of
        self.tick = tick
        self.lease_seconds = lease_seconds
        self.prefixes = (
            endpoint_prefix(region, host),
            keys.subnet_dir(region) + "/",
            keys.LEGACY_SUBNET_DIR + "/",
        )
        self._events: queue.Queue[_Batch] = queue.Queue()
        self._mirrors: dict[str, Mirror] = {}
        self._lock = threading.Lock()
        self.applied: dict[str, NetworkDhcp] | None = None  # None until the first apply
        self._listed: set[str] = set()

    # -- mirroring (one thread per prefix) -------------------------------------------------
    def _mirror(self, prefix: str, stop: threading.Event) -> None:
        mirror = Mirror(self.store, prefix, backoff=Backoff(0.2, 10.0), sleep=stop.wait)
        with self._lock:
            self._mirrors[prefix] = mirror
        try:
            while not stop.is_set():
                resyncs = mirror.resyncs
                try:
                    changes = mirror.poll(0.5)
                except DatastoreError as exc:
                    LOG.warning(
                        "datastore problem on %s: %s; retrying in %.1fs",
                        prefix, exc, mirror.retry_delay,
                    )  # fmt: skip
                    continue
                if changes or mirror.resyncs != resyncs:  # a list, even an empty one, counts
                    self._events.put(_Batch(prefix, tuple(changes)))
        finally:
            with self._lock:
                self._mirrors.pop(prefix, None)
            mirror.close()

    def _apply(self, batch: _Batch) -> None:
        self._listed.add(batch.prefix)
        is_endpoint = batch.prefix == self.prefixes[0]
        for change in batch.changes:
            if is_endpoint:
                self.state.apply_endpoint(change.key, change.value, change.mod_revision)
            else:
                self.state.apply_subnet(change.key, change.value)

    def step(self, timeout: float) -> None:
        """Apply queued changes (waiting up to ``timeout`` for the first) and reconcile."""
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            pass
        else:
            self._apply(item)
            while True:
                try:
                    self._apply(self._events.get_nowait())
                except queue.Empty:
                    break
        if len(self._listed) < len(self.prefixes):
            return  # not everything listed yet: do not act on a partial view
        desired = self.state.desired(self.mtu_of, self.lease_seconds)
        if desired != self.applied:
            before = self.applied or {}
            for net_id in sorted(set(desired) | set(before)):
                if desired.get(net_id) != before.get(net_id):
                    LOG.debug("network %s: %s", net_id, desired.get(net_id))
            LOG.info(
                "serving %d network(s): %s",
                len(desired),
                ", ".join(f"{n} ({len(d.hosts)} host(s))" for n, d in desired.items()) or "none",
            )
            self.supervisor.apply(desired)
            self.applied = desired
        self.supervisor.tick()

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; the supervisor is closed on the way out."""
        threads = [
            threading.Thread(
                target=self._mirror, args=(p, stop), name=f"dhcp-watch-{i}", daemon=True
            )
            for i, p in enumerate(self.prefixes)
        ]
        for t in threads:
            t.start()
        LOG.info(
            "DHCP agent for host %s, namespace %s, watching %s",
            self.state.host,
            region_namespace(self.state.region),
            ", ".join(self.prefixes),
        )
        try:
            while not stop.is_set():
                self.step(self.tick)
        finally:
            with self._lock:
                mirrors = list(self._mirrors.values())
            for m in mirrors:
                m.close()  # ends a waiting poll; the threads see ``stop`` and return
            for t in threads:
                t.join(timeout=5)
            self.supervisor.close()
