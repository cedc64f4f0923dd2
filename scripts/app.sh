#!/usr/bin/env bash
# Run the Gradio app on the bundled weights: http://127.0.0.1:7860 (GRADIO_SERVER_NAME/PORT to change).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
exec .venv/bin/python app.py "$@"
