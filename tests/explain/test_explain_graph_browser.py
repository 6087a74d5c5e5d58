"""The HTML graph rendered by a real headless Chromium: what a user sees is in the DOM."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from explain_support import apply_seed

from regionmesh.cli.main import regionmesh_cli

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "headless Chromium is needed (apt-get install chromium; scripts/setup-test.sh)"
    return exe


@pytest.mark.browser
def test_html_graph_renders_in_chromium(cloud_url: str, tmp_path: Path) -> None:
    apply_seed(cloud_url)
    page = tmp_path / "graph.html"
    res = CliRunner().invoke(
        regionmesh_cli, ["graph", "-o", "html", "--file", str(page), "--datastore", cloud_url]
    )
    assert res.exit_code == 0, res.output
    profile = tmp_path / "profile"
    common = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    # region clusters, nodes (security groups with VM counts), edge labels, legend, table
    for needle in (
        'data-region="one"', 'data-region="two"', "region one</text>", "region two</text>",
        'data-name="web"', 'data-name="client"', 'data-name="admin"', 'data-name="batch"',
        ">2 VMs<", ">TCP/80</text>", ">TCP/22</text>", "allowed cross-region flow",
        "<td>two/client</td><td>one/web</td><td>TCP/80</td><td>4</td><td>cross-region</td>",
    ):  # fmt: skip
        assert needle in html, needle
    shot = tmp_path / "graph.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.stat().st_size > 10_000  # a real picture, not an empty canvas
