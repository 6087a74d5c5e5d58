"""regionmesh doctor: findings on a datastore with real multi-region mistakes in it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from regionmesh.cli.main import regionmesh_cli
from regionmesh.datastore import keys, open_datastore
from regionmesh.diagnosis.findings import Endpoint, Heartbeat, StoreFacts, Subnet, diagnose
from regionmesh.model import workload_endpoint_name


def wep(ns: str, node: str, device: str, port: str) -> tuple[str, bytes]:
    name = workload_endpoint_name(node, "openstack", device, port)
    doc = {
        "kind": "WorkloadEndpoint",
        "apiVersion": "projectcalico.org/v3",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": "u",
            "creationTimestamp": "2026-11-22T10:00:00Z",
            "labels": {
                "projectcalico.org/namespace": ns,
                "projectcalico.org/orchestrator": "openstack",
            },
        },
        "spec": {
            "orchestrator": "openstack",
            "workload": device,
            "node": node,
            "endpoint": port,
            "interfaceName": "tap" + port[:11],
            "ipNetworks": ["10.1.0.5/32"],
        },
    }
    return keys.resource_key("workloadendpoints", name, ns), json.dumps(doc).encode()


def status(now: datetime) -> bytes:
    return json.dumps(
        {"time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "uptime": 5.0, "first_update": False}
    ).encode()


def fill(url: str) -> None:
    now = datetime.now(UTC)
    store = open_datastore(url)
    try:
        for k, v in (
            wep("openstack-region-one", "cmp1", "vm1", "p1"),
            wep("openstack-region-one", "cmp2", "vm2", "p2"),  # cmp2 heartbeats under two
            wep("openstack-region-two", "cmp3", "vm3", "p3"),  # cmp3 never reported
            wep("openstack-region-two", "cmp4", "vm4", "p4"),  # cmp4 stale
        ):
            store.put(k, v)
        store.put(keys.felix_status_key("one", "cmp1"), status(now))
        store.put(keys.felix_status_key("two", "cmp2"), status(now))
        old = now - timedelta(seconds=900)
        store.put(keys.felix_last_reported_status_key("two", "cmp4"), status(old))
        store.put(keys.subnet_key("one", "s1"), json.dumps({"cidr": "10.1.0.0/16"}).encode())
        store.put(keys.subnet_key("two", "s2"), json.dumps({"cidr": "10.1.200.0/24"}).encode())
        store.put(keys.subnet_key("two", "s3"), json.dumps({"cidr": "10.2.0.0/16"}).encode())
    finally:
        store.close()


def test_doctor_finds_region_problems(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    fill(url)
    res = CliRunner().invoke(regionmesh_cli, ["--datastore", url, "doctor", "-o", "json"])
    assert res.exit_code == 1, res.output
    found = json.loads(res.stdout)
    codes = {(f["code"], f["object"]) for f in found}
    assert ("region-mismatch", "host cmp2") in codes
    assert ("missing-agent", "host cmp3") in codes
    assert ("stale-agent", "host cmp4") in codes
    assert ("overlapping-subnets", "subnet s1") in codes
    mismatch = next(f for f in found if f["code"] == "region-mismatch")
    assert mismatch["values"]["heartbeat_region"] == "two"
    assert mismatch["values"]["endpoint_region"] == "one"
    assert "openstack_region" in mismatch["fix"]
    overlap = next(f for f in found if f["code"] == "overlapping-subnets")
    assert "10.1.200.0/24" in overlap["message"] and "region-two" in overlap["message"]
    assert not any(f["object"] == "subnet s3" for f in found)
    assert ("host cmp1") not in {f["object"] for f in found}
    text = CliRunner().invoke(regionmesh_cli, ["--datastore", url, "doctor"])
    assert text.exit_code == 1 and "fix:" in text.output


def test_doctor_clean_store_exits_zero(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    res = CliRunner().invoke(regionmesh_cli, ["--datastore", url, "doctor"])
    assert res.exit_code == 0 and "no problems found" in res.output


def test_pure_checks_unregioned_invalid_names_and_size() -> None:
    facts = StoreFacts(
        endpoints=[Endpoint("openstack", "a", "h1"), Endpoint("openstack-region-Bad_1", "b", "h2")],
        heartbeats=[
            Heartbeat("no-region", "h1", True, None),
            Heartbeat("region-Bad_1", "h2", True, None),
        ],
        subnets=[Subnet("region-x", "s", "10.0.0.0/8")],
        size_bytes=1900,
        quota_bytes=2000,
    )
    codes = [f.code for f in diagnose(facts)]
    assert "unregioned-namespace" in codes
    assert "invalid-region-name" in codes
    assert "datastore-size" in codes
    assert "region-mismatch" not in codes


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_doctor_config_compares_the_two_files(tmp_path: Path) -> None:
    felix = write(tmp_path / "felix.cfg", "[global]\nOpenstackRegion = one\n")
    same = write(tmp_path / "same.conf", "[calico]\nopenstack_region = one\n")
    other = write(tmp_path / "other.conf", "[calico]\nopenstack_region = RegionOne\n")
    runner = CliRunner()
    ok = runner.invoke(
        regionmesh_cli, ["doctor", "config", "--felix-config", felix, "--neutron-config", same]
    )
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(
        regionmesh_cli,
        ["doctor", "config", "--felix-config", felix, "--neutron-config", other, "-o", "json"],
    )
    assert bad.exit_code == 1
    found: list[dict[str, Any]] = json.loads(bad.stdout)
    assert {f["code"] for f in found} == {"invalid-region-name", "region-mismatch"}
    assert any("RegionOne" in f["message"] for f in found)
    missing = runner.invoke(
        regionmesh_cli,
        [
            "doctor",
            "config",
            "--felix-config",
            felix,
            "--neutron-config",
            str(tmp_path / "nope.conf"),
        ],
    )
    assert missing.exit_code == 1 and "nope.conf" in missing.output


def test_doctor_config_missing_felix_file_and_env_override(tmp_path: Path) -> None:
    neutron = write(tmp_path / "n.conf", "[calico]\nopenstack_region = one\n")
    felix = write(tmp_path / "felix.cfg", "[global]\nOpenstackRegion = one\n")
    runner = CliRunner()
    missing = runner.invoke(
        regionmesh_cli,
        [
            "doctor",
            "config",
            "--felix-config",
            str(tmp_path / "nope.cfg"),
            "--neutron-config",
            neutron,
        ],
    )
    assert missing.exit_code == 1 and "nope.cfg" in missing.output
    assert "does not exist" in missing.output
    overridden = runner.invoke(
        regionmesh_cli,
        ["doctor", "config", "--felix-config", felix, "--neutron-config", neutron, "-o", "json"],
        env={"FELIX_OPENSTACKREGION": "two"},
    )
    assert overridden.exit_code == 1
    codes = {f["code"] for f in json.loads(overridden.stdout)}
    assert codes == {"felix-env-override", "region-mismatch"}
