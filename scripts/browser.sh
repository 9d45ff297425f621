# Sourced by scripts/test.sh after env.sh: what the browser test (tests/browser) needs beside ComfyUI, installed
# when missing and possible: ComfyUI's frontend at the version ComfyUI's requirements pin (PyPI) and Chromium
# (Debian's package, as root). Where either cannot be had, one line says so and the browser test skips.
# ATTN_EDIT_NO_BROWSER=1 installs nothing.
browser_setup() {
  comfyui_found || return 0
  [ "${ATTN_EDIT_NO_BROWSER:-}" = "1" ] && return 0
  local pin want have
  pin="$(grep -i '^comfyui-frontend-package==' "$COMFY/requirements.txt" | head -1 | tr -d '[:space:]')"
  if [ -n "$pin" ]; then
    want="${pin#*==}"
    have="$("$PY" -c "import importlib.metadata as m; print(m.version('comfyui-frontend-package'))" 2>/dev/null || true)"
    if [ "$have" != "$want" ]; then
      "$PY" -m pip install -q "$pin" >/dev/null 2>&1 || echo "Could not install $pin: the browser test will skip." >&2
    fi
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      echo "Installing Debian's chromium for the browser test (once)..." >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
        || echo "Could not install chromium (apt-get install chromium): the browser test will skip." >&2
    else
      echo "No Chromium, and apt-get needs root here: the browser test will skip (apt-get install chromium)." >&2
    fi
  fi
}
