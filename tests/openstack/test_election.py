"""The per-region election against a real etcd: one master, takeover on lease expiry/step-down."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from regionmesh.datastore import Datastore
from regionmesh.datastore import keys as dskeys
from regionmesh.openstack.election import Elector, parse_value
from regionmesh.testing.etcd_server import EtcdServer


def wait_until(what: str, cond: Callable[[], bool], timeout: float = 15.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def stores(clean_etcd: EtcdServer) -> Iterator[list[Datastore]]:
    opened = [clean_etcd.open() for _ in range(3)]
    yield opened
    for s in opened:
        s.close()


def contender(store: Datastore, name: str, pid: int, region: str = "one") -> Elector:
    return Elector(store, region, name=name, pid=pid, ttl=3, interval=1, is_alive=lambda p: True)


def test_parse_value() -> None:
    assert parse_value(b"ctl-1:4242") == ("ctl-1", 4242)
    assert parse_value(b"garbage") == ("garbage", None)


def test_one_master_then_takeover_after_lease_expiry(stores: list[Datastore]) -> None:
    a = contender(stores[0], "ctl-a", 1)
    b = contender(stores[1], "ctl-b", 2)
    ta = a.start()
    wait_until("a to lead", a.is_master)
    ra, rb = a.rounds, b.rounds
    tb = b.start()
    # several refresh rounds: a keeps the key, b follows
    wait_until("two rounds each", lambda: a.rounds >= ra + 2 and b.rounds >= rb + 2)
    assert a.is_master() and not b.is_master()
    key = dskeys.neutron_election_key("one")
    assert key == "/calico/openstack/v2/region-one/neutron_election"
    kv = stores[2].get(key)
    assert kv is not None and kv.value == b"ctl-a:1" and kv.lease != 0

    a.abandon()  # a crashes: no step-down, its lease must run out
    ta.join(5)
    took = wait_until("b to take over", b.is_master, timeout=10)
    # what the code guarantees: b leads once a's 3 s lease has run out, found within one
    # 1 s round (etcd expires leases late under load, hence the margin). No lower bound: a
    # last refreshed up to one interval before it crashed.
    assert took < a.ttl + a.interval + 5.0, took
    assert stores[2].get(key).value == b"ctl-b:2"  # type: ignore[union-attr]
    b.stop()
    tb.join(5)
    assert stores[2].get(key) is None  # b stepped down on stop


def test_step_down_hands_over_at_once(stores: list[Datastore]) -> None:
    changes: list[bool] = []
    a = Elector(stores[0], "two", name="ctl-a", pid=1, ttl=30, interval=1, on_change=changes.append)
    b = Elector(stores[1], "two", name="ctl-b", pid=2, ttl=30, interval=1)
    ta = a.start()
    wait_until("a to lead", a.is_master)
    tb = b.start()
    wait_until("b to follow (one round done, watching the key)", lambda: b.rounds >= 1)
    a.stop()  # deletes the key and revokes the lease
    ta.join(5)
    took = wait_until("b to take over", b.is_master, timeout=15)
    assert took < a.ttl / 2, took  # the watch (or the next 1 s round) sees it: no 30 s TTL wait
    assert changes == [True, False]
    b.stop()
    tb.join(5)


def test_regions_elect_independently(stores: list[Datastore]) -> None:
    a = contender(stores[0], "ctl-a", 1, region="one")
    b = contender(stores[1], "ctl-b", 2, region="two")
    threads = [a.start(), b.start()]
    wait_until("both to lead", lambda: a.is_master() and b.is_master())
    for e, t in zip((a, b), threads, strict=True):
        e.stop()
        t.join(5)


def test_key_of_a_dead_process_on_this_host_is_removed(stores: list[Datastore]) -> None:
    key = dskeys.neutron_election_key("one")
    lease = stores[2].grant_lease(60)
    stores[2].create(key, b"ctl-a:999999", lease=lease)  # pid 999999 is not running
    a = Elector(stores[0], "one", name="ctl-a", pid=5, ttl=60, interval=1)
    other = Elector(stores[1], "one", name="ctl-b", pid=6, ttl=60, interval=1)
    other.step()  # a contender on another host cannot judge the pid: it only waits
    assert stores[2].get(key).value == b"ctl-a:999999"  # type: ignore[union-attr]
    a.step()  # same host, dead pid: the stale key is removed at once (no 60 s wait)
    assert stores[2].get(key) is None
    a.step()
    assert a.is_master()
    assert stores[2].get(key).value == b"ctl-a:5"  # type: ignore[union-attr]
    for e in (a, other):
        e.stop()
        e.run()  # returns at once (stopped) after stepping down
    assert stores[2].get(key) is None


def test_key_of_a_live_process_elsewhere_is_kept(stores: list[Datastore]) -> None:
    key = dskeys.neutron_election_key("one")
    lease = stores[2].grant_lease(60)
    stores[2].create(key, b"ctl-z:999999", lease=lease)  # another host: its pid means nothing here
    a = Elector(stores[0], "one", name="ctl-a", pid=5, ttl=60, interval=0.5)
    a.step()
    assert not a.is_master()
    assert stores[2].get(key).value == b"ctl-z:999999"  # type: ignore[union-attr]
    stores[2].revoke_lease(lease)
