"""``regionmesh demo``: run as a user runs it; it must leave nothing behind.

The full run needs root (network namespaces, nftables, one agent process per host) and proves
the flows with real TCP; ``--no-dataplane`` runs the datastore/policy half only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netns import require_root_tools

DEMO = [sys.executable, "-c", "from regionmesh.cli.main import main; main()", "demo"]


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "REGIONMESH_"))}
    env["TMPDIR"] = str(tmp)  # the demo's temporary store goes here: must be gone afterwards
    return env


def _our_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith("rmdemo-")]


def _check_common(out: str) -> None:
    assert "regionmesh cloud apply: 12 created" in out
    assert "== 2. who can reach whom BEFORE" in out
    assert "OPEN  client → web  TCP/80  (2 source VM(s) → 2 destination VM(s), 4 VM pair(s))" in out
    assert "two/client → one/web: TCP/80  (4 VM pair(s))" in out
    assert "GlobalNetworkPolicy(allow-tcp-80) rule 0 matched: allow" in out
    before, after = out.split("who can reach whom AFTER")
    assert "two/client → one/web" not in before.split("what-if")[0]
    assert "verdict: ALLOW" in after


def test_demo_without_dataplane(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*DEMO, "--no-dataplane"], capture_output=True, text=True, timeout=120, env=_env(tmp_path)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_common(proc.stdout)
    assert "prove it with real TCP" not in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.root
@pytest.mark.timeout(180)
def test_demo_full_with_agents_and_real_tcp(tmp_path: Path) -> None:
    require_root_tools()
    started = time.monotonic()
    proc = subprocess.run(DEMO, capture_output=True, text=True, timeout=150, env=_env(tmp_path))
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    out = proc.stdout
    _check_common(out)
    assert (
        "before the policy: client-1 (two, 10.2.0.10) → web-1 (one, 10.1.0.10) TCP/80: blocked"
        in out
    )
    assert "allowed  client-1 (two, 10.2.0.10) → web-1 (one, 10.1.0.10) TCP/80: CONNECTED" in out
    assert "denied   batch-1 (two, 10.2.0.20) → web-1 (one, 10.1.0.10) TCP/80: blocked" in out
    # bird2 is installed by scripts/setup-test.sh: the hosts route through regionmesh bgp
    assert "routes between hosts: BGP (regionmesh bgp + BIRD 2" in out, out[-4000:]
    assert elapsed < 60, f"the demo took {elapsed:.1f} s"
    assert _our_namespaces() == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.root
@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_demo_cleans_up_when_interrupted(tmp_path: Path, sig: signal.Signals) -> None:
    require_root_tools()
    proc = subprocess.Popen(
        DEMO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tmp_path)
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # interrupt while agents and namespaces exist
        seen.append(line)
        if "agents started" in line:
            break
    else:
        pytest.fail("the demo never reached the dataplane part:\n" + "".join(seen))
    assert _our_namespaces(), "namespaces should exist at this point"
    proc.send_signal(sig)
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 130, "".join(seen) + rest
    assert "demo interrupted; cleaning up" in rest
    assert _our_namespaces() == []
    assert list(tmp_path.iterdir()) == []
    agents = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert agents.stdout.strip() == "", "agent processes survived the demo"
