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
            description="The pack's own small SD1.x-architecture model (15 MB, 128 px), trained on a world of "
                        "flat shapes: e.g. 'a large red circle and a small blue square on a gray background'. "
                        "Shapes: circle square triangle diamond cross; colours: red orange yellow green blue "
                        "purple pink; sizes: small large; backgrounds: white gray black. Runs on a CPU in "
                        "seconds. It is a test bed for the edits, not a general image model.",
            inputs=[],
            outputs=[io.Model.Output(), io.Clip.Output(), io.Vae.Output()],
        )

    @classmethod
    def execute(cls):
        from ..demo_model.loader import load

        return io.NodeOutput(*load())


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
