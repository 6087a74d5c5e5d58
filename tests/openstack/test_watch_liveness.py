"""Watch liveness (round-trip check) and compaction survival of the Neutron-side watches,
against a real etcd.

A silently stalled watch is made with :class:`StallProxy`: a TCP proxy in front of etcd that
can stop forwarding etcd's bytes on the watch streams open at that moment while the stream
stays open (what a frozen member behind the JSON gateway does, routing-security-reliability.md
§9), and keeps forwarding everything else (KV requests, watches opened later).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from regionmesh.datastore import Datastore
from regionmesh.datastore import keys as dskeys
from regionmesh.datastore.api import Watch
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.openstack.compaction import Compactor, Outcome
from regionmesh.openstack.status import StatusWatcher
from regionmesh.testing.etcd_server import EtcdServer


def wait_until(what: str, cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.is_watch = False
        self.frozen = threading.Event()
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class StallProxy:
    """Loopback TCP proxy to ``target`` whose current watch streams can be frozen."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[_Conn] = []
        self.lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            conn = _Conn(client, upstream)
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._up, args=(conn,), daemon=True).start()
            threading.Thread(target=self._down, args=(conn,), daemon=True).start()

    def _up(self, conn: _Conn) -> None:
        try:
            while data := conn.client.recv(65536):
                if b"/watch" in data.split(b"\r\n", 1)[0]:
                    conn.is_watch = True
                conn.upstream.sendall(data)
        except OSError:
            pass
        conn.close()

    def _down(self, conn: _Conn) -> None:
        try:
            while not conn.closed.is_set():
                if conn.frozen.is_set():  # stop reading: etcd's bytes wait, the stream stays open
                    conn.closed.wait(0.1)
                    continue
                conn.upstream.settimeout(0.1)
                try:
                    data = conn.upstream.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                if conn.frozen.is_set():  # froze while we read: hold these bytes back too
                    continue
                conn.client.sendall(data)
        except OSError:
            pass
        conn.close()

    def freeze_watches(self) -> int:
        """Freeze every open watch stream; later connections pass. Returns how many froze."""
        with self.lock:
            watches = [c for c in self.conns if c.is_watch and not c.closed.is_set()]
        for c in watches:
            c.frozen.set()
        return len(watches)

    def close(self) -> None:
        self._stopped = True
        self.listener.close()
        with self.lock:
            for c in self.conns:
                c.close()


@pytest.fixture
def proxy(clean_etcd: EtcdServer) -> Iterator[StallProxy]:
    host, port = clean_etcd.endpoint.removeprefix("http://").rsplit(":", 1)
    p = StallProxy((host, int(port)))
    yield p
    p.close()


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ports: list[tuple[str, str, str]] = []
        self.agents: list[tuple[str, bool]] = []

    def agent(self, host: str, first: bool) -> None:
        with self.lock:
            self.agents.append((host, first))

    def port(self, host: str, port_id: str, status: str) -> None:
        with self.lock:
            self.ports.append((host, port_id, status))


def status_key(host: str, port: str) -> str:
    return dskeys.endpoint_status_key(
        "one", host, dskeys.workload_id("openstack-region-one", "vm-1"), port
    )


def test_round_trip_key_is_written_on_networking_calicos_cadence(clean_etcd: EtcdServer) -> None:
    store = clean_etcd.open()
    rec = Recorder()
    w = StatusWatcher(store, "one", on_agent=rec.agent, on_port_status=rec.port)
    thread = w.start()
    key = "/calico/felix/v2/region-one/host/round-trip-check"
    try:
        wait_until("the first round-trip write", lambda: store.get(key) is not None)
        first = store.get(key)
        assert first is not None and first.lease == 0
        float(first.value.decode())  # the writer's monotonic clock, as networking-calico writes it
        time.sleep(7.2)  # every 10/3 s: two more writes
        later = store.get(key)
        assert later is not None and later.value != first.value
        assert later.mod_revision > first.mod_revision
        assert w.stalls == 0
    finally:
        w.stop()
        thread.join(5)
        store.close()


