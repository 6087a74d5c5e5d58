#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (run as root): apt packages,
# the project's venv <repo>/.venv with the test extra (scripts/venv.sh), and neutron's venv.
# Idempotent: re-running skips what is already there.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
need_apt=()
for pair in etcd:etcd-server etcdctl:etcd-client nft:nftables ip:iproute2 mariadbd:mariadb-server \
            dnsmasq:dnsmasq-base busybox:busybox openssl:openssl chromium:chromium bird:bird2; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi
bash "$repo/scripts/venv.sh" test
if [ -x "$repo/scripts/neutron-venv.sh" ]; then
  "$repo/scripts/neutron-venv.sh"
fi
