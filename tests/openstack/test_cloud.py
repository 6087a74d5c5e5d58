"""The cloud file: validation with paths, apply/delete through the driver's write path, on
SQLite and a real etcd; no Neutron."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from regionmesh.datastore import Datastore, open_datastore
from regionmesh.datastore import keys as dskeys
from regionmesh.errors import RegionmeshError, ValidationError
from regionmesh.examples import CLOUD as CLOUD_NAME
from regionmesh.examples import example_path
from regionmesh.openstack import cloud as c
from regionmesh.openstack import translate as t
from regionmesh.openstack.reader import MemoryNeutron
from regionmesh.openstack.resync import resync
from regionmesh.openstack.writer import RegionWriter
from regionmesh.testing.etcd_server import EtcdServer

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = example_path(CLOUD_NAME)
SG_A = "a7734e61-b545-452d-a3cd-0189cbd9747a"
SG_B = "85cc3048-abc3-43cc-89b3-377341426ac5"
WEP = "/calico/resources/v3/projectcalico.org/workloadendpoints/"


@pytest.fixture(params=["sqlite", "etcd"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Datastore]:
    if request.param == "sqlite":
        ds = open_datastore(f"sqlite://{tmp_path / 'store.db'}")
    else:
        server: EtcdServer = request.getfixturevalue("clean_etcd")
        ds = server.open()
    yield ds
    ds.close()


def snapshot(store: Datastore) -> dict[str, tuple[bytes, int]]:
    return {kv.key: (kv.value, kv.mod_revision) for kv in store.list("/calico/").items}


def example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def test_example_applies_like_the_driver_writes(store: Datastore) -> None:
    cloud = c.load_cloud(EXAMPLE)
    result = c.apply_cloud(store, cloud)
    assert result.count("created") == 12
    # web-1 in region one, written exactly as the driver writes a Neutron port of that shape
    vm = c.cloud_id("one", "vm", "web-1")
    port_id = c.cloud_id("one", "port", "web-1")
    net = c.cloud_id("one", "network", "calico")
    sub = c.cloud_id("one", "subnet", "calico-one")
    neutron_port = t.NeutronPort(
        id=port_id, network_id=net, device_id=vm, device_owner="compute:nova",
        mac_address=c._mac_for(port_id), host_id="cmp-one-1", vif_type="tap",
        fixed_ips=(t.FixedIP("10.1.0.10", sub, "10.1.0.1"),),
        security_groups=(t.SecurityGroupRef(SG_A, "web"),), network_name="calico",
    )  # fmt: skip
    name = t.endpoint_name("cmp-one-1", neutron_port)
    assert name.startswith("cmp--one--1-openstack-")
    stored = json.loads(store.get(f"{WEP}openstack-region-one/{name}").value)  # type: ignore[union-attr]
    assert t.same_content(stored, t.port_to_workload_endpoint(neutron_port, region="one"))
    assert stored["metadata"]["labels"] == {
        f"sg.projectcalico.org/openstack-{SG_A}": "web",
        "sg-name.projectcalico.org/openstack-web": SG_A,
        "projectcalico.org/namespace": "openstack-region-one",
        "projectcalico.org/orchestrator": "openstack",
        "projectcalico.org/openstack-network-name": "calico",
    }
    assert (
        stored["spec"]["ipNetworks"] == ["10.1.0.10/32"] and stored["spec"]["node"] == "cmp-one-1"
    )
    # SG B's policy in region two, the rule by name resolved to B's id
    policy = json.loads(
        store.get(RegionWriter(store, "two").policy_key(f"ossg.default.{SG_B}")).value
    )  # type: ignore[union-attr]
    assert policy["spec"]["selector"] == f"has(sg.projectcalico.org/openstack-{SG_B})"
    assert policy["spec"]["ingress"] == [
        {
            "action": "Allow",
            "ipVersion": 4,
            "source": {"selector": f"has(sg.projectcalico.org/openstack-{SG_B})"},
        }
    ]
    record = json.loads(
        store.get(dskeys.subnet_key("two", c.cloud_id("two", "subnet", "calico-two"))).value
    )  # type: ignore[union-attr]
    assert record == {
        "network_id": c.cloud_id("two", "network", "calico"), "cidr": "10.2.0.0/16",
        "host_routes": [], "gateway_ip": "10.2.0.1", "dns_servers": ["10.2.0.2"],
    }  # fmt: skip
    # what a resync from the same records (as a Neutron would hold them) finds: all correct
    for region in cloud.regions:
        again = resync(
            RegionWriter(store, region.name),
            MemoryNeutron(region.ports, region.security_groups, region.subnets),
        )
        assert again.in_sync, again.to_dict()

    # re-apply is idempotent: no write at all
    before = snapshot(store)
    assert c.apply_cloud(store, c.load_cloud(EXAMPLE)).count("unchanged") == 12
    assert snapshot(store) == before

    deleted = c.delete_cloud(store, cloud)
    assert deleted.count("deleted") == 12
    # only the shared global objects stay (every region's server merges into them)
    assert [kv.key for kv in store.list("/calico/").items] == [
        "/calico/resources/v3/projectcalico.org/clusterinformations/default",
        "/calico/resources/v3/projectcalico.org/felixconfigurations/default",
    ]


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_errors_name_file_and_path(tmp_path: Path) -> None:
    data = example()
    one = data["regions"][0]
    one["vms"][2]["security_groups"] = ["admin", "nosuch"]
    one["vms"][1]["ips"] = ["10.9.0.1"]
    one["vms"][0]["colour"] = "blue"
    one["security_groups"][1]["rules"][1]["protocol"] = "dccp"
    one["security_groups"][0]["rules"][1]["remote_group_id"] = "client"  # region two's group
    data["regions"][1]["networks"][0]["subnets"][0]["cidr"] = "10.1.128.0/17"
    data["regions"][1]["name"] = "Two"
    path = write(tmp_path, data)
    with pytest.raises(ValidationError) as info:
        c.load_cloud(path)
    paths = {f.path for f in info.value.fields}
    assert {
        "regions[0].vms[2].security_groups[1]",
        "regions[0].vms[1].ips[0]",
        "regions[0].vms[0].colour",
        "regions[0].security_groups[1].rules[1].protocol",
        "regions[0].security_groups[0].rules[1].remote_group_id",
        "regions[1].name",
    } <= paths, paths
    text = str(info.value)
    assert text.startswith(f"{path}: error with the following fields:")
    assert "regions[0].vms[2].security_groups[1] = 'nosuch'" in text
    assert "ports are only supported with TCP, UDP or SCTP" in text

    data = example()
    data["regions"][1]["networks"][0]["subnets"][0]["cidr"] = "10.1.128.0/17"
    with pytest.raises(ValidationError) as info:
        c.load_cloud(write(tmp_path, data))
    assert (
        "regions[1].networks[0].subnets[0].cidr = '10.1.128.0/17' (overlaps 10.1.0.0/16 of region one"
        in str(info.value)
    )

    (tmp_path / "bad.yaml").write_text("regions: [\n")
    with pytest.raises(ValidationError, match="not valid YAML"):
        c.load_cloud(tmp_path / "bad.yaml")


def test_overlap_with_another_region_in_the_store_writes_nothing(store: Datastore) -> None:
    RegionWriter(store, "three").claim_subnet("sub-three", "10.2.5.0/24", "net-three")
    before = snapshot(store)
    with pytest.raises(ValidationError) as info:
        c.apply_cloud(store, c.load_cloud(EXAMPLE))
    text = str(info.value)
    assert "regions[1].networks[0].subnets[0].cidr" in text and "region three" in text
    assert snapshot(store) == before


def test_a_failure_while_writing_rolls_everything_back(store: Datastore) -> None:
    c.apply_cloud(store, c.load_cloud(EXAMPLE))
    data = example()
    data["regions"][0]["vms"][0]["ips"] = ["10.1.0.99"]  # changes web-1's endpoint
    data["regions"][1]["vms"].append(
        {"name": "client-3", "host": "cmp-two-1", "network": "calico", "ips": ["10.2.0.12"]}
    )
    before = snapshot(store)

    def explode(change: c.CloudChange) -> None:
        if change.name.startswith("cmp--two--1"):
            raise RegionmeshError("simulated datastore failure")

    changed = c.parse_cloud(data, "changed.yaml")
    with pytest.raises(RegionmeshError, match="simulated"):
        c.apply_cloud(store, changed, progress=explode)
    after = snapshot(store)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}


def test_cli_apply_and_delete(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'cli.db'}"
    cmd = [sys.executable, "-m", "regionmesh.cli.openstack_cmds", "cloud"]
    res = subprocess.run([*cmd, "apply", "-f", str(EXAMPLE), "--datastore", url],
                         capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("applied: 12 created")
    data = example()
    data["regions"][0]["vms"][0]["network"] = "nosuch"
    bad = write(tmp_path, data)
    res = subprocess.run([*cmd, "apply", "-f", str(bad), "--datastore", url],
                         capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    assert res.returncode == 1
    assert f"{bad}: error with field regions[0].vms[0].network = 'nosuch'" in res.stderr
    res = subprocess.run([*cmd, "delete", "-f", str(EXAMPLE), "--datastore", url, "-o", "json"],
                         capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert [ch["result"] for ch in json.loads(res.stdout)] == ["deleted"] * 12


def test_cloud_apply_bootstraps_felix_and_cluster_config(tmp_path: Path) -> None:
    """Agents need InterfacePrefix=tap and datastoreReady, as networking-calico writes them."""
    from regionmesh.datastore import open_datastore
    from regionmesh.datastore.resources import ResourceClient
    from regionmesh.openstack.cloud import apply_cloud, load_cloud

    example = example_path(CLOUD_NAME)
    store = open_datastore(f"sqlite:///{tmp_path}/boot.db")
    try:
        apply_cloud(store, load_cloud(str(example)))
        client = ResourceClient(store)
        felix = client.get("FelixConfiguration", "default")
        assert felix.spec.interface_prefix == "tap"
        assert felix.spec.endpoint_reporting_enabled is True
        info = client.get("ClusterInformation", "default")
        assert info.spec.datastore_ready is True
        assert "openstack" in info.spec.cluster_type.split(",")
        rev = store.current_revision()
        apply_cloud(store, load_cloud(str(example)))
        assert store.current_revision() == rev  # idempotent: nothing rewritten
    finally:
        store.close()
