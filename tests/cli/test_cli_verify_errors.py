"""verify reports every problem of a flow file in one pass: syntax and unknown endpoints alike."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from regionmesh.cli.main import regionmesh_cli
from regionmesh.examples import CLOUD as CLOUD_NAME
from regionmesh.examples import example_path

EXAMPLE = example_path(CLOUD_NAME)


def test_verify_reports_syntax_and_resolution_errors_together(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/v.db"
    runner = CliRunner()
    assert (
        runner.invoke(
            regionmesh_cli, ["--datastore", url, "cloud", "apply", "-f", str(EXAMPLE)]
        ).exit_code
        == 0
    )
    flows = tmp_path / "flows.yaml"
    flows.write_text(
        "- {from: {ip: 10.2.0.10}, to: {ip: 10.1.0.10}, protocol: TCP, port: 99999, expect: allow}\n"
        "- {from: {endpoint: openstack-region-one/ghost}, to: {ip: 10.1.0.10}, protocol: TCP,"
        " port: 80, expect: deny}\n"
        "- {from: {ip: 10.2.0.10}, to: {ip: 10.1.0.10}, protocol: TCP, port: 80, expect: deny}\n"
    )
    res = runner.invoke(regionmesh_cli, ["--datastore", url, "verify", "-f", str(flows)])
    assert res.exit_code == 1
    assert "[0].port" in res.output
    assert "[1].from.endpoint" in res.output and "ghost" in res.output
    assert res.output.index("[0].port") < res.output.index("[1].from.endpoint")
