"""The registry: which backend patches a ComfyUI model, and why the others are refused.

A new family is a file here (a `JointFamily` entry, or a Backend of its own: unet.py, wan.py) and a line in
`JOINT_FAMILIES` or `backend_for`. Every backend imports only base.py (and joint.py for the override-reached
families); none imports its caller.
"""
from __future__ import annotations

from . import chroma, flux, qwen_image, sd3, z_image
from .base import Backend, UnsupportedModelError
from .joint import joint_backend
from .unet import UNetBackend, is_unet
from .wan import WanBackend, is_wan

JOINT_FAMILIES = (flux.FAMILY, sd3.FAMILY, qwen_image.FAMILY, chroma.FAMILY, z_image.FAMILY)

SUPPORTED = ("SD1.x, SD2.x and SDXL (UNet cross-attention); Flux.1, Flux.2, SD3 / SD3.5, Qwen-Image, Chroma and "
             "Z-Image (joint attention); Wan 2.1 / 2.2 text- and image-to-video (video cross-attention)")

# Networks ComfyUI 0.8 ships that no backend patches, by module of their class, with the real reason.
_NOT_REACHED = "its attention calls pass no transformer_options, so no attention hook of any pack reaches them"
_NOT_YET = "its attention reaches this pack's hook, but no backend maps its text and image tokens yet"
REFUSED = {
    "comfy.ldm.hydit": ("HunyuanDiT", _NOT_REACHED),
    "comfy.ldm.pixart": ("PixArt", _NOT_REACHED),
    "comfy.ldm.hunyuan_video": ("HunyuanVideo", "its joint attention puts the image tokens before the text "
                                "(and a text refiner before it); " + _NOT_YET),
    "comfy.ldm.lightricks": ("LTX-Video", "its cross-attention carries no block ids and a text mask; " + _NOT_YET),
    "comfy.ldm.hidream": ("HiDream", "its joint attention is image first with a different Llama layer per block; "
                          + _NOT_YET),
    "comfy.ldm.aura": ("AuraFlow", "its text follows 8 register tokens and its blocks carry no ids; " + _NOT_YET),
    "comfy.ldm.kandinsky5": ("Kandinsky 5", _NOT_YET),
    "comfy.ldm.cosmos": ("Cosmos", _NOT_YET),
    "comfy.ldm.genmo": ("Mochi", "its joint attention is video first; " + _NOT_YET),
    "comfy.ldm.omnigen": ("OmniGen2", _NOT_YET),
    "comfy.ldm.chroma_radiance": ("Chroma Radiance", "it works in pixel space (16-pixel patches); " + _NOT_YET),
    "comfy.ldm.wan": ("a Wan variant (VACE, camera control, HuMo, S2V or Animate)",
                      "its extra blocks and conditioning are not mapped; " + _NOT_YET),
}


def _network(model):
    return getattr(getattr(model, "model", None), "diffusion_model", None)


def backend_for(model) -> Backend:
    """The backend of this model's family, or a clear error naming the family and why."""
    if is_unet(model):
        return UNetBackend()
    if is_wan(model):
        return WanBackend()
    dm = _network(model)
    for family in JOINT_FAMILIES:
        if dm is not None and family.matches(dm):
            backend = joint_backend(family, model)
            if backend is not None:
                return backend
            raise UnsupportedModelError(
                f"this {family.name} model runs its joint attention image first (flipped_img_txt), which attention "
                f"editing does not support. Supported: {SUPPORTED}.")
    kind = type(dm).__name__ if dm is not None else type(model).__name__
    module = type(dm).__module__ if dm is not None else ""
    for prefix, (name, reason) in REFUSED.items():
        if module == prefix or module.startswith(prefix + "."):
            raise UnsupportedModelError(
                f"this model is {name} ({kind}), which attention editing does not support: {reason}. "
                f"Supported: {SUPPORTED}.")
    raise UnsupportedModelError(
        f"this model's diffusion network is {kind}, which attention editing does not support. Supported: "
        f"{SUPPORTED}. Other networks may never reach this pack's attention hooks, so an edit would silently do "
        "nothing.")
