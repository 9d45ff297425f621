from comfy_api.latest import ComfyExtension, io

from . import CAPTURED, MASKS, pack_module

_MODELS: dict = {}


class TinyModels(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="AttnEditTest_TinyModels",
            category="testing",
            inputs=[io.Combo.Input("layout", options=["sd15", "sd2v", "sdxl", "dit", "flux", "sd3", "qwen_image",
                                                              "chroma", "z_image", "flux2", "wan",
                                                              "wan_i2v"]),
                    io.Int.Input("seed", default=0)],
            outputs=[io.Model.Output(), io.Clip.Output(), io.Vae.Output()],
        )

    @classmethod
    def execute(cls, layout, seed):
        from .tiny_models import JOINT_LAYOUTS, VIDEO_LAYOUTS, build_clip, build_joint, build_model, build_vae

        key = (layout, seed)
        if key not in _MODELS:
            if layout == "wan_i2v":
                from .tiny_models import build_wan

                _MODELS[key] = build_wan(seed, image_to_video=True)
            elif layout in JOINT_LAYOUTS or layout in VIDEO_LAYOUTS:
                _MODELS[key] = build_joint(layout, seed)
            else:
                clip_layout = "sdxl" if layout == "sdxl" else "sd15"
                _MODELS[key] = (build_model(layout, seed), build_clip(clip_layout, seed), build_vae(seed))
        return io.NodeOutput(*_MODELS[key])


class IdentityPatch(io.ComfyNode):
    """Routes every attention layer through the pack's patch mechanism with a do-nothing editor."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="AttnEditTest_IdentityPatch", category="testing",
                         inputs=[io.Model.Input("model")], outputs=[io.Model.Output()])

    @classmethod
    def execute(cls, model):
        comfy_patch = pack_module("attention.comfy_patch")
        return io.NodeOutput(comfy_patch.patch_model(model, comfy_patch.AttentionEditor()))


OVERRIDE_CALLS = {"count": 0}


def _counting_override(func, *args, **kwargs):
    """What an attention-backend pack (SageAttention, caching) installs: runs the attention its own way."""
    OVERRIDE_CALLS["count"] += 1
    return func(*args, **kwargs)


class CountingOverride(io.ComfyNode):
    """Sets ComfyUI's optimized_attention_override on a clone, as other attention packs do."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="AttnEditTest_CountingOverride", category="testing",
                         inputs=[io.Model.Input("model")], outputs=[io.Model.Output()])

    @classmethod
    def execute(cls, model):
        m = model.clone()
        m.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = _counting_override
        return io.NodeOutput(m)


class SyntheticLatent(io.ComfyNode):
    """A deterministic smooth 'image latent' (low-pass noise), standing in for a VAE-encoded photo."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="AttnEditTest_SyntheticLatent", category="testing",
                         inputs=[io.Int.Input("seed", default=0), io.Int.Input("width", default=64),
                                 io.Int.Input("height", default=64), io.Int.Input("channels", default=4),
                                 io.Int.Input("frames", default=0, optional=True)],
                         outputs=[io.Latent.Output()])

    @classmethod
    def execute(cls, seed, width, height, channels, frames=0):
        """frames > 0: a video latent [1, C, frames, H/8, W/8], the same smooth picture drifting frame to frame."""
        import torch
        import torch.nn.functional as F

        g = torch.Generator().manual_seed(seed)
        coarse = torch.randn(1, channels, max(1, height // 32), max(1, width // 32), generator=g)
        fine = torch.randn(1, channels, height // 8, width // 8, generator=g)
        smooth = F.interpolate(coarse, size=(height // 8, width // 8), mode="bicubic", align_corners=False)
        picture = 2.0 * smooth + 0.3 * fine
        if frames:
            drift = torch.randn(1, channels, frames, height // 8, width // 8, generator=g)
            picture = picture[:, :, None] + 0.1 * drift.cumsum(2)
        return io.NodeOutput({"samples": picture})


class ClipVisionOutput(io.ComfyNode):
    """What CLIPVisionEncode gives Wan 2.1 I2V: 257 penultimate-layer tokens of width 1280 (random, seeded)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="AttnEditTest_ClipVisionOutput", category="testing",
                         inputs=[io.Int.Input("seed", default=0)], outputs=[io.ClipVisionOutput.Output()])

    @classmethod
    def execute(cls, seed):
        from types import SimpleNamespace

        import torch

        g = torch.Generator().manual_seed(seed)
        return io.NodeOutput(SimpleNamespace(penultimate_hidden_states=torch.randn(1, 257, 1280, generator=g)))


class Capture(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="AttnEditTest_Capture",
            category="testing",
            is_output_node=True,
            inputs=[io.String.Input("name"), io.Latent.Input("latent", optional=True),
                    io.Image.Input("image", optional=True), io.String.Input("text", optional=True, force_input=True),
                    io.Sigmas.Input("sigmas", optional=True), io.Model.Input("model", optional=True),
                    io.Clip.Input("clip", optional=True), io.Vae.Input("vae", optional=True),
                    io.Conditioning.Input("conditioning", optional=True), io.Mask.Input("mask", optional=True),
                    io.Custom("EDIT_DIRECTION").Input("direction", optional=True)],
            outputs=[],
        )

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return float("nan")

    @classmethod
    def execute(cls, name, **values):
        CAPTURED[name] = values
        return io.NodeOutput()


class Mask(io.ComfyNode):
    """A MASK a test or benchmark put in MASKS (what a user would draw in the mask editor)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="AttnEditTest_Mask", category="testing", inputs=[io.String.Input("name")],
                         outputs=[io.Mask.Output()])

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return float("nan")

    @classmethod
    def execute(cls, name):
        return io.NodeOutput(MASKS[name])


class MeanTokenDirection(io.ComfyNode):
    """A position-aligned direction as the 'mean' alignment would give it: for sentences padded to one length, the
    mean over positions of the per-position mean difference is the difference of the sentences' mean tokens (the
    benchmark compares the two alignments on the demo DiT)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="AttnEditTest_MeanTokenDirection", category="testing",
                         inputs=[io.Custom("EDIT_DIRECTION").Input("direction")],
                         outputs=[io.Custom("EDIT_DIRECTION").Output()])

    @classmethod
    def execute(cls, direction):
        import dataclasses

        return io.NodeOutput(dataclasses.replace(direction, embeddings=direction.embeddings.mean(0, keepdim=True),
                                                 alignment="mean"))


class TestPackExtension(ComfyExtension):
    async def get_node_list(self):
        return [TinyModels, IdentityPatch, CountingOverride, SyntheticLatent, Capture, Mask, MeanTokenDirection,
                ClipVisionOutput]
