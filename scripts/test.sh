#!/usr/bin/env bash
# Run the whole test suite: installs test requirements into .venv and, for the browser tests,
# Debian's chromium and chromium-driver when they are missing. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing chromium and chromium-driver for the browser tests"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium chromium-driver >/dev/null
fi
exec .venv/bin/python -m pytest "$@"
