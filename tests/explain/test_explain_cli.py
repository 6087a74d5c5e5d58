"""``regionmesh explain | verify | diff | apply --dry-run | graph`` against a real sqlite store."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner, Result
from explain_support import SEED, apply_seed, resources, wep_ref

from regionmesh.cli.main import regionmesh_cli
from regionmesh.policy import Snapshot


def run(url: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(regionmesh_cli, [*args, "--datastore", url], input=input)


def refs(url: str) -> dict[str, str]:
    snap = Snapshot(resources(url))
    return {vm: wep_ref(snap, vm) for vm in ("web-1", "web-2", "client-1", "batch-1", "admin-1")}


def test_explain_cross_region_before_and_after_seed(cloud_url: str) -> None:
    r = refs(cloud_url)
    args = ["explain", "--from", r["client-1"], "--to", r["web-1"], "-p", "TCP", "--port", "80"]
    before = run(cloud_url, *args)
    assert before.exit_code == 0, before.output
    assert "verdict: DENY" in before.output
    assert (
        "ossg.default.a7734e61-b545-452d-a3cd-0189cbd9747a) selects the endpoint but none"
        in before.output
    )
    assert "end of tier default: implicit deny" in before.output
    apply_seed(cloud_url)
    after = run(cloud_url, *args, "-o", "json")
    assert after.exit_code == 0, after.output
    doc = json.loads(after.output)
    assert doc["verdict"] == "allow" and doc["allowed"] is True
    assert doc["flow"] == {"srcIP": "10.2.0.10", "dstIP": "10.1.0.10", "protocol": 6, "dstPort": 80}
    step = doc["ingress"]["trace"][-1]
    assert step["policy"] == {"kind": "GlobalNetworkPolicy", "name": "allow-tcp-80"}
    assert (step["tier"], step["ruleIndex"], step["action"]) == ("default", 0, "Allow")
    egress = doc["egress"]["trace"][-1]
    assert egress["policy"]["namespace"] == "openstack-region-two"


def test_explain_by_ip_and_narrowing(cloud_url: str) -> None:
    apply_seed(cloud_url)
    r = refs(cloud_url)
    by_ip = run(cloud_url, "explain", "--from-ip", "10.2.0.20", "--to-ip", "10.1.0.10",
                "-p", "6", "--port", "80")  # fmt: skip
    assert by_ip.exit_code == 0 and "verdict: DENY" in by_ip.output, by_ip.output
    narrowed = run(cloud_url, "explain", "--from", r["client-1"], "--from-ip", "10.2.0.10",
                   "--to", r["web-1"], "-p", "tcp", "--port", "80")  # fmt: skip
    assert "verdict: ALLOW" in narrowed.output
    # an outside address is not policed on its side
    outside = run(cloud_url, "explain", "--from-ip", "192.0.2.1", "--to", r["admin-1"],
                  "-p", "TCP", "--port", "22")  # fmt: skip
    assert "egress: not a Calico endpoint, not policed" in outside.output
    assert "verdict: DENY" in outside.output  # 192.0.2.1 is outside admin's 10.0.0.0/8


def test_explain_errors_are_not_silent_denies(cloud_url: str) -> None:
    r = refs(cloud_url)
    unknown = run(cloud_url, "explain", "--from", "openstack-region-two/nope", "--to", r["web-1"],
                  "-p", "TCP", "--port", "80")  # fmt: skip
    assert unknown.exit_code == 1
    assert "--from: no such WorkloadEndpoint in the datastore" in unknown.output
    foreign = run(cloud_url, "explain", "--from", r["client-1"], "--from-ip", "10.2.0.11",
                  "--to", r["web-1"], "-p", "TCP")  # fmt: skip
    assert foreign.exit_code == 1 and "--from-ip: not an address of" in foreign.output
    bad = run(cloud_url, "explain", "--from-ip", "10.2.0.10", "--to-ip", "10.1.0.10", "-p", "ICMP",
              "--port", "80")  # fmt: skip
    assert bad.exit_code == 1 and "--port: ports need protocol TCP" in bad.output
    proto = run(cloud_url, "explain", "--from-ip", "10.2.0.10", "--to-ip", "10.1.0.10", "-p", "XTP")
    assert proto.exit_code == 1 and "--protocol" in proto.output


def _flows(r: dict[str, str]) -> list[dict[str, object]]:
    return [
        {"from": {"endpoint": r["client-1"]}, "to": {"endpoint": r["web-1"]},
         "protocol": "TCP", "port": 80, "expect": "allow"},
        {"from": {"ip": "10.2.0.20"}, "to": {"endpoint": r["web-1"], "ip": "10.1.0.10"},
         "protocol": 6, "port": 80, "srcPort": 40000, "expect": "deny"},
        {"from": {"endpoint": r["web-2"]}, "to": {"endpoint": r["web-1"]},
         "protocol": "ICMP", "icmp": {"type": 8, "code": 0}, "expect": "allow"},
    ]  # fmt: skip


def test_verify_ok_and_failing(cloud_url: str, tmp_path: Path) -> None:
    apply_seed(cloud_url)
    r = refs(cloud_url)
    path = tmp_path / "flows.yaml"
    path.write_text(yaml.safe_dump(_flows(r)))
    ok = run(cloud_url, "verify", "-f", str(path))
    assert ok.exit_code == 0, ok.output
    assert "3 of 3 flow(s) as expected" in ok.output
    flows = _flows(r)
    flows[1]["expect"] = "allow"
    path.write_text(yaml.safe_dump(flows))
    failing = run(cloud_url, "verify", "-f", str(path), "-o", "json")
    assert failing.exit_code == 1
    report = json.loads(failing.output)
    assert [(e["index"], e["expect"], e["verdict"], e["ok"]) for e in report] == [
        (0, "allow", "allow", True), (1, "allow", "deny", False), (2, "allow", "allow", True),
    ]  # fmt: skip
    assert report[1]["trace"]["ingress"]["trace"][-1]["step"] == "end-of-tier"
    text = run(cloud_url, "verify", "-f", str(path))
    assert text.exit_code == 1 and "FAIL [1]" in text.output and "2 of 3" in text.output


def test_verify_file_errors_name_entry_and_field(cloud_url: str, tmp_path: Path) -> None:
    r = refs(cloud_url)
    path = tmp_path / "flows.yaml"
    flows = _flows(r)
    flows[0]["expect"] = "maybe"
    flows[2] = {"from": {"ip": "10.2.0.999"}, "to": {"endpoint": "no-slash"}, "protocol": "TCP",
                "port": 99999, "expect": "deny", "colour": "red"}  # fmt: skip
    path.write_text(yaml.safe_dump(flows))
    res = run(cloud_url, "verify", "-f", str(path))
    assert res.exit_code == 1
    for needle in ("[0].expect = 'maybe'", "[2].from.ip = '10.2.0.999'", "[2].to.endpoint",
                   "[2].port = '99999'", "[2].colour"):  # fmt: skip
        assert needle in res.output, (needle, res.output)
    # unknown endpoints are found before anything is evaluated, with the entry index
    flows = _flows(r)
    flows[1]["to"] = {"endpoint": "openstack-region-one/ghost"}
    path.write_text(yaml.safe_dump(flows))
    res = run(cloud_url, "verify", "-f", str(path), "-o", "json")
    assert res.exit_code == 1 and "[1].to.endpoint = 'openstack-region-one/ghost'" in res.output
    assert not res.output.lstrip().startswith("[")  # no report for a file that is in error
    path.write_text("- from: {ip: 10.0.0.1\n  to: [")
    res = run(cloud_url, "verify", "-f", str(path))
    assert res.exit_code == 1 and "not valid YAML/JSON" in res.output and "line" in res.output


def test_diff_and_apply_dry_run_write_nothing(cloud_url: str) -> None:
    diff = run(cloud_url, "diff", "-f", str(SEED))
    assert diff.exit_code == 0, diff.output
    assert "region two → region one:" in diff.output
    assert (
        "OPEN  client → web  TCP/80  (2 source VM(s) → 2 destination VM(s), 4 VM pair(s))"
        in diff.output
    )
    dry = run(cloud_url, "apply", "--dry-run", "-f", str(SEED))
    assert dry.exit_code == 0 and "OPEN  client → web  TCP/80" in dry.output
    assert run(cloud_url, "get", "gnp", "-o", "name").output.strip() == ""  # nothing written
    assert run(cloud_url, "apply", "-f", str(SEED)).exit_code == 0
    removal = run(cloud_url, "diff", "--delete", "-f", str(SEED), "-o", "json")
    doc = json.loads(removal.output)
    assert doc["opened"] == []
    assert [(c["from"]["group"], c["to"]["group"], c["service"]["label"], c["vmPairs"])
            for c in doc["closed"]] == [("client", "web", "TCP/80", 4)]  # fmt: skip


def test_diff_rejects_an_invalid_file(cloud_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SEED.read_text().replace("- 80", "- 80\n    notAField: 1"))
    res = run(cloud_url, "diff", "-f", str(bad))
    assert res.exit_code == 1 and "invalid" in res.output


def test_graph_formats(cloud_url: str) -> None:
    apply_seed(cloud_url)
    svg = run(cloud_url, "graph", "-o", "svg")
    assert svg.exit_code == 0 and svg.output.startswith("<svg")
    for text in ("region one", "region two", ">web<", ">client<", ">TCP/80<", ">TCP/22<"):
        assert text in svg.output, text
    doc = json.loads(run(cloud_url, "graph", "-o", "json").output)
    assert {"from": {"region": "two", "group": "client", "vms": 2},
            "to": {"region": "one", "group": "web", "vms": 2},
            "allowed": ["TCP/80"], "vmPairs": 4} in doc["edges"]  # fmt: skip
    only_two = json.loads(run(cloud_url, "graph", "-o", "json", "--region", "two").output)
    assert all("two" in (e["from"]["region"], e["to"]["region"]) for e in only_two["edges"])
    text = run(cloud_url, "graph", "-o", "text").output
    assert "two/client → one/web: TCP/80  (4 VM pair(s))" in text
