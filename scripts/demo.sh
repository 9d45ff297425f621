#!/usr/bin/env bash
# Set the pack up (virtual environment with ComfyUI's requirements) and run every example workflow headless
# in real ComfyUI ($COMFYUI_PATH, default ~/ComfyUI) on the shipped demo model, writing demo_output/grid.png
# and demo_output/report.html. Without ComfyUI it offers to fetch the tested release (scripts/get_comfyui.sh)
# when run from a terminal, or with ATTN_EDIT_GET_COMFYUI=1; otherwise it says what to run and stops.
# Arguments go to scripts/run_examples.py, e.g. --checkpoint v1-5-pruned-emaonly.safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/comfyui.sh
if ! comfyui_offer; then
  comfyui_help scripts/demo.sh
  exit 2
fi
source scripts/env.sh
"$PY" scripts/run_examples.py "$@"
