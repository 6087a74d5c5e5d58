"""History compacted past an agent's and a DHCP agent's watch revision: both re-list, converge.

Both watchers reach member m1 through a :class:`~regionmesh.testing.tcp_proxy.TcpProxy` (their
first endpoint; m2 and m3 follow). The proxy is black-holed (a partition), and at once a policy
is deleted, another created, a DHCP endpoint replaced, and the history compacted to the current
revision. When the backend's probe notices the dead stream it resumes on m2 from the old
revision, which is now compacted: the watchers must re-list (the agent diffs, so the deleted
policy's chain goes) and converge on exactly the final state.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Mapping

import pytest
from fault_support import use_test_helpers, wait_for

from regionmesh.agent.agent import start
from regionmesh.dataplane import names
from regionmesh.dataplane.driver import NftDataplane
from regionmesh.dataplane.fakenft import FakeNft
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.openstack.dhcp_agent import DhcpAgent, NetworkDhcp
from regionmesh.testing.etcd_cluster import EtcdCluster
from regionmesh.testing.tcp_proxy import TcpProxy

use_test_helpers()
import agent_support as s  # noqa: E402
import dhcp_support as ds  # noqa: E402

pytestmark = pytest.mark.timeout(120)

REGION = "one"
HOST = "cmp-dhcp"
A = s.port("aaaaaaaa-0000-4000-8000-00000000000a", "cmp-one", "10.65.1.2", [s.SG_WEB])


class Recorder:
    def __init__(self) -> None:
        self.current: dict[str, NetworkDhcp] = {}
        self.lock = threading.Lock()

    def apply(self, networks: Mapping[str, NetworkDhcp]) -> None:
        with self.lock:
            self.current = dict(networks)

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass

    def ips(self) -> set[str]:
        with self.lock:
            return {h.ip for n in self.current.values() for h in n.hosts}


def test_compacted_past_watch_revision_agent_and_dhcp_relist(
    cluster: EtcdCluster, tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    m1 = cluster.member("m1")
    proxy = TcpProxy("127.0.0.1", m1.client_port)
    order = [proxy.endpoint] + [m.endpoint for m in cluster.members if m.name != "m1"]
    writer = cluster.open()
    agent_store = EtcdDatastore(order)
    dhcp_store = EtcdDatastore(order)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    started = None
    try:
        s.apply_docs(
            writer,
            [s.sg_doc(s.egress_only_sg(s.SG_WEB), REGION), s.wep_doc(A, REGION), s.SEED_GNP],
        )
        ds.put_subnet(writer, ds.subnet("sub-a", "10.65.0.0/16"), REGION)
        ds.apply_wep(writer, ds.port("d0", HOST, ["10.65.0.10"]), REGION)
        cfg = s.felix_cfg(
            os.path.join(str(tmp_path), "felix.cfg"),
            FelixHostname="cmp-one",
            OpenstackRegion=REGION,
            InterfacePrefix="tap",
            ReportingIntervalSecs=5,
        )
        fake = FakeNft()
        started = start(
            cfg, env={}, store=agent_store, dataplane_factory=lambda _c: NftDataplane(fake, None)
        )
        agent = started.agent
        rec = Recorder()
        dhcp = DhcpAgent(
            dhcp_store, rec, host=HOST, region=REGION, mtu_of=lambda _i: 1500, tick=0.05
        )
        threads = [
            threading.Thread(target=agent.run, args=(stop,), daemon=True),
            threading.Thread(target=dhcp.run, args=(stop,), daemon=True),
        ]
        for t in threads:
            t.start()

        def chains() -> dict[str, object]:
            table = fake.tables.get(("ip", names.TABLE))
            return table.chains if table is not None else {}

        old_chain = names.policy_chain("gnp/allow-tcp-80", True)
        new_chain = names.policy_chain("gnp/after-compaction", True)
        wait_for(lambda: old_chain in chains(), 15, "the agent to program")
        wait_for(lambda: rec.ips() == {"10.65.0.10"}, 15, "the DHCP agent")

        proxy.blackhole()
        s.delete_doc(writer, s.SEED_GNP)
        gnp = copy.deepcopy(s.SEED_GNP)
        gnp["metadata"] = {"name": "after-compaction"}
        s.apply_docs(writer, [gnp])
        ds.delete_wep(writer, ds.port("d0", HOST, ["10.65.0.10"]), REGION)
        ds.apply_wep(writer, ds.port("d1", HOST, ["10.65.0.11"], mac="fa:16:3e:00:00:11"), REGION)
        compacted_to = cluster.compact_all()

        took = wait_for(
            lambda: new_chain in chains() and old_chain not in chains(),
            30,
            "the agent to re-list and converge after compaction",
        )
        wait_for(lambda: rec.ips() == {"10.65.0.11"}, 30, "the DHCP agent to converge")
        dhcp_relisted = "compacted" in caplog.text and "re-listing" in caplog.text
        print(
            f"compacted to {compacted_to} behind both watches: agent re-listed "
            f"{agent.syncer.compactions}x and converged in {took:.1f}s; DHCP re-listed "
            f"{dhcp_relisted}; final DHCP hosts {sorted(rec.ips())}"
        )
        assert agent.syncer.compactions >= 1
        assert dhcp_relisted
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        if started is not None:
            started.close()
        dhcp_store.close()
        writer.close()
        proxy.close()
