"""End to end: two real neutron-servers (regions one, two) with the regionmesh driver, one etcd.

Everything goes through Neutron's REST API or the ``openstack`` client; what the driver
wrote is read back from the real etcd. Agent heartbeats are written as the per-host agent
writes them (a leased ``/calico/felix/v2/region-<r>/host/<h>/status`` key).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from neutron_harness import VENV, NeutronCloud, NeutronRegion

from regionmesh.datastore import Datastore
from regionmesh.datastore import keys as dskeys

pytestmark = [pytest.mark.neutron, pytest.mark.etcd]

T = TypeVar("T")
WEP_PREFIX = "/calico/resources/v3/projectcalico.org/workloadendpoints/"
NP_PREFIX = "/calico/resources/v3/projectcalico.org/networkpolicies/"


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def doc(store: Datastore, key: str) -> dict[str, Any] | None:
    kv = store.get(key)
    return None if kv is None else json.loads(kv.value)


def heartbeat(store: Datastore, region: str, host: str) -> int:
    # long enough to outlive the slowest test that holds it (a loaded 2-core machine runs the
    # resync CLI tests for over a minute); each test revokes its lease at the end
    lease = store.grant_lease(600)
    store.put(
        dskeys.felix_status_key(region, host),
        json.dumps({"time": "2024-01-01T00:00:00Z", "uptime": 1.0, "first_update": True}).encode(),
        lease=lease,
    )
    return lease


def agent_alive(region: NeutronRegion, host: str) -> bool:
    agents = region.ok("GET", f"/v2.0/agents?host={host}")["agents"]
    return any(a["agent_type"] == "Calico per-host agent (felix)" and a["alive"] for a in agents)


def test_protocol_map_matches_neutron_lib() -> None:
    """translate.py carries a copy of neutron_lib's IP_PROTOCOL_MAP (it must not import it)."""
    from regionmesh.openstack.translate import IP_PROTOCOL_MAP

    out = subprocess.run(
        [str(VENV / "bin" / "python"), "-c",
         "import json; from neutron_lib.constants import IP_PROTOCOL_MAP as m; print(json.dumps(m))"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert json.loads(out.stdout) == dict(IP_PROTOCOL_MAP)


def test_invalid_region_stops_the_server(neutron: NeutronCloud, tmp_path: Any) -> None:
    """A neutron API with [calico] openstack_region = RegionOne refuses to start."""
    one = neutron.regions["one"]
    bad = NeutronRegion(
        "bad", tmp_path / "bad", one.db_url, one.datastore_url,
        extra_calico={"openstack_region": "RegionOne"},
    )  # fmt: skip
    bad.write_config()
    res = subprocess.run(
        [str(VENV / "bin" / "python"), str(bad.base / "serve.py"), "127.0.0.1", "1",
         *bad.config_args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode != 0
    text = res.stdout + res.stderr + bad.read_log("api.log")
    assert "invalid value 'RegionOne' for [calico] openstack_region" in text
    assert "DNS-1123" in text


def test_driver_loaded_in_both_regions(neutron: NeutronCloud) -> None:
    for region in neutron.regions.values():
        log = region.read_log("api.log")
        assert "Loaded mechanism driver names: ['regionmesh']" in log
        assert f"regionmesh: region {region.name}" in log
        assert "regionmesh worker started for region" in region.read_log("periodic.log")


def test_subnets_and_cross_region_overlap(neutron: NeutronCloud, cloud_store: Datastore) -> None:
    one, two = neutron.regions["one"], neutron.regions["two"]
    one.openstack("network", "create", "--share", "net-one")
    sub_one = json.loads(
        one.openstack(
            "subnet", "create", "--network", "net-one", "--subnet-range", "10.1.0.0/16",
            "--dhcp", "-f", "json", "sub-one",
        ).stdout
    )  # fmt: skip
    record = wait_for(
        "region one's DHCP record",
        lambda: doc(cloud_store, f"/calico/dhcp/v2/region-one/subnet/{sub_one['id']}"),
    )
    assert record["cidr"] == "10.1.0.0/16" and record["gateway_ip"] == "10.1.0.1"

    two.openstack("network", "create", "--share", "net-two")
    refused = two.openstack(
        "subnet", "create", "--network", "net-two", "--subnet-range", "10.1.200.0/24", "sub-bad",
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    text = refused.stdout + refused.stderr
    assert "409" in text and "region one" in text
    assert sub_one["id"] in text and "10.1.0.0/16" in text and "10.1.200.0/24" in text
    assert two.ok("GET", "/v2.0/subnets?name=sub-bad")["subnets"] == []

    ok = json.loads(
        two.openstack(
            "subnet", "create", "--network", "net-two", "--subnet-range", "10.2.0.0/16",
            "-f", "json", "sub-two",
        ).stdout
    )  # fmt: skip
    assert doc(cloud_store, f"/calico/dhcp/v2/region-two/subnet/{ok['id']}") is not None
    # the reverse direction is refused too (REST this time): 10.2.5.0/24 in region one
    net_one = one.ok("GET", "/v2.0/networks?name=net-one")["networks"][0]["id"]
    status, body = one.request(
        "POST", "/v2.0/subnets",
        {"subnet": {"network_id": net_one, "cidr": "10.2.5.0/24", "ip_version": 4}},
    )  # fmt: skip
    assert status == 409, body
    assert "region two" in body["NeutronError"]["message"]


def test_port_binding_and_workload_endpoint(neutron: NeutronCloud, cloud_store: Datastore) -> None:
    one = neutron.regions["one"]
    net = one.ok("POST", "/v2.0/networks", {"network": {"name": "vm-net", "shared": True}})[
        "network"
    ]
    sub = one.ok(
        "POST", "/v2.0/subnets",
        {"subnet": {"network_id": net["id"], "cidr": "10.3.0.0/24", "ip_version": 4}},
    )["subnet"]  # fmt: skip

    # no heartbeat for cmp1 yet: the bind fails
    port_body = {
        "network_id": net["id"], "binding:host_id": "cmp1", "device_owner": "compute:nova",
        "device_id": "vm-1", "name": "p0",
    }  # fmt: skip
    failed = one.ok("POST", "/v2.0/ports", {"port": port_body})["port"]
    assert failed["binding:vif_type"] == "binding_failed"

    lease = heartbeat(cloud_store, "one", "cmp1")
    t0 = time.monotonic()
    wait_for("cmp1's agent row to be alive", lambda: agent_alive(one, "cmp1"))
    alive_after = time.monotonic() - t0

    port = one.ok("POST", "/v2.0/ports", {"port": dict(port_body, name="p1")})["port"]
    assert port["binding:vif_type"] == "tap", port
    assert port["binding:vif_details"]["bound_drivers"] == {"0": "regionmesh"}
    name = f"cmp1-openstack-vm--1-{port['id'].replace('-', '--')}"
    key = f"{WEP_PREFIX}openstack-region-one/{name}"
    wep = wait_for("the WorkloadEndpoint", lambda: doc(cloud_store, key))
    [sg_id] = port["security_groups"]
    labels = wep["metadata"]["labels"]
    assert labels == {
        f"sg.projectcalico.org/openstack-{sg_id}": "default",
        "sg-name.projectcalico.org/openstack-default": sg_id,
        "projectcalico.org/namespace": "openstack-region-one",
        "projectcalico.org/orchestrator": "openstack",
        "projectcalico.org/openstack-project-id": port["project_id"],
        "projectcalico.org/openstack-network-name": "vm-net",
    }
    ip = port["fixed_ips"][0]["ip_address"]
    assert wep["spec"] == {
        "orchestrator": "openstack", "workload": "vm-1", "node": "cmp1", "endpoint": port["id"],
        "interfaceName": "tap" + port["id"][:11], "mac": port["mac_address"],
        "ipv4Gateway": sub["gateway_ip"], "ipNetworks": [f"{ip}/32"], "allowedIps": [],
    }  # fmt: skip
    assert wep["metadata"]["annotations"] == {"openstack.projectcalico.org/network-id": net["id"]}
    assert wep["metadata"]["uid"] and wep["metadata"]["creationTimestamp"].endswith("Z")
    # the port's security group policy was written before the endpoint
    policy = doc(cloud_store, f"{NP_PREFIX}openstack-region-one/ossg.default.{sg_id}")
    assert policy is not None
    assert policy["spec"]["selector"] == f"has(sg.projectcalico.org/openstack-{sg_id})"
    assert "types" not in policy["spec"]
    assert cloud_store.get(f"{WEP_PREFIX}openstack-region-two/{name}") is None

    # a binding_failed port is not an endpoint until it binds: re-PUT the host rebinds it
    rebound = one.ok("PUT", f"/v2.0/ports/{failed['id']}", {"port": {"binding:host_id": "cmp1"}})
    assert rebound["port"]["binding:vif_type"] == "tap"

    # deleting the port removes its endpoint
    one.ok("DELETE", f"/v2.0/ports/{port['id']}")
    wait_for("the WorkloadEndpoint to go", lambda: cloud_store.get(key) is None)
    cloud_store.revoke_lease(lease)
    print(f"heartbeat key -> agent alive: {alive_after:.2f}s")


def test_bind_on_host_of_another_region_is_reported(
    neutron: NeutronCloud, cloud_store: Datastore
) -> None:
    one, two = neutron.regions["one"], neutron.regions["two"]
    lease = heartbeat(cloud_store, "two", "cmp2")  # cmp2's agent is configured for region two
    wait_for("cmp2's agent row in region two", lambda: agent_alive(two, "cmp2"))
    net = one.ok("POST", "/v2.0/networks", {"network": {"name": "mismatch-net"}})["network"]
    one.ok(
        "POST", "/v2.0/subnets",
        {"subnet": {"network_id": net["id"], "cidr": "10.4.0.0/24", "ip_version": 4}},
    )  # fmt: skip
    port = one.ok(
        "POST", "/v2.0/ports",
        {"port": {"network_id": net["id"], "binding:host_id": "cmp2",
                  "device_owner": "compute:nova", "device_id": "vm-2"}},
    )["port"]  # fmt: skip
    assert port["binding:vif_type"] == "binding_failed"
    finding = wait_for(
        "the region-mismatch finding",
        lambda: doc(cloud_store, "/calico/regionmesh/v1/findings/region-one/region-mismatch/cmp2"),
    )
    assert finding["host"] == "cmp2"
    assert finding["host_regions"] == ["two"] and finding["server_region"] == "one"
    log = one.read_log("api.log")
    errors = [
        line
        for line in log.splitlines()
        if " ERROR regionmesh.openstack.mech_driver " in line and "cmp2" in line
    ]
    assert len(errors) == 1, errors  # once, although ML2 tries to bind 10 times
    assert (
        "region two" in errors[0]
        and "region one" in errors[0]
        and "OpenstackRegion=one" in errors[0]
    )
    cloud_store.revoke_lease(lease)


def test_security_group_rules_become_policy(neutron: NeutronCloud, cloud_store: Datastore) -> None:
    two = neutron.regions["two"]
    sg = json.loads(two.openstack("security", "group", "create", "-f", "json", "web").stdout)
    two.openstack(
        "security", "group", "rule", "create", "--ingress", "--protocol", "tcp",
        "--dst-port", "80", "--remote-ip", "10.0.0.0/8", "web",
    )  # fmt: skip
    key = f"{NP_PREFIX}openstack-region-two/ossg.default.{sg['id']}"

    def has_tcp80() -> dict[str, Any] | None:
        policy = doc(cloud_store, key)
        if policy and any(r.get("protocol") == 6 for r in policy["spec"]["ingress"]):
            return policy
        return None

    policy = wait_for("the web policy with its tcp/80 rule", has_tcp80)
    assert policy["metadata"]["namespace"] == "openstack-region-two"
    assert policy["spec"]["ingress"] == [
        {"action": "Allow", "ipVersion": 4, "protocol": 6, "destination": {"ports": [80]},
         "source": {"nets": ["10.0.0.0/8"]}},
    ]  # fmt: skip
    assert sorted(r["ipVersion"] for r in policy["spec"]["egress"]) == [4, 6]

    # a rule regionmesh cannot enforce (ports with DCCP) is refused by the API, not widened
    status, body = two.request(
        "POST", "/v2.0/security-group-rules",
        {"security_group_rule": {"security_group_id": sg["id"], "direction": "ingress",
                                 "protocol": "dccp", "port_range_min": 5, "port_range_max": 6,
                                 "ethertype": "IPv4"}},
    )  # fmt: skip
    # Neutron wraps a refusing SG callback into SecurityGroupConflict (409), keeping our text
    assert status == 409, body
    message = body["NeutronError"]["message"]
    assert "regionmesh cannot enforce this rule" in message
    assert "ports are only supported with TCP, UDP or SCTP" in message
    rules = two.ok("GET", f"/v2.0/security-group-rules?security_group_id={sg['id']}")
    assert all(r["protocol"] != "dccp" for r in rules["security_group_rules"])

    two.openstack("security", "group", "delete", "web")
    wait_for("the policy to go", lambda: cloud_store.get(key) is None)


def test_numeric_protocol_bytes_match_networking_calico(
    neutron: NeutronCloud, cloud_store: Datastore
) -> None:
    """``--protocol 47`` is stored as networking-calico's ``_neutron_rule_to_etcd_rule`` writes
    it: Neutron holds the digit string "47", which is neither an int, "icmp"/"ipv6-icmp", nor a
    name in IP_PROTOCOL_MAP, so it is written upper-cased, i.e. as the string "47"."""
    two = neutron.regions["two"]
    sg = json.loads(two.openstack("security", "group", "create", "-f", "json", "gre").stdout)
    two.openstack(
        "security", "group", "rule", "create", "--ingress", "--protocol", "47",
        "--remote-ip", "10.9.0.0/16", "gre",
    )  # fmt: skip
    key = f"{NP_PREFIX}openstack-region-two/ossg.default.{sg['id']}"

    def gre_rule() -> dict[str, Any] | None:
        policy = doc(cloud_store, key)
        rules = [r for r in (policy or {}).get("spec", {}).get("ingress", []) if "protocol" in r]
        return rules[0] if rules else None

    rule = wait_for("the gre policy with its protocol 47 rule", gre_rule)
    expected = {  # networking-calico's bytes for this rule (key order does not matter)
        "action": "Allow", "ipVersion": 4, "protocol": "47", "source": {"nets": ["10.9.0.0/16"]},
    }  # fmt: skip
    assert json.dumps(rule, sort_keys=True) == json.dumps(expected, sort_keys=True)
    raw = cloud_store.get(key)
    assert raw is not None and b'"protocol":"47"' in raw.value.replace(b" ", b"")
    two.openstack("security", "group", "delete", "gre")
    wait_for("the policy to go", lambda: cloud_store.get(key) is None)


def test_compaction_and_round_trip_keys(neutron: NeutronCloud, cloud_store: Datastore) -> None:
    """The masters keep networking-calico's shared compaction keys and each region's status
    watcher its round-trip-check key (no lease), exactly where networking-calico keeps them."""
    last = wait_for(
        "/calico/compaction/v1/last", lambda: cloud_store.get(dskeys.COMPACTION_LAST_KEY)
    )
    assert last.lease == 0 and last.value.decode().isdigit()
    trigger = wait_for("the trigger", lambda: cloud_store.get(dskeys.COMPACTION_TRIGGER_KEY))
    assert trigger.lease != 0 and trigger.value.decode().isdigit()  # a neutron-server pid
    assert 0 < cloud_store.lease_ttl(trigger.lease) <= 3600
    for region in ("one", "two"):
        key = f"/calico/felix/v2/region-{region}/host/round-trip-check"
        kv = wait_for(key, lambda k=key: cloud_store.get(k))  # type: ignore[misc]
        assert kv.lease == 0
        float(kv.value.decode())
