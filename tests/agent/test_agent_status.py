"""Heartbeat and per-endpoint status keys against a real etcd (lease TTL included)."""

from __future__ import annotations

import json
import re
import time

from regionmesh.agent.status import EndpointRef, EndpointStatusReporter, HeartbeatReporter
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.datastore.sqlite import SqliteDatastore

STATUS = "/calico/felix/v2/region-one/host/cmp-one/status"
LAST = "/calico/felix/v2/region-one/host/cmp-one/last_reported_status"


def test_heartbeat_keys_values_and_lease_expiry(etcd_datastore: EtcdDatastore) -> None:
    store = etcd_datastore
    hb = HeartbeatReporter(store, hostname="cmp-one", region="one", interval=0.2, ttl=2)
    assert hb.maybe_report()
    first = store.get(STATUS)
    assert first is not None and first.lease != 0
    value = json.loads(first.value)
    assert list(value) == ["time", "uptime", "first_update"]  # Felix's field order
    assert value["first_update"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value["time"])
    assert isinstance(value["uptime"], int | float) and value["uptime"] >= 0
    last = store.get(LAST)
    assert last is not None and last.lease == 0 and last.value == first.value

    assert not hb.maybe_report()  # not due yet
    assert hb.maybe_report(now=hb.clock() + 0.25)  # past the 0.2 s interval
    second = store.get(STATUS)
    assert second is not None
    assert json.loads(second.value)["first_update"] is False
    assert second.lease not in (0, first.lease)  # a new lease per write, as Felix
    assert second.mod_revision > first.mod_revision

    # Stop reporting: the status key expires with its lease, last_reported_status stays.
    deadline = time.monotonic() + 8
    while store.get(STATUS) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert store.get(STATUS) is None, "status key outlived its 2 s lease"
    assert store.get(LAST) is not None


def test_no_region_string(sqlite_datastore: SqliteDatastore) -> None:
    hb = HeartbeatReporter(sqlite_datastore, hostname="h", region=None, interval=30, ttl=90)
    assert hb.report()
    assert sqlite_datastore.get("/calico/felix/v2/no-region/host/h/status") is not None


def test_endpoint_status_keys_rate_limited_and_deleted(etcd_datastore: EtcdDatastore) -> None:
    store = etcd_datastore
    now = [100.0]
    rep = EndpointStatusReporter(
        store, hostname="cmp-one", region="one", delay=1.0, clock=lambda: now[0]
    )
    a = EndpointRef("openstack", "openstack-region-one/vm-a", "port-a")
    b = EndpointRef("openstack", "openstack-region-one/vm-b", "port-b")
    key_a = (
        "/calico/felix/v2/region-one/host/cmp-one/workload/openstack/"
        "openstack-region-one%2fvm-a/endpoint/port-a"
    )
    # A stale key from an earlier run is repaired (deleted) too.
    stale = key_a.replace("port-a", "port-old")
    store.put(stale, b'{"status":"up"}')
    rep.set_desired({a: "up", b: "down"})
    assert rep.step() == 1  # one write per tick
    assert rep.step() == 0
    now[0] += 1.0
    assert rep.step() == 1
    now[0] += 1.0
    assert rep.step() == 1
    assert json.loads(store.get(key_a).value) == {"status": "up"}  # type: ignore[union-attr]
    key_b = key_a.replace("vm-a", "vm-b").replace("port-a", "port-b")
    assert json.loads(store.get(key_b).value) == {"status": "down"}  # type: ignore[union-attr]
    assert store.get(stale) is None
    assert store.get(key_a).lease == 0  # type: ignore[union-attr]
    rep.set_desired({b: "up"})
    now[0] += 1.0
    rep.step()
    now[0] += 1.0
    rep.step()
    assert store.get(key_a) is None
    assert json.loads(store.get(key_b).value) == {"status": "up"}  # type: ignore[union-attr]
    assert rep.pending() == []
