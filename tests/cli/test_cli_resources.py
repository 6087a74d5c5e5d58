"""calicoctl-compatible resource verbs, run as a user runs them, against both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from regionmesh.cli.main import calicoctl_cli, regionmesh_cli
from regionmesh.cli.resources import VERB_PAST
from regionmesh.datastore import open_datastore

SEED = """\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-tcp-80
spec:
  selector: "has(sg.projectcalico.org/openstack-a7734e61-b545-452d-a3cd-0189cbd9747a)"
  types:
  - Ingress
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: "has(sg.projectcalico.org/openstack-85cc3048-abc3-43cc-89b3-377341426ac5)"
    destination:
      ports:
      - 80
"""
SEED_KEY = "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/allow-tcp-80"

NP = """\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-db
  namespace: openstack-region-one
spec:
  order: 100
  selector: app == 'db'
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: app == 'web'
    destination:
      ports: [5432]
"""

BAD_NP = """\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: bad-one
  namespace: openstack-region-one
spec:
  selector: app == 'db'
  ingress:
  - action: Allow
    protocol: ICMP
    destination:
      ports: [80]
"""


@pytest.fixture(params=["sqlite", "etcd"])
def datastore_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/cli.db"
    server = request.getfixturevalue("clean_etcd")
    return str(server.url)


def run(url: str, *args: str, stdin: str | None = None, tool: Any = calicoctl_cli) -> Any:
    runner = CliRunner()
    return runner.invoke(tool, ["--datastore", url, *args], input=stdin, catch_exceptions=False)


def test_seed_apply_and_get_yaml(datastore_url: str) -> None:
    res = run(datastore_url, "apply", "-f", "-", stdin=SEED)
    assert res.exit_code == 0, res.output
    assert "Successfully applied 1 'GlobalNetworkPolicy' resource(s)" in res.output
    res = run(datastore_url, "get", "gnp", "allow-tcp-80", "-o", "yaml")
    assert res.exit_code == 0, res.output
    doc = yaml.safe_load(res.output)
    assert doc["kind"] == "GlobalNetworkPolicy"
    assert doc["metadata"]["name"] == "allow-tcp-80"
    assert doc["spec"]["ingress"][0]["destination"]["ports"] == [80]
    assert doc["spec"]["ingress"][0]["protocol"] == "TCP"
    store = open_datastore(datastore_url)
    try:
        kv = store.get(SEED_KEY)
        assert kv is not None
        assert doc["metadata"]["resourceVersion"] == str(kv.mod_revision)
        stored = json.loads(kv.value)
        assert stored["kind"] == "GlobalNetworkPolicy"
        assert stored["apiVersion"] == "projectcalico.org/v3"
        assert "resourceVersion" not in stored["metadata"]
        assert stored["metadata"]["uid"] and stored["metadata"]["creationTimestamp"]
    finally:
        store.close()


def test_create_twice_fails_and_skip_exists(datastore_url: str) -> None:
    assert run(datastore_url, "create", "-f", "-", stdin=SEED).exit_code == 0
    res = run(datastore_url, "create", "-f", "-", stdin=SEED)
    assert res.exit_code == 1
    assert "resource already exists: GlobalNetworkPolicy(allow-tcp-80)" in res.output
    assert run(datastore_url, "create", "--skip-exists", "-f", "-", stdin=SEED).exit_code == 0


def test_invalid_document_means_nothing_written(datastore_url: str, tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(SEED + "---\n" + BAD_NP + "---\n" + NP)
    res = run(datastore_url, "apply", "-f", str(path))
    assert res.exit_code == 1
    assert "nothing was written" in res.output
    assert str(path) in res.output and "document 1" in res.output
    assert "spec.ingress[0]" in res.output
    res = run(datastore_url, "get", "gnp", "-o", "name")
    assert res.output.strip() == ""
    res = run(datastore_url, "get", "np", "-A", "-o", "name")
    assert res.output.strip() == ""


def test_namespaces_tables_and_delete(datastore_url: str) -> None:
    assert run(datastore_url, "apply", "-f", "-", stdin=NP).exit_code == 0
    # calicoctl lists namespace "default" when no -n is given
    assert "allow-db" not in run(datastore_url, "get", "np").output
    res = run(datastore_url, "get", "networkpolicy", "-n", "openstack-region-one", "-o", "wide")
    lines = res.output.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "TIER", "ORDER", "SELECTOR"]
    assert lines[1].split()[:4] == ["openstack-region-one", "allow-db", "default", "100"]
    res = run(datastore_url, "get", "policies", "-A", "-o", "json")
    listed = json.loads(res.output)
    assert listed["kind"] == "NetworkPolicyList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["allow-db"]
    assert listed["items"][0]["spec"]["types"] == ["Ingress"]
    res = run(datastore_url, "get", "gnp", "-n", "x")
    assert res.exit_code == 1 and "GlobalNetworkPolicy is not namespaced" in res.output
    res = run(datastore_url, "delete", "np", "allow-db", "-n", "openstack-region-one")
    assert res.exit_code == 0 and "Successfully deleted 1 'NetworkPolicy' resource(s)" in res.output
    res = run(datastore_url, "delete", "np", "allow-db", "-n", "openstack-region-one")
    assert res.exit_code == 1 and "resource does not exist" in res.output
    res = run(
        datastore_url, "delete", "--skip-not-exists", "np", "allow-db", "-n", "openstack-region-one"
    )
    assert res.exit_code == 0


def test_replace_and_label(datastore_url: str) -> None:
    assert run(datastore_url, "replace", "-f", "-", stdin=SEED).exit_code == 1
    assert run(datastore_url, "create", "-f", "-", stdin=SEED).exit_code == 0
    before = yaml.safe_load(run(datastore_url, "get", "gnp", "allow-tcp-80", "-o", "yaml").output)
    changed = SEED.replace("- 80", "- 8080")
    res = run(datastore_url, "replace", "-f", "-", stdin=changed)
    assert res.exit_code == 0, res.output
    after = yaml.safe_load(run(datastore_url, "get", "gnp", "allow-tcp-80", "-o", "yaml").output)
    assert after["spec"]["ingress"][0]["destination"]["ports"] == [8080]
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    res = run(datastore_url, "label", "gnp", "allow-tcp-80", "team=net")
    assert res.exit_code == 0, res.output
    res = run(datastore_url, "label", "gnp", "allow-tcp-80", "team=web")
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert (
        run(datastore_url, "label", "gnp", "allow-tcp-80", "team=web", "--overwrite").exit_code == 0
    )
    got = yaml.safe_load(run(datastore_url, "get", "gnp", "allow-tcp-80", "-o", "yaml").output)
    assert got["metadata"]["labels"]["team"] == "web"
    assert run(datastore_url, "label", "gnp", "allow-tcp-80", "team", "--remove").exit_code == 0
    got = yaml.safe_load(run(datastore_url, "get", "gnp", "allow-tcp-80", "-o", "yaml").output)
    assert "team" not in got["metadata"].get("labels", {})


def test_validate_json_reports_every_document(tmp_path: Path) -> None:
    path = tmp_path / "in.yaml"
    path.write_text(SEED + "---\nkind: [unclosed\n---\n" + BAD_NP + "---\n" + NP)
    res = CliRunner().invoke(calicoctl_cli, ["validate", "-f", str(path), "-o", "json"])
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert [r["index"] for r in report] == [0, 1, 2, 3]
    assert [r["valid"] for r in report] == [True, False, False, True]
    assert report[0]["kind"] == "GlobalNetworkPolicy" and report[0]["name"] == "allow-tcp-80"
    assert report[2]["name"] == "bad-one" and report[2]["errors"]
    assert any("spec.ingress[0]" in e for e in report[2]["errors"])
    res = CliRunner().invoke(regionmesh_cli, ["validate", "-f", "-", "-o", "json"], input=SEED)
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["valid"] is True


def test_kind_aliases_and_unknown_kind(datastore_url: str) -> None:
    assert run(datastore_url, "apply", "-f", "-", stdin=SEED).exit_code == 0
    for word in ("gnp", "gnps", "globalnetworkpolicy", "GlobalNetworkPolicies"):
        assert "allow-tcp-80" in run(datastore_url, "get", word).output
    res = run(datastore_url, "get", "nosuchkind")
    assert res.exit_code == 1 and "nosuchkind" in res.output


@pytest.mark.etcd
def test_seed_verbatim_with_calico_env(clean_etcd: Any) -> None:
    """The issue's seed example, as an operator types it, through the installed commands."""
    env = dict(os.environ)
    env.pop("REGIONMESH_DATASTORE", None)
    env.update(DATASTORE_TYPE="etcdv3", ETCD_ENDPOINTS=clean_etcd.endpoint)
    bindir = Path(sys.executable).parent
    calicoctl = str(bindir / "calicoctl") if (bindir / "calicoctl").exists() else "calicoctl"
    proc = subprocess.run(
        [calicoctl, "apply", "-f", "-"],
        input=SEED,
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [calicoctl, "get", "gnp", "allow-tcp-80", "-o", "yaml"],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout)["metadata"]["name"] == "allow-tcp-80"
    store = clean_etcd.open()
    try:
        assert store.get(SEED_KEY) is not None
    finally:
        store.close()


