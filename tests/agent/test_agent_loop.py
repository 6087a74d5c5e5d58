"""The watching loop on the embedded store: batching, datastoreReady, config-change restart."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import agent_support as s
import pytest

from regionmesh.agent.loop import RESTART, Agent
from regionmesh.agent.startup import start
from regionmesh.dataplane import names
from regionmesh.dataplane.driver import NftDataplane
from regionmesh.dataplane.fakenft import FakeNft
from regionmesh.datastore.sqlite import SqliteDatastore

A = s.port("aaaaaaaa-0000-4000-8000-00000000000a", "cmp-one", "10.65.1.2", [s.SG_WEB])
B = s.port("bbbbbbbb-0000-4000-8000-00000000000b", "cmp-one", "10.65.1.3", [s.SG_WEB])
GNP_CHAIN = names.policy_chain("gnp/allow-tcp-80", True)


def wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def chains(fake: FakeNft) -> set[str]:
    table = fake.tables.get(("ip", names.TABLE))
    return set(table.chains) if table else set()


@contextmanager
def running(
    tmp_path: object, store: SqliteDatastore, fake: FakeNft
) -> Iterator[tuple[Agent, list[int]]]:
    cfg = s.felix_cfg(
        os.path.join(str(tmp_path), "felix.cfg"),
        FelixHostname="cmp-one",
        OpenstackRegion="one",
        InterfacePrefix="tap",
        ReportingIntervalSecs=0.2,
    )
    started = start(cfg, env={}, store=store, dataplane_factory=lambda _c: NftDataplane(fake, None))
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(started.agent.run(stop)), daemon=True)
    thread.start()
    try:
        yield started.agent, result
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_watch_applies_batches_in_few_cycles(
    tmp_path: object, sqlite_datastore: SqliteDatastore
) -> None:
    store = sqlite_datastore
    s.apply_docs(store, [s.sg_doc(s.egress_only_sg(s.SG_WEB), "one"), s.wep_doc(A, "one")])
    fake = FakeNft()
    with running(tmp_path, store, fake) as (agent, _):
        wait(lambda: agent.stats.applies >= 1, 5, "the first apply")
        first = agent.stats.applies
        s.apply_docs(store, [s.wep_doc(B, "one"), s.SEED_GNP])
        wait(lambda: GNP_CHAIN in chains(fake), 5, "the GNP to be programmed")
        wait(lambda: names.endpoint_chain("tap" + B.id[:11], True) in chains(fake), 5, "B")
        assert agent.stats.applies - first <= 3  # two writes, coalesced into few applies
        s.delete_doc(store, s.SEED_GNP)
        wait(lambda: GNP_CHAIN not in chains(fake), 5, "the GNP removal")


def test_datastore_not_ready_holds_programming(
    tmp_path: object, sqlite_datastore: SqliteDatastore
) -> None:
    store = sqlite_datastore
    info = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "ClusterInformation",
        "metadata": {"name": "default"},
        "spec": {"datastoreReady": False},
    }
    s.apply_docs(store, [info, s.wep_doc(A, "one"), s.SEED_GNP])
    fake = FakeNft()
    with running(tmp_path, store, fake) as (agent, _):
        wait(
            lambda: agent.in_sync and agent.cluster_ready is False,
            5,
            "the agent to read the snapshot with datastoreReady: false",
        )
        assert fake.tables == {}, "programmed although datastoreReady is false"
        assert agent.stats.applies == 0
        info["spec"] = {"datastoreReady": True}
        s.apply_docs(store, [info])
        wait(lambda: GNP_CHAIN in chains(fake), 5, "programming once ready")


def test_felix_configuration_change_restarts(
    tmp_path: object, sqlite_datastore: SqliteDatastore
) -> None:
    store = sqlite_datastore
    fake = FakeNft()
    with running(tmp_path, store, fake) as (agent, result):
        wait(lambda: agent.in_sync, 5, "in sync")
        s.apply_docs(
            store,
            [
                {
                    "apiVersion": "projectcalico.org/v3",
                    "kind": "FelixConfiguration",
                    "metadata": {"name": "node.cmp-one"},
                    "spec": {"metadataPort": 9000},
                }
            ],
        )
        wait(lambda: result == [RESTART], 5, "the restart request")
        assert agent.restart_reason
