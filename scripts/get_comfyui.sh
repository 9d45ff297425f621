#!/usr/bin/env bash
# Clone the ComfyUI release this pack is tested with into $COMFYUI_PATH (default ~/ComfyUI) and install its
# requirements into the pack's virtual environment (scripts/env.sh). Safe to re-run: an existing checkout is
# kept and only its requirements are (re)installed.
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
source scripts/env.sh
requirements="$(mktemp)"
trap 'rm -f "$requirements"' EXIT
comfyui_requirements "$COMFY/requirements.txt" > "$requirements"
"$PY" -m pip install -q -r "$requirements"
echo "ComfyUI's requirements are installed in $(dirname "$(dirname "$PY")") (torch kept as the pack pins it)."
