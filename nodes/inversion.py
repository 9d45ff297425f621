"""Real-image inversion nodes: regularized DDIM inversion (pix2pix-zero) and null-text inversion.

Both return x_T as a LATENT and the SIGMAS to sample it back with: feed them to SamplerCustom (add_noise
off) or to a P2P node and then a sampler with add_noise off on the same schedule.
"""
from __future__ import annotations

import logging

import torch
from comfy_api.latest import io

from ..attention.p2p_plan import InputError
from ..inversion.comfy_adapter import attach_null_text, ddim_invert, null_text_invert, schedule
from ..inversion.regularizer import regularize_noise
from .checks import require_latent, require_unet

log = logging.getLogger("comfyui-attention-edit")
CATEGORY = "attention_edit/inversion"


def _check_steps(node: str, steps: int) -> None:
    if steps < 2:
        raise InputError(node, "steps", f"{steps} step(s) cannot invert anything; use at least 2 (official: 50).")


def _scheduler_input():
    import comfy.samplers

    return io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="ddim_uniform",
                          optional=True, tooltip="Schedule of the inversion; sample back on the returned SIGMAS "
                                                 "(or the same scheduler and steps).")


def noise_regularizer(node: str, lambda_ac: float, lambda_kl: float, reg_steps: int, ac_rolls: int, seed: int):
    """(eps -> regularized eps, or None when every term is off; a function that logs what the regularizer had to
    skip or clip)."""
    stats = {"updates": 0, "skipped": 0, "clipped": 0}
    generator = torch.Generator().manual_seed(seed)

    def regularize(eps):
        out, s = regularize_noise(eps, lambda_ac, lambda_kl, reg_steps, ac_rolls, generator=generator)
        stats["updates"] += s.updates
        stats["skipped"] += s.skipped
        stats["clipped"] += s.clipped
        return out

    def report():
        if stats["skipped"] or stats["clipped"]:
            log.warning("%s: the regularizer skipped %d of %d updates because of NaN/Inf and cut %d runaway updates "
                        "down to the noise's own size (flat regions, small latents or fp16).", node,
                        stats["skipped"], stats["skipped"] + stats["updates"], stats["clipped"])

    on = reg_steps > 0 and (lambda_ac > 0 or lambda_kl > 0)
    return (regularize if on else None), report


def require_ddim_model(node: str, model) -> None:
    """A UNet; a flow model is sent to the flow inversion node, which has the same regularizer."""
    from ..inversion.comfy_adapter import is_flow

    if is_flow(model):
        raise InputError(node, "model", "this is a rectified-flow model (Flux, SD3/SD3.5, Qwen-Image, the demo DiT), "
                                        "which DDIM inversion does not fit. Use AttnEdit_FlowInversion: it inverts "
                                        "flow models and, with lambda_ac / lambda_kl, applies pix2pix-zero's noise "
                                        "regularizer (for an exact reconstruction under P2P: AttnEdit_DirectInversion)"
                                        ".")
    require_unet(node, model)


