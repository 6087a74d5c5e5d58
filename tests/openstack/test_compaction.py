"""Periodic etcd compaction (networking-calico's keys and rules) against a real etcd."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from regionmesh.datastore import Datastore
from regionmesh.datastore import keys as dskeys
from regionmesh.errors import Compacted
from regionmesh.openstack.compaction import Compactor, Outcome
from regionmesh.testing.etcd_server import EtcdServer

TRIGGER = "/calico/compaction/v1/trigger"
LAST = "/calico/compaction/v1/last"


@pytest.fixture
def stores(clean_etcd: EtcdServer) -> Iterator[list[Datastore]]:
    opened = [clean_etcd.open() for _ in range(3)]
    yield opened
    for s in opened:
        s.close()


def churn(store: Datastore, count: int) -> int:
    rev = 0
    for i in range(count):
        rev = store.put("/calico/regionmesh-test/churn", str(i).encode())
    return rev


def wait_trigger_gone(store: Datastore, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.get(TRIGGER) is None:
            return
        time.sleep(0.1)
    raise AssertionError("the compaction trigger key did not expire")


def history_starts_after(store: Datastore, revision: int) -> bool:
    """True if a watch from ``revision`` is refused as compacted."""
    watch = store.watch("/calico/", start_revision=revision)
    try:
        watch.next_batch(2.0)
    except Compacted:
        return True
    finally:
        watch.close()
    return False


def test_first_check_writes_networking_calicos_keys(stores: list[Datastore]) -> None:
    store = stores[0]
    assert dskeys.compaction_trigger_key() == TRIGGER and dskeys.compaction_last_key() == LAST
    result = Compactor(store, period_secs=3600).check()
    assert result.outcome is Outcome.FIRST_CHECK and result.revision == 0
    last = store.get(LAST)
    assert last is not None and last.value == b"0" and last.lease == 0
    trigger = store.get(TRIGGER)
    assert trigger is not None and trigger.value == str(os.getpid()).encode()
    assert trigger.lease and 3590 <= store.lease_ttl(trigger.lease) <= 3600
    # While the trigger lives nobody considers compaction, whoever they are.
    waiting = Compactor(stores[1], period_secs=3600, owner="other").check()
    assert waiting.outcome is Outcome.WAITING and waiting.ttl is not None
    assert store.get(LAST).mod_revision == last.mod_revision  # type: ignore[union-attr]


def test_compacts_keeping_the_previous_period_and_min_revisions(stores: list[Datastore]) -> None:
    store = stores[0]
    compactor = Compactor(store, period_secs=2, min_revisions=5)
    assert compactor.check().outcome is Outcome.FIRST_CHECK
    checked_at = store.get(LAST).mod_revision  # type: ignore[union-attr]
    churn(store, 30)
    assert compactor.check().outcome is Outcome.WAITING  # the period is not over yet
    wait_trigger_gone(store)
    before = store.current_revision()
    first = compactor.check()
    # keep max(5, current - last check) revisions: everything since the previous check
    assert first.outcome is Outcome.COMPACTED and first.revision == checked_at
    assert before - checked_at > 5
    assert history_starts_after(store, checked_at - 1)
    assert not history_starts_after(store, checked_at)
    last = store.get(LAST)
    assert last is not None and last.value == str(checked_at).encode()

    # Next period: compact up to the previous check, still keeping that whole period.
    second_check = last.mod_revision
    churn(store, 10)
    wait_trigger_gone(store)
    second = compactor.check()
    assert second.outcome is Outcome.COMPACTED and second.revision == second_check
    assert history_starts_after(store, second_check - 1)
    assert not history_starts_after(store, second_check)

    # A period with little traffic keeps min_revisions: nothing new becomes compactable.
    wait_trigger_gone(store)
    quiet = Compactor(store, period_secs=2, min_revisions=1000).check()
    if store.current_revision() <= 1000:
        assert quiet.outcome is Outcome.TOO_FEW_REVISIONS
    else:
        assert quiet.outcome is Outcome.NOTHING_TO_COMPACT
    assert store.get(LAST).value == str(second_check).encode()  # type: ignore[union-attr]


def test_a_compaction_by_someone_else_is_recorded_as_the_current_revision(
    stores: list[Datastore],
) -> None:
    store = stores[0]
    compactor = Compactor(store, period_secs=2, min_revisions=0)
    compactor.check()
    churn(store, 10)
    wait_trigger_gone(store)
    store.compact(store.current_revision())  # another tool compacted everything
    current = store.current_revision() + 1  # the check's claim of the trigger is one write
    result = compactor.check()
    assert result.outcome is Outcome.COMPACTED_ELSEWHERE and result.revision == current
    assert store.get(LAST).value == str(current).encode()  # type: ignore[union-attr]


def test_bad_bookkeeping_starts_again(stores: list[Datastore]) -> None:
    store = stores[0]
    store.put(TRIGGER, b"123")  # no lease (restored from a backup)
    assert Compactor(store, period_secs=60).check().outcome is Outcome.RESET
    kv = store.get(TRIGGER)
    assert kv is not None and kv.lease and store.get(LAST).value == b"0"  # type: ignore[union-attr]

    store.put(TRIGGER, b"123", lease=store.grant_lease(3600))  # TTL longer than the period
    assert Compactor(store, period_secs=60).check().outcome is Outcome.RESET
    assert store.lease_ttl(store.get(TRIGGER).lease) <= 60  # type: ignore[union-attr]

    store.revoke_lease(store.get(TRIGGER).lease)  # type: ignore[union-attr]
    store.put(LAST, str(store.current_revision() + 1000).encode())  # past the current revision
    result = Compactor(store, period_secs=60).check()
    assert result.outcome is Outcome.RESET and store.get(LAST).value == b"0"  # type: ignore[union-attr]


def test_one_compactor_per_period_across_regions(stores: list[Datastore]) -> None:
    """Masters of three regions find the trigger gone at once: exactly one of them checks."""
    Compactor(stores[0], period_secs=2, min_revisions=0).check()
    churn(stores[0], 20)
    wait_trigger_gone(stores[0])
    compactors = [
        Compactor(s, period_secs=2, min_revisions=0, owner=f"region-{i}")
        for i, s in enumerate(stores)
    ]
    barrier = threading.Barrier(len(compactors))
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def go(c: Compactor) -> None:
        barrier.wait()
        result = c.check()
        with lock:
            outcomes.append(result.outcome)

    threads = [threading.Thread(target=go, args=(c,)) for c in compactors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(outcomes).count(Outcome.CLAIMED_ELSEWHERE) == 2, outcomes
    assert Outcome.COMPACTED in outcomes, outcomes
    owner = stores[0].get(TRIGGER).value.decode()  # type: ignore[union-attr]
    assert owner in {"region-0", "region-1", "region-2"}


def test_a_networking_calico_master_that_just_checked_makes_us_wait(
    stores: list[Datastore],
) -> None:
    """Keys written the way networking-calico writes them (pid, period lease; last "0")."""
    store = stores[0]
    store.put(LAST, b"0")
    store.put(TRIGGER, b"4242", lease=store.grant_lease(3600))
    result = Compactor(store, period_secs=3600).check()
    assert result.outcome is Outcome.WAITING
    assert store.get(TRIGGER).value == b"4242"  # type: ignore[union-attr]


def test_run_loop_checks_again_after_the_trigger_expires(stores: list[Datastore]) -> None:
    store = stores[0]
    compactor = Compactor(store, period_secs=2, min_revisions=0)
    thread = compactor.start()
    try:
        deadline = time.monotonic() + 15
        first = None
        while time.monotonic() < deadline:
            kv = store.get(LAST)
            if kv is not None:
                first = first or kv.mod_revision
                churn(store, 2)
                if kv.value != b"0":
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("the loop never compacted")
        assert history_starts_after(store, int(kv.value) - 1)
    finally:
        compactor.stop()
        thread.join(5)
    assert not thread.is_alive()
