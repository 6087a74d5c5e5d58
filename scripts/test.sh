#!/usr/bin/env bash
# The README's test command: installs what the tests need, runs the checks and the whole suite.
# Tests that need etcd, root/nftables or neutron start those themselves and FAIL if they can't.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash scripts/setup-test.sh
echo "== ruff format --check"; ruff format --check src tests bench
echo "== ruff check";          ruff check src tests bench
echo "== mypy (strict)";       mypy
echo "== lint-imports";        lint-imports
echo "== pytest"
exec python3 -m pytest "$@"
