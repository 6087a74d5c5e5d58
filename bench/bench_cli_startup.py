"""Benchmark CLI start-up: ``calicoctl get gnp`` on the embedded store vs importing its libraries.

Runs, in the SAME interpreter/venv as this script (``sys.executable``), interleaved N times:

* baseline: ``python -c "import pydantic, yaml, click"`` — the libraries every command needs;
* ``calicoctl get gnp`` against a temporary SQLite store holding a few GlobalNetworkPolicies
  (the installed ``calicoctl`` script next to the interpreter, i.e. what a user runs);
* ``calicoctl version`` (the cheapest command: no datastore, no model).

Reports the median wall time of each and its ratio to the baseline (target for ``get gnp``:
within 3×). Each process is started fresh, so nothing is cached between runs except the OS page
cache and Python's ``__pycache__`` (warmed by one untimed run of each first).

    python bench/bench_cli_startup.py [--runs N] [--src DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLICY = """\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: bench-{i}
spec:
  selector: "has(sg.projectcalico.org/openstack-{i})"
  ingress:
  - action: Allow
    protocol: TCP
    destination:
      ports: [80]
"""


def _calicoctl() -> str:
    here = Path(sys.executable).parent / "calicoctl"
    if here.exists():
        return str(here)
    found = shutil.which("calicoctl")
    if found is None:
        raise SystemExit("calicoctl is not installed next to this interpreter nor on PATH")
    return found


def _time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument(
        "--src",
        help="run regionmesh from this src/ directory instead (PYTHONPATH; e.g. a checkout of "
        "an older commit, to measure before/after with the same venv)",
    )
    args = parser.parse_args()
    calicoctl = _calicoctl()
    with tempfile.TemporaryDirectory(prefix="rm-bench-cli-") as tmp:
        env = dict(os.environ)
        env["REGIONMESH_DATASTORE"] = f"sqlite:///{tmp}/store.db"
        env.pop("PYTHONPATH", None)
        if args.src:
            env["PYTHONPATH"] = str(Path(args.src).resolve())
        manifest = Path(tmp, "gnps.yaml")
        manifest.write_text("---\n".join(POLICY.format(i=i) for i in range(5)))
        subprocess.run([calicoctl, "apply", "-f", str(manifest)], env=env, check=True,
                       capture_output=True)  # fmt: skip
        cases = {
            'python -c "import pydantic, yaml, click"': [
                sys.executable,
                "-c",
                "import pydantic, yaml, click",
            ],
            "calicoctl get gnp": [calicoctl, "get", "gnp"],
            "calicoctl version": [calicoctl, "version"],
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for cmd in cases.values():  # warm __pycache__ and the page cache
            _time(cmd, env)
        for _ in range(args.runs):
            for name, cmd in cases.items():
                times[name].append(_time(cmd, env))
    base = statistics.median(times[next(iter(cases))])
    print(f"python: {sys.executable}, src: {args.src or 'installed'}, runs: {args.runs} "
          "(interleaved), medians\n")  # fmt: skip
    print("| command | median ms | ratio vs import baseline |")
    print("| --- | ---: | ---: |")
    for name, samples in times.items():
        med = statistics.median(samples)
        print(f"| `{name}` | {med * 1000:.0f} | {med / base:.2f}× |")


if __name__ == "__main__":
    main()
