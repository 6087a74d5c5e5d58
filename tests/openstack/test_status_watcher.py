"""StatusWatcher against a real etcd: heartbeats and per-port status, this region only."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from regionmesh.datastore import Datastore
from regionmesh.datastore import keys as dskeys
from regionmesh.openstack.status import StatusWatcher, neutron_port_status
from regionmesh.testing.etcd_server import EtcdServer


def wait_until(what: str, cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.agents: list[tuple[str, bool]] = []
        self.gone: list[str] = []
        self.ports: list[tuple[str, str, str]] = []

    def agent(self, host: str, first: bool) -> None:
        with self.lock:
            self.agents.append((host, first))

    def agent_gone(self, host: str) -> None:
        with self.lock:
            self.gone.append(host)

    def port(self, host: str, port_id: str, status: str) -> None:
        with self.lock:
            self.ports.append((host, port_id, status))


@pytest.fixture
def store(clean_etcd: EtcdServer) -> Iterator[Datastore]:
    s = clean_etcd.open()
    yield s
    s.close()


def status_key(region: str, host: str, port: str) -> str:
    return dskeys.endpoint_status_key(
        region, host, dskeys.workload_id(f"openstack-region-{region}", "vm-1"), port
    )


def test_status_mapping() -> None:
    assert neutron_port_status(b'{"status": "up"}') == "ACTIVE"
    assert neutron_port_status(b'{"status": "down"}') == "DOWN"
    assert neutron_port_status(b'{"status": "error"}') == "ERROR"
    assert neutron_port_status(b"not json") == "ERROR"
    assert neutron_port_status(None) == "ERROR"


def test_watcher_reports_heartbeats_and_port_status(store: Datastore) -> None:
    rec = Recorder()
    # present before the watcher starts: seen in the snapshot
    store.put(dskeys.felix_status_key("one", "cmp1"), json.dumps({"first_update": True}).encode())
    w = StatusWatcher(
        store, "one", on_agent=rec.agent, on_port_status=rec.port, on_agent_gone=rec.agent_gone,
        refresh_interval=0.5,
    )  # fmt: skip
    thread = w.start()
    try:
        wait_until("the snapshot heartbeat", lambda: ("cmp1", True) in rec.agents)
        # other regions are never seen
        store.put(dskeys.felix_status_key("two", "cmp9"), b"{}")
        store.put(status_key("two", "cmp9", "p9"), b'{"status": "up"}')
        # live events
        lease = store.grant_lease(30)
        store.put(dskeys.felix_status_key("one", "cmp2"), b'{"first_update": false}', lease=lease)
        store.put(status_key("one", "cmp1", "p1"), b'{"status": "up"}')
        wait_until("p1 ACTIVE", lambda: ("cmp1", "p1", "ACTIVE") in rec.ports)
        store.put(status_key("one", "cmp1", "p1"), b'{"status": "down"}')
        wait_until("p1 DOWN", lambda: ("cmp1", "p1", "DOWN") in rec.ports)
        wait_until("cmp2 alive", lambda: ("cmp2", False) in rec.agents)
        # live agents are re-reported from memory while their key lives
        n = sum(1 for h, _ in rec.agents if h == "cmp1")
        wait_until("cmp1 refreshed", lambda: sum(1 for h, _ in rec.agents if h == "cmp1") > n + 1)
        store.revoke_lease(lease)  # cmp2's heartbeat expires
        wait_until("cmp2 gone", lambda: rec.gone == ["cmp2"])
        assert w.live_hosts == ["cmp1"]
        store.delete(status_key("one", "cmp1", "p1"))
        wait_until("p1 ERROR on delete", lambda: rec.ports[-1] == ("cmp1", "p1", "ERROR"))
        assert all(h != "cmp9" for h, _ in rec.agents)
        assert all(p != "p9" for _, p, _ in rec.ports)
    finally:
        w.stop()
        thread.join(5)
    assert not thread.is_alive()
