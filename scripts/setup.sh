#!/usr/bin/env bash
# Create (or reuse) .venv and install a requirements file into it, only when the file changed.
# Usage: scripts/setup.sh requirements.txt|requirements-dev.txt
set -euo pipefail
cd "$(dirname "$0")/.."
req=${1:-requirements.txt}
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
# The stamp covers every requirements file, since requirements-dev.txt includes requirements.txt.
want="$req $(cat requirements*.txt | sha256sum | cut -d' ' -f1)"
stamp=.venv/.installed-$(basename "$req" .txt)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing $req into .venv (first run: a few minutes)"
  .venv/bin/python -m pip install --disable-pip-version-check -q -r "$req"
  echo "$want" > "$stamp"
fi
