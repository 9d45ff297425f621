"""Real images on flow models (Flux, SD3/SD3.5, Qwen-Image, the demo DiT): ODE inversion with a choice of solver,
and FlowEdit (inversion-free editing)."""
from __future__ import annotations

import logging

from comfy_api.latest import io

from ..attention.p2p_plan import InputError
from ..inversion.comfy_adapter import FLOW_SIGMA_TOP, is_flow, schedule
from ..inversion.flow import SOLVERS
from .checks import require_latent
from .inversion import CATEGORY, _check_steps

log = logging.getLogger("comfyui-attention-edit")

INVERSION_NODE = "AttnEdit_FlowInversion"
FLOW_EDIT_NODE = "AttnEdit_FlowEdit"


def require_flow_model(node: str, model) -> None:
    from ..attention.backends.base import EDITOR_KEY
    from ..inversion.comfy_direct import carries_direct_inversion

    if not is_flow(model):
        sampling = type(model.get_model_object("model_sampling")).__name__
        raise InputError(node, "model", f"its sampling is {sampling}, not a rectified flow (Flux, SD3/SD3.5, "
                                        "Qwen-Image, the demo DiT). For SD1.x/SD2.x/SDXL use the DDIM inversion "
                                        "nodes (Direct Inversion, null-text, regularized DDIM).")
    options = model.model_options.get("transformer_options", {})
    if options.get(EDITOR_KEY) is not None or carries_direct_inversion(model):
        raise InputError(node, "model", "this MODEL already carries an attention edit or an inversion; connect the "
                                        "loader's MODEL here.")


def _scheduler_input(default: str):
    import comfy.samplers

    return io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default=default, optional=True)


class FlowInversion(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=INVERSION_NODE,
            display_name="Flow Inversion (Euler / RF-Solver / FireFlow)",
            category=CATEGORY,
            description="Integrates a flow model's ODE from the image up to noise. euler: 1 model call a step; "
                        "midpoint: RF-Solver's second-order step (2 calls a step); fireflow: the midpoint step "
                        "reusing the last velocity (1 call a step, second order). Sample back with SamplerCustom "
                        f"(add_noise off) on the returned SIGMAS (they start at {FLOW_SIGMA_TOP}, where a flow "
                        "model's start still sees the latent) and the returned SAMPLER, which integrates with the "
                        "same solver; or feed x_T to a P2P node first. With lambda_ac / lambda_kl > 0 the noise each "
                        "prediction implies (x + (1 - s) v) is pushed towards white Gaussian noise as pix2pix-zero's "
                        "DDIM inversion does, for its guided sampler.",
            inputs=[
                io.Model.Input("model"),
                io.Latent.Input("latent", tooltip="The image, VAE-encoded with this model's VAE (batch 1)."),
                io.Conditioning.Input("positive", tooltip="The image's caption (the P2P source prompt)."),
                io.Int.Input("steps", default=28, min=1, max=1000),
                io.Combo.Input("solver", options=list(SOLVERS), default="fireflow"),
                io.Float.Input("cfg", default=1.0, min=0.0, max=100.0, step=0.1,
                               tooltip="Guidance of the inversion. 1: the caption's velocity alone (usual)."),
                io.Conditioning.Input("negative", optional=True, tooltip="Needed only when cfg is not 1."),
                _scheduler_input("simple"),
                io.Float.Input("lambda_ac", default=0.0, min=0.0, max=10000.0, step=0.5, optional=True,
                               tooltip="pix2pix-zero's regularizer: weight of the auto-correlation term on the noise "
                                       "each prediction implies (0 = plain inversion; pix2pix-zero: 20)."),
                io.Float.Input("lambda_kl", default=0.0, min=0.0, max=10000.0, step=0.5, optional=True,
                               tooltip="pix2pix-zero's regularizer: weight of the KL-to-N(0, 1) term (0 = off; "
                                       "pix2pix-zero: 20)."),
                io.Int.Input("reg_steps", default=5, min=0, max=100, optional=True),
                io.Int.Input("ac_rolls", default=5, min=0, max=100, optional=True),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, optional=True,
                             tooltip="Seed of the regularizer's random rolls."),
            ],
            outputs=[io.Latent.Output(display_name="x_T"), io.Sigmas.Output(display_name="sigmas"),
                     io.Sampler.Output(display_name="sampler")],
        )

    @classmethod
    def execute(cls, model, latent, positive, steps, solver, cfg, negative=None, scheduler="simple", lambda_ac=0.0,
                lambda_kl=0.0, reg_steps=5, ac_rolls=5, seed=0):
        from ..inversion.comfy_flow import flow_invert, solver_sampler
        from .inversion import noise_regularizer

        require_flow_model(INVERSION_NODE, model)
        require_latent(INVERSION_NODE, model, latent, single=True)
        _check_steps(INVERSION_NODE, steps)
        if solver not in SOLVERS:
            raise InputError(INVERSION_NODE, "solver", f"{solver!r} is not one of {', '.join(SOLVERS)}.")
        if cfg != 1.0 and negative is None:
            raise InputError(INVERSION_NODE, "negative", f"cfg {cfg} needs a negative conditioning; connect one "
                                                         "or use cfg 1.")
        sigmas = schedule(model, steps, scheduler)
        regularize, report = noise_regularizer(INVERSION_NODE, lambda_ac, lambda_kl, reg_steps, ac_rolls, seed)
        x_T, calls = flow_invert(model, latent, positive, negative, cfg, sigmas, solver, regularize=regularize)
        report()
        log.info("%s: %s inversion, %d steps, %d model calls", INVERSION_NODE, solver, steps, calls)
        out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask")}
        out["samples"] = x_T
        return io.NodeOutput(out, sigmas, solver_sampler(solver))


class FlowEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=FLOW_EDIT_NODE,
            display_name="FlowEdit (inversion-free)",
            category=CATEGORY,
            description="Edits a real image with no inversion (Kulikov et al., FlowEdit, ICCV 2025): from step "
                        "steps - n_max on, the image moves along the difference of the target and source "
                        "prompts' velocities, taken on noised copies of it (n_avg noise draws a step); the last "
                        "n_min steps sample the target plainly. Paper defaults: SD3 steps 50, n_max 33, source cfg "
                        "3.5, target cfg 13.5; Flux steps 28, n_max 24, source 1.5, target 5.5 (as the guidance "
                        "embedding: with Flux.1-dev the scales go into the conditioning and no negative is used); "
                        "n_min 0, n_avg 1.",
            inputs=[
                io.Model.Input("model"),
                io.Latent.Input("latent", tooltip="The image, VAE-encoded with this model's VAE."),
                io.Conditioning.Input("source", tooltip="Describes the image as it is."),
                io.Conditioning.Input("target", tooltip="Describes the image as it should become."),
                io.Int.Input("steps", default=50, min=1, max=1000),
                io.Int.Input("n_max", default=33, min=1, max=1000, tooltip="Steps that edit (from the end)."),
                io.Int.Input("n_min", default=0, min=0, max=1000,
                             tooltip="Final steps that sample the target plainly instead of editing."),
                io.Int.Input("n_avg", default=1, min=1, max=64, tooltip="Noise draws averaged per step."),
                io.Float.Input("source_cfg", default=3.5, min=0.0, max=100.0, step=0.1),
                io.Float.Input("target_cfg", default=13.5, min=0.0, max=100.0, step=0.1),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=True),
                io.Conditioning.Input("negative", optional=True,
                                      tooltip="For models sampled with real CFG (SD3/SD3.5, Qwen-Image, the demo "
                                              "DiT); unused with a guidance embedding (Flux.1-dev)."),
                _scheduler_input("simple"),
            ],
            outputs=[io.Latent.Output(display_name="LATENT")],
        )

    @classmethod
    def execute(cls, model, latent, source, target, steps, n_max, n_min, n_avg, source_cfg, target_cfg, seed,
                negative=None, scheduler="simple"):
        import comfy.samplers

        from ..inversion.comfy_flow import flow_edit_sample, has_guidance_embedding

        require_flow_model(FLOW_EDIT_NODE, model)
        require_latent(FLOW_EDIT_NODE, model, latent)
        _check_steps(FLOW_EDIT_NODE, steps)
        if not 1 <= n_max <= steps:
            raise InputError(FLOW_EDIT_NODE, "n_max", f"{n_max} must lie in 1..steps ({steps}).")
        if not 0 <= n_min <= n_max:
            raise InputError(FLOW_EDIT_NODE, "n_min", f"{n_min} must lie in 0..n_max ({n_max}).")
        if negative is None and not has_guidance_embedding(model) and (source_cfg != 1.0 or target_cfg != 1.0):
            raise InputError(FLOW_EDIT_NODE, "negative", "this model is sampled with real classifier-free guidance "
                                                         "and a cfg is not 1; connect a negative conditioning "
                                                         "(an empty prompt is fine).")
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()
        samples = flow_edit_sample(model, latent, source, target, negative, sigmas, n_max, n_min, n_avg,
                                   source_cfg, target_cfg, seed)
        out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask")}
        out["samples"] = samples
        return io.NodeOutput(out)


NODES = [FlowInversion, FlowEdit]
