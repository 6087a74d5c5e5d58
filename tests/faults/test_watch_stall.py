"""A member frozen with SIGSTOP (stalled, not dead) for ``STALL_SECONDS`` (30 s by default).

Through etcd's JSON gateway a watch on a frozen member stalls silently with its stream open.
Here the frozen member is the LEADER and the first endpoint of every client, and four watchers
run on it: a bare watch, the agent (in-process, fake nftables), the Neutron status watcher and
the DHCP agent. While it is frozen, writes go through the other members and every watcher must
see them within DETECT_BOUND seconds (stall noticed by the backend's probe, resumed on another
member from its last revision + 1), losing and repeating nothing; every write must return within
its timeouts. Afterwards the member is thawed and rejoins.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Mapping

import pytest
from fault_support import STALL_SECONDS, use_test_helpers, wait_for

from regionmesh.agent.agent import start
from regionmesh.dataplane import names
from regionmesh.dataplane.driver import NftDataplane
from regionmesh.dataplane.fakenft import FakeNft
from regionmesh.datastore import keys
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.openstack.dhcp_agent import DhcpAgent, NetworkDhcp
from regionmesh.openstack.status import StatusWatcher
from regionmesh.testing.etcd_cluster import EtcdCluster

use_test_helpers()
import agent_support as s  # noqa: E402
import dhcp_support as ds  # noqa: E402

pytestmark = pytest.mark.timeout(120 + 2 * STALL_SECONDS)

DETECT_BOUND = 12.0
"""Seconds from a write to a watcher seeing it while the watch's member is frozen: the idle
probe (2 s) + its timeout (4 s) + a reconnect, with slack for a loaded 2-core machine."""
REGION = "one"
DHCP_HOST = "cmp-dhcp"
A = s.port("aaaaaaaa-0000-4000-8000-00000000000a", "cmp-one", "10.65.1.2", [s.SG_WEB])


class Recorder:
    """The DHCP agent's supervisor seam: remembers the desired networks."""

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


def _gnp(name: str) -> dict[str, object]:
    doc = copy.deepcopy(s.SEED_GNP)
    doc["metadata"] = {"name": name}  # type: ignore[index]
    return doc


