#!/usr/bin/env bash
# Create the project venv (default .venv) with the pinned packages of requirements.txt.
# Idempotent: the venv records the sha256 of requirements.txt it was built from and is only
# updated when that file changes.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${1:-$root/.venv}
req=$root/requirements.txt
want=$(sha256sum "$req" | cut -c1-16)
if [ -f "$venv/.requirements-sha" ] && [ "$(cat "$venv/.requirements-sha")" = "$want" ]; then
  exit 0
fi
py=${PYTHON:-python3}
command -v "$py" >/dev/null || { echo "[setup] error: $py not found; install Python 3.10 or newer" >&2; exit 1; }
# the version pyproject.toml's requires-python and the README state
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "[setup] error: $("$py" --version 2>&1) is too old: pycount needs Python 3.10 or newer (set PYTHON=...)" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating the venv $venv" >&2
  if ! "$py" -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$py" -m venv "$venv"
    else
      echo "[setup] error: '$py -m venv' failed; install the venv module: sudo apt-get install python3-venv" >&2
      exit 1
    fi
  fi
fi
echo "[setup] installing the pinned packages of requirements.txt into $venv" >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
echo "$want" > "$venv/.requirements-sha"
