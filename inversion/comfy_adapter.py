"""ComfyUI glue for inversion: runs the pure-torch loops of ddim.py / null_text.py inside ComfyUI's own
sampling path (CFGGuider + a KSAMPLER on the flipped schedule, exactly the stock FlipSigmas inversion),
so conditioning, model loading, wrappers and latent scaling are ComfyUI's (ComfyUI 0.8.0
comfy_extras/nodes_custom_sampler.py: FlipSigmas, SamplerCustom).
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

from .comfy_autograd import autograd_safe
from .ddim import SIGMA_FLOOR, eps_from_denoised, invert
from .null_text import optimize_null_embeddings

log = logging.getLogger("comfyui-attention-edit")
NULL_TEXT_KEY = "attn_edit_null_text"


# Flow models (ComfyUI's CONST sampling: Flux, SD3, Qwen-Image) start sampling from x = s * noise + (1 - s) * latent,
# so with add_noise off a sampler starts from (1 - s0) * LATENT, and the sampler divides its result by (1 - s_last)
# (comfy/model_sampling.py CONST.noise_scaling / inverse_noise_scaling, ComfyUI 0.8). Their schedules start at
# s = 1, where that start is 0 whatever the LATENT: an inversion ends just below it instead, and its LATENT is
# x_T / (1 - FLOW_SIGMA_TOP), which the sampler's noise scaling turns back into x_T.
FLOW_SIGMA_TOP = 0.999


def is_flow(model) -> bool:
    import comfy.model_sampling

    return isinstance(model.get_model_object("model_sampling"), comfy.model_sampling.CONST)


def schedule(model, steps: int, scheduler: str) -> torch.Tensor:
    """Descending sampling sigmas ending in 0: what a sampler with add_noise off must use to come back
    (for a flow model, starting at FLOW_SIGMA_TOP at most)."""
    import comfy.samplers

    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()
    if is_flow(model) and sigmas[0] > FLOW_SIGMA_TOP:
        sigmas = sigmas.clone()
        sigmas[0] = FLOW_SIGMA_TOP
    return sigmas


def flipped(sigmas: torch.Tensor, exact_start: bool = False) -> torch.Tensor:
    """The inversion schedule, as ComfyUI's FlipSigmas makes it (a leading 0 becomes 1e-4). exact_start keeps the
    0 (flow models: the sampler then starts from the latent itself, not (1 - 1e-4) times it; the inversion
    evaluates the model at 1e-4 there)."""
    out = sigmas.flip(0).clone()
    if out[0] == 0 and not exact_start:
        out[0] = SIGMA_FLOOR
    return out


def _interrupt():
    import comfy.model_management

    comfy.model_management.throw_exception_if_processing_interrupted()


def run_in_sampler(model, latent, conds: dict, cfg, sigmas, body, noise=None, seed=0):
    """Run body(model_k, x, sigmas, extra_args, callback) -> x inside CFGGuider.sample on `sigmas`, with any
    named conds ("positive", "negative", and extras such as "edit": all go through ComfyUI's process_conds).
    `noise` None means zeros (start from the latent itself). Returns the output in VAE latent units."""
    import comfy.sample
    import comfy.samplers
    import comfy.utils
    import latent_preview

    def function(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
        return body(model_k, x, sigmas, extra_args or {}, callback)

    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    if noise is None:
        noise = torch.zeros_like(samples)
    guider = comfy.samplers.CFGGuider(model)
    guider.inner_set_conds({k: v for k, v in conds.items() if v is not None})
    guider.set_cfg(cfg)
    callback = latent_preview.prepare_callback(model, len(sigmas) - 1)
    out = guider.sample(noise, samples, comfy.samplers.KSAMPLER(function), sigmas, None, callback,
                        not comfy.utils.PROGRESS_BAR_ENABLED, seed)
    import comfy.model_management

    return out.to(comfy.model_management.intermediate_device())


def ddim_invert(model, latent, positive, negative, cfg: float, sigmas: torch.Tensor, regularize=None, seed=0):
    """x_T (VAE latent units) from a VAE-encoded latent by DDIM inversion at the given cfg."""

    def body(model_k, x, sig, extra_args, callback):
        def denoise(xx, s):
            return model_k(xx, s, **extra_args)

        x_T, _ = invert(denoise, x, sig, regularize=regularize, callback=callback, check_interrupt=_interrupt,
                        keep_trajectory=False)
        return x_T

    return run_in_sampler(model, latent, {"positive": positive, "negative": negative or []}, cfg,
                          flipped(sigmas, is_flow(model)), body, seed=seed)


# ---------------------------------------------------------------------------------------------
# Null-text inversion


def _with_crossattn(conds: list, embedding: torch.Tensor) -> list:
    """Processed conds (CFGGuider.conds[...]) with their text embedding replaced."""
    import comfy.conds

    out = []
    for c in conds:
        c = dict(c)
        c["model_conds"] = {**c["model_conds"], "c_crossattn": comfy.conds.CONDCrossAttn(embedding)}
        out.append(c)
    return out


@dataclass
class NullTextSchedule:
    """Per-step unconditional embeddings, looked up by sampling sigma. Lives in the returned MODEL's
    transformer_options; deepcopy-safe."""

    sigmas: torch.Tensor  # [S] descending sampling sigmas of the steps
    embeddings: torch.Tensor  # [S, T, D]

    def for_sigma(self, sigma: float) -> torch.Tensor:
        i = int(torch.argmin((self.sigmas.log() - torch.tensor(max(sigma, 1e-8)).log()).abs()))
        return self.embeddings[i]


def null_text_invert(model, latent, positive, negative, cfg: float, sigmas: torch.Tensor, inner_steps: int,
                     early_stop: float, lr: float = 1e-2, progress=None, seed=0):
    """Returns (x_T in VAE units, NullTextSchedule, per-step losses)."""
    result = {}

    def body(model_k, x, sig, extra_args, callback):
        import comfy.samplers

        guider = model_k.inner_model
        base_model = guider.inner_model
        model_options = extra_args["model_options"]
        positive_conds = guider.conds["positive"]
        negative_conds = guider.conds["negative"]

        gradient_pass = autograd_safe()  # one for the whole optimisation: the weights are copied once

        def eps_with(conds, xx, s):
            with gradient_pass if torch.is_grad_enabled() else contextlib.nullcontext():
                (denoised,) = comfy.samplers.calc_cond_batch(base_model, [conds], xx, s, model_options)
            return eps_from_denoised(xx, denoised, s)

        def denoise_cond(xx, s):
            return comfy.samplers.calc_cond_batch(base_model, [positive_conds], xx, s, model_options)[0]

        x_T, trajectory = invert(denoise_cond, x, sig, callback=callback, check_interrupt=_interrupt)
        uncond_init = negative_conds[0]["model_conds"]["c_crossattn"].cond
        embeddings, losses = optimize_null_embeddings(
            lambda xx, s: eps_with(positive_conds, xx, s),
            lambda xx, s, u: eps_with(_with_crossattn(negative_conds, u), xx, s),
            trajectory, sig.flip(0), uncond_init, inner_steps=inner_steps, early_stop=early_stop, lr=lr, cfg=cfg,
            progress=progress, check_interrupt=_interrupt)
        result["embeddings"], result["losses"] = embeddings, losses
        return x_T

    x_T = run_in_sampler(model, latent, {"positive": positive, "negative": negative}, cfg, flipped(sigmas),
                         body, seed=seed)
    embeddings = torch.stack([e[0] if e.ndim == 3 else e for e in result["embeddings"]]).cpu()
    return x_T, NullTextSchedule(sigmas[:-1].clone().float(), embeddings), result["losses"]


def _null_text_wrapper(executor, x, *args, **kwargs):
    """DIFFUSION_MODEL wrapper: the unconditional chunk's text embedding becomes this step's null text."""
    transformer_options = kwargs.get("transformer_options", args[4] if len(args) >= 5 else {})
    plan: NullTextSchedule | None = transformer_options.get(NULL_TEXT_KEY)
    cond_or_uncond = list(transformer_options.get("cond_or_uncond", []))
    if plan is None or 1 not in cond_or_uncond:
        return executor(x, *args, **kwargs)
    args = list(args)
    context = kwargs["context"] if "context" in kwargs else args[1]
    sigma = float(transformer_options["sigmas"].max())
    emb = plan.for_sigma(sigma).to(context)
    copies = context.shape[1] // emb.shape[0]
    emb = emb.repeat(copies, 1)
    rows = x.shape[0] // len(cond_or_uncond)
    context = context.clone()
    for chunk, kind in enumerate(cond_or_uncond):
        if kind == 1:
            context[chunk * rows:(chunk + 1) * rows] = emb
    if "context" in kwargs:
        kwargs["context"] = context
    else:
        args[1] = context
    return executor(x, *args, **kwargs)


def attach_null_text(model, plan: NullTextSchedule):
    import comfy.patcher_extension

    m = model.clone()
    m.model_options.setdefault("transformer_options", {})[NULL_TEXT_KEY] = plan
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, NULL_TEXT_KEY, _null_text_wrapper)
    return m
