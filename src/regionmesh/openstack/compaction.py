"""Periodic etcd compaction by the elected master, compatible with networking-calico's.

Without compaction etcd keeps every old revision of every key, so a long-lived shared etcd
grows until its backend quota raises the NOSPACE alarm and every region goes read-only.
networking-calico's master (``mech_calico.check_request_etcd_compaction``, openstack-driver.md
§1.3, §6.7) bounds it with two keys shared by all regions, and :class:`Compactor` keeps them
with the same meaning, so regionmesh and networking-calico masters of any region share one
schedule:

* ``/calico/compaction/v1/trigger`` — value the writer's pid, lease TTL
  ``etcd_compaction_period_mins * 60``. While it exists a period is running and nobody looks
  at compaction. A trigger without a lease or with a TTL longer than the period (an etcd
  restored from a bad backup) restarts the bookkeeping from scratch.
* ``/calico/compaction/v1/last`` — no lease; the revision compacted last time as a decimal
  string (``"0"`` at first). Its ``mod_revision`` is the revision at the previous check.

When the trigger has gone, a check reads ``last`` and the current revision and compacts at
``current - max(etcd_compaction_min_revisions, current - last_check)``, i.e. it keeps at least
``etcd_compaction_min_revisions`` revisions *and* the whole previous period, and only if that is
past the last compaction. If etcd says that revision is already compacted, someone else (another
tool) compacts too, and the current revision is recorded instead. Then both keys are written
again. The first check (no ``last``) only writes the keys.

One compactor per period across all regions: regionmesh claims an expired trigger with a
create-only write before looking further, so of several regionmesh masters finding it gone at
once exactly one goes on; a networking-calico master that finds the claimed trigger present
just waits, as it always does. (A networking-calico master that found the trigger gone at the
same instant may still request a compaction of its own; etcd makes the later one a no-op.)

Mastership is the caller's: :meth:`Compactor.run` loops until its stop event is set and the
mechanism driver's worker runs it only while it is its region's master. This module does not
import Neutron.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from enum import StrEnum

from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore
from regionmesh.errors import AlreadyExists, DatastoreError, NotFound, RevisionConflict

LOG = logging.getLogger(__name__)

DEFAULT_PERIOD_MINS = 60
DEFAULT_MIN_REVISIONS = 1000


class Outcome(StrEnum):
    """What one :meth:`Compactor.check` did."""

    WAITING = "waiting"  # the trigger is alive: a period is still running
    CLAIMED_ELSEWHERE = "claimed-elsewhere"  # another master took this period's check
    RESET = "reset"  # trigger without lease / TTL too long, or bogus ``last``: keys rewritten
    FIRST_CHECK = "first-check"  # no ``last`` yet: keys written, nothing compacted
    TOO_FEW_REVISIONS = "too-few-revisions"  # current revision <= min revisions
    NOTHING_TO_COMPACT = "nothing-to-compact"  # target not past the last compaction
    COMPACTED = "compacted"
    COMPACTED_ELSEWHERE = "compacted-elsewhere"  # etcd was already compacted that far
    FAILED = "failed"  # the datastore failed; try again next period


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check, the revision recorded in ``last`` (None: not written) and, for
    WAITING, the trigger's remaining TTL in seconds."""

    outcome: Outcome
    revision: int | None = None
    ttl: int | None = None


