"""DhcpAgent's loop over a real store (embedded SQLite, and etcd for compaction), recording
what it asks its supervisor for; and the ``dhcp-agent`` command's configuration errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping

import dhcp_support as ds
import pytest
from click.testing import CliRunner

from regionmesh.cli.dhcp_cmd import dhcp_agent_cmd
from regionmesh.cli.main import regionmesh_cli
from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore, Watch
from regionmesh.datastore.sqlite import SqliteDatastore
from regionmesh.openstack.compaction import Compactor, Outcome
from regionmesh.openstack.dhcp_agent import DhcpAgent, NetworkDhcp
from regionmesh.testing.etcd_server import EtcdServer

HOST = "cmp-1"
SUB = ds.subnet("sub-a", "10.65.0.0/16")


class Recorder:
    """A Supervisor that remembers the last desired state (the agent's output)."""

    def __init__(self) -> None:
        self.current: dict[str, NetworkDhcp] = {}
        self.applies = 0
        self.closed = False
        self.lock = threading.Lock()

    def apply(self, networks: Mapping[str, NetworkDhcp]) -> None:
        with self.lock:
            self.current = dict(networks)
            self.applies += 1

    def tick(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def ips(self) -> list[str]:
        with self.lock:
            return sorted(h.ip for n in self.current.values() for h in n.hosts)


def _wait(pred: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def store(tmp_path: object) -> Iterator[SqliteDatastore]:
    s = SqliteDatastore(f"{tmp_path}/rm.db")
    try:
        yield s
    finally:
        s.close()


def _run(
    store: Datastore, region: str | None = "east"
) -> tuple[Recorder, threading.Event, threading.Thread]:
    rec = Recorder()
    agent = DhcpAgent(store, rec, host=HOST, region=region, mtu_of=lambda _i: 1500, tick=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    return rec, stop, thread


def test_loop_follows_endpoints_and_subnets(store: SqliteDatastore) -> None:
    ds.apply_wep(store, ds.port("p1", HOST, ["10.65.0.2"]), "east")
    rec, stop, thread = _run(store)
    try:
        assert _wait(lambda: rec.applies >= 1)
        assert rec.ips() == []  # no subnet record yet: nothing to serve
        ds.put_subnet(store, SUB, "east")
        assert _wait(lambda: rec.ips() == ["10.65.0.2"])
        ds.apply_wep(store, ds.port("p2", HOST, ["10.65.0.3"], mac="fa:16:3e:00:00:02"), "east")
        ds.apply_wep(store, ds.port("p3", HOST, ["10.65.0.4"]), "west")  # other region
        ds.apply_wep(store, ds.port("p4", "cmp-2", ["10.65.0.5"]), "east")  # other host
        assert _wait(lambda: rec.ips() == ["10.65.0.2", "10.65.0.3"])
        time.sleep(0.2)
        assert rec.ips() == ["10.65.0.2", "10.65.0.3"]
        assert rec.current[ds.NET_A].mtu == 1500
        ds.delete_wep(store, ds.port("p1", HOST, ["10.65.0.2"]), "east")
        assert _wait(lambda: rec.ips() == ["10.65.0.3"])
        store.delete(ds.put_subnet(store, SUB, "east"))
        assert _wait(lambda: rec.current == {})
        # the legacy v1 record serves when the region has none
        ds.put_subnet(store, SUB, None, legacy=True)
        assert _wait(lambda: rec.ips() == ["10.65.0.3"])
    finally:
        stop.set()
        thread.join(timeout=10)
    assert rec.closed and not thread.is_alive()


def test_loop_relists_after_its_watch_position_is_compacted(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer uses the same SQLite file through a symlink, so the agent's watcher is not
    woken in-process and only polls every 0.5 s: churn plus a compaction inside one poll
    interval leaves its watch position compacted away."""
    import os

    path = f"{tmp_path}/rm.db"
    agent_store = SqliteDatastore(path, poll_interval=0.5)
    os.symlink(path, f"{tmp_path}/link.db")
    writer = SqliteDatastore(f"{tmp_path}/link.db")
    caplog.set_level("INFO", logger="regionmesh.openstack.dhcp_agent")
    try:
        ds.put_subnet(writer, SUB, "east")
        ds.apply_wep(writer, ds.port("p1", HOST, ["10.65.0.2"]), "east")
        rec, stop, thread = _run(agent_store)
        try:
            assert _wait(lambda: rec.ips() == ["10.65.0.2"])
            for i in range(5):
                ds.apply_wep(writer, ds.port("p1", HOST, [f"10.65.1.{i}"]), "east")
            ds.apply_wep(
                writer, ds.port("p2", HOST, ["10.65.2.2"], mac="fa:16:3e:00:00:02"), "east"
            )
            writer.compact(writer.current_revision())
            assert _wait(lambda: rec.ips() == ["10.65.1.4", "10.65.2.2"], timeout=10)
        finally:
            stop.set()
            thread.join(timeout=10)
        assert "compacted" in caplog.text and "re-listing" in caplog.text
    finally:
        writer.close()
        agent_store.close()


class _PausedWatches:
    """The agent's store; its next ``watch()`` first runs ``before`` (writes and a compaction),
    so the agent's watch starts from a position compacted meanwhile, as after an outage."""

    def __init__(self, inner: Datastore, before: Callable[[], None]) -> None:
        self.inner = inner
        self.before: Callable[[], None] | None = before
        self.watches = 0

    def watch(self, prefix: str, *, start_revision: int) -> Watch:
        self.watches += 1
        before, self.before = self.before, None
        if before is not None:
            before()
        return self.inner.watch(prefix, start_revision=start_revision)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_etcd_compaction_past_the_watch_relists(clean_etcd: EtcdServer) -> None:
    """A real compaction (the Neutron master's Compactor) past the agent's watch position."""
    writer = clean_etcd.open()
    agent_store = clean_etcd.open()
    ds.put_subnet(writer, SUB, "east")
    ds.apply_wep(writer, ds.port("p1", HOST, ["10.65.0.2"]), "east")

    def meanwhile() -> None:
        ds.apply_wep(writer, ds.port("p1", HOST, ["10.65.1.1"]), "east")
        ds.apply_wep(writer, ds.port("p2", HOST, ["10.65.2.2"], mac="fa:16:3e:00:00:02"), "east")
        Compactor(writer, period_secs=60, min_revisions=0).check()  # first check: keys only
        writer.revoke_lease(writer.get(keys.compaction_trigger_key()).lease)  # type: ignore[union-attr]
        writer.put("/calico/regionmesh-test/churn", b"x")
        result = Compactor(writer, period_secs=60, min_revisions=0).check()
        assert result.outcome is Outcome.COMPACTED, result

    paused = _PausedWatches(agent_store, meanwhile)
    rec, stop, thread = _run(paused)  # type: ignore[arg-type]
    try:
        assert _wait(lambda: rec.ips() == ["10.65.1.1", "10.65.2.2"], timeout=15)
        assert paused.watches >= 2
        ds.apply_wep(writer, ds.port("p2", HOST, ["10.65.2.3"], mac="fa:16:3e:00:00:02"), "east")
        assert _wait(lambda: rec.ips() == ["10.65.1.1", "10.65.2.3"], timeout=10)
    finally:
        stop.set()
        thread.join(timeout=10)
        agent_store.close()
        writer.close()


def test_loop_on_real_etcd(etcd_datastore: Datastore) -> None:
    ds.put_subnet(etcd_datastore, SUB, "east")
    rec, stop, thread = _run(etcd_datastore)
    try:
        ds.apply_wep(etcd_datastore, ds.port("p1", HOST, ["10.65.0.2"]), "east")
        assert _wait(lambda: rec.ips() == ["10.65.0.2"])
        for i in range(20):
            ds.apply_wep(etcd_datastore, ds.port("p1", HOST, [f"10.65.1.{i}"]), "east")
        ds.apply_wep(etcd_datastore, ds.port("p1", HOST, ["10.65.2.2"]), "west")
        assert _wait(lambda: rec.ips() == ["10.65.1.19"], timeout=10)
    finally:
        stop.set()
        thread.join(timeout=10)


# ---------------------------------------------------------------------------- the command


def test_invalid_region_exits_naming_option_value_and_rule(tmp_path: object) -> None:
    conf = f"{tmp_path}/neutron.conf"
    with open(conf, "w", encoding="utf-8") as f:
        f.write("[DEFAULT]\nhost = cmp-1\n[calico]\nopenstack_region = RegionOne\n")
    result = CliRunner().invoke(
        dhcp_agent_cmd, ["--config-file", conf, "--state-dir", f"{tmp_path}/st"]
    )
    assert result.exit_code == 1
    assert "[calico] openstack_region" in result.output
    assert "'RegionOne'" in result.output
    assert "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" in result.output


def test_missing_config_file_and_registration(tmp_path: object) -> None:
    result = CliRunner().invoke(
        regionmesh_cli, ["dhcp-agent", "--config-file", f"{tmp_path}/nope.conf"]
    )
    assert result.exit_code == 1
    assert "nope.conf" in result.output and "does not exist" in result.output
