"""Node, BGPConfiguration and BGPPeer through calicoctl's verbs, on sqlite and on a real etcd."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from regionmesh.cli.main import calicoctl_cli
from regionmesh.datastore import open_datastore

PREFIX = "/calico/resources/v3/projectcalico.org/"

NODES = """\
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: cmp-one-1
  labels:
    rack: r1
spec:
  bgp:
    ipv4Address: 10.0.0.1/24
    ipv6Address: fd00::1/64
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: rr-one-1
  labels:
    route-reflector: "true"
spec:
  bgp:
    ipv4Address: 10.0.0.10/24
    asNumber: "1.10"
    routeReflectorClusterID: 224.0.0.1
"""

CONFIG = """\
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
  asNumber: 65000
  logSeverityScreen: Info
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: node.cmp-one-1
spec:
  listenPort: 1179
"""

PEERS = """\
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor-cmp-one-1
spec:
  node: cmp-one-1
  peerIP: 10.0.0.254
  asNumber: 64600
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: to-rr
spec:
  nodeSelector: "!has(route-reflector)"
  peerSelector: route-reflector == 'true'
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor-global
spec:
  peerIP: "[fd00::fe]:179"
  asNumber: 64600
"""


@pytest.fixture(params=["sqlite", "etcd"])
def datastore_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/bgp.db"
    server = request.getfixturevalue("clean_etcd")
    return str(server.url)


def run(url: str, *args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(
        calicoctl_cli, ["--datastore", url, *args], input=stdin, catch_exceptions=False
    )


def rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines()]


def test_create_get_tables_and_yaml(datastore_url: str) -> None:
    res = run(datastore_url, "create", "-f", "-", stdin=NODES)
    assert res.exit_code == 0, res.output
    assert "Successfully created 2 'Node' resource(s)" in res.output
    assert rows(run(datastore_url, "get", "nodes").output) == [
        ["NAME"],
        ["cmp-one-1"],
        ["rr-one-1"],
    ]
    # without BGPConfiguration default a node inherits 64512, shown in parentheses
    assert rows(run(datastore_url, "get", "no", "-o", "wide").output) == [
        ["NAME", "ASN", "IPV4", "IPV6"],
        ["cmp-one-1", "(64512)", "10.0.0.1/24", "fd00::1/64"],
        ["rr-one-1", "65546", "10.0.0.10/24"],
    ]
    res = run(datastore_url, "apply", "-f", "-", stdin=CONFIG)
    assert res.exit_code == 0, res.output
    assert rows(run(datastore_url, "get", "nodes", "-o", "wide").output)[1][1] == "(65000)"
    assert rows(run(datastore_url, "get", "bgpconfig").output) == [
        ["NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"],
        ["default", "Info", "false", "65000"],
        ["node.cmp-one-1", "-", "-"],
    ]
    res = run(datastore_url, "apply", "-f", "-", stdin=PEERS)
    assert res.exit_code == 0, res.output
    assert rows(run(datastore_url, "get", "bgppeers").output) == [
        ["NAME", "PEERIP", "NODE", "ASN"],
        ["to-rr", "!has(route-reflector)", "0"],
        ["tor-cmp-one-1", "10.0.0.254", "cmp-one-1", "64600"],
        ["tor-global", "[fd00::fe]:179", "(global)", "64600"],
    ]
    for word in ("node", "nodes", "no", "nos", "Node"):
        assert "rr-one-1" in run(datastore_url, "get", word).output, word
    for word in ("bgpconfiguration", "bgpconfigurations", "bgpconfig", "bgpconfigs"):
        assert "node.cmp-one-1" in run(datastore_url, "get", word).output, word
    for word in ("bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"):
        assert "tor-global" in run(datastore_url, "get", word).output, word
    got = yaml.safe_load(run(datastore_url, "get", "node", "rr-one-1", "-o", "yaml").output)
    assert got["kind"] == "Node" and got["metadata"]["labels"] == {"route-reflector": "true"}
    assert got["spec"] == {
        "bgp": {
            "ipv4Address": "10.0.0.10/24",
            "asNumber": 65546,
            "routeReflectorClusterID": "224.0.0.1",
        }
    }
    listed = json.loads(run(datastore_url, "get", "bgppeers", "-o", "json").output)
    assert listed["kind"] == "BGPPeerList"
    assert [i["metadata"]["name"] for i in listed["items"]] == [
        "to-rr",
        "tor-cmp-one-1",
        "tor-global",
    ]
    res = run(datastore_url, "get", "nodes", "-o", "custom-columns=NAME,ASN,IPV4")
    assert rows(res.output)[2] == ["rr-one-1", "65546", "10.0.0.10/24"]
    res = run(datastore_url, "get", "nodes", "-n", "x")
    assert res.exit_code == 1 and "Node is not namespaced" in res.output


def test_invalid_documents_write_nothing_and_name_fields(datastore_url: str) -> None:
    bad = (
        NODES.replace("10.0.0.10/24", "10.0.0.300/24")
        + "---\n"
        + PEERS.replace(
            "peerSelector: route-reflector == 'true'",
            "peerSelector: route-reflector == 'true'\n  peerIP: 10.0.0.9",
        )
    )
    res = run(datastore_url, "apply", "-f", "-", stdin=bad)
    assert res.exit_code == 1
    assert "nothing was written" in res.output
    assert "spec.bgp.ipv4Address = '10.0.0.300/24'" in res.output
    assert "PeerIP field must be empty when PeerSelector is specified" in res.output
    assert run(datastore_url, "get", "nodes", "-o", "name").output.strip() == ""
    assert run(datastore_url, "get", "bgppeers", "-o", "name").output.strip() == ""
    node_only = CONFIG.replace("listenPort: 1179", "asNumber: 65001")
    res = run(datastore_url, "create", "-f", "-", stdin=node_only)
    assert res.exit_code == 1
    assert "Cannot set asNumber on a non default BGP Configuration" in res.output


def test_replace_label_and_delete_node_takes_its_configuration(datastore_url: str) -> None:
    for text in (NODES, CONFIG, PEERS):
        assert run(datastore_url, "apply", "-f", "-", stdin=text).exit_code == 0
    moved = NODES.replace("10.0.0.1/24", "10.0.1.1/24")
    res = run(datastore_url, "replace", "-f", "-", stdin=moved)
    assert res.exit_code == 0, res.output
    assert rows(run(datastore_url, "get", "nodes", "-o", "wide").output)[1][2] == "10.0.1.1/24"
    res = run(datastore_url, "label", "node", "cmp-one-1", "route-reflector=true")
    assert res.exit_code == 0, res.output
    res = run(datastore_url, "delete", "node", "cmp-one-1")
    assert res.exit_code == 0, res.output
    assert "Successfully deleted 1 'Node' resource(s)" in res.output
    # Calico's client removes the node's own peers and node.<name> configuration with it
    names = run(datastore_url, "get", "bgppeers", "-o", "name").output.split()
    assert names == ["to-rr", "tor-global"]
    assert run(datastore_url, "get", "bgpconfig", "-o", "name").output.split() == ["default"]
    res = run(datastore_url, "delete", "node", "cmp-one-1")
    assert res.exit_code == 1 and "resource does not exist: Node(cmp-one-1)" in res.output
    res = run(datastore_url, "delete", "-f", "-", stdin=PEERS.split("---\n")[2])
    assert res.exit_code == 0, res.output
    assert run(datastore_url, "get", "bgppeers", "-o", "name").output.split() == ["to-rr"]


@pytest.mark.etcd
def test_etcd_keys_and_values_are_calicos(clean_etcd: Any) -> None:
    url = str(clean_etcd.url)
    for text in (NODES, CONFIG, PEERS):
        assert run(url, "apply", "-f", "-", stdin=text).exit_code == 0
    store = open_datastore(url)
    try:
        listed = store.list(PREFIX)
        keys = sorted(kv.key for kv in listed.items)
        assert keys == [
            PREFIX + "bgpconfigurations/default",
            PREFIX + "bgpconfigurations/node.cmp-one-1",
            PREFIX + "bgppeers/to-rr",
            PREFIX + "bgppeers/tor-cmp-one-1",
            PREFIX + "bgppeers/tor-global",
            PREFIX + "nodes/cmp-one-1",
            PREFIX + "nodes/rr-one-1",
        ]
        kv = store.get(PREFIX + "nodes/rr-one-1")
        assert kv is not None
        value = json.loads(kv.value)
        assert value["kind"] == "Node" and value["apiVersion"] == "projectcalico.org/v3"
        assert value["spec"]["bgp"]["asNumber"] == 65546  # stored as a number, like Calico
        assert "resourceVersion" not in value["metadata"] and value["metadata"]["uid"]
        peer = store.get(PREFIX + "bgppeers/tor-global")
        assert peer is not None
        assert json.loads(peer.value)["spec"] == {"peerIP": "[fd00::fe]:179", "asNumber": 64600}
    finally:
        store.close()
    # the byte-level layout, read with etcd's own client
    env = {**os.environ, "ETCDCTL_API": "3"}
    etcdctl = ["etcdctl", f"--endpoints={clean_etcd.endpoint}"]
    proc = subprocess.run(
        [*etcdctl, "get", "--prefix", PREFIX, "--keys-only"],
        env=env,
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert [k for k in proc.stdout.split(b"\n") if k] == [k.encode() for k in keys]
    proc = subprocess.run(
        [*etcdctl, "get", PREFIX + "bgpconfigurations/default", "--print-value-only"],
        env=env,
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert json.loads(proc.stdout)["spec"] == {
        "nodeToNodeMeshEnabled": False,
        "asNumber": 65000,
        "logSeverityScreen": "Info",
    }
