"""ComfyUI glue for pix2pix-zero's cross-attention guided sampling: reference and edited branches in
lockstep, one step at a time, so only the current step's reference maps are ever held.

Per step (sigma s -> s'):
  1. reference: CFG denoise of x_ref with the caption; the positive row's maps are recorded;
  2. guidance: one forward of x_edit with the edit conditioning under autograd, the map distance to the
     reference, its gradient w.r.t. x_edit, and x_edit -= λ ∇ / c_in(s)² (the official SGD step acts on the
     network's input c_in x: for ComfyUI's EPS/V models c_in = 1 / sqrt(1 + s²), so the gradient is scaled
     by 1 + s² in k-diffusion units; flow models (CONST) feed x itself, c_in = 1);
  3. edit: CFG denoise of the updated x_edit with the edit conditioning;
  4. DDIM (Euler) step of both branches: x' = D + (x - D) s'/s, which is the stock `euler` sampler's step for
     every parametrisation (for a flow model x - D = s v, so it is x + (s' - s) v).
Follows the paper: the gradient comes from the edited (positive) branch's maps. The official code
(edit_pipeline.py:129-160) runs the grad pass on both CFG halves and keeps the *unconditional* half's update.
"""
from __future__ import annotations

import logging
import math

import torch

from ..inversion.comfy_adapter import run_in_sampler
from ..inversion.comfy_autograd import NoInplace, autograd_safe
from .comfy_patch import RUN_KEY, patch_model
from .guidance import GRAD, MEASURE, OFF, RECORD, GuidanceEditor

log = logging.getLogger("comfyui-attention-edit")

# diffusers' pix2pix-zero port: v-prediction (SD2) needs ~10x smaller guidance "to avoid input latent gradient
# explosion" (pipeline docstring); we apply that factor automatically for v-prediction models.
V_PREDICTION_FACTOR = 0.1
# an update larger than the latent itself is a blow-up, not guidance: it is scaled down and counted
MAX_UPDATE_RATIO = 1.0


def _is_v_prediction(model) -> bool:
    import comfy.model_sampling

    return isinstance(model.get_model_object("model_sampling"), comfy.model_sampling.V_PREDICTION)


def _input_gain(model, sigma: float) -> float:
    """1 / c_in(sigma)²: how a step on the network's input maps to a step on the sampler's x."""
    ms = model.get_model_object("model_sampling")
    c_in = float(ms.calculate_input(torch.tensor([sigma]), torch.ones(1, 1, 1, 1)).flatten()[0])
    return 1.0 / (c_in * c_in)


def guided_sample(model, positive, edit_positive, negative, latent, sigmas, cfg: float, xa_guidance: float,
                  noise=None, seed: int = 0):
    """Returns (edit latent, reconstruction latent, stats) — latents in VAE units."""
    import comfy.model_management
    import comfy.samplers

    scale = xa_guidance * (V_PREDICTION_FACTOR if _is_v_prediction(model) else 1.0)
    patched = patch_model(model, GuidanceEditor())
    stats = {"distances": [], "skipped": 0, "clipped": 0, "xa_effective": scale}
    outputs = {}

    def body(model_k, x, sig, extra_args, callback):
        guider = model_k.inner_model
        unet_model = guider.inner_model
        conds = guider.conds
        model_options = extra_args["model_options"]
        run = model_options["transformer_options"][RUN_KEY]
        seed_ = extra_args.get("seed")

        def denoise(cond, xx, s):
            return comfy.samplers.sampling_function(unet_model, xx, s, conds.get("negative"), cond, cfg,
                                                    model_options, seed_)

        x_ref, x_edit = x.clone(), x.clone()
        gradient_pass = autograd_safe()  # one for the whole run: the weights are copied once
        for i in range(len(sig) - 1):
            comfy.model_management.throw_exception_if_processing_interrupted()
            s = sig[i] * x.new_ones([x.shape[0]])
            run.data["mode"] = RECORD
            d_ref = denoise(conds["positive"], x_ref, s)
            if scale > 0:  # its loss is this step's map distance: no separate measurement needed
                gain = scale * _input_gain(model, float(sig[i]))
                x_edit = _guidance_step(unet_model, conds["edit"], x_edit, s, gain, model_options, run, stats,
                                        gradient_pass)
                run.data["mode"] = OFF
            else:
                run.data.update(mode=MEASURE, distance=0.0)
            d_edit = denoise(conds["edit"], x_edit, s)
            if scale == 0:
                stats["distances"].append(run.data["distance"])
            run.data["mode"] = OFF
            x_ref = _ddim(x_ref, d_ref, sig[i], sig[i + 1])
            x_edit = _ddim(x_edit, d_edit, sig[i], sig[i + 1])
            if callback is not None:
                callback({"x": x_edit, "i": i, "sigma": s, "sigma_hat": s, "denoised": d_edit})
        outputs["reference"] = unet_model.process_latent_out(x_ref.to(torch.float32))
        stats["reference_map_bytes"] = sum(t.numel() * t.element_size() for t in run.data["reference"].values())
        return x_edit

    conds = {"positive": positive, "negative": negative, "edit": edit_positive}
    edit = run_in_sampler(patched, latent, conds, cfg, sigmas, body, noise=noise, seed=seed)
    reference = outputs["reference"].to(edit.device)
    return edit, reference, stats


def _ddim(x, denoised, sigma, sigma_next):
    if float(sigma_next) == 0:
        return denoised
    return denoised + (x - denoised) * (sigma_next / sigma)


def _guidance_step(unet_model, edit_cond, x_edit, s, gain: float, model_options, run, stats,
                   gradient_pass: autograd_safe):
    import comfy.samplers

    with torch.inference_mode(False), torch.enable_grad():
        x_in = x_edit.detach().clone().requires_grad_(True)
        run.data.update(mode=GRAD, loss=None)
        with gradient_pass:  # NoInplace: the DiTs add their residuals in place
            comfy.samplers.calc_cond_batch(unet_model, [edit_cond], x_in.as_subclass(NoInplace), s.detach().clone(),
                                           model_options)
        loss = run.data["loss"]
        run.data.update(mode=OFF, loss=None)
        if loss is None or not torch.isfinite(loss):
            stats["skipped"] += 1
            return x_edit
        stats["distances"].append(float(loss.detach()))
        (grad,) = torch.autograd.grad(loss, x_in)
        if not torch.isfinite(grad).all():
            stats["skipped"] += 1
            return x_edit
        update = gain * grad.detach()
        limit = MAX_UPDATE_RATIO * float(x_in.detach().pow(2).mean().sqrt())
        size = float(update.pow(2).mean().sqrt())
        if size > limit > 0 and math.isfinite(size):
            update = update * (limit / size)
            stats["clipped"] += 1
        return (x_in.detach() - update).to(x_edit.dtype)
