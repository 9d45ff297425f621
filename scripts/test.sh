#!/usr/bin/env bash
# Set up the test environment (idempotent) and run the whole test suite.
# Unit tests always run; the integration suite runs against real ComfyUI at $COMFYUI_PATH
# (default ~/ComfyUI) and is skipped, with one line saying where it looked, when none is there.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
"$PY" -m pytest tests -rs -p no:cacheprovider "$@"
