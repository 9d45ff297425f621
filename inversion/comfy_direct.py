"""ComfyUI glue for Direct Inversion (inversion/direct.py has the math and the paper's references).

`direct_invert` runs plain DDIM inversion inside ComfyUI's sampler (as comfy_adapter.ddim_invert does) and keeps
the trajectory, in the sampler's own latent units (after process_latent_in), indexed by sampling step.
`attach_direct_inversion` returns a clone of the MODEL that carries that trajectory and

- a SAMPLER_SAMPLE wrapper (comfy/samplers.py CFGGuider.inner_sample, ComfyUI 0.8) that checks, before any step,
  that the correction can be exact: the stock euler/ddim sampler without churn, a schedule that is (a contiguous
  run of) the recorded one, add_noise off, no noise mask, and row 0 of the latent batch equal to the recorded
  latent; it then attaches a fresh per-run state to this run's transformer_options;
- a post-CFG function (comfy/samplers.py cfg_function) that replaces row 0's denoised prediction by the one for
  which the sampler's step lands on the recorded latent (direct.euler_target_denoised).

It uses its own keys, so a P2P node placed after it (which clones this MODEL and adds its attention patches and
its own post-CFG local blend, which then sees the corrected row 0) composes with it.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import torch

from .comfy_adapter import _interrupt, flipped, is_flow, run_in_sampler
from .ddim import invert
from .direct import euler_target_denoised, sampling_trajectory, schedule_offset, step_of

log = logging.getLogger("comfyui-attention-edit")

NODE = "AttnEdit_DirectInversion"
PLAN_KEY = "attn_edit_direct_inversion"
RUN_KEY = "attn_edit_direct_inversion_run"
# Row 0 must sit on the recorded latent within this fraction of the latent's largest magnitude: the VAE-units
# round trip (process_latent_out, then _in) moves it by ~1e-7 relative; a wrong row or added noise by O(1).
ROW0_RTOL = 1e-4
# Summaries of the last sampling runs (steps corrected, row-0 drift and correction sizes): logged, read by tests.
RUN_HISTORY: deque[dict] = deque(maxlen=32)


class DirectInversionError(ValueError):
    """Raised at sampling time; the message names the node, the sampler's input at fault and the fix."""

    def __init__(self, input_name: str, message: str):
        super().__init__(f"{NODE} (its MODEL, at the sampler): input '{input_name}': {message}")


@dataclass
class DirectInversionPlan:
    """The recorded inversion, config-only and deepcopy-safe (it travels in the MODEL's transformer_options)."""

    sigmas: torch.Tensor  # [S + 1] descending sampling sigmas, ending in 0
    latents: torch.Tensor  # [S + 1, C, H, W] latents[i] = the source latent at sigmas[i], sampler units


@dataclass
class _Run:
    plan: DirectInversionPlan
    sampler: str
    offset: int
    latents: torch.Tensor  # the plan's latents on the sampler's device
    stats: dict = field(default_factory=lambda: {"steps": 0, "row0_drift": 0.0, "source_correction": 0.0})


def direct_invert(model, latent, positive, negative, cfg: float, sigmas: torch.Tensor, seed: int = 0):
    """(x_T in VAE latent units, DirectInversionPlan): DDIM inversion at `cfg` that keeps its trajectory."""
    result = {}

    def body(model_k, x, sig, extra_args, callback):
        def denoise(xx, s):
            return model_k(xx, s, **extra_args)

        x_T, trajectory = invert(denoise, x, sig, callback=callback, check_interrupt=_interrupt)
        result["trajectory"] = trajectory
        return x_T

    x_T = run_in_sampler(model, latent, {"positive": positive, "negative": negative or []}, cfg,
                         flipped(sigmas, is_flow(model)), body, seed=seed)
    latents = sampling_trajectory([t[:1].float().cpu() for t in result["trajectory"]])[:, 0]
    return x_T, DirectInversionPlan(sigmas.detach().float().cpu().clone(), latents)


def _row0_tolerance(reference: torch.Tensor) -> float:
    return ROW0_RTOL * (1.0 + float(reference.abs().max()))


def _sampler_name(ksampler) -> str:
    function = getattr(ksampler, "sampler_function", None)
    if function is None:
        return type(ksampler).__name__
    return getattr(function, "__name__", repr(function)).removeprefix("sample_")


def _check_sampler(ksampler) -> str:
    """The stock euler / ddim KSAMPLER without churn: one model evaluation per step, at the schedule's sigmas."""
    from comfy.k_diffusion import sampling as k_diffusion_sampling

    name = _sampler_name(ksampler)
    function = getattr(ksampler, "sampler_function", None)
    churn = float(getattr(ksampler, "extra_options", {}).get("s_churn", 0.0) or 0.0)
    if function is not k_diffusion_sampling.sample_euler or churn > 0:
        raise DirectInversionError(
            "sampler", f"the sampler is {name}{f' with s_churn {churn}' if churn > 0 else ''}. Direct Inversion "
            "puts the source row (row 0) back on the recorded DDIM trajectory after every step, which is exact only "
            "for a sampler that takes one deterministic Euler/DDIM step per sigma; use the euler or ddim sampler "
            "(ancestral, SDE, multistep and higher-order samplers cannot follow the recorded latents).")
    return "euler"


