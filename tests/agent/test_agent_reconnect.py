"""Fail-safe: etcd dies and comes back; the agent keeps its ruleset, then resumes (real etcd)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import agent_support as s
import pytest

from regionmesh.agent.startup import start
from regionmesh.dataplane import names
from regionmesh.dataplane.driver import NftDataplane
from regionmesh.dataplane.fakenft import FakeNft

pytestmark = [pytest.mark.etcd, pytest.mark.timeout(120)]

A = s.port("aaaaaaaa-0000-4000-8000-00000000000a", "cmp-one", "10.65.1.2", [s.SG_WEB])
C = s.port("cccccccc-0000-4000-8000-00000000000c", "cmp-two", "10.65.2.2", [s.SG_CLIENT])
STATUS = "/calico/felix/v2/region-one/host/cmp-one/status"
TABLE = f"ip {names.TABLE}"
GNP_CHAIN = names.policy_chain("gnp/allow-tcp-80", True)


def wait(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def test_agent_survives_etcd_restart(tmp_path: object) -> None:
    etcd = s.RestartableEtcd()
    etcd.start()
    stop = threading.Event()
    thread: threading.Thread | None = None
    store = etcd.open()
    started = None
    try:
        s.apply_docs(
            store,
            [
                s.sg_doc(s.egress_only_sg(s.SG_WEB), "one"),
                s.sg_doc(s.egress_only_sg(s.SG_CLIENT), "two"),
                s.wep_doc(A, "one"),
                s.wep_doc(C, "two"),
                s.SEED_GNP,
            ],
        )
        cfg = s.felix_cfg(
            os.path.join(str(tmp_path), "felix.cfg"),
            FelixHostname="cmp-one",
            OpenstackRegion="one",
            InterfacePrefix="tap",
            EtcdEndpoints=etcd.endpoint,
            ReportingIntervalSecs=0.3,
            ReportingTTLSecs=30,
        )
        fake = FakeNft()
        started = start(cfg, env={}, dataplane_factory=lambda _c: NftDataplane(fake, None))
        agent = started.agent
        thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        thread.start()
        wait(lambda: store.get(STATUS) is not None, 10, "the first heartbeat")
        wait(lambda: GNP_CHAIN in fake.tables[("ip", names.TABLE)].chains, 5, "programming")
        before = fake.list_ruleset_json(TABLE)
        status_before = store.get(STATUS)
        assert status_before is not None

        etcd.kill()
        wait(lambda: agent.heartbeat.failures >= 2, 10, "failed heartbeats while etcd is down")
        wait(lambda: not agent.syncer.watching, 15, "the agent to notice the lost watch")
        assert thread.is_alive()
        assert fake.list_ruleset_json(TABLE) == before, "the ruleset changed while etcd was down"

        etcd.start()
        took = wait(
            lambda: (
                (kv := store.get(STATUS)) is not None
                and kv.mod_revision > status_before.mod_revision
            ),
            20,
            "heartbeats to resume after the restart",
        )
        wait(lambda: agent.syncer.watching, 20, "the watch to be re-established")
        s.delete_doc(store, s.SEED_GNP)
        applied = wait(
            lambda: GNP_CHAIN not in fake.tables[("ip", names.TABLE)].chains,
            10,
            "the GNP deletion to be applied after reconnecting",
        )
        assert agent.stats.list_failures >= 1
        print(f"heartbeat resumed {took:.2f}s after etcd restart; delete applied in {applied:.2f}s")
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=15)
        if started is not None:
            started.close()
        store.close()
        etcd.close()
    assert thread is not None and not thread.is_alive()
