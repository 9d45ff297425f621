# Sourced by the scripts: makes (or reuses) the virtual environment and sets $PY.
# The environment is a ComfyUI user's: ComfyUI's own requirements.txt from $COMFY when there is a checkout (less
# the torch family, which requirements-dev.txt pins), the pack's requirements.txt and requirements-dev.txt, all at
# the versions of constraints.txt, so that a fresh machine gets what CI tested. Without ComfyUI only the last two
# are installed (the unit tests run). After upgrading on purpose, record the new set:
#   "$VENV/bin/python" -m pip freeze --exclude-editable > constraints.txt
# The venv lives outside the checkout so fresh clones reuse it; set ATTN_EDIT_VENV to move it.
source "$(dirname "${BASH_SOURCE[0]}")/comfyui.sh"
VENV="${ATTN_EDIT_VENV:-$HOME/.cache/attn-edit-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PY="$VENV/bin/python"
_requirements=(-r requirements-dev.txt -r requirements.txt)
_comfy_requirements="$VENV/.attn-edit-comfyui-requirements.txt"
if comfyui_found; then
  comfyui_requirements "$COMFY/requirements.txt" > "$_comfy_requirements"
  _requirements+=(-r "$_comfy_requirements")
else
  rm -f "$_comfy_requirements"
fi
_stamp="$VENV/.attn-edit-requirements.sha"
_want="$(cat requirements-dev.txt requirements.txt constraints.txt "$_comfy_requirements" 2>/dev/null | sha256sum \
  | cut -d' ' -f1)"
if [ "$(cat "$_stamp" 2>/dev/null)" != "$_want" ]; then
  echo "Installing the test environment into $VENV ($(comfyui_found && echo "with ComfyUI's requirements" \
    || echo "without ComfyUI")), versions from constraints.txt..." >&2
  "$PY" -m pip install -q "${_requirements[@]}" -c constraints.txt 2> >(grep -v "^WARNING: Location" >&2)
  echo "$_want" > "$_stamp"
fi
# Flux.2's tokenizer tests read a real Mistral "tekken" vocabulary from the mistral-common wheel: downloaded, not
# installed (the pack does not use it). Without it (no network) those tests say so and skip.
_tekken_wheel="$VENV/share/attn-edit/mistral_common-1.13.1-py3-none-any.whl"
if [ ! -f "$_tekken_wheel" ]; then
  "$PY" -m pip download -q --no-deps mistral-common==1.13.1 -d "$(dirname "$_tekken_wheel")" \
    2> >(grep -v "^WARNING: Location" >&2) || echo "Could not download mistral-common (Flux.2 tests will skip)." >&2
fi
export PYTHONDONTWRITEBYTECODE=1
