"""A plain ``pip install .`` into an empty virtualenv gives working commands (issue 9, §1).

Builds a clean venv (``python -m venv``, no system site-packages) in ``tmp_path``, installs a
copy of this repository NON-editable (pip resolves the declared dependencies from its index /
cache), then, from a temporary directory outside the repository: ``calicoctl --help``,
``regionmesh --help``, every ``regionmesh <sub> --help``, ``regionmesh demo --no-dataplane``
and ``pip check``. A dependency imported but not declared, or an example file not shipped as
package data, fails here even when the developer's own venv happens to have it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from regionmesh.cli.main import REGIONMESH_COMMANDS, RESOURCE_COMMANDS

# ~1-2 min on an idle machine (pip resolves and installs ~30 distributions); far more when loaded
pytestmark = [pytest.mark.install, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "bench"
)


def _env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "REGIONMESH_", "ETCD_", "DATASTORE_"))}  # fmt: skip
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} → {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc.stdout


def test_pip_install_into_empty_venv_gives_working_commands(tmp_path: Path) -> None:
    src = tmp_path / "src-copy"
    shutil.copytree(REPO, src, ignore=IGNORE)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = _env(venv)
    py = str(venv / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", str(src)], tmp_path, env, timeout=900)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    bin_ = venv / "bin"
    # the installed package, not the checkout, is what runs
    where = _run([py, "-c", "import regionmesh; print(regionmesh.__file__)"], cwd, env)
    assert where.startswith(str(venv)), where

    out = _run([str(bin_ / "calicoctl"), "--help"], cwd, env)
    for name in RESOURCE_COMMANDS:
        assert f"  {name} " in out
    out = _run([str(bin_ / "regionmesh"), "--help"], cwd, env)
    for name in REGIONMESH_COMMANDS:
        assert f"  {name} " in out
        sub = _run([str(bin_ / "regionmesh"), name, "--help"], cwd, env)
        assert sub.startswith(f"Usage: regionmesh {name} "), sub
    for group, sub in (("cloud", "apply"), ("cloud", "delete"), ("doctor", "config")):
        _run([str(bin_ / "regionmesh"), group, sub, "--help"], cwd, env)
    env_demo = dict(env, XDG_DATA_HOME=str(tmp_path / "xdg"))
    out = _run([str(bin_ / "regionmesh"), "demo", "--no-dataplane"], cwd, env_demo, timeout=300)
    assert "allow-tcp-80" in out and "(exit 0)" in out, out
    assert list(cwd.iterdir()) == []  # the demo wrote nothing where it was run
    _run([py, "-m", "pip", "check"], cwd, env)
