"""AttnEdit_DirectInversion: real-image P2P on an exact source row (Ju et al., PnP Inversion, ICLR 2024)."""
from __future__ import annotations

import logging

from comfy_api.latest import io

from ..attention.backends.base import EDITOR_KEY
from ..attention.p2p_plan import InputError
from ..inversion.comfy_adapter import schedule
from ..inversion.comfy_direct import NODE, attach_direct_inversion, carries_direct_inversion, direct_invert
from .checks import require_editable_model, require_latent
from .inversion import CATEGORY, _check_steps, _scheduler_input

log = logging.getLogger("comfyui-attention-edit")


def require_invertible(node: str, model, flow_ok: bool = False) -> None:
    """DDIM in sigma space needs the x = x0 + sigma * eps parameterisation (eps, v, EDM on a UNet); flow models'
    (x = (1 - s) x0 + s eps) Euler step is the same update in ComfyUI's sampler space, so where flow_ok it inverts
    them too."""
    import comfy.model_sampling

    sampling = model.get_model_object("model_sampling")
    flow = isinstance(sampling, comfy.model_sampling.CONST)
    if not (isinstance(sampling, comfy.model_sampling.EPS) or (flow_ok and flow)):
        raise InputError(node, "model", f"its sampling is {type(sampling).__name__} (flow-matching or another "
                                        "parameterisation), which this DDIM inversion cannot invert; use an eps-, "
                                        "v- or EDM-prediction SD1.x/SD2.x/SDXL checkpoint without a flow "
                                        "ModelSampling patch" + (", or AttnEdit_DirectInversion / AttnEdit_Flow"
                                                                 "Inversion for a flow model." if flow else "."))
    options = model.model_options.get("transformer_options", {})
    if options.get(EDITOR_KEY) is not None:
        raise InputError(node, "model", f"this MODEL already carries an attention edit "
                                        f"({options[EDITOR_KEY].node_name}). Connect the loader's MODEL here and "
                                        "place the P2P node after this node (feed it this node's MODEL and x_T).")
    if carries_direct_inversion(model):
        raise InputError(node, "model", "this MODEL already carries a Direct Inversion; connect the loader's MODEL "
                                        "(one inversion per image).")


class DirectInversion(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=NODE,
            display_name="Direct Inversion (PnP Inversion)",
            category=CATEGORY,
            description="DDIM inversion that records the image's trajectory. The returned MODEL keeps row 0 of "
                        "every sampled batch (the source row of a P2P node placed after it) exactly on that "
                        "trajectory at every step (Ju et al. 2024), so the source reconstructs the image at any "
                        "cfg and the edited rows take their attention from an exact source. Sample with euler or "
                        "ddim on the returned SIGMAS with add_noise off (SamplerCustom; KSamplerAdvanced on a UNet). "
                        "On a flow model (Flux, SD3, Qwen-Image) the inversion is the ODE's Euler step and the SIGMAS "
                        "start just below 1, so use SamplerCustom.",
            inputs=[
                io.Model.Input("model"),
                io.Latent.Input("latent", tooltip="The image, VAE-encoded with this model's VAE (batch 1)."),
                io.Conditioning.Input("positive", tooltip="The image's caption (the P2P source prompt)."),
                io.Int.Input("steps", default=50, min=1, max=1000),
                io.Float.Input("cfg", default=1.0, min=0.0, max=100.0, step=0.1,
                               tooltip="Guidance of the inversion itself. 1 = the caption's prediction only "
                                       "(official). The sampling cfg is free: row 0 is exact at any cfg."),
                io.Conditioning.Input("negative", optional=True, tooltip="Needed only when cfg is not 1."),
                _scheduler_input(),
            ],
            outputs=[io.Model.Output(display_name="MODEL"), io.Latent.Output(display_name="x_T"),
                     io.Sigmas.Output(display_name="sigmas")],
        )

    @classmethod
    def execute(cls, model, latent, positive, steps, cfg, negative=None, scheduler="ddim_uniform"):
        require_editable_model(NODE, model)
        require_invertible(NODE, model, flow_ok=True)
        require_latent(NODE, model, latent, single=True)
        _check_steps(NODE, steps)
        if cfg != 1.0 and negative is None:
            raise InputError(NODE, "negative", f"cfg {cfg} needs a negative conditioning; connect one or use cfg 1.")
        sigmas = schedule(model, steps, scheduler)
        x_T, plan = direct_invert(model, latent, positive, negative, cfg, sigmas)
        out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask")}
        out["samples"] = x_T
        log.info("%s: recorded %d latents of the inversion trajectory", NODE, len(plan.latents))
        return io.NodeOutput(attach_direct_inversion(model, plan), out, sigmas)


NODES = [DirectInversion]
