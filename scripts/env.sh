# Sourced by the scripts: makes (or reuses) the virtual environment and sets $PY.
# The venv lives outside the checkout so fresh clones reuse it; set ATTN_EDIT_VENV to move it.
VENV="${ATTN_EDIT_VENV:-$HOME/.cache/attn-edit-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PY="$VENV/bin/python"
stamp="$VENV/.attn-edit-requirements.sha"
want="$(cat requirements-dev.txt requirements.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$PY" -m pip install -q -r requirements-dev.txt -r requirements.txt
  echo "$want" > "$stamp"
fi
export PYTHONDONTWRITEBYTECODE=1
