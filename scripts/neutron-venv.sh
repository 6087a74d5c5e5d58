#!/usr/bin/env bash
# neutron-venv.sh: create (or reuse) the virtualenv that runs a real neutron-server 29.0.0
# with regionmesh's ML2 mechanism driver, for the integration tests in tests/openstack/.
#
# What it installs (see /work/shared/reference/neutron-server-recipe.md §2):
#   neutron==29.0.0, PyMySQL, python-openstackclient   (from PyPI, neutron's own pins win)
#   regionmesh's runtime deps: [project] dependencies of pyproject.toml, read from it (PyYAML,
#   pydantic 2, click, rich, etcd3gw, pyroute2, oslo.config), so this list cannot drift
#   THIS repository, editable and without deps (pip install --no-deps -e <repo>), which
#   registers the entry point neutron.ml2.mechanism_drivers:regionmesh.
#
# Path: $REGIONMESH_NEUTRON_VENV, default /var/tmp/regionmesh-neutron-venv (outside the repo,
# kept between runs). Idempotent: when the venv already has the right versions and points at
# this repository, it only verifies and exits (about 1 s). A failed or partial venv is rebuilt.
#
# Usage: scripts/neutron-venv.sh [--print-path] [--force]
#   --print-path  print the venv path and exit (nothing is installed)
#   --force       delete and rebuild the venv
# Exit status 0 when the venv is ready; non-zero with a message otherwise.
set -euo pipefail

VENV=${REGIONMESH_NEUTRON_VENV:-/var/tmp/regionmesh-neutron-venv}
PY=${PYTHON:-python3.11}
NEUTRON_VERSION=29.0.0
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STAMP="$VENV/.regionmesh-stamp"
mapfile -t DEPS < <("$PY" -c 'import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))' "$REPO/pyproject.toml")
# The stamp changes whenever what we install changes; bump the last field to force rebuilds.
WANT_STAMP="neutron=$NEUTRON_VERSION repo=$REPO deps=pymysql,osc,${DEPS[*]} v=2"

case "${1:-}" in
  --print-path) echo "$VENV"; exit 0 ;;
  --force) rm -rf "$VENV" ;;
  "") ;;
  *) echo "usage: $0 [--print-path|--force]" >&2; exit 2 ;;
esac

verify() {
  "$VENV/bin/python" - "$NEUTRON_VERSION" "$REPO" <<'EOF'
import sys
from importlib.metadata import entry_points, version

want, repo = sys.argv[1], sys.argv[2]
assert version("neutron") == want, f"neutron {version('neutron')} != {want}"
major = int(version("pydantic").split(".")[0])
assert major == 2, f"pydantic {version('pydantic')} is not 2.x"
for dist in ("PyMySQL", "python-openstackclient", "etcd3gw", "PyYAML", "click", "rich",
             "pyroute2", "oslo.config"):
    version(dist)
eps = [e for e in entry_points(group="neutron.ml2.mechanism_drivers") if e.name == "regionmesh"]
assert eps and eps[0].value == "regionmesh.openstack.mech_driver:RegionmeshMechanismDriver", eps
import regionmesh
assert regionmesh.__file__.startswith(repo + "/"), f"regionmesh comes from {regionmesh.__file__}"
EOF
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT_STAMP" ] && [ -x "$VENV/bin/python" ]; then
  if verify 2>/dev/null; then
    echo "$VENV: ready (neutron $NEUTRON_VERSION, regionmesh from $REPO)"
    exit 0
  fi
  echo "$VENV: stamp present but verification failed; reinstalling" >&2
fi

"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "$PY is older than 3.11 (neutron $NEUTRON_VERSION needs >= 3.11)" >&2; exit 1; }

T0=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi
rm -f "$STAMP"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip
# One resolver run for everything, so neutron's requirements and ours are checked together.
"${PIP[@]}" install "neutron==$NEUTRON_VERSION" PyMySQL python-openstackclient "${DEPS[@]}"
"${PIP[@]}" install --no-deps -e "$REPO"
"${PIP[@]}" check
verify
echo "$WANT_STAMP" > "$STAMP"
echo "$VENV: built in $(( $(date +%s) - T0 )) s (neutron $NEUTRON_VERSION, regionmesh from $REPO)"
