#!/usr/bin/env bash
# The main job in one command, on a fresh Debian machine:
#   bash scripts/demo.sh [--no-dataplane] [--keep]
# Installs what the demo needs (as root: nftables + iproute2 + bird2 via apt; always: this repo into the
# project's own virtualenv <repo>/.venv via scripts/venv.sh), then runs that venv's
# `regionmesh demo`: a two-region cloud on a TEMPORARY embedded datastore, the cross-region
# policy allow-tcp-80 previewed and applied, the region-by-region connectivity matrix
# before/after, an explain trace, and — as root — one agent per compute host in network
# namespaces proving the verdicts with real TCP. Leaves nothing behind but .venv/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -eq 0 ]; then
  need_apt=()
  command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need_apt+=(nftables)
  command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need_apt+=(iproute2)
  command -v bird >/dev/null 2>&1 || [ -x /usr/sbin/bird ] || need_apt+=(bird2)
  if [ ${#need_apt[@]} -gt 0 ]; then
    echo "demo: apt-get install ${need_apt[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}"
  fi
fi
bash "$repo/scripts/venv.sh"
exec "${REGIONMESH_VENV:-$repo/.venv}/bin/regionmesh" demo "$@"
