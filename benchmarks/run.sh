#!/usr/bin/env bash
# One command for every benchmark table (needs ComfyUI at $COMFYUI_PATH, default ~/ComfyUI).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
"$PY" benchmarks/run.py "$@" 2> >(grep -v "WARNING\|Traceback\|^  File\|^    \|ModuleNotFound\|IMPORT FAILED" >&2)
