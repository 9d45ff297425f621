"""The demo model's loader, and a node that draws demo-world scenes (real images the model never saw)."""
from __future__ import annotations

from comfy_api.latest import io

from ..attention.p2p_plan import InputError

CATEGORY = "attention_edit/demo"


class DemoModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="AttnEdit_DemoModelLoader",
            display_name="Attention Edit Demo Model",
            category=CATEGORY,
            description="The pack's own small models (128 px), trained on a world of flat shapes: e.g. 'a large "
                        "red circle and a small blue square on a gray background'. Shapes: circle square triangle "
                        "diamond cross; colours: red orange yellow green blue purple pink; sizes: small large; "
                        "backgrounds: white gray black. 'unet': SD1.x architecture (15 MB, eps-prediction); 'dit': "
                        "Flux architecture (17 MB, rectified flow, joint attention, T5 + CLIP-L; sample it with "
                        "real cfg and a negative, e.g. euler / simple / cfg 5). Runs on a CPU in seconds. A test "
                        "bed for the edits, not a general image model.",
            inputs=[io.Combo.Input("architecture", options=["unet", "dit"], default="unet", optional=True,
                                   tooltip="unet: the SD1.x demo model; dit: the Flux-architecture demo DiT")],
            outputs=[io.Model.Output(), io.Clip.Output(), io.Vae.Output()],
        )

    @classmethod
    def execute(cls, architecture="unet"):
        from ..demo_model.loader import DemoModelError, load, load_dit

        if architecture not in ("unet", "dit"):
            raise InputError(f"AttnEdit_DemoModelLoader: architecture must be 'unet' or 'dit', not {architecture!r}.")
        try:
            return io.NodeOutput(*(load() if architecture == "unet" else load_dit()))
        except DemoModelError as e:
            raise InputError(f"AttnEdit_DemoModelLoader ({architecture}): {e}") from None


class DemoSceneImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="AttnEdit_DemoSceneImage",
            display_name="Draw Demo Scene",
            category=CATEGORY,
            description="Draws a demo-world scene from a caption (missing sizes and colours, and all positions, "
                        "are drawn from the seed): a real image for the inversion workflows that the demo model "
                        "never saw in training. Also outputs the full caption.",
            inputs=[
                io.String.Input("caption", default="a large red circle on a gray background", multiline=True),
                io.Int.Input("seed", default=0, min=0, max=0xffffffff, control_after_generate=True),
                io.Int.Input("size", default=128, min=64, max=1024, step=64),
            ],
            outputs=[io.Image.Output(), io.String.Output(display_name="caption")],
        )

    @classmethod
    def execute(cls, caption, seed, size):
        import numpy as np
        import torch

        from ..demo_world.scene import caption as write_caption, render, scene_from_caption

        try:
            scene = scene_from_caption(caption, np.random.default_rng(seed))
        except ValueError as e:
            raise InputError("AttnEdit_DemoSceneImage", "caption", str(e)) from None
        image = torch.from_numpy(render(scene, size)).float().div(255).unsqueeze(0)
        return io.NodeOutput(image, write_caption(scene))


NODES = [DemoModelLoader, DemoSceneImage]
