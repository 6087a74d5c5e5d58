"""Through real neutron-servers (regions one, two) on one etcd: election, port status from
the agents' status keys, the resync CLI, and the refusal of a server without a region."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from neutron_harness import VENV, NeutronCloud, NeutronRegion
from test_neutron_e2e import NP_PREFIX, WEP_PREFIX, agent_alive, doc, heartbeat, wait_for

from regionmesh.datastore import Datastore
from regionmesh.datastore import keys as dskeys

pytestmark = [pytest.mark.neutron, pytest.mark.etcd]


def test_one_elected_master_per_region(neutron: NeutronCloud, cloud_store: Datastore) -> None:
    for name, region in neutron.regions.items():
        kv = wait_for(
            f"region {name}'s election key",
            lambda name=name: cloud_store.get(dskeys.neutron_election_key(name)),  # type: ignore[misc]
        )
        host, _, pid = kv.value.decode().rpartition(":")
        assert host == os.uname().nodename and kv.lease != 0
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert "regionmesh worker" in cmdline, cmdline  # a periodic-workers child, not the API
        assert region.api is not None and int(pid) != region.api.pid
        wait_for(
            f"region {name}'s startup resync",
            lambda region=region: (
                "regionmesh startup resync done" in region.read_log("periodic.log")
            ),  # type: ignore[misc]
        )


def test_port_status_follows_the_agent(neutron: NeutronCloud, cloud_store: Datastore) -> None:
    one = neutron.regions["one"]
    lease = heartbeat(cloud_store, "one", "cmp-st")
    wait_for("cmp-st's agent", lambda: agent_alive(one, "cmp-st"))
    net = one.ok("POST", "/v2.0/networks", {"network": {"name": "status-net"}})["network"]
    one.ok("POST", "/v2.0/subnets",
           {"subnet": {"network_id": net["id"], "cidr": "10.5.0.0/24", "ip_version": 4}})  # fmt: skip
    port = one.ok("POST", "/v2.0/ports", {"port": {
        "network_id": net["id"], "binding:host_id": "cmp-st", "device_owner": "compute:nova",
        "device_id": "vm-st"}})["port"]  # fmt: skip
    assert port["binding:vif_type"] == "tap" and port["status"] == "DOWN"
    key = dskeys.endpoint_status_key(
        "one", "cmp-st", dskeys.workload_id("openstack-region-one", "vm-st"), port["id"]
    )

    def status() -> str:
        return str(one.ok("GET", f"/v2.0/ports/{port['id']}")["port"]["status"])

    t0 = time.monotonic()
    cloud_store.put(key, b'{"status": "up"}')
    wait_for("ACTIVE", lambda: status() == "ACTIVE")
    up = time.monotonic() - t0
    t0 = time.monotonic()
    cloud_store.put(key, b'{"status": "down"}')
    wait_for("DOWN", lambda: status() == "DOWN")
    down = time.monotonic() - t0
    # another region's status key for the same port id is not region one's business
    cloud_store.put(
        dskeys.endpoint_status_key("two", "cmp-st", "openstack-region-two/vm-st", port["id"]),
        b'{"status": "up"}',
    )
    time.sleep(1.5)
    assert status() == "DOWN"
    cloud_store.revoke_lease(lease)
    print(f"status key -> port status: up {up:.2f}s, down {down:.2f}s")


def run_resync(region: NeutronRegion, *args: str) -> tuple[int, dict[str, Any], float]:
    t0 = time.monotonic()
    res = subprocess.run(
        [str(VENV / "bin" / "regionmesh"), "resync", *region.config_args, "-o", "json", *args],
        capture_output=True, text=True, check=False, timeout=180,
    )  # fmt: skip
    elapsed = time.monotonic() - t0
    try:
        return res.returncode, json.loads(res.stdout), elapsed
    except ValueError as exc:
        raise AssertionError(
            f"resync {args}: {res.returncode}\n{res.stdout}\n{res.stderr[-3000:]}"
        ) from exc


def plan(result: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(k, c["action"], c["name"]) for k, p in result["phases"].items() for c in p["changes"]}


def test_resync_cli_repairs_drift(neutron: NeutronCloud, cloud_store: Datastore) -> None:
    two = neutron.regions["two"]
    lease = heartbeat(cloud_store, "two", "cmp-rs")
    wait_for("cmp-rs's agent", lambda: agent_alive(two, "cmp-rs"))
    net = two.ok("POST", "/v2.0/networks", {"network": {"name": "rs-net"}})["network"]
    sub = two.ok("POST", "/v2.0/subnets",
                 {"subnet": {"network_id": net["id"], "cidr": "10.6.0.0/24", "ip_version": 4}})["subnet"]  # fmt: skip
    sg = two.ok("POST", "/v2.0/security-groups", {"security_group": {"name": "rs-sg"}})[
        "security_group"
    ]
    ports = [
        two.ok("POST", "/v2.0/ports", {"port": {
            "network_id": net["id"], "binding:host_id": "cmp-rs", "device_owner": "compute:nova",
            "device_id": f"vm-rs-{i}", "security_groups": [sg["id"]]}})["port"]
        for i in range(3)
    ]  # fmt: skip
    names = [
        f"cmp--rs-openstack-vm--rs--{i}-{p['id'].replace('-', '--')}" for i, p in enumerate(ports)
    ]
    wep = [f"{WEP_PREFIX}openstack-region-two/{n}" for n in names]
    for key in wep:
        wait_for("the endpoints", lambda key=key: cloud_store.get(key))  # type: ignore[misc]
    code, settle, _ = run_resync(two)  # whatever earlier tests left: settle it first
    assert code == 0 and settle["ok"], settle

    ns2, ns1 = "openstack-region-two", "openstack-region-one"
    cloud_store.delete(wep[0])
    cloud_store.put(wep[1], b"{corrupt")
    stray = f"{WEP_PREFIX}{ns2}/cmp--rs-openstack-vm--x-stray"
    cloud_store.put(stray, b'{"kind": "WorkloadEndpoint"}')
    sg_key = f"{NP_PREFIX}{ns2}/ossg.default.{sg['id']}"
    cloud_store.delete(sg_key)
    operator = f"{NP_PREFIX}{ns2}/allow-ops"
    cloud_store.put(operator, b'{"kind": "NetworkPolicy"}')
    dhcp = dskeys.subnet_key("two", sub["id"])
    cloud_store.put(dhcp, b'{"cidr": "10.99.0.0/24"}')
    foreign = {
        f"{WEP_PREFIX}{ns1}/cmp--rs-openstack-vm--x-other-region": b"{}",
        f"{WEP_PREFIX}openstack/cmp--rs-openstack-vm--x-no-region": b"{}",
    }
    for key, value in foreign.items():
        cloud_store.put(key, value)
    watched = [*wep, stray, sg_key, operator, dhcp, *foreign]

    def state() -> dict[str, bytes | None]:
        return {k: (kv.value if (kv := cloud_store.get(k)) else None) for k in watched}

    before = state()
    code, dry, dry_s = run_resync(two, "--dry-run")
    assert code == 0 and dry["dry_run"]
    expected = {
        ("endpoints", "create", names[0]),
        ("endpoints", "update", names[1]),
        ("endpoints", "delete", stray.rsplit("/", 1)[1]),
        ("policies", "create", f"ossg.default.{sg['id']}"),
        ("subnets", "update", sub["id"]),
    }
    assert plan(dry) == expected
    assert state() == before  # a dry run writes nothing

    code, real, real_s = run_resync(two)
    assert code == 0 and plan(real) == expected
    assert all(c["done"] for p in real["phases"].values() for c in p["changes"])
    assert json.loads(cloud_store.get(wep[1]).value)["spec"]["endpoint"] == ports[1]["id"]  # type: ignore[union-attr]
    assert doc(cloud_store, wep[0]) is not None and cloud_store.get(stray) is None
    assert (
        doc(cloud_store, sg_key)["spec"]["selector"]
        == f"has(sg.projectcalico.org/openstack-{sg['id']})"
    )  # type: ignore[index]
    assert doc(cloud_store, dhcp)["cidr"] == "10.6.0.0/24"  # type: ignore[index]
    assert cloud_store.get(operator) is not None
    for key, value in foreign.items():
        assert cloud_store.get(key).value == value  # type: ignore[union-attr]

    code, again, steady_s = run_resync(two)
    assert code == 0 and plan(again) == set()
    assert all(p["drift"] == 0 for p in again["phases"].values())
    assert again["phases"]["endpoints"]["correct"] >= 3

    # narrow scope: one port
    cloud_store.delete(wep[2])
    code, one_port, _ = run_resync(two, "--port", ports[2]["id"])
    assert code == 0, one_port["error"]
    assert plan(one_port) == {("endpoints", "create", names[2])}
    for key in [operator, *foreign]:
        cloud_store.delete(key)
    cloud_store.revoke_lease(lease)
    print(f"resync CLI: dry-run {dry_s:.1f}s, repair {real_s:.1f}s, steady {steady_s:.1f}s")


def test_server_without_region_refuses_a_regioned_store(
    neutron: NeutronCloud, cloud_store: Datastore, tmp_path: Path
) -> None:
    one = neutron.regions["one"]
    net = one.ok("POST", "/v2.0/networks", {"network": {"name": "refuse-net"}})["network"]
    one.ok("POST", "/v2.0/subnets",
           {"subnet": {"network_id": net["id"], "cidr": "10.7.0.0/24", "ip_version": 4}})  # fmt: skip
    assert any(k.key.startswith("/calico/regionmesh/v1/subnets/region-")
               for k in cloud_store.list("/calico/regionmesh/v1/subnets/").items)  # fmt: skip
    third = NeutronRegion(
        "third", tmp_path / "third", one.db_url, one.datastore_url,
        extra_calico={"openstack_region": ""},
    )  # fmt: skip
    third.write_config()
    res = subprocess.run(
        [str(VENV / "bin" / "python"), str(third.base / "serve.py"), "127.0.0.1", "1",
         *third.config_args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode != 0
    text = res.stdout + res.stderr + third.read_log("api.log")
    assert "[calico] openstack_region is not set, but the datastore already holds data of" in text
    assert "openstack-region-one" in text and "Refusing to start" in text
