#!/usr/bin/env bash
# The README's test command: installs what the tests need, runs the checks and the whole suite.
# Every tool runs from the project's own virtualenv <repo>/.venv (built by scripts/venv.sh with
# the "test" extra), never from whatever else is installed on the machine.
# Tests that need etcd, root/nftables or neutron start those themselves and FAIL if they can't.
#   bash scripts/test.sh [PYTEST ARGS...]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash scripts/setup-test.sh
bin="${REGIONMESH_VENV:-$repo/.venv}/bin"
# as `. .venv/bin/activate` would: tests that start `regionmesh`/`calicoctl` find the venv's
export VIRTUAL_ENV="${bin%/bin}" PATH="$bin:$PATH"
echo "== ruff format --check"; "$bin/ruff" format --check src tests bench
echo "== ruff check";          "$bin/ruff" check src tests bench
echo "== mypy (strict)";       "$bin/mypy"
echo "== lint-imports";        "$bin/lint-imports"
echo "== pytest"
exec "$bin/python" -m pytest "$@"