class Compactor:
    """networking-calico's periodic compaction check against one datastore."""

    def __init__(
        self,
        datastore: Datastore,
        *,
        period_secs: int = DEFAULT_PERIOD_MINS * 60,
        min_revisions: int = DEFAULT_MIN_REVISIONS,
        owner: str | None = None,
    ) -> None:
        if period_secs < 1:
            raise ValueError(f"compaction period must be at least 1 second, got {period_secs}")
        if min_revisions < 0:
            raise ValueError(f"min revisions must not be negative, got {min_revisions}")
        self.ds = datastore
        self.period_secs = period_secs
        self.min_revisions = min_revisions
        self.owner = owner if owner is not None else str(os.getpid())
        self._stop = threading.Event()

    # ------------------------------------------------------------------ one check

    def _write_keys(self, revision: int, lease: int = 0) -> None:
        """``last`` = revision (no lease), then the trigger with a fresh period lease."""
        self.ds.put(keys.compaction_last_key(), str(revision).encode())
        if not lease:
            lease = self.ds.grant_lease(self.period_secs)
        self.ds.put(keys.compaction_trigger_key(), self.owner.encode(), lease=lease)

    def _claim(self, stale_revision: int | None) -> int | None:
        """Take this period's check: create the trigger; its lease, or None if someone has."""
        trigger = keys.compaction_trigger_key()
        if stale_revision is not None:  # lease already gone, key not yet deleted by etcd
            try:
                self.ds.delete(trigger, revision=stale_revision)
            except (NotFound, RevisionConflict):
                pass
        lease = self.ds.grant_lease(self.period_secs)
        try:
            self.ds.create(trigger, self.owner.encode(), lease=lease)
        except AlreadyExists:
            self.ds.revoke_lease(lease)
            return None
        return lease

    def check(self) -> CheckResult:
        """One compaction check; never raises for datastore trouble (logs, returns FAILED)."""
        try:
            return self._check()
        except DatastoreError as exc:
            LOG.warning("regionmesh compaction: check failed (%s); trying next period", exc)
            return CheckResult(Outcome.FAILED)

    def _check(self) -> CheckResult:
        trigger = self.ds.get(keys.compaction_trigger_key())
        stale: int | None = None
        if trigger is not None:
            if not trigger.lease:
                LOG.warning("regionmesh compaction: trigger key has no lease; rewriting")
                self._write_keys(0)
                return CheckResult(Outcome.RESET, 0)
            try:
                ttl = self.ds.lease_ttl(trigger.lease)
            except NotFound:
                stale = trigger.mod_revision  # expired while we looked: fall through
            else:
                if ttl > self.period_secs:
                    LOG.warning("regionmesh compaction: trigger TTL %ds too long; rewriting", ttl)
                    self._write_keys(0)
                    return CheckResult(Outcome.RESET, 0)
                LOG.debug("regionmesh compaction: trigger TTL %ds, waiting", ttl)
                return CheckResult(Outcome.WAITING, ttl=ttl)
        lease = self._claim(stale)
        if lease is None:
            LOG.info("regionmesh compaction: another master took this period's check")
            return CheckResult(Outcome.CLAIMED_ELSEWHERE)

        last = self.ds.get(keys.compaction_last_key())
        if last is None:
            LOG.info("regionmesh compaction: first check; recording revisions")
            self._write_keys(0, lease)
            return CheckResult(Outcome.FIRST_CHECK, 0)
        try:
            last_compaction = int(last.value.decode())
        except (UnicodeDecodeError, ValueError):
            LOG.warning("regionmesh compaction: bogus %s value %r", last.key, last.value)
            self._write_keys(0, lease)
            return CheckResult(Outcome.RESET, 0)
        last_check = last.mod_revision
        current = self.ds.current_revision()
        if last_compaction > current:
            LOG.warning(
                "regionmesh compaction: last compaction %d is past the current revision %d "
                "(restored etcd?); starting again",
                last_compaction,
                current,
            )
            self._write_keys(0, lease)
            return CheckResult(Outcome.RESET, 0)
        if current <= self.min_revisions:
            self._write_keys(last_compaction, lease)
            return CheckResult(Outcome.TOO_FEW_REVISIONS, last_compaction)
        keep = max(self.min_revisions, current - last_check)
        target = current - keep
        if target <= last_compaction:
            self._write_keys(last_compaction, lease)
            return CheckResult(Outcome.NOTHING_TO_COMPACT, last_compaction)
        LOG.info("regionmesh compaction: compacting etcd history before revision %d", target)
        if not self.ds.compact(target):
            LOG.info("regionmesh compaction: already compacted past %d by someone else", target)
            self._write_keys(current, lease)
            return CheckResult(Outcome.COMPACTED_ELSEWHERE, current)
        self._write_keys(target, lease)
        return CheckResult(Outcome.COMPACTED, target)

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        """Check now, then once per period (or just after a running period's trigger expires)
        until :meth:`stop`."""
        LOG.info("regionmesh compaction: checking every %ds", self.period_secs)
        while not self._stop.is_set():
            result = self.check()
            LOG.debug("regionmesh compaction: %s", result)
            wait = self.period_secs
            if result.outcome is Outcome.WAITING and result.ttl is not None:
                wait = min(wait, result.ttl + 1)
            self._stop.wait(wait)

    def start(self) -> threading.Thread:
        """Run in a daemon thread."""
        thread = threading.Thread(target=self.run, name="regionmesh-compaction", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop :meth:`run` (from any thread)."""
        self._stop.set()
