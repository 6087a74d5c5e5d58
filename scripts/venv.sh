#!/usr/bin/env bash
# venv.sh: create (or reuse) the project's own virtualenv, <repo>/.venv, and install this
# repository into it (editable, with the extras asked for). Used by scripts/demo.sh (no extras)
# and scripts/test.sh (extra "test"); prints nothing but one status line.
#
#   bash scripts/venv.sh [EXTRA...]        e.g. bash scripts/venv.sh test
#
# The venv is made with `python3 -m venv` (no system site-packages), so nothing installed
# elsewhere on the machine can satisfy or hide a missing dependency. Idempotent and fast when up
# to date: a stamp (.venv/.regionmesh-stamp) records the sha256 of pyproject.toml, the Python
# version and the extras installed; when pyproject.toml or the Python changed, or the stamp is
# missing (e.g. a venv made by hand), the venv is deleted and rebuilt from scratch, so it never
# keeps packages pyproject.toml no longer declares. Asking for extras the venv lacks installs
# them on top. Ends with `pip check`.
#
# Environment: PYTHON (default python3, must be >= 3.11), REGIONMESH_VENV (default <repo>/.venv).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${REGIONMESH_VENV:-$repo/.venv}
py=${PYTHON:-python3}
stamp="$venv/.regionmesh-stamp"

"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "venv: $py is $("$py" -V 2>&1); regionmesh needs Python >= 3.11" >&2; exit 1; }
if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
  # Debian's system python3 ships venv/ensurepip separately
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "venv: apt-get install python3-venv"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv
  else
    echo "venv: $py has no venv module; install python3-venv" >&2
    exit 1
  fi
fi

want_extras=$(printf '%s\n' "$@" | sed '/^$/d' | sort -u | paste -sd, -)
identity="pyproject=$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1) python=$("$py" -c 'import sys; print(sys.version.split()[0])') repo=$repo"

have_extras=""
if [ -f "$stamp" ] && [ -x "$venv/bin/python" ] && [ "$(sed -n 1p "$stamp")" = "$identity" ]; then
  have_extras=$(sed -n 2p "$stamp")
  missing=$(comm -23 <(tr , '\n' <<<"$want_extras" | sed '/^$/d' | sort -u) \
                     <(tr , '\n' <<<"$have_extras" | sed '/^$/d' | sort -u))
  if [ -z "$missing" ]; then
    echo "venv: $venv is up to date (extras: ${have_extras:-none})"
    exit 0
  fi
else
  [ -e "$venv" ] && echo "venv: rebuilding $venv (pyproject.toml or Python changed, or no stamp)"
  rm -rf "$venv"
  "$py" -m venv "$venv"
fi

all_extras=$(printf '%s\n%s\n' "$(tr , '\n' <<<"$want_extras")" "$(tr , '\n' <<<"$have_extras")" \
  | sed '/^$/d' | sort -u | paste -sd, -)
t0=$(date +%s)
rm -f "$stamp"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
target="$repo"
[ -n "$all_extras" ] && target="$repo[$all_extras]"
"${pip[@]}" install -e "$target"
"${pip[@]}" check
printf '%s\n%s\n' "$identity" "$all_extras" > "$stamp"
echo "venv: $venv ready in $(( $(date +%s) - t0 )) s (extras: ${all_extras:-none})"