def _sampler_sample_wrapper(executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
    model_options = extra_args["model_options"]
    transformer_options = model_options.setdefault("transformer_options", {})
    plan: DirectInversionPlan | None = transformer_options.get(PLAN_KEY)
    if plan is None:
        return executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)
    latent_image = kwargs.get("latent_image", args[0] if len(args) > 0 else None)
    denoise_mask = kwargs.get("denoise_mask", args[1] if len(args) > 1 else None)
    sampler = _check_sampler(executor.class_obj)
    offset = schedule_offset(plan.sigmas, sigmas)
    if offset is None:
        raise DirectInversionError(
            "sigmas", f"the sampler runs {len(sigmas) - 1} steps on sigmas {_short(sigmas)}, not the "
            f"{len(plan.sigmas) - 1}-step schedule this inversion recorded ({_short(plan.sigmas)}). Connect the "
            "node's SIGMAS output to SamplerCustom, or give KSamplerAdvanced the same steps and scheduler with "
            "denoise 1 (start and end at the schedule's ends).")
    if denoise_mask is not None:
        raise DirectInversionError("latent_image", "the latent carries a noise mask; the masked-out area would "
                                                   "not follow the recorded trajectory. Remove the mask "
                                                   "(SetLatentNoiseMask).")
    if latent_image is None or latent_image.shape[-2:] != plan.latents.shape[-2:] \
            or latent_image.shape[1] != plan.latents.shape[1]:
        shape = None if latent_image is None else tuple(latent_image.shape)
        raise DirectInversionError("latent_image", f"the latent has shape {shape}, not the inverted latent's "
                                                   f"{tuple(plan.latents.shape[1:])}; feed this node's x_T (or the "
                                                   "P2P node's LATENT made from it).")
    if bool(noise[:1].abs().max() > 0):
        raise DirectInversionError("add_noise", "the sampler adds noise to x_T. Turn add_noise off (SamplerCustom "
                                                "add_noise false, KSamplerAdvanced add_noise disable); the stock "
                                                "KSampler always adds noise and cannot be used here.")
    reference = plan.latents[offset].to(latent_image.device, latent_image.dtype)
    # where the sampler starts row 0: the latent as the model's noise scaling places it at the first sigma
    sampling = guider.model_patcher.get_model_object("model_sampling")
    start = sampling.noise_scaling(sigmas[:1].to(latent_image.device), torch.zeros_like(latent_image[:1]),
                                   latent_image[:1])[0]
    drift = float((start - reference).abs().max())
    if drift > _row0_tolerance(reference):
        raise DirectInversionError(
            "latent_image", f"row 0 of the latent batch differs from this inversion's latent by up to {drift:.3g} "
            f"(float error is below {_row0_tolerance(reference):.1g}). Row 0 must be the source: feed this node's x_T "
            "directly or through a P2P node (which keeps the source in row 0), not another image or batch.")
    latents = plan.latents.to(latent_image.device, torch.float32)
    run = _Run(plan, sampler, offset, latents)
    transformer_options[RUN_KEY] = run
    try:
        result = executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)
    finally:
        transformer_options.pop(RUN_KEY, None)
    summary = {"node": NODE, "sampler": sampler, "offset": offset, "rows": int(latent_image.shape[0]), **run.stats}
    RUN_HISTORY.append(summary)
    log.info("%s: source row put back on the recorded trajectory at %d steps (row-0 drift before correction "
             "%.2e, largest correction %.3g)", NODE, run.stats["steps"], run.stats["row0_drift"],
             run.stats["source_correction"])
    return result


def _short(sigmas: torch.Tensor) -> str:
    values = [f"{float(s):.4g}" for s in sigmas]
    return "[" + ", ".join(values if len(values) <= 6 else values[:3] + ["…"] + values[-2:]) + "]"


def _post_cfg(args):
    denoised = args["denoised"]
    transformer_options = args["model_options"].get("transformer_options", {})
    plan: DirectInversionPlan | None = transformer_options.get(PLAN_KEY)
    if plan is None:
        return denoised
    run: _Run | None = transformer_options.get(RUN_KEY)
    if run is None:
        raise DirectInversionError("model", "this MODEL was evaluated outside a stock sampler run (no sampler "
                                            "check happened), so its source row cannot be kept exact. Sample it with "
                                            "SamplerCustom / KSamplerAdvanced and the euler or ddim sampler.")
    sigma = float(args["sigma"].max())
    i = step_of(plan.sigmas, sigma)
    if i is None:
        raise DirectInversionError("sampler", f"the model was evaluated at sigma {sigma:.5g}, which is not on the "
                                              "recorded schedule; use the euler or ddim sampler on this node's SIGMAS.")
    x = args["input"]
    z, z_next = run.latents[i].to(x.device), run.latents[i + 1].to(x.device)
    drift = float((x[0].float() - z).abs().max())
    if drift > _row0_tolerance(z):
        raise DirectInversionError("latent_image", f"at step {i} row 0 is {drift:.3g} away from the recorded latent; "
                                                   "another node changed the source row between steps.")
    target = euler_target_denoised(x[:1].float(), z_next[None], sigma, float(plan.sigmas[i + 1]))
    out = denoised.clone()
    out[:1] = target.to(out.dtype)
    run.stats["steps"] += 1
    run.stats["row0_drift"] = max(run.stats["row0_drift"], drift)
    run.stats["source_correction"] = max(run.stats["source_correction"],
                                         float((target[0] - denoised[0].float()).abs().max()))
    return out


def attach_direct_inversion(model, plan: DirectInversionPlan):
    """A clone of `model` whose sampling keeps row 0 on the recorded trajectory (see the module docstring)."""
    import comfy.patcher_extension

    m = model.clone()
    m.model_options.setdefault("transformer_options", {})[PLAN_KEY] = plan
    m.set_model_sampler_post_cfg_function(_post_cfg)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, PLAN_KEY, _sampler_sample_wrapper)
    return m


def carries_direct_inversion(model) -> bool:
    return PLAN_KEY in model.model_options.get("transformer_options", {})
