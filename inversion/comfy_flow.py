"""ComfyUI glue for flow models (inversion/flow.py has the math): ODE inversion with a choice of solver, the
matching SAMPLER, and FlowEdit, all run inside ComfyUI's own sampling path (run_in_sampler: CFGGuider + KSAMPLER),
so conditioning, model loading, wrappers and latent scaling are ComfyUI's."""
from __future__ import annotations

import torch

from .comfy_adapter import _interrupt, flipped, run_in_sampler
from .ddim import SIGMA_FLOOR
from .flow import flow_edit, regularized_denoiser, solve


def _denoiser(model_k, extra_args):
    def denoise(x, s):
        return model_k(x, s, **extra_args)

    return denoise


def flow_invert(model, latent, positive, negative, cfg: float, sigmas: torch.Tensor, solver: str, seed: int = 0,
                regularize=None):
    """(LATENT samples of x_T in VAE units, model calls): the flow ODE integrated from the image up the flipped
    schedule (which starts at exactly 0) with `solver`; with `regularize` (eps [B, C, H, W] -> eps), every
    prediction's implied noise is regularized first (flow.regularized_denoiser, pix2pix-zero)."""
    result = {}

    def body(model_k, x, sig, extra_args, callback):
        denoise = _denoiser(model_k, extra_args)
        if regularize is not None:
            denoise = regularized_denoiser(denoise, regularize)
        x_T, result["calls"] = solve(denoise, x, sig, solver, callback, _interrupt)
        return x_T

    out = run_in_sampler(model, latent, {"positive": positive, "negative": negative or []}, cfg,
                         flipped(sigmas, exact_start=True), body, seed=seed)
    return out, result["calls"]


def solver_sampler(solver: str):
    """A SAMPLER for SamplerCustom that integrates with `solver` (the stock euler for 'euler')."""
    import comfy.samplers

    if solver == "euler":
        return comfy.samplers.sampler_object("euler")

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None):
        out, _ = solve(_denoiser(model, extra_args or {}), x, sigmas, solver, callback, _interrupt)
        return out

    return comfy.samplers.KSAMPLER(sample)


def has_guidance_embedding(model) -> bool:
    """Guidance-distilled (Flux.1-dev style): the guidance scale is an input of the model, not real CFG."""
    params = getattr(model.model.diffusion_model, "params", None)
    return bool(getattr(params, "guidance_embed", False))


def flow_edit_sample(model, latent, source, target, negative, sigmas: torch.Tensor, n_max: int, n_min: int,
                     n_avg: int, source_cfg: float, target_cfg: float, seed: int):
    """FlowEdit (inversion/flow.py flow_edit) on ComfyUI's model: source and target velocities are ComfyUI's
    CFG predictions (sampling_function) with their own conditioning and scale. With a guidance embedding the scales
    go into the conditioning, as FluxGuidance puts them, and no negative is used (official FlowEditFLUX)."""
    import comfy.sample
    import comfy.samplers
    import node_helpers

    distilled = has_guidance_embedding(model)
    if distilled:
        source = node_helpers.conditioning_set_values(source, {"guidance": source_cfg})
        target = node_helpers.conditioning_set_values(target, {"guidance": target_cfg})
        negative, source_cfg, target_cfg = None, 1.0, 1.0
    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    T = len(sigmas) - 1

    def body(model_k, x, sig, extra_args, callback):
        guider = model_k.inner_model
        x_src = guider.inner_model.process_latent_in(samples).to(x.device, x.dtype)
        options, run_seed = extra_args.get("model_options", {}), extra_args.get("seed")

        def velocity(key: str, cfg: float):
            def v(z, s):
                sigma = torch.full((z.shape[0],), max(s, SIGMA_FLOOR), device=z.device, dtype=torch.float32)
                denoised = comfy.samplers.sampling_function(guider.inner_model, z, sigma, guider.conds.get("negative"),
                                                            guider.conds[key], cfg, model_options=options,
                                                            seed=run_seed)
                return (z - denoised) / max(s, SIGMA_FLOOR)
            return v

        def progress(i, z):
            if callback is not None:
                k = i - (T - n_max)
                callback({"x": z, "i": k, "sigma": sig[k:k + 1], "sigma_hat": sig[k:k + 1], "denoised": z})

        generator = torch.Generator().manual_seed(seed)
        return flow_edit(velocity("source", source_cfg), velocity("positive", target_cfg), x_src, sigmas.tolist(),
                         n_max, n_min, n_avg, generator, _interrupt, progress)

    conds = {"positive": target, "source": source, "negative": negative or None}
    # the sampler's own schedule: the steps FlowEdit takes (progress bar), ending at 0 so its output is unscaled
    return run_in_sampler(model, latent, conds, target_cfg, sigmas[T - n_max:], body, seed=seed)
