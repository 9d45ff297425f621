#!/usr/bin/env bash
# Set up the test environment (idempotent) and run the whole test suite.
# Unit tests always run; the integration suite runs against real ComfyUI at $COMFYUI_PATH (default ~/ComfyUI),
# and the browser test drives ComfyUI's real frontend in headless Chromium (installed when missing and possible:
# scripts/browser.sh). Without ComfyUI both are skipped, with one line saying where it looked; from a terminal
# (not CI), or with ATTN_EDIT_GET_COMFYUI=1, the script first offers to fetch the tested release.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/comfyui.sh
if ! comfyui_offer; then
  comfyui_help scripts/test.sh
  echo "Running the unit tests; the integration suite is skipped." >&2
fi
source scripts/env.sh
source scripts/browser.sh
browser_setup
"$PY" -m pytest tests -rs -p no:cacheprovider --durations=15 "$@"
