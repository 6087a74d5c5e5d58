"""One elected master neutron-server per region (networking-calico's ``Elector``, openstack-driver.md §6.2).

The key is ``/calico/openstack/v2/<region_string>/neutron_election`` and its value
``<host>:<pid>``; it is written create-only-if-absent with a lease (TTL ``ttl``, default 60 s)
that the master refreshes every ``interval`` (default 10 s). A follower watches the key
(datastore watch, not polling) and tries again as soon as it is deleted or its lease expires.
A key left by a dead process *of this host* (pid gone from ``/proc``) is removed at once, so a
restarted neutron-server does not wait a whole TTL. :meth:`Elector.stop` steps down (deletes
the key at its revision and revokes the lease) so another server takes over immediately.

What the master does (resync, status watching) is the caller's business: it asks
:meth:`Elector.is_master` or passes ``on_change``. The legacy v1 election key is not written.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore, EventType
from regionmesh.errors import (
    AlreadyExists,
    AuthenticationFailed,
    DatastoreError,
    NotFound,
    PermissionDenied,
    RevisionConflict,
)

LOG = logging.getLogger(__name__)

MASTER_TTL = 60
MASTER_REFRESH_INTERVAL = 10


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host."""
    return os.path.exists(f"/proc/{pid}")


def parse_value(value: bytes) -> tuple[str, int | None]:
    """``b"host:123"`` → ``("host", 123)``; a value without a numeric pid gives ``(text, None)``."""
    text = value.decode(errors="replace")
    host, sep, pid = text.rpartition(":")
    if not sep or not pid.isdigit():
        return text, None
    return host, int(pid)


class Elector:
    """Takes part in one region's election; drive it with :meth:`run` (or :meth:`step`)."""

    def __init__(
        self,
        datastore: Datastore,
        region: str | None,
        *,
        name: str | None = None,
        pid: int | None = None,
        ttl: int = MASTER_TTL,
        interval: float = MASTER_REFRESH_INTERVAL,
        on_change: Callable[[bool], None] | None = None,
        is_alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        if ttl <= interval:
            raise ValueError(f"the lease TTL ({ttl}s) must exceed the refresh interval")
        self.ds = datastore
        self.key = keys.neutron_election_key(region)
        self.name = name or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        self.value = f"{self.name}:{self.pid}".encode()
        self.ttl = ttl
        self.interval = interval
        self._on_change = on_change
        self._is_alive = is_alive
        self._lease = 0
        self._master = False
        self._last_refresh = 0.0
        self._stop = threading.Event()

    # ------------------------------------------------------------------ state

    def is_master(self) -> bool:
        """True while this elector holds the key and refreshed it within the TTL."""
        return self._master and time.monotonic() - self._last_refresh < self.ttl

    def current_master(self) -> str | None:
        """The value of the election key (``host:pid``), or None when there is no master."""
        kv = self.ds.get(self.key)
        return None if kv is None else kv.value.decode(errors="replace")

    def _set_master(self, master: bool) -> None:
        if master == self._master:
            return
        self._master = master
        LOG.info(
            "regionmesh election %s: %s is %s", self.key, self.value.decode(),
            "now the master" if master else "no longer the master",
        )  # fmt: skip
        if self._on_change is not None:
            self._on_change(master)

    # ------------------------------------------------------------------ one round

    def step(self) -> None:
        """One round: as master refresh (after ``interval``); as follower wait for a chance."""
        if self._master:
            self._stop.wait(self.interval)
            if not self._stop.is_set():
                self._refresh()
        else:
            self._try_to_lead()

    def _refresh(self) -> None:
        try:
            self.ds.refresh_lease(self._lease)
            kv = self.ds.get(self.key)
        except NotFound:
            kv = None
        if kv is None or kv.value != self.value or kv.lease != self._lease:
            LOG.warning("regionmesh election %s: lost the key (lease expired?)", self.key)
            self._lease = 0
            self._set_master(False)
            return
        self._last_refresh = time.monotonic()

    def _try_to_lead(self) -> None:
        kv = self.ds.get(self.key)
        if kv is None:
            lease = self.ds.grant_lease(self.ttl)
            try:
                self.ds.create(self.key, self.value, lease=lease)
            except AlreadyExists:
                self._revoke(lease)
                return
            self._lease = lease
            self._last_refresh = time.monotonic()
            self._set_master(True)
            return
        host, pid = parse_value(kv.value)
        if host == self.name and pid is not None and pid != self.pid and not self._is_alive(pid):
            LOG.info("regionmesh election %s: removing the key of dead pid %d", self.key, pid)
            try:
                self.ds.delete(self.key, revision=kv.mod_revision)
            except (NotFound, RevisionConflict):
                pass
            return
        self._wait_for_change(kv.mod_revision)

    def _wait_for_change(self, revision: int) -> None:
        """Block until the key changes after ``revision`` or ``interval`` passes."""
        watch = self.ds.watch(self.key, start_revision=revision + 1)
        try:
            deadline = time.monotonic() + self.interval
            while not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                batch = watch.next_batch(min(remaining, 1.0))
                if any(e.key == self.key and e.type is EventType.DELETE for e in batch):
                    return
        finally:
            watch.close()

    def _revoke(self, lease: int) -> None:
        try:
            self.ds.revoke_lease(lease)
        except NotFound:
            pass

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        """Take part until :meth:`stop`; datastore errors are logged and retried."""
        while not self._stop.is_set():
            try:
                self.step()
            except (PermissionDenied, AuthenticationFailed) as exc:  # one line, retried slowly
                LOG.error("regionmesh election %s: %s; retrying", self.key, exc)
                self._set_master(False)
                self._stop.wait(5.0)
            except DatastoreError:
                LOG.exception("regionmesh election %s: datastore error; retrying", self.key)
                self._set_master(False)
                self._stop.wait(1.0)
        self._step_down()

    def start(self) -> threading.Thread:
        """Run in a daemon thread."""
        thread = threading.Thread(target=self.run, name="regionmesh-elector", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask :meth:`run` to finish; it steps down on the way out."""
        self._stop.set()

    def abandon(self) -> None:
        """Stop without stepping down (as a crash would): the lease simply runs out."""
        self._lease = 0
        self._master = False
        self._stop.set()

    def _step_down(self) -> None:
        if not self._master or not self._lease:
            return
        try:
            kv = self.ds.get(self.key)
            if kv is not None and kv.value == self.value:
                self.ds.delete(self.key, revision=kv.mod_revision)
            self._revoke(self._lease)
        except DatastoreError:
            LOG.exception("regionmesh election %s: stepping down failed", self.key)
        self._lease = 0
        self._set_master(False)
