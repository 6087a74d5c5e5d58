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