class DDIMInvertRegularized(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="AttnEdit_DDIMInvertRegularized",
            display_name="DDIM Inversion (regularized, pix2pix-zero)",
            category=CATEGORY,
            description="Deterministic DDIM inversion of a VAE-encoded image to x_T. With lambda_ac/lambda_kl > 0 "
                        "each step's predicted noise is pushed towards white Gaussian noise (pix2pix-zero §3.1); "
                        "with both 0 it is plain DDIM inversion.",
            inputs=[
                io.Model.Input("model"),
                io.Latent.Input("latent", tooltip="The image, VAE-encoded with this model's VAE."),
                io.Conditioning.Input("positive", tooltip="The image's caption (BLIP or typed)."),
                io.Int.Input("steps", default=50, min=1, max=1000),
                io.Float.Input("lambda_ac", default=20.0, min=0.0, max=10000.0, step=0.5),
                io.Float.Input("lambda_kl", default=20.0, min=0.0, max=10000.0, step=0.5),
                io.Int.Input("reg_steps", default=5, min=0, max=100),
                io.Int.Input("ac_rolls", default=5, min=0, max=100),
                io.Float.Input("cfg", default=1.0, min=0.0, max=100.0, step=0.1,
                               tooltip="1 = conditional prediction only (official). Above 1 the inversion drifts."),
                io.Conditioning.Input("negative", optional=True, tooltip="Needed only when cfg > 1."),
                _scheduler_input(),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, optional=True,
                             tooltip="Seed of the regularizer's random rolls."),
            ],
            outputs=[io.Latent.Output(display_name="x_T"), io.Sigmas.Output(display_name="sigmas")],
        )

    @classmethod
    def execute(cls, model, latent, positive, steps, lambda_ac, lambda_kl, reg_steps, ac_rolls, cfg, negative=None,
                scheduler="ddim_uniform", seed=0):
        node = "AttnEdit_DDIMInvertRegularized"
        require_ddim_model(node, model)
        require_latent(node, model, latent)
        _check_steps(node, steps)
        if cfg != 1.0 and negative is None:
            raise InputError(node, "negative", f"cfg {cfg} mixes in a negative conditioning (any cfg but 1 does); "
                                               "connect one or use cfg 1.")
        if cfg != 1.0:
            log.warning("%s: inverting with cfg %g: DDIM inversion is exact only for the conditional prediction "
                        "(cfg 1); expect the reconstruction to drift.", node, cfg)
        sigmas = schedule(model, steps, scheduler)
        regularize, report = noise_regularizer(node, lambda_ac, lambda_kl, reg_steps, ac_rolls, seed)
        x_T = ddim_invert(model, latent, positive, negative, cfg, sigmas,
                          (lambda eps, step: regularize(eps)) if regularize else None, seed)
        report()
        out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask")}
        out["samples"] = x_T
        return io.NodeOutput(out, sigmas)


class NullTextInversion(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="AttnEdit_NullTextInversion",
            display_name="Null-text Inversion",
            category=CATEGORY,
            description="DDIM inversion with the caption, then per step optimises the unconditional embedding so "
                        "that CFG sampling retraces the inversion (Mokady et al. 2023). The returned MODEL applies "
                        "those embeddings, so any sampler or P2P node downstream reconstructs the image at this cfg.",
            inputs=[
                io.Model.Input("model"),
                io.Latent.Input("latent", tooltip="The image, VAE-encoded with this model's VAE."),
                io.Conditioning.Input("positive", tooltip="The image's caption."),
                io.Conditioning.Input("negative", tooltip="The starting null text (usually an empty prompt)."),
                io.Int.Input("steps", default=50, min=1, max=1000),
                io.Float.Input("cfg", default=7.5, min=1.0, max=100.0, step=0.1),
                io.Int.Input("inner_steps", default=10, min=0, max=1000),
                io.Float.Input("early_stop", default=1e-5, min=0.0, max=1.0, step=1e-6),
                _scheduler_input(),
                io.Float.Input("learning_rate", default=1e-2, min=1e-5, max=1.0, step=1e-3, optional=True,
                               tooltip="Adam's step size for the null text (decayed to half over the schedule). "
                                       "0.01 is the paper's for SD's 768-wide text encoder; a small encoder "
                                       "whose loss stays high after inner_steps needs a larger one (the demo "
                                       "model's 64-wide one: 0.3)."),
            ],
            outputs=[io.Model.Output(display_name="MODEL"), io.Latent.Output(display_name="x_T"),
                     io.Sigmas.Output(display_name="sigmas")],
        )

    @classmethod
    def execute(cls, model, latent, positive, negative, steps, cfg, inner_steps, early_stop,
                scheduler="ddim_uniform", learning_rate=1e-2):
        import comfy.utils

        node = "AttnEdit_NullTextInversion"
        require_ddim_model(node, model)
        require_latent(node, model, latent, single=True)
        _check_steps(node, steps)
        sigmas = schedule(model, steps, scheduler)
        pbar = comfy.utils.ProgressBar(len(sigmas) - 1)
        x_T, plan, losses = null_text_invert(model, latent, positive, negative, cfg, sigmas, inner_steps, early_stop,
                                             learning_rate,
                                             progress=lambda done, total: pbar.update_absolute(done, total))
        log.info("%s: per-step reconstruction loss %s", node, ", ".join(f"{v:.2e}" for v in losses))
        out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask")}
        out["samples"] = x_T
        return io.NodeOutput(attach_null_text(model, plan), out, sigmas,
                             ui={"text": ["null-text loss per step: " + ", ".join(f"{v:.2e}" for v in losses)]})


NODES = [DDIMInvertRegularized, NullTextInversion]
