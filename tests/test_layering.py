"""The package layering of docs/DESIGN.md, checked by import-linter's contracts in .importlinter."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    cmd = [str(lint)] if lint.exists() else ["lint-imports"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_module_has_a_docstring() -> None:
    import ast

    missing = []
    for path in sorted((REPO / "src" / "regionmesh").rglob("*.py")):
        tree = ast.parse(path.read_text())
        if ast.get_docstring(tree) is None:
            missing.append(str(path.relative_to(REPO)))
    assert missing == []


def _loaded_after(module: str, watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` a fresh interpreter has in sys.modules after importing ``module``."""
    probe = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(','.join(m for m in {watched!r} if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return [m for m in proc.stdout.strip().split(",") if m]


def test_calc_graph_loads_no_kernel_access() -> None:
    """The pure calc graph (and the dataplane face it imports) never loads the kernel side."""
    kernel = (
        "pyroute2",
        "subprocess",
        "regionmesh.dataplane.nft_runner",
        "regionmesh.dataplane.routes",
        "regionmesh.dataplane.links",
        "regionmesh.dataplane.driver",
    )
    assert _loaded_after("regionmesh.agent.graph", kernel) == []
    assert _loaded_after("regionmesh.dataplane", kernel) == []


def test_nft_driver_loads_neither_pyroute2_nor_subprocess() -> None:
    """The driver reaches the kernel only through the seams in dataplane.api."""
    assert _loaded_after("regionmesh.dataplane.driver", ("pyroute2", "subprocess")) == []
