"""Real ComfyUI, in-process: find it, boot it on the CPU, load this pack and the test pack with
ComfyUI's own custom-node loader, and execute API-format workflows through its PromptExecutor.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST_PACK = REPO / "tests" / "comfy_test_pack"


def comfyui_path() -> Path:
    return Path(os.environ.get("COMFYUI_PATH", "~/ComfyUI")).expanduser()


def comfyui_found() -> bool:
    return (comfyui_path() / "comfy" / "model_patcher.py").is_file()


class _Server:
    """What PromptExecutor needs of PromptServer: messages are kept, not sent."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.messages: list = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))

    def queue_updated(self):
        pass


class Comfy:
    """A booted ComfyUI with both packs loaded."""

    def __init__(self, pytorch_attention: bool = False):
        """pytorch_attention: ComfyUI's --use-pytorch-cross-attention (SDPA), several times faster on a CPU than
        the split attention ComfyUI picks there by default; the demo and the quality benchmark use it."""
        root = comfyui_path()
        sys.path.insert(0, str(root))
        from comfy.cli_args import args  # before comfy.model_management is imported (docs/testing.md, pitfall 3)

        args.cpu = True
        args.use_pytorch_cross_attention = pytorch_attention
        args.output_directory = None
        import utils.install_util  # noqa: F401  before `import nodes` (docs/testing.md, pitfall 2)
        import nodes
        import folder_paths

        self.tmp = Path(os.environ.get("ATTN_EDIT_TEST_TMP", "/tmp/attn-edit-comfy"))
        for sub in ("output", "temp", "input", "models"):
            (self.tmp / sub).mkdir(parents=True, exist_ok=True)
        folder_paths.set_output_directory(str(self.tmp / "output"))
        folder_paths.set_temp_directory(str(self.tmp / "temp"))
        folder_paths.set_input_directory(str(self.tmp / "input"))
        self._write_example_image(self.tmp / "input" / "example.png")
        self._write_example_video(self.tmp / "input" / "example.mp4")

        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
        for pack in (REPO, TEST_PACK):
            if not asyncio.run(nodes.load_custom_node(str(pack))):
                raise RuntimeError(f"ComfyUI's loader failed to load {pack}")
        for name in ("blip", "edit_directions"):  # keep test models and saved directions out of the checkout
            (self.tmp / "models" / name).mkdir(parents=True, exist_ok=True)
            folder_paths.add_model_folder_path(name, str(self.tmp / "models" / name), is_default=True)
        self.nodes = nodes
        import comfy.model_management
        import comfy.utils

        # as main.py does: every progress update checks for an interrupt request
        comfy.utils.set_progress_bar_global_hook(
            lambda *args, **kwargs: comfy.model_management.throw_exception_if_processing_interrupted())
        import execution

        self.execution = execution
        self.server = _Server()
        self.executor = execution.PromptExecutor(self.server, cache_type=False, cache_args={"lru": 0, "ram": 0})
        self.test_pack = sys.modules[str(TEST_PACK).replace(".", "_x_")]

    @staticmethod
    def _write_example_image(path: Path, size: int = 64):
        """A small synthetic photo stand-in for workflows that start from LoadImage 'example.png'."""
        import numpy as np
        from PIL import Image

        y, x = np.mgrid[0:size, 0:size] / size
        img = np.stack([0.5 + 0.4 * np.sin(6 * x), 0.5 + 0.4 * np.cos(5 * y), 0.4 + 0.3 * x * y], -1)
        img[(x - 0.5) ** 2 + (y - 0.55) ** 2 < 0.06] = [0.9, 0.6, 0.2]
        Image.fromarray((img * 255).astype("uint8")).save(path)

    @staticmethod
    def _write_example_video(path: Path, size: int = 64, frames: int = 9):
        """A small synthetic clip (a disc moving right) for workflows that start from LoadVideo 'example.mp4'."""
        import av
        import numpy as np

        y, x = np.mgrid[0:size, 0:size] / size
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("mpeg4", rate=16)
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
            for f in range(frames):
                img = np.stack([0.5 + 0.4 * np.sin(6 * x), 0.5 + 0.4 * np.cos(5 * y), 0.4 + 0.3 * x * y], -1)
                img[(x - 0.3 - 0.04 * f) ** 2 + (y - 0.55) ** 2 < 0.03] = [0.9, 0.6, 0.2]
                frame = av.VideoFrame.from_ndarray((img * 255).astype("uint8"), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    def pack(self, name: str):
        return self.test_pack.pack_module(name)

    @property
    def captured(self) -> dict:
        return self.test_pack.CAPTURED

    @property
    def masks(self) -> dict:
        """MASK tensors by name for AttnEditTest_Mask nodes."""
        return self.test_pack.MASKS

    def run(self, prompt: dict, expect_success: bool = True) -> dict:
        """Validate and execute an API-format prompt; return {'ok', 'error', 'messages', 'outputs'}."""
        prompt_id = str(uuid.uuid4())
        self.captured.clear()
        valid = asyncio.run(self.execution.validate_prompt(prompt_id, prompt, None))
        if not valid[0]:
            result = {"ok": False, "error": {"validation": valid[1], "node_errors": valid[3]}, "messages": []}
        else:
            self.server.messages = []
            self.executor.execute(prompt, prompt_id, {}, valid[2])
            errors = [d for e, d in self.executor.status_messages if e == "execution_error"]
            result = {
                "ok": self.executor.success and not errors,
                "error": errors[0] if errors else None,
                "messages": list(self.executor.status_messages),
                "outputs": self.executor.history_result.get("outputs", {}),
            }
        if expect_success and not result["ok"]:
            raise AssertionError("workflow failed: " + json.dumps(result["error"], default=str)[:4000])
        return result

    def reset_cache(self):
        self.executor.reset()
        forget_dead_models()


def forget_dead_models() -> int:
    """Drop ComfyUI's records of loaded models whose ModelPatcher is gone while its weights live on (docs/testing.md,
    pitfall 7); returns how many. ComfyUI keeps such a record "dead" and runs a full gc.collect() on every later
    model load (model_management.cleanup_models_gc), which made the suite several times slower."""
    import sys

    mm = sys.modules.get("comfy.model_management")
    if mm is None:
        return 0
    dead = [m for m in mm.current_loaded_models if m.is_dead()]
    for m in dead:
        mm.current_loaded_models.remove(m)
    return len(dead)