def test_frozen_leader_every_watcher_resumes_elsewhere(
    cluster: EtcdCluster, tmp_path: object
) -> None:
    victim = cluster.wait_leader()
    order = [cluster.member(victim).endpoint] + [
        m.endpoint for m in cluster.members if m.name != victim
    ]
    writer = EtcdDatastore(order)
    stores: list[EtcdDatastore] = [writer]

    def store() -> EtcdDatastore:
        st = EtcdDatastore(order)
        stores.append(st)
        return st

    stop = threading.Event()
    threads: list[threading.Thread] = []
    watch = None
    started = None
    status_watcher = None
    try:
        # --- seed, and start the four watchers on the (future) frozen member
        s.apply_docs(
            writer,
            [s.sg_doc(s.egress_only_sg(s.SG_WEB), REGION), s.wep_doc(A, REGION), s.SEED_GNP],
        )
        ds.put_subnet(writer, ds.subnet("sub-a", "10.65.0.0/16"), REGION)
        ds.apply_wep(writer, ds.port("d0", DHCP_HOST, ["10.65.0.10"]), REGION)

        bare = store()
        watch = bare.watch("/fault/stall/", start_revision=writer.current_revision() + 1)

        cfg = s.felix_cfg(
            os.path.join(str(tmp_path), "felix.cfg"),
            FelixHostname="cmp-one",
            OpenstackRegion=REGION,
            InterfacePrefix="tap",
            EtcdEndpoints=",".join(order),
            ReportingIntervalSecs=5,
        )
        fake = FakeNft()
        started = start(
            cfg, env={}, store=store(), dataplane_factory=lambda _c: NftDataplane(fake, None)
        )
        agent = started.agent
        threads.append(threading.Thread(target=agent.run, args=(stop,), daemon=True))

        seen_hosts: set[str] = set()
        status_watcher = StatusWatcher(
            store(),
            REGION,
            on_agent=lambda host, _first: seen_hosts.add(host),
            on_port_status=lambda *_a: None,
        )
        rec = Recorder()
        dhcp = DhcpAgent(
            store(), rec, host=DHCP_HOST, region=REGION, mtu_of=lambda _i: 1500, tick=0.05
        )
        threads.append(threading.Thread(target=dhcp.run, args=(stop,), daemon=True))
        for t in threads:
            t.start()
        status_watcher.start()

        def chains() -> dict[str, object]:
            table = fake.tables.get(("ip", names.TABLE))
            return table.chains if table is not None else {}

        wait_for(lambda: names.policy_chain("gnp/allow-tcp-80", True) in chains(), 15, "agent")
        wait_for(lambda: rec.ips() == {"10.65.0.10"}, 15, "DHCP agent")
        time.sleep(0.5)  # let every watch settle on the victim
        assert watch.endpoint == order[0]

        # --- freeze the leader; write through the others; every watcher must follow
        cluster.freeze(victim)
        frozen_at = time.monotonic()
        write_times: list[float] = []
        lags: dict[str, list[float]] = {"bare": [], "agent": [], "status": [], "dhcp": []}
        bare_keys: list[str] = []
        got: list[str] = []
        i = 0
        while time.monotonic() - frozen_at < STALL_SECONDS:
            i += 1
            t0 = time.monotonic()
            key = f"/fault/stall/k{i:03d}"
            writer.create(key, b"v")
            s.apply_docs(writer, [_gnp(f"stall-{i}")])
            writer.put(keys.felix_status_key(REGION, f"h{i}"), b'{"first_update": false}')
            ds.apply_wep(
                writer,
                ds.port(f"d{i}", DHCP_HOST, [f"10.65.0.{10 + i}"], mac=f"fa:16:3e:00:01:{i:02x}"),
                REGION,
            )
            wrote = time.monotonic()
            write_times.append(wrote - t0)
            bare_keys.append(key)

            def bare_has(k: str = key) -> bool:
                for batch in iter(lambda: watch.next_batch(0.05), []):
                    got.extend(e.key for e in batch)
                return k in got

            chain = names.policy_chain(f"gnp/stall-{i}", True)
            for what, pred in (
                ("bare", bare_has),
                ("agent", lambda c=chain: c in chains()),
                ("status", lambda h=f"h{i}": h in seen_hosts),
                ("dhcp", lambda ip=f"10.65.0.{10 + i}": ip in rec.ips()),
            ):
                wait_for(pred, DETECT_BOUND, f"{what} to see change {i} with {victim} frozen")
                lags[what].append(time.monotonic() - wrote)
            time.sleep(max(0.0, 3.0 - (time.monotonic() - t0)))
        frozen_for = time.monotonic() - frozen_at
        cluster.thaw(victim)

        lost = [k for k in bare_keys if k not in got]
        repeated = len(got) - len(set(got))
        print(
            f"{victim} (leader) frozen {frozen_for:.1f}s, {i} rounds of writes: slowest write "
            f"{max(write_times):.2f}s; watcher lag max: "
            + ", ".join(f"{w} {max(v):.2f}s" for w, v in lags.items())
            + f"; bare watch lost {len(lost)}, repeated {repeated}, in order "
            f"{got == sorted(got)}, stalls {watch.stalls}, now on {watch.endpoint}"
        )
        assert frozen_for >= STALL_SECONDS
        assert lost == [] and repeated == 0 and got == bare_keys
        assert watch.stalls >= 1 and watch.endpoint != order[0]
        assert max(write_times) <= 4 * writer.timeout + 2
        assert agent.stats.list_failures == 0, (
            "the agent had to re-list: the backend should hide this"
        )
        cluster.wait_healthy(victim)
    finally:
        if cluster.member(victim).state == "frozen":
            cluster.thaw(victim)
        stop.set()
        if status_watcher is not None:
            status_watcher.stop()
        for t in threads:
            t.join(timeout=15)
        if watch is not None:
            watch.close()
        if started is not None:
            started.close()
        for st in stores:
            st.close()
