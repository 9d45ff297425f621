"""AttnEdit_AttentionMaps: generate an image and show which pixels each prompt token attends to."""
from __future__ import annotations

from comfy_api.latest import io

from ..attention.comfy_patch import patch_model
from ..attention.maps import LEVELS, MapRecorder, render_token_grid
from .checks import require_latent, require_unet
from .clip_prompts import _sd_tokenizer, encode_rows, prompt_tokens

NODE = "AttnEdit_AttentionMaps"


class AttentionMaps(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        import comfy.samplers

        return io.Schema(
            node_id=NODE,
            display_name="P2P Attention Maps",
            category="attention_edit/prompt_to_prompt",
            description="Samples the prompt (like KSampler) and returns a grid of per-token cross-attention maps, "
                        "averaged over heads, layers of the chosen resolution and all steps (P2P paper, Fig. 4).",
            inputs=[
                io.Model.Input("model"),
                io.Clip.Input("clip"),
                io.Latent.Input("latent"),
                io.String.Input("prompt", multiline=True),
                io.String.Input("negative", multiline=True, default=""),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=True),
                io.Int.Input("steps", default=20, min=1, max=10000),
                io.Float.Input("cfg", default=7.5, min=0.0, max=100.0, step=0.1),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="euler"),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="normal"),
                io.Combo.Input("resolution", options=list(LEVELS), default="latent/4 (P2P)",
                               tooltip="Which cross-attention layers to average: latent/4 is P2P's 16x16 at "
                                       "512 px (SD1.x) and the 32x32 layers at 1024 px (SDXL)."),
                io.Vae.Input("vae", optional=True, tooltip="If given, the maps are blended over the decoded image."),
                io.Int.Input("tile_size", default=128, min=32, max=512, optional=True),
                io.Int.Input("columns", default=8, min=1, max=32, optional=True),
            ],
            outputs=[io.Image.Output(display_name="maps"), io.Latent.Output(display_name="LATENT")],
        )

    @classmethod
    def execute(cls, model, clip, latent, prompt, negative, seed, steps, cfg, sampler_name, scheduler, resolution,
                vae=None, tile_size=128, columns=8):
        import nodes

        require_unet(NODE, model)
        require_latent(NODE, model, latent)
        pt = prompt_tokens(clip, prompt, NODE, "prompt")
        recorder = MapRecorder(NODE, LEVELS[resolution])
        patched = patch_model(model, recorder)
        positive = encode_rows(clip, [prompt])
        negative_cond = encode_rows(clip, [negative])
        (out,) = nodes.common_ksampler(patched, seed, steps, cfg, sampler_name, scheduler, positive, negative_cond,
                                       latent)
        maps = recorder.sink["maps"][0]  # first latent row: [77, H, W]
        hf = _sd_tokenizer(clip).tokenizer
        labels = [hf.decode([t]).strip() or "·" for t in pt.ids]
        image = vae.decode(out["samples"][:1])[0] if vae is not None else None
        grid = render_token_grid(maps[1:1 + len(pt.ids)], labels, image, tile_size, columns)
        return io.NodeOutput(grid[None], out)


NODES = [AttentionMaps]
