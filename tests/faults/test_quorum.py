"""Quorum lost (2 of 3 members killed): clear errors, nothing partial, agents keep enforcing.

* a write fails with :class:`~regionmesh.errors.DatastoreUnavailable` naming every endpoint;
* ``calicoctl apply`` of 500 documents (the real console script) exits 1 and writes none;
* an agent (in-process, fake nftables) keeps exactly the programmed ruleset during the outage;
* after the two members restart, everything converges without restarting anything: the same
  agent applies a new policy, and the same apply writes all 500.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest
from fault_support import use_test_helpers, wait_for

from regionmesh.agent.agent import start
from regionmesh.dataplane import names
from regionmesh.dataplane.driver import NftDataplane
from regionmesh.dataplane.fakenft import FakeNft
from regionmesh.errors import DatastoreUnavailable
from regionmesh.testing.etcd_cluster import EtcdCluster

use_test_helpers()
import agent_support as s  # noqa: E402

pytestmark = pytest.mark.timeout(240)

A = s.port("aaaaaaaa-0000-4000-8000-00000000000a", "cmp-one", "10.65.1.2", [s.SG_WEB])
OUTAGE = 30.0
"""Seconds without quorum (the failing write and apply take most of it)."""


def _documents(path: str, count: int) -> None:
    with open(path, "w") as f:
        for i in range(count):
            f.write(
                "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\n"
                f'metadata:\n  name: quorum-{i:03d}\n  labels:\n    n: "{i}"\n'
                f"spec:\n  nets: [10.{i // 250}.{i % 250}.0/24]\n"
            )


def _calicoctl(cluster: EtcdCluster, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("calicoctl") or os.path.join(os.path.dirname(os.sys.executable), "calicoctl")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "REGIONMESH_"))}
    env.update(DATASTORE_TYPE="etcdv3", ETCD_ENDPOINTS=cluster.etcd_endpoints)
    return subprocess.run(
        [exe, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_quorum_loss_clear_errors_nothing_partial_agents_keep_enforcing(
    cluster: EtcdCluster, tmp_path: object
) -> None:
    docs = os.path.join(str(tmp_path), "500.yaml")
    _documents(docs, 500)
    store = cluster.open()
    stop = threading.Event()
    thread = None
    started = None
    try:
        s.apply_docs(
            store,
            [s.sg_doc(s.egress_only_sg(s.SG_WEB), "one"), s.wep_doc(A, "one"), s.SEED_GNP],
        )
        cfg = s.felix_cfg(
            os.path.join(str(tmp_path), "felix.cfg"),
            FelixHostname="cmp-one",
            OpenstackRegion="one",
            InterfacePrefix="tap",
            EtcdEndpoints=cluster.etcd_endpoints,
            ReportingIntervalSecs=2,
        )
        fake = FakeNft()
        started = start(cfg, env={}, dataplane_factory=lambda _c: NftDataplane(fake, None))
        agent = started.agent
        thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        thread.start()
        gnp_chain = names.policy_chain("gnp/allow-tcp-80", True)
        table = ("ip", names.TABLE)
        wait_for(
            lambda: table in fake.tables and gnp_chain in fake.tables[table].chains,
            15,
            "programming",
        )
        ruleset = fake.list_ruleset_json(f"ip {names.TABLE}")

        # --- lose quorum; sample the programmed ruleset all through the outage
        changed: list[float] = []
        outage = threading.Event()

        def sample() -> None:
            while not outage.wait(0.2):
                if fake.list_ruleset_json(f"ip {names.TABLE}") != ruleset:
                    changed.append(time.monotonic())

        sampler = threading.Thread(target=sample, daemon=True)
        survivor = cluster.wait_leader()
        outage_started = time.monotonic()
        sampler.start()
        for m in cluster.members:
            if m.name != survivor:
                cluster.kill(m.name)
        t0 = time.monotonic()
        with pytest.raises(DatastoreUnavailable) as err:
            store.put("/fault/quorum/x", b"1")
        write_fail = time.monotonic() - t0
        message = str(err.value)
        assert all(ep in message for ep in cluster.endpoints), message

        t0 = time.monotonic()
        apply_out = _calicoctl(cluster, "apply", "-f", docs)
        apply_took = time.monotonic() - t0
        assert apply_out.returncode == 1, apply_out.stdout + apply_out.stderr
        assert "nothing was written" in apply_out.stderr + apply_out.stdout
        assert cluster.member(survivor).endpoint in apply_out.stderr + apply_out.stdout

        time.sleep(max(0.0, OUTAGE - (time.monotonic() - outage_started)))
        outage.set()
        sampler.join()
        outage_for = time.monotonic() - outage_started
        assert thread.is_alive()

        # --- quorum returns: converge without restarts
        for m in cluster.members:
            if m.name != survivor:
                cluster.restart(m.name, wait=False)
        for m in cluster.members:
            cluster.wait_healthy(m.name)
        partial = len(store.list("/calico/resources/v3/projectcalico.org/globalnetworksets/").items)
        t0 = time.monotonic()
        gnp = dict(s.SEED_GNP, metadata={"name": "after-quorum"})
        s.apply_docs(store, [gnp])
        converged = wait_for(
            lambda: names.policy_chain("gnp/after-quorum", True) in fake.tables[table].chains,
            30,
            "the agent to apply a policy written after quorum returned",
        )
        apply_again = _calicoctl(cluster, "apply", "-f", docs)
        assert apply_again.returncode == 0, apply_again.stderr
        written = len(store.list("/calico/resources/v3/projectcalico.org/globalnetworksets/").items)
        print(
            f"quorum lost: write failed after {write_fail:.1f}s naming all endpoints; "
            f"calicoctl apply of 500 failed after {apply_took:.1f}s having written {partial}; "
            f"ruleset changed during the {outage_for:.0f}s outage: {len(changed)} times; "
            f"converged {converged:.1f}s after a write once quorum returned; re-apply wrote "
            f"{written}/500; agent list failures {agent.stats.list_failures}"
        )
        assert changed == []
        assert partial == 0
        assert written == 500
        assert thread.is_alive()
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=20)
        if started is not None:
            started.close()
        store.close()