def test_default_tier_custom_columns_and_create_with_resource_version(datastore_url: str) -> None:
    res = run(datastore_url, "get", "tier", "-o", "wide")
    assert res.exit_code == 0
    assert res.output.splitlines()[1].split() == ["default", "1000000", "Deny"]
    res = run(datastore_url, "get", "tier", "default", "-o", "yaml")
    assert yaml.safe_load(res.output)["spec"] == {"order": 1000000, "defaultAction": "Deny"}
    res = run(datastore_url, "delete", "tier", "default")
    assert res.exit_code == 1 and "default tier cannot be deleted" in res.output
    assert run(datastore_url, "apply", "-f", "-", stdin=SEED).exit_code == 0
    res = run(datastore_url, "get", "gnp", "-o", "custom-columns=name,selector")
    assert res.output.splitlines()[0].split() == ["NAME", "SELECTOR"]
    assert res.output.splitlines()[1].startswith("allow-tcp-80")
    with_rv = SEED.replace("  name: allow-tcp-80", "  name: other\n  resourceVersion: '7'")
    res = run(datastore_url, "create", "-f", "-", stdin=with_rv)
    assert res.exit_code == 1 and "must not be set for a Create request" in res.output


def test_entry_points_exit_1_on_usage_errors_and_unreachable_etcd() -> None:
    bindir = Path(sys.executable).parent
    calicoctl = str(bindir / "calicoctl") if (bindir / "calicoctl").exists() else "calicoctl"
    for args in (
        ["get", "gnp", "-o", "bogus"],
        ["bogusverb"],
        ["apply"],
        ["--datastore", "etcd://127.0.0.1:1", "get", "gnp"],
    ):
        proc = subprocess.run([calicoctl, *args], text=True, capture_output=True, timeout=60)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    proc = subprocess.run(
        [calicoctl, "--datastore", "etcd://127.0.0.1:1", "get", "gnp"],
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert "cannot reach etcd" in proc.stderr


TIER = """\
apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: security
spec:
  order: 100
"""

TIERED_GNP = """\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: security.block-telnet
spec:
  tier: security
  order: 10
  selector: all()
  ingress:
  - action: Deny
    protocol: TCP
    destination:
      ports: [23]
  - action: Pass
"""

TIERED_NP = """\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: security.pass-all
  namespace: openstack-region-one
spec:
  tier: security
  selector: all()
  ingress:
  - action: Pass
"""


def names(url: str, *kind: str) -> list[str]:
    return run(url, "get", *kind, "-o", "name").output.split()


@pytest.mark.parametrize("verb", ["apply", "create"])
def test_one_file_with_a_tier_and_its_policies(datastore_url: str, verb: str) -> None:
    res = run(
        datastore_url, verb, "-f", "-", stdin=TIER + "---\n" + TIERED_GNP + "---\n" + TIERED_NP
    )
    assert res.exit_code == 0, res.output
    assert f"Successfully {VERB_PAST[verb]} 3 resource(s)" in res.output
    assert names(datastore_url, "tier") == ["default", "security"]
    assert names(datastore_url, "gnp") == ["security.block-telnet"]
    assert names(datastore_url, "np", "-A") == ["security.pass-all"]


def test_tier_later_in_the_file_is_written_first(datastore_url: str, tmp_path: Path) -> None:
    path = tmp_path / "reversed.yaml"
    path.write_text(TIERED_GNP + "---\n" + TIER)
    res = run(datastore_url, "apply", "-f", str(path))
    assert res.exit_code == 0, res.output
    store = open_datastore(datastore_url)
    try:
        tier = store.get("/calico/resources/v3/projectcalico.org/tiers/security")
        gnp = store.get(
            "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/security.block-telnet"
        )
        assert tier is not None and gnp is not None
        assert tier.mod_revision < gnp.mod_revision  # the tier existed before its policy
    finally:
        store.close()


def test_policy_in_a_tier_nowhere_defined_writes_nothing(datastore_url: str) -> None:
    res = run(datastore_url, "apply", "-f", "-", stdin=SEED + "---\n" + TIERED_GNP)
    assert res.exit_code == 1
    assert "resource does not exist: Tier(security)" in res.output
    assert "nothing was written" in res.output
    assert names(datastore_url, "gnp") == []
    assert names(datastore_url, "tier") == ["default"]


def test_replace_with_tier_in_the_same_file_and_rollback(datastore_url: str) -> None:
    assert run(datastore_url, "apply", "-f", "-", stdin=TIER + "---\n" + TIERED_GNP).exit_code == 0
    moved = TIER.replace("order: 100", "order: 50") + "---\n" + TIERED_GNP.replace("10", "20", 1)
    res = run(datastore_url, "replace", "-f", "-", stdin=moved)
    assert res.exit_code == 0, res.output
    doc = yaml.safe_load(run(datastore_url, "get", "tier", "security", "-o", "yaml").output)
    assert doc["spec"]["order"] == 50
    # create of a new tier + policy when the policy already exists: nothing is written
    other_tier = TIER.replace("security", "audit")
    clash = other_tier + "---\n" + TIERED_GNP
    res = run(datastore_url, "create", "-f", "-", stdin=clash)
    assert res.exit_code == 1 and "resource already exists" in res.output
    assert names(datastore_url, "tier") == ["default", "security"]


def test_default_tier_order_is_fixed(datastore_url: str) -> None:
    bad = "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: default\nspec:\n"
    res = run(datastore_url, "apply", "-f", "-", stdin=bad + "  order: 100\n")
    assert res.exit_code == 1
    assert "spec.order = '100' (the default tier must have order 1000000)" in res.output
    res = run(datastore_url, "apply", "-f", "-", stdin=bad + "  defaultAction: Deny\n")
    assert res.exit_code == 0, res.output
    doc = yaml.safe_load(run(datastore_url, "get", "tier", "default", "-o", "yaml").output)
    assert doc["spec"] == {"order": 1000000, "defaultAction": "Deny"}
    assert "uid" in doc["metadata"]  # stored now, not synthesised
    res = run(datastore_url, "apply", "-f", "-", stdin=bad + "  order: 1000000\n")
    assert res.exit_code == 0, res.output


def test_diff_and_dry_run_accept_a_tier_with_its_policies(datastore_url: str) -> None:
    both = TIERED_GNP + "---\n" + TIER  # any order
    for args in (["diff"], ["apply", "--dry-run"]):
        res = run(datastore_url, *args, "-f", "-", stdin=both, tool=regionmesh_cli)
        assert res.exit_code == 0, res.output
        assert "apply Tier(security)" in res.output
        res = run(datastore_url, *args, "-f", "-", stdin=TIERED_GNP, tool=regionmesh_cli)
        assert res.exit_code == 1
        assert "resource does not exist: Tier(security)" in res.output
        assert "document 0" in res.output
    assert names(datastore_url, "tier") == ["default"]  # nothing written


HOST_LOCAL = """\
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: cmp1-eth0
  labels: {role: host}
spec:
  node: cmp1
  interfaceName: eth0
  expectedIPs: [10.9.0.1]
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: cmp1-openstack-vm1-eth0
  namespace: openstack-region-one
  labels: {app: db}
spec:
  orchestrator: openstack
  node: cmp1
  workload: vm1
  endpoint: eth0
  ipNetworks: [10.1.0.5/32]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: host-egress-deny
spec:
  selector: role == 'host'
  types: [Egress]
  egress:
  - action: Deny
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: db-egress
  namespace: openstack-region-one
spec:
  selector: app == 'db'
  types: [Egress]
  egress:
  - action: Allow
"""
VM1 = "openstack-region-one/cmp1-openstack-vm1-eth0"


def test_explain_and_verify_host_to_local_workload(datastore_url: str, tmp_path: Path) -> None:
    assert run(datastore_url, "apply", "-f", "-", stdin=HOST_LOCAL).exit_code == 0
    res = run(datastore_url, "explain", "--from-ip", "10.9.0.1", "--to", VM1, "-p", "TCP",
              "--port", "5432", tool=regionmesh_cli)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "verdict: ALLOW" in res.output
    assert "host endpoint policy does not apply" in res.output
    # workload → its own host: no host endpoint policy, DefaultEndpointToHostAction decides
    back = ["explain", "--from", VM1, "--to-ip", "10.9.0.1", "-p", "TCP", "--port", "8080"]
    res = run(datastore_url, *back, "-o", "json", tool=regionmesh_cli)
    doc = json.loads(res.output)
    assert doc["verdict"] == "deny"
    assert doc["ingress"]["trace"][0]["step"] == "endpoint-to-host"
    felix = (
        "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n"
        "  name: node.cmp1\nspec:\n  defaultEndpointToHostAction: Accept\n"
    )
    assert run(datastore_url, "apply", "-f", "-", stdin=felix).exit_code == 0
    res = run(datastore_url, *back, tool=regionmesh_cli)
    assert "verdict: ALLOW" in res.output and "DefaultEndpointToHostAction Accept" in res.output
    flows = tmp_path / "flows.yaml"
    flows.write_text(
        yaml.safe_dump(
            [
                {
                    "from": {"ip": "10.9.0.1"},
                    "to": {"endpoint": VM1},
                    "protocol": "TCP",
                    "port": 22,
                    "expect": "allow",
                },
                {
                    "from": {"endpoint": VM1},
                    "to": {"ip": "10.9.0.1"},
                    "protocol": "UDP",
                    "port": 53,
                    "expect": "allow",
                },
            ]  # fmt: skip
        )
    )
    res = run(datastore_url, "verify", "-f", str(flows), tool=regionmesh_cli)
    assert res.exit_code == 0, res.output
