"""Input checks shared by the nodes: each failure names the node, the input and the fix."""
from __future__ import annotations

import torch

from ..attention.backends import UnsupportedModelError, backend_for
from ..attention.backends.unet import unet_of
from ..attention.p2p_plan import InputError


def require_unet(node: str, model) -> None:
    try:
        unet_of(model)
    except UnsupportedModelError as e:
        raise InputError(node, "model", str(e)) from None


def require_editable_model(node: str, model) -> None:
    """A model family whose attention one of the pack's backends reaches (UNet or joint attention)."""
    try:
        backend_for(model)
    except UnsupportedModelError as e:
        raise InputError(node, "model", str(e)) from None


def require_latent(node: str, model, latent: dict, single: bool = False) -> None:
    """The latent is this model family's (channel count), finite, and (if `single`) one image. Models with
    frame-axis latents (Qwen-Image: [B, C, 1, H, W]) take them as ComfyUI's samplers do, 4-D or 5-D."""
    samples = latent["samples"]
    fmt = model.model.latent_format
    channels = fmt.latent_channels
    dims = (4, 5) if getattr(fmt, "latent_dimensions", 2) == 3 else (4,)
    if samples.ndim not in dims or samples.shape[1] != channels:
        raise InputError(node, "latent", f"the latent has shape {tuple(samples.shape)} but this model works on "
                                         f"{channels}-channel latents; encode the image with this model's VAE.")
    if single and samples.shape[0] != 1:
        raise InputError(node, "latent", f"got a batch of {samples.shape[0]} latents; give one latent (batch 1).")
    if not torch.isfinite(samples).all():
        raise InputError(node, "latent", "the latent contains NaN or Inf values.")
