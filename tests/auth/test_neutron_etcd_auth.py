"""Real neutron-servers, each on its own region's etcd user, on a TLS + auth etcd.

Region one is configured as networking-calico is (``etcd_host``/``etcd_port``/``etcd_*_file``/
``etcd_username``/``etcd_password`` in ``[calico]``), region two with a regionmesh datastore URL
carrying the user. Region one writes its endpoints and policies, binds ports on a host whose
agent heartbeats with the agent's own user, elects a master, resyncs at start-up and guards
overlaps; a misconfigured server (``openstack_region = one`` with region two's credentials) is
refused on every region-one key with a clear, traceback-free log line and an API error naming
the key and the user, writes nothing, and keeps serving its API; a wrong password stops a
server at start-up with one clear message. Tokens expire every 3 s.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "openstack"), str(HERE.parent / "agent")]

import agent_support as s  # noqa: E402
from neutron_harness import VENV, NeutronCloud, NeutronRegion, neutron_cloud  # noqa: E402

from regionmesh.datastore import keys  # noqa: E402
from regionmesh.datastore.etcd_roles import OPERATOR_USER  # noqa: E402

from auth_support import Cloud, auth_cloud  # noqa: E402  # isort: skip

pytestmark = [pytest.mark.neutron, pytest.mark.etcd]
T = TypeVar("T")
NS1 = "openstack-region-one"
OUR_TRACEBACK = re.compile(r" regionmesh[\w.]* Traceback")


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with auth_cloud(tmp_path_factory.mktemp("neutron-auth-etcd"), token_ttl=3) as c:
        yield c


@pytest.fixture(scope="module")
def cloud(auth: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NeutronCloud]:
    srv = auth.server
    assert srv.ca_cert_file and srv.cert_file and srv.key_file
    extra = {
        "one": {
            "datastore": "",
            "etcd_host": "127.0.0.1",
            "etcd_port": str(srv.client_port),
            "etcd_ca_cert_file": srv.ca_cert_file,
            "etcd_cert_file": srv.cert_file,
            "etcd_key_file": srv.key_file,
            "etcd_username": "neutron-region-one",
            "etcd_password": auth.password("neutron-region-one"),
        },
        "two": {"datastore": auth.url("neutron-region-two")},
        "rogue": {"openstack_region": "one", "datastore": auth.url("neutron-region-two")},
    }
    base = tmp_path_factory.mktemp("neutron-auth")
    with neutron_cloud(base, ["one", "two", "rogue"], srv.url, extra) as c:
        yield c


def doc(auth: Cloud, key: str) -> dict[str, Any] | None:
    with auth.open("root") as root:
        kv = root.get(key)
    return None if kv is None else json.loads(kv.value)


def test_region_one_works_on_its_own_credentials(cloud: NeutronCloud, auth: Cloud) -> None:
    one, two = cloud.regions["one"], cloud.regions["two"]
    wait_for(
        "region one's master",
        lambda: doc_raw(auth, keys.neutron_election_key("one")),
    )
    wait_for(
        "region one's start-up resync",
        lambda: "startup resync done" in one.read_log("periodic.log"),
    )
    net = one.ok("POST", "/v2.0/networks", {"network": {"name": "auth-net", "shared": True}})[
        "network"
    ]
    sub = one.ok(
        "POST", "/v2.0/subnets",
        {"subnet": {"network_id": net["id"], "cidr": "10.31.0.0/24", "ip_version": 4}},
    )["subnet"]  # fmt: skip
    wait_for("the DHCP record", lambda: doc(auth, keys.subnet_key("one", sub["id"])))
    # the agent heartbeats with its own user; the master's status watcher makes the agent row
    with auth.open("felix-region-one") as felix:
        lease = felix.grant_lease(60)
        felix.put(
            keys.felix_status_key("one", "cmp-a"),
            json.dumps({"time": "2024-01-01T00:00:00Z", "uptime": 1.0, "first_update": True}).encode(),
            lease=lease,
        )  # fmt: skip

        def alive() -> bool:
            agents = one.ok("GET", "/v2.0/agents?host=cmp-a")["agents"]
            return any(a["alive"] for a in agents)

        wait_for("cmp-a's agent row", alive)
        port = one.ok(
            "POST", "/v2.0/ports",
            {"port": {"network_id": net["id"], "binding:host_id": "cmp-a",
                      "device_owner": "compute:nova", "device_id": "vm-a", "name": "pa"}},
        )["port"]  # fmt: skip
        assert port["binding:vif_type"] == "tap", port
        name = f"cmp--a-openstack-vm--a-{port['id'].replace('-', '--')}"
        wep = wait_for(
            "the endpoint", lambda: doc(auth, keys.resource_key("workloadendpoints", name, NS1))
        )
        assert wep["spec"]["node"] == "cmp-a"
        [sg] = port["security_groups"]
        assert doc(auth, keys.resource_key("networkpolicies", f"ossg.default.{sg}", NS1))
        # the port goes ACTIVE when the agent reports it up (agent's user writes the status)
        felix.put(
            keys.endpoint_status_key("one", "cmp-a", keys.workload_id(NS1, "vm-a"), port["id"]),
            b'{"status": "up"}',
        )
        wait_for(
            "port ACTIVE",
            lambda: one.ok("GET", f"/v2.0/ports/{port['id']}")["port"]["status"] == "ACTIVE",
        )
        felix.revoke_lease(lease)
    # the overlap guard reads region one's claim from region two
    status, body = two.request("POST", "/v2.0/networks", {"network": {"name": "two-net"}})
    assert status == 201, body
    status, body = two.request(
        "POST", "/v2.0/subnets",
        {"subnet": {"network_id": body["network"]["id"], "cidr": "10.31.0.128/25", "ip_version": 4}},
    )  # fmt: skip
    assert status == 409 and "region one" in body["NeutronError"]["message"], body
    # the operator applies the seed's GNP with calicoctl
    gnp = auth.workdir / "gnp.yaml"
    gnp.write_text(yaml.safe_dump(s.SEED_GNP))
    res = auth.cli(OPERATOR_USER, "apply", "-f", str(gnp))
    assert res.returncode == 0, res.stderr
    for region in (one, two):  # each stays inside its own permissions
        for log in ("api.log", "periodic.log"):
            assert "permission denied" not in region.read_log(log), region.read_log(log)[-3000:]


def doc_raw(auth: Cloud, key: str) -> bytes | None:
    with auth.open("root") as root:
        kv = root.get(key)
    return None if kv is None else kv.value


def test_misconfigured_server_is_refused_and_keeps_running(
    cloud: NeutronCloud, auth: Cloud
) -> None:
    rogue = cloud.regions["rogue"]
    wait_for(
        "the rogue's refused election",
        lambda: "permission denied" in rogue.read_log("periodic.log"),
    )
    election = [
        ln for ln in rogue.read_log("periodic.log").splitlines() if "permission denied" in ln
    ]
    assert "neutron-region-two" in election[0] and keys.neutron_election_key("one") in election[0]
    net = rogue.ok("POST", "/v2.0/networks", {"network": {"name": "rogue-net"}})["network"]
    status, body = rogue.request(
        "POST", "/v2.0/subnets",
        {"subnet": {"network_id": net["id"], "cidr": "10.32.0.0/24", "ip_version": 4}},
    )  # fmt: skip
    assert status == 400, body
    message = body["NeutronError"]["message"]
    assert "permission denied" in message and "'neutron-region-two'" in message, message
    assert keys.region_subnet_registry_prefix("one") in message
    # a security group: Neutron creates it, the driver's policy write is refused and logged
    status, body = rogue.request("POST", "/v2.0/security-groups",
                                 {"security_group": {"name": "rogue-sg"}})  # fmt: skip
    assert status == 201, body
    sg = body["security_group"]["id"]
    policy = keys.resource_key("networkpolicies", f"ossg.default.{sg}", NS1)
    line = wait_for(
        "the refused policy write in the log",
        lambda: next((ln for ln in rogue.read_log("api.log").splitlines()
                      if "permission denied" in ln and policy in ln), None),
    )  # fmt: skip
    assert "'neutron-region-two'" in line and " ERROR " in line, line
    assert rogue.request("GET", "/v2.0/networks")[0] == 200  # it keeps serving
    assert doc_raw(auth, policy) is None
    with auth.open("root") as root:
        assert root.list(keys.region_subnet_registry_prefix("one")).items == [] or all(
            json.loads(kv.value).get("network_id") != net["id"]
            for kv in root.list(keys.region_subnet_registry_prefix("one")).items
        )
    # regionmesh's own log lines carry no traceback (ML2 itself logs one for every precommit
    # refusal, whatever the driver: that is Neutron's manager, not ours)
    log = rogue.read_log("api.log") + rogue.read_log("periodic.log")
    assert not OUR_TRACEBACK.search(log), log[-3000:]


def test_wrong_password_stops_the_server(cloud: NeutronCloud, auth: Cloud, tmp_path: Path) -> None:
    """A neutron API whose etcd password is wrong refuses to start, naming user and etcd."""
    one = cloud.regions["one"]
    bad = NeutronRegion(
        "badpw", tmp_path / "badpw", one.db_url, auth.server.url,
        extra_calico={"openstack_region": "one",
                      "datastore": auth.server.url_as("neutron-region-one", "wrong")},
    )  # fmt: skip
    bad.write_config()
    res = subprocess.run(
        [str(VENV / "bin" / "python"), str(bad.base / "serve.py"), "127.0.0.1", "1",
         *bad.config_args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode != 0
    text = res.stdout + res.stderr + bad.read_log("api.log")
    assert "authentication as user 'neutron-region-one' failed" in text, text[-3000:]
    assert "invalid user ID or password" in text and auth.server.endpoint in text
