"""graph --region names a region that has endpoints, or fails instead of drawing nothing."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from regionmesh.cli.main import regionmesh_cli
from regionmesh.examples import CLOUD as CLOUD_NAME
from regionmesh.examples import example_path

EXAMPLE = example_path(CLOUD_NAME)


def test_graph_unknown_region_is_an_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/g.db"
    runner = CliRunner()
    applied = runner.invoke(
        regionmesh_cli, ["--datastore", url, "cloud", "apply", "-f", str(EXAMPLE)]
    )
    assert applied.exit_code == 0, applied.output
    ok = runner.invoke(
        regionmesh_cli, ["--datastore", url, "graph", "-o", "text", "--region", "one"]
    )
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(
        regionmesh_cli, ["--datastore", url, "graph", "-o", "text", "--region", "three"]
    )
    assert bad.exit_code == 1
    assert "no endpoints in region 'three'" in bad.output and "one, two" in bad.output
