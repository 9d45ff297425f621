# Sourced by the scripts: where ComfyUI is, which release the pack is tested with, and what to do without it.
# COMFYUI_PATH (default ~/ComfyUI) is the checkout; COMFYUI_REPO_URL overrides where get_comfyui.sh clones from.
COMFY="${COMFYUI_PATH:-$HOME/ComfyUI}"
COMFYUI_TAG="v0.8.0"
COMFYUI_URL="${COMFYUI_REPO_URL:-https://github.com/comfyanonymous/ComfyUI.git}"

comfyui_found() { [ -f "$COMFY/comfy/model_patcher.py" ]; }

# The exact steps, for a user or a CI log.
comfyui_help() {
  cat >&2 <<MSG
No ComfyUI at $COMFY. The pack is tested with ComfyUI $COMFYUI_TAG. Either
  - run:  bash scripts/get_comfyui.sh
    (clones ComfyUI $COMFYUI_TAG from $COMFYUI_URL into $COMFY and installs its requirements
    into this pack's virtual environment), or
  - point COMFYUI_PATH at an existing ComfyUI 0.8 checkout, e.g.  COMFYUI_PATH=/path/to/ComfyUI bash $1
Without network here: on a machine with network run
    git clone --depth 1 --branch $COMFYUI_TAG $COMFYUI_URL ComfyUI
  copy that ComfyUI folder to $COMFY, then install its requirements with  bash scripts/get_comfyui.sh
  (pip needs a package index or a local mirror).
MSG
}

# Offers the clone when a person is at the terminal (never in CI, never without a terminal) or when
# ATTN_EDIT_GET_COMFYUI=1 asks for it. Returns 0 when ComfyUI is there afterwards.
comfyui_offer() {
  comfyui_found && return 0
  local answer=""
  if [ "${ATTN_EDIT_GET_COMFYUI:-}" = "1" ]; then
    answer=y
  elif [ -z "${CI:-}" ] && [ -t 0 ] && [ -t 2 ]; then
    read -r -p "No ComfyUI at $COMFY. Clone ComfyUI $COMFYUI_TAG there and install its requirements now? [y/N] " answer
  fi
  case "$answer" in
    y|Y|yes) bash "$(dirname "${BASH_SOURCE[0]}")/get_comfyui.sh" && comfyui_found ;;
    *) return 1 ;;
  esac
}

# ComfyUI's requirements minus the torch family: the venv pins torch (requirements-dev.txt), and an unpinned
# torchaudio would pull a different torch.
comfyui_requirements() { grep -v -E '^[[:space:]]*(torch|torchvision|torchaudio)[[:space:]]*([<>=~!;#].*)?$' "$1"; }
