#!/usr/bin/env bash
# Clone the ComfyUI release this pack is tested with into $COMFYUI_PATH (default ~/ComfyUI) and install its
# requirements into the pack's virtual environment (scripts/env.sh). Safe to re-run: an existing checkout is
# kept and its requirements are installed when they changed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/comfyui.sh
if comfyui_found; then
  echo "ComfyUI is at $COMFY; installing its requirements."
elif [ -e "$COMFY" ] && [ -n "$(ls -A "$COMFY" 2>/dev/null)" ]; then
  echo "$COMFY exists but is not a ComfyUI checkout: move it away or set COMFYUI_PATH to another folder." >&2
  exit 2
else
  if ! timeout 60 git ls-remote --exit-code --tags "$COMFYUI_URL" "refs/tags/$COMFYUI_TAG" >/dev/null 2>&1; then
    echo "Cannot reach $COMFYUI_URL (tag $COMFYUI_TAG) from here." >&2
    comfyui_help scripts/demo.sh
    exit 3
  fi
  git -c advice.detachedHead=false clone -q --depth 1 --branch "$COMFYUI_TAG" "$COMFYUI_URL" "$COMFY"
  echo "Cloned ComfyUI $COMFYUI_TAG into $COMFY."
fi
source scripts/env.sh  # installs ComfyUI's requirements.txt with the pack's, at the versions of constraints.txt
echo "ComfyUI's requirements are installed in $VENV (torch as requirements-dev.txt pins it)."