def test_a_stalled_watch_is_recreated_without_losing_or_repeating_events(
    clean_etcd: EtcdServer, proxy: StallProxy
) -> None:
    writer = clean_etcd.open()
    watched = EtcdDatastore([proxy.endpoint])
    rec = Recorder()
    w = StatusWatcher(
        watched, "one", on_agent=rec.agent, on_port_status=rec.port,
        round_trip_interval=0.3, watch_timeout=1.5,
    )  # fmt: skip
    thread = w.start()
    try:
        writer.put(status_key("cmp1", "p0"), b'{"status": "up"}')
        wait_until("p0 ACTIVE", lambda: ("cmp1", "p0", "ACTIVE") in rec.ports)
        time.sleep(1.0)
        assert w.stalls == 0  # a healthy watch sees its own writes
        assert proxy.freeze_watches() == 1
        expected = [("cmp1", "p0", "ACTIVE")]
        for i in range(1, 6):
            status = "up" if i % 2 else "down"
            writer.put(status_key("cmp1", f"p{i}"), json.dumps({"status": status}).encode())
            expected.append(("cmp1", f"p{i}", "ACTIVE" if i % 2 else "DOWN"))
        writer.put(status_key("cmp1", "p1"), b'{"status": "error"}')
        expected.append(("cmp1", "p1", "ERROR"))
        time.sleep(0.5)
        assert rec.ports == expected[:1]  # frozen: nothing arrives
        wait_until("the stalled watch to be re-created", lambda: w.stalls >= 1, timeout=5)
        wait_until("the missed events", lambda: len(rec.ports) >= len(expected))
        time.sleep(1.0)
        assert rec.ports == expected  # each once, in revision order: resumed at last + 1
    finally:
        w.stop()
        thread.join(5)
        watched.close()
        writer.close()
    assert not thread.is_alive()


class PausedWatches:
    """A datastore whose next ``watch()`` first runs ``before`` (writes, compaction): the
    caller's watch then starts from a position compacted meanwhile, as after an outage."""

    def __init__(self, inner: Datastore) -> None:
        self.inner = inner
        self.before: Callable[[], None] | None = None
        self.watches = 0

    def watch(self, prefix: str, *, start_revision: int) -> Watch:
        self.watches += 1
        before, self.before = self.before, None
        if before is not None:
            before()
        return self.inner.watch(prefix, start_revision=start_revision)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def _compact_everything(store: Datastore) -> None:
    result = Compactor(store, period_secs=2, min_revisions=0).check()
    if result.outcome is Outcome.FIRST_CHECK:
        store.revoke_lease(store.get(dskeys.compaction_trigger_key()).lease)  # type: ignore[union-attr]
        store.put("/calico/regionmesh-test/churn", b"x")
        result = Compactor(store, period_secs=2, min_revisions=0).check()
    assert result.outcome is Outcome.COMPACTED, result


def test_status_watcher_relists_after_a_compaction_past_its_revision(
    clean_etcd: EtcdServer,
) -> None:
    writer = clean_etcd.open()
    inner = clean_etcd.open()
    paused = PausedWatches(inner)
    rec = Recorder()
    writer.put(status_key("cmp1", "p1"), b'{"status": "up"}')

    def meanwhile() -> None:
        writer.put(status_key("cmp1", "p1"), b'{"status": "down"}')
        writer.put(status_key("cmp1", "p2"), b'{"status": "up"}')
        _compact_everything(writer)

    paused.before = meanwhile
    w = StatusWatcher(paused, "one", on_agent=rec.agent, on_port_status=rec.port)  # type: ignore[arg-type]
    thread = w.start()
    try:
        wait_until("p2 from the re-list", lambda: ("cmp1", "p2", "ACTIVE") in rec.ports)
        wait_until("p1 DOWN", lambda: ("cmp1", "p1", "DOWN") in rec.ports)
        assert paused.watches >= 2  # the compacted watch was replaced after a new list
        writer.put(status_key("cmp1", "p3"), b'{"status": "up"}')  # and the new watch works
        wait_until("p3 live", lambda: ("cmp1", "p3", "ACTIVE") in rec.ports)
    finally:
        w.stop()
        thread.join(5)
        inner.close()
        writer.close()
