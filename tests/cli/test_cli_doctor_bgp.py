"""regionmesh doctor's BGP findings read from the datastore: missing and duplicated Node
addresses, endpoints on hosts without a Node (only once BGP is in use)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from tests.cli.test_cli_doctor import wep

from regionmesh.cli.doctor import Endpoint, NodeFacts, StoreFacts, diagnose
from regionmesh.cli.main import calicoctl_cli, regionmesh_cli
from regionmesh.datastore import open_datastore

NODES = """\
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: cmp1}
spec: {bgp: {ipv4Address: 10.0.0.1/24, ipv6Address: "fd00::1/64"}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: cmp2}
spec: {bgp: {ipv4Address: 10.0.0.1/16}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: cmp3}
spec: {bgp: {ipv6Address: "fd00::0001/64"}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: cmp4, labels: {rack: r2}}
"""


def codes(findings: list[dict[str, object]]) -> list[str]:
    return [str(f["code"]) for f in findings]


def test_doctor_reports_bgp_node_problems_in_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    res = CliRunner().invoke(calicoctl_cli, ["--datastore", url, "apply", "-f", "-"], input=NODES)
    assert res.exit_code == 0, res.output
    store = open_datastore(url)
    try:
        for k, v in (
            wep("openstack-region-one", "cmp1", "vm1", "p1"),
            wep("openstack-region-one", "cmp9", "vm2", "p2"),
            wep("openstack-region-one", "cmp9", "vm3", "p3"),
        ):
            store.put(k, v)
    finally:
        store.close()
    res = CliRunner().invoke(regionmesh_cli, ["--datastore", url, "doctor", "-o", "json"])
    assert res.exit_code == 1
    findings = [f for f in json.loads(res.stdout) if f["code"] in _BGP_CODES]
    assert codes(findings) == [
        "node-without-bgp-address",
        "duplicate-bgp-address",
        "duplicate-bgp-address",
        "endpoints-without-node",
    ]
    missing, dup4, dup6, orphan = findings
    assert missing["object"] == "node cmp4" and missing["values"] == {"node": "cmp4"}
    assert "ipv4Address" in missing["fix"]
    assert dup4["values"] == {"address": "10.0.0.1", "nodes": ["cmp1", "cmp2"]}
    assert "cmp1, cmp2" in dup4["message"]
    assert dup6["values"] == {"address": "fd00::1", "nodes": ["cmp1", "cmp3"]}
    assert orphan["object"] == "host cmp9"
    assert orphan["values"]["host"] == "cmp9" and len(orphan["values"]["endpoints"]) == 2
    assert {"code", "object", "message", "fix", "severity", "values"} <= set(orphan)
    text = CliRunner().invoke(regionmesh_cli, ["--datastore", url, "doctor"]).output
    assert "[error] duplicate-bgp-address: node cmp1" in text


_BGP_CODES = {"node-without-bgp-address", "duplicate-bgp-address", "endpoints-without-node"}


def test_no_nodes_means_bgp_not_in_use() -> None:
    facts = StoreFacts(endpoints=[Endpoint("openstack-region-one", "w", "cmp9")])
    assert not [f for f in diagnose(facts) if f.code in _BGP_CODES]
    facts.nodes = [NodeFacts("cmp1", "10.0.0.1/24")]
    found = [f for f in diagnose(facts) if f.code in _BGP_CODES]
    assert [(f.code, f.object) for f in found] == [("endpoints-without-node", "host cmp9")]


def test_distinct_addresses_and_unparsable_values() -> None:
    facts = StoreFacts(
        nodes=[
            NodeFacts("a", "10.0.0.1/24"),
            NodeFacts("b", "10.0.0.2/24"),
            NodeFacts("c", "garbage"),
        ],
        endpoints=[Endpoint("ns", "w", "a"), Endpoint("ns", "w2", "b")],
    )
    found = [(f.code, f.object) for f in diagnose(facts) if f.code in _BGP_CODES]
    assert found == [("node-without-bgp-address", "node c")]
