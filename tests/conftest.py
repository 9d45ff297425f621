import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.comfy_harness import comfyui_found, comfyui_path  # noqa: E402


def pytest_report_header(config):
    if comfyui_found():
        return f"integration suite: real ComfyUI at {comfyui_path()}"
    return (f"integration suite: SKIPPED, no ComfyUI at {comfyui_path()} "
            "(run bash scripts/get_comfyui.sh, or set COMFYUI_PATH to a ComfyUI 0.8 checkout)")
