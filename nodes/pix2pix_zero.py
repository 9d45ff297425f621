"""pix2pix-zero nodes. The cross-attention guided sampler lives here; caption and edit-direction nodes too."""
from __future__ import annotations

import logging

from comfy_api.latest import io

from ..attention.comfy_patch import UnsupportedModelError, unet_of
from ..attention.p2p_plan import InputError

log = logging.getLogger("comfyui-attention-edit")
CATEGORY = "attention_edit/pix2pix_zero"
MODES = ["real image (latent = inverted x_T)", "synthetic (latent = empty, seeded noise)"]


class CrossAttnGuidedSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        import comfy.samplers

        return io.Schema(
            node_id="AttnEdit_CrossAttnGuidedSampler",
            display_name="pix2pix-zero Cross-Attention Guided Sampler",
            category=CATEGORY,
            description="Samples the reconstruction (caption) and the edit (caption + edit direction) in lockstep; "
                        "each step pulls the edit's cross-attention maps towards the reconstruction's so the "
                        "structure of the image survives the edit (pix2pix-zero §3.2).",
            inputs=[
                io.Model.Input("model"),
                io.Conditioning.Input("positive", tooltip="The caption (reference / reconstruction branch)."),
                io.Conditioning.Input("edit_positive", tooltip="The caption with the edit direction applied."),
                io.Conditioning.Input("negative", tooltip="Official real-image edit: the caption itself."),
                io.Latent.Input("latent", tooltip="x_T from an inversion node, or an empty latent in synthetic mode."),
                io.Sigmas.Input("sigmas", optional=True, tooltip="The inversion node's SIGMAS (else steps/scheduler)."),
                io.Int.Input("steps", default=50, min=1, max=1000, optional=True),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="ddim_uniform",
                               optional=True),
                io.Float.Input("cfg", default=5.0, min=0.0, max=100.0, step=0.1),
                io.Float.Input("xa_guidance", default=0.1, min=0.0, max=10.0, step=0.01,
                               tooltip="Cross-attention guidance step (official: 0.1 real, 0.15 synthetic). "
                                       "Applied x0.1 on v-prediction models (SD2), as the diffusers port advises."),
                io.Combo.Input("mode", options=MODES, default=MODES[0], optional=True),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, optional=True,
                             control_after_generate=True, tooltip="Synthetic mode: the starting noise."),
            ],
            outputs=[io.Latent.Output(display_name="edit"), io.Latent.Output(display_name="reconstruction")],
        )

    @classmethod
    def execute(cls, model, positive, edit_positive, negative, latent, cfg, xa_guidance, sigmas=None, steps=50,
                scheduler="ddim_uniform", mode=MODES[0], seed=0):
        import comfy.sample

        from ..attention.comfy_guided_sampler import guided_sample
        from ..inversion.comfy_adapter import schedule

        node = "AttnEdit_CrossAttnGuidedSampler"
        try:
            unet_of(model)
        except UnsupportedModelError as e:
            raise InputError(node, "model", str(e)) from None
        if xa_guidance < 0:
            raise InputError(node, "xa_guidance", "must be >= 0 (0 turns guidance off).")
        samples = latent["samples"]
        channels = model.model.latent_format.latent_channels
        if samples.ndim != 4 or samples.shape[1] != channels:
            raise InputError(node, "latent", f"the latent has shape {tuple(samples.shape)} but this model works on "
                                             f"{channels}-channel latents; use this model's VAE / inversion.")
        if samples.shape[0] != 1:
            raise InputError(node, "latent", "give one latent (batch 1).")
        if sigmas is None:
            sigmas = schedule(model, steps, scheduler)
        noise = None
        if mode == MODES[1]:
            noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
        edit, reference, stats = guided_sample(model, positive, edit_positive, negative, latent, sigmas, cfg,
                                               xa_guidance, noise=noise, seed=seed)
        if stats["skipped"] or stats["clipped"]:
            log.warning("%s: guidance skipped %d non-finite steps and scaled down %d oversized updates.", node,
                        stats["skipped"], stats["clipped"])
        distances = stats["distances"]
        text = (f"mean cross-attention map distance edit vs reconstruction: "
                f"{sum(distances) / max(len(distances), 1):.4g} (xa {stats['xa_effective']:g})")
        base = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask", "batch_index")}
        return io.NodeOutput({**base, "samples": edit}, {**base, "samples": reference}, ui={"text": [text]})


NODES = [CrossAttnGuidedSampler]
