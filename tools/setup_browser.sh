#!/usr/bin/env bash
# Headless Chromium from Debian's packages, for the test that opens the audit's HTML page in a real
# browser (tests/test_audit.py). Idempotent; installs only as root (or says how).
set -euo pipefail
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[setup] installing Debian's chromium (headless browser for the audit page's test)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
else
  echo "[setup] error: the audit page's test needs a headless browser: sudo apt-get install chromium" >&2
  exit 1
fi
