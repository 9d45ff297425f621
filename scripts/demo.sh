#!/usr/bin/env bash
# Set the pack up (virtual environment with ComfyUI's requirements) and run every example workflow headless
# in real ComfyUI ($COMFYUI_PATH, default ~/ComfyUI) on the shipped demo model, writing demo_output/grid.png
# and demo_output/report.html.
# Arguments go to scripts/run_examples.py, e.g. --checkpoint v1-5-pruned-emaonly.safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COMFY="${COMFYUI_PATH:-$HOME/ComfyUI}"
if [ ! -f "$COMFY/comfy/model_patcher.py" ]; then
  echo "No ComfyUI at $COMFY: clone ComfyUI 0.8 there or set COMFYUI_PATH." >&2
  exit 2
fi
"$PY" scripts/run_examples.py "$@" 2> >(grep -v "WARNING\|Traceback\|^  File\|^    \|ModuleNotFound\|IMPORT FAILED\|it/s\]" >&2)
