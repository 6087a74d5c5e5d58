"""Every component on its own least-privilege etcd user, against a real etcd with TLS (server
certificate verified, CN-less client certificates made with openssl) and authentication on,
set up by ``regionmesh etcd-auth apply`` itself; tokens expire after 2 s (``--auth-token-ttl``)
so every test also exercises transparent re-authentication.

Region one's Neutron writer does its job (endpoints, policies, subnets, overlap guard, election,
status watch, compaction keys); region two's credentials are refused on region one's namespace,
GNPs and other regions' heartbeats with PermissionDenied naming key and user, nothing written,
and can still do their own work; the agent programs the seed scenario and heartbeats but cannot
write a resource; the DHCP agent serves and cannot write; calicoctl as operator applies the GNP
and an all-or-nothing apply with a denied document writes nothing; wrong passwords are a clear
one-line error; ``doctor etcd-auth`` finds missing and extra permissions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "agent"), str(HERE.parent / "dhcp")]

import agent_support as s  # noqa: E402
import dhcp_support as ds  # noqa: E402

from regionmesh.agent.agent import start  # noqa: E402
from regionmesh.cli.main import regionmesh_cli  # noqa: E402
from regionmesh.dataplane import names  # noqa: E402
from regionmesh.dataplane.driver import NftDataplane  # noqa: E402
from regionmesh.dataplane.fakenft import FakeNft  # noqa: E402
from regionmesh.datastore import keys  # noqa: E402
from regionmesh.datastore.etcd import EtcdDatastore  # noqa: E402
from regionmesh.errors import AuthenticationFailed, PermissionDenied  # noqa: E402
from regionmesh.openstack.dhcp_agent import DhcpAgent, NetworkDhcp  # noqa: E402
from regionmesh.openstack.election import Elector  # noqa: E402
from regionmesh.openstack.status import StatusWatcher  # noqa: E402
from regionmesh.openstack.writer import RegionWriter  # noqa: E402
from regionmesh.testing.etcd_server import EtcdServer, running_etcd  # noqa: E402

from auth_support import Cloud, auth_cloud  # noqa: E402  # isort: skip

pytestmark = pytest.mark.etcd
REPO = HERE.parents[1]
TOKEN_TTL = 2
NS1, NS2 = "openstack-region-one", "openstack-region-two"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with auth_cloud(tmp_path_factory.mktemp("etcd-auth"), token_ttl=TOKEN_TTL) as c:
        yield c


def test_apply_is_idempotent_and_root_keeps_access(cloud: Cloud) -> None:
    res = CliRunner().invoke(
        regionmesh_cli,
        ["--datastore", cloud.url("root"), "etcd-auth", "apply", "--regions", "one,two"],
    )
    assert res.exit_code == 0 and "etcd already matches the plan" in res.output, res.output
    with cloud.open("root") as root:
        assert root.get(keys.resource_key("clusterinformations", "default")) is not None
    # the cluster singletons were written once by the operator set-up
    with cloud.open("root") as root:
        fc = json.loads(root.get(keys.resource_key("felixconfigurations", "default")).value)  # type: ignore[union-attr]
    assert fc["spec"]["endpointReportingEnabled"] is True
    res = cloud.cli("root", "get", "gnp")
    assert res.returncode == 0, res.stderr
    with cloud.server.open_as(None, None) as anonymous:
        with pytest.raises(AuthenticationFailed, match="no etcd username is configured"):
            anonymous.get("/calico/x")


def test_neutron_region_one_does_its_job(cloud: Cloud) -> None:
    p = s.port("aaaaaaaa-0000-4000-8000-0000000000a1", "cmp-one", "10.65.1.2", [s.SG_WEB])
    with cloud.open("neutron-region-one") as store:
        w = RegionWriter(store, "one")
        wep = s.wep_doc(p, "one")
        assert w.sync_resource(w.workload_endpoint_key(wep["metadata"]["name"]), wep) == "created"
        sg = s.sg_doc(s.egress_only_sg(s.SG_WEB), "one")
        assert w.sync_resource(w.policy_key(sg["metadata"]["name"]), sg) == "created"
        assert w.sync_dhcp_subnet("sub-1", {"cidr": "10.65.1.0/24", "network_id": "n"}) == "created"
        assert w.claim_subnet("sub-1", "10.65.1.0/24", "n") is None
        w.ensure_cluster_config()  # already set by the operator: reads only
        w.record_finding("test", "cmp-one", "hello")
        assert [f["subject"] for f in w.findings("test")] == ["cmp-one"]
        assert w.heartbeat_regions("cmp-one") == []
        time.sleep(TOKEN_TTL + 1.5)  # the token expires; the next request re-authenticates
        assert len(store.list(w.workload_endpoint_prefix()).items) == 1
        # election with a lease, in its own region
        elector = Elector(store, "one", name="server-a", ttl=10, interval=1)
        elector.step()
        assert elector.is_master
        elector.stop()
        elector._step_down()
        # the master's status watcher lists and watches its region's felix keys
        seen: list[str] = []
        watcher = StatusWatcher(
            store, "one", on_agent=lambda h, _f: seen.append(h), on_port_status=lambda *a: None
        )
        thread = watcher.start()
        with cloud.open("felix-region-one") as felix:
            felix.put(keys.felix_status_key("one", "cmp-one"), b'{"time": "x"}')
        deadline = time.monotonic() + 10
        while "cmp-one" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
        watcher.stop()
        thread.join(5)
        assert "cmp-one" in seen
        store.put(keys.round_trip_key("one"), b"1")
        # the shared compactor's keys and the compaction itself
        store.put(keys.compaction_trigger_key(), b"1")
        rev = store.put(keys.compaction_last_key(), b"0")
        store.compact(rev)


def test_region_two_is_refused_cleanly(cloud: Cloud) -> None:
    p = s.port("bbbbbbbb-0000-4000-8000-0000000000b1", "cmp-one", "10.65.1.9", [s.SG_WEB])
    wep = s.wep_doc(p, "one")
    key = keys.resource_key("workloadendpoints", wep["metadata"]["name"], NS1)
    with cloud.open("neutron-region-two") as store, cloud.open("root") as root:
        two = RegionWriter(store, "two")
        with pytest.raises(PermissionDenied) as info:
            two.sync_resource(key, wep)
        msg = str(info.value)
        assert key in msg and "'neutron-region-two'" in msg, msg
        assert info.value.key == key and info.value.user == "neutron-region-two"
        assert root.get(key) is None
        gnp_key = keys.resource_key("globalnetworkpolicies", "open-everything")
        with pytest.raises(PermissionDenied, match="open-everything"):
            store.create(gnp_key, b"{}")
        hb = keys.felix_status_key("one", "cmp-one")
        with pytest.raises(PermissionDenied, match="region-one/host/cmp-one/status"):
            store.put(hb, b"{}")
        with pytest.raises(PermissionDenied, match="may not delete"):
            store.delete_prefix(keys.felix_hosts_prefix("one"))
        with pytest.raises(PermissionDenied, match="may not read prefix"):
            store.list(keys.resource_prefix("workloadendpoints"))
        assert root.get(gnp_key) is None
        # ... and it keeps doing what it may
        own = s.wep_doc(p, "two")
        assert two.sync_resource(two.workload_endpoint_key(own["metadata"]["name"]), own) in (
            "created",
            "unchanged",
        )
        # the overlap guard sees region one's subnet claimed above
        overlap = two.claim_subnet("sub-2", "10.65.1.128/25", "n2")
        assert overlap is not None and overlap.other_region == "one"
    # the CLI: one line naming the key and the user, exit 1
    doc = cloud.workdir / "gnp.yaml"
    doc.write_text(yaml.safe_dump(s.SEED_GNP))
    res = cloud.cli("neutron-region-two", "apply", "-f", str(doc))
    assert res.returncode == 1
    first, *rest = res.stderr.strip().splitlines()
    assert rest == ["nothing was written"], res.stderr  # calicoctl's all-or-nothing note
    assert "permission denied" in first and "'neutron-region-two'" in first
    assert "globalnetworkpolicies" in res.stderr and "Traceback" not in res.stderr


def _seed(cloud: Cloud) -> tuple[object, object]:
    a = s.port("cccccccc-0000-4000-8000-00000000000a", "cmp-one", "10.65.1.2", [s.SG_WEB])
    c = s.port("dddddddd-0000-4000-8000-00000000000c", "cmp-two", "10.65.2.2", [s.SG_CLIENT])
    for user, region, docs in (
        ("neutron-region-one", "one", [s.sg_doc(s.egress_only_sg(s.SG_WEB), "one"), s.wep_doc(a, "one")]),
        ("neutron-region-two", "two", [s.sg_doc(s.egress_only_sg(s.SG_CLIENT), "two"), s.wep_doc(c, "two")]),
    ):  # fmt: skip
        with cloud.open(user) as store:
            w = RegionWriter(store, region)
            for doc in docs:
                plural = (
                    "workloadendpoints" if doc["kind"] == "WorkloadEndpoint" else "networkpolicies"
                )
                w.sync_resource(
                    keys.resource_key(
                        plural, doc["metadata"]["name"], doc["metadata"]["namespace"]
                    ),
                    doc,
                )
    doc = cloud.workdir / "seed-gnp.yaml"
    doc.write_text(yaml.safe_dump(s.SEED_GNP))
    res = cloud.cli(er_operator(), "apply", "-f", str(doc))
    assert res.returncode == 0, res.stderr
    return a, c


def er_operator() -> str:
    from regionmesh.datastore.etcd_roles import OPERATOR_USER

    return OPERATOR_USER


def test_agent_programs_seed_and_heartbeats_but_writes_no_resource(
    cloud: Cloud, tmp_path: Path
) -> None:
    a, _c = _seed(cloud)
    iface = "tap" + a.id[:11]  # type: ignore[attr-defined]
    fake = FakeNft()
    srv = cloud.server
    # configured as Felix is: etcd endpoint and certificates in felix.cfg, the user and
    # password only in the environment (ETCD_USERNAME / ETCD_PASSWORD)
    cfg = s.felix_cfg(
        str(tmp_path / "felix.cfg"),
        FelixHostname="cmp-one",
        OpenstackRegion="one",
        InterfacePrefix="tap",
        EndpointReportingEnabled="true",
        EtcdEndpoints=srv.endpoint,
        EtcdCaFile=srv.ca_cert_file,
        EtcdCertFile=srv.cert_file,
        EtcdKeyFile=srv.key_file,
    )
    env = {"ETCD_USERNAME": "felix-region-one", "ETCD_PASSWORD": cloud.password("felix-region-one")}
    started = start(
        cfg,
        env=env,
        dataplane_factory=lambda _c: NftDataplane(fake, None),
        iface_up=lambda name: name == iface,
    )
    store = started.store
    assert isinstance(store, EtcdDatastore) and store.username == "felix-region-one"
    try:
        started.agent.run_once()
        table = f"ip {names.TABLE}"
        assert iface in fake.map_elements(table, names.TO_WL_DISPATCH)
        member_sets = [n for n, st in fake.tables[("ip", names.TABLE)].sets.items()
                           if "10.65.2.2" in st.elements]  # fmt: skip
        assert member_sets, "the cross-region SG member (region two's VM) must be in a set"
        assert store.get(keys.felix_status_key("one", "cmp-one")) is not None
        for key in (
            keys.resource_key("globalnetworkpolicies", "x"),
            keys.resource_key("workloadendpoints", "x", NS1),
            keys.resource_key("networkpolicies", "x", NS1),
            keys.felix_status_key("two", "cmp-two"),
        ):
            with pytest.raises(PermissionDenied, match="'felix-region-one' may not write"):
                store.put(key, b"{}")
    finally:
        started.close()


class Recorder:
    """A DHCP supervisor that records the desired state."""

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

    def ips(self) -> list[str]:
        with self.lock:
            return sorted(h.ip for n in self.current.values() for h in n.hosts)


def test_dhcp_agent_serves_and_cannot_write(cloud: Cloud) -> None:
    port = ds.port("dhcp-p1", "cmp-d", ["10.66.0.2"])
    sub = ds.subnet("sub-d", "10.66.0.0/16")
    with cloud.open("neutron-region-one") as n1:
        w = RegionWriter(n1, "one")
        doc = ds.wep_doc(port, "one")
        w.sync_resource(w.workload_endpoint_key(doc["metadata"]["name"]), doc)
        n1.put(keys.subnet_key("one", sub.id), ds.subnet_value(sub))
    with cloud.open("dhcp-region-one") as store:
        rec = Recorder()
        agent = DhcpAgent(store, rec, host="cmp-d", region="one", mtu_of=lambda _i: 1500, tick=0.05)
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 15
            while rec.ips() != ["10.66.0.2"] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert rec.ips() == ["10.66.0.2"]
        finally:
            stop.set()
            thread.join(10)
        with pytest.raises(PermissionDenied, match="'dhcp-region-one' may not write"):
            store.put(keys.subnet_key("one", "forged"), b"{}")


def test_operator_apply_is_all_or_nothing(cloud: Cloud) -> None:
    gnp = {**s.SEED_GNP, "metadata": {"name": "op-allow-dns"}}
    np = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "NetworkPolicy",
        "metadata": {"name": "sneaky", "namespace": NS1},
        "spec": {"selector": "all()", "types": ["Ingress"]},
    }
    doc = cloud.workdir / "two-docs.yaml"
    doc.write_text(yaml.safe_dump_all([gnp, np]))
    res = cloud.cli(er_operator(), "apply", "-f", str(doc))
    assert res.returncode == 1
    assert "permission denied" in res.stderr and "sneaky" in res.stderr, res.stderr
    with cloud.open("root") as root:
        assert root.get(keys.resource_key("globalnetworkpolicies", "op-allow-dns")) is None
        assert root.get(keys.resource_key("networkpolicies", "sneaky", NS1)) is None
    res = cloud.cli(er_operator(), "get", "workloadendpoints", "--all-namespaces")
    assert res.returncode == 0, res.stderr


def test_wrong_password_is_a_clear_startup_error(cloud: Cloud, tmp_path: Path) -> None:
    url = cloud.server.url_as("felix-region-one", "not-the-password")
    res = subprocess.run(
        [str(REPO / ".venv" / "bin" / "regionmesh"), "--datastore", url, "get", "gnp"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 1
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "'felix-region-one'" in line and cloud.server.endpoint in line
    assert "invalid user ID or password" in line
    cfg = s.felix_cfg(
        str(tmp_path / "felix.cfg"), FelixHostname="cmp-one", OpenstackRegion="one",
    )  # fmt: skip
    res = subprocess.run(
        [str(REPO / ".venv" / "bin" / "regionmesh"), "agent", "--config-file", cfg, "--once",
         "--datastore", url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    assert "'felix-region-one'" in res.stderr and "Traceback" not in res.stderr, res.stderr
    conf = tmp_path / "neutron.conf"
    conf.write_text(
        "[DEFAULT]\nhost = cmp-d\n[calico]\nopenstack_region = one\n"
        f"datastore = {cloud.server.url_as('dhcp-region-one', 'wrong')}\n"
    )
    res = subprocess.run(
        [str(REPO / ".venv" / "bin" / "regionmesh"), "dhcp-agent", "--config-file", str(conf),
         "--state-dir", str(tmp_path / "dhcp")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.strip().startswith("regionmesh dhcp-agent: etcd "), res.stderr
    assert "authentication as user 'dhcp-region-one' failed" in res.stderr


def test_doctor_checks_every_user_against_the_plan(cloud: Cloud) -> None:
    res = cloud.cli("root", "doctor", "etcd-auth", "--regions", "one,two")
    assert res.returncode == 0, res.stdout + res.stderr
    res = cloud.cli("neutron-region-one", "doctor", "etcd-auth", "--regions", "one,two")
    assert res.returncode == 0, res.stdout + res.stderr
    gnp = keys.resource_prefix("globalnetworkpolicies")
    subnets = keys.subnet_dir("one") + "/"
    with cloud.open("root") as root:
        import base64

        def b(x: str) -> str:
            return base64.b64encode(x.encode()).decode()

        end = keys.prefix_range_end(gnp.encode())
        assert end is not None
        root.request("/auth/role/grant", {"name": "neutron-region-two", "perm": {
            "permType": "READWRITE", "key": b(gnp), "range_end": b(end.decode())}})  # fmt: skip
        send = keys.prefix_range_end(subnets.encode())
        assert send is not None
        root.request("/auth/role/revoke", {"role": "dhcp-region-one", "key": b(subnets),
                                           "range_end": b(send.decode())})  # fmt: skip
    try:
        res = cloud.cli("root", "doctor", "etcd-auth", "--regions", "one,two", "-o", "json")
        assert res.returncode == 1
        found = {(f["code"], f["object"], f["values"].get("range")) for f in json.loads(res.stdout)}
        assert ("etcd-permission-extra", "etcd user neutron-region-two", gnp + "*") in found
        assert ("etcd-permission-missing", "etcd user dhcp-region-one", subnets + "*") in found
        assert len(found) == 2, found
        # the component itself sees its own gap
        res = cloud.cli("dhcp-region-one", "doctor", "etcd-auth", "--regions", "one,two")
        assert res.returncode == 1 and "lacks read on " + subnets in res.stdout, res.stdout
    finally:
        res = CliRunner().invoke(
            regionmesh_cli,
            ["--datastore", cloud.url("root"), "etcd-auth", "apply", "--regions", "one,two"],
        )
        assert res.exit_code == 0, res.output
        assert "revoked readwrite " + gnp in res.output
    res = cloud.cli("root", "doctor", "etcd-auth", "--regions", "one,two")
    assert res.returncode == 0, res.stdout


def test_doctor_flags_auth_off(etcd_server: EtcdServer) -> None:
    res = CliRunner().invoke(
        regionmesh_cli, ["--datastore", etcd_server.url, "doctor", "-o", "json"]
    )
    codes = {f["code"]: f for f in json.loads(res.output)}
    assert codes["etcd-auth-disabled"]["severity"] == "warning"
    res = CliRunner().invoke(
        regionmesh_cli, ["--datastore", etcd_server.url, "doctor", "etcd-auth", "--regions", "one"]
    )
    assert res.exit_code == 1 and "etcd-auth-disabled" in res.output


def test_doctor_flags_nospace_alarm() -> None:
    with running_etcd(extra_args=("--quota-backend-bytes", str(2 * 1024 * 1024))) as server:
        with server.open() as store:
            value = os.urandom(256 * 1024)
            for i in range(64):
                try:
                    store.put(f"/calico/fill/{i}", value)
                except Exception:  # noqa: BLE001 - the NOSPACE refusal is what we wait for
                    break
            else:
                pytest.fail("the 2 MiB quota never filled")
        res = CliRunner().invoke(
            regionmesh_cli, ["--datastore", server.url, "doctor", "etcd-auth", "--regions", "one"]
        )
        assert res.exit_code == 1
        assert "etcd-nospace-alarm" in res.output and "disable authentication" in res.output
