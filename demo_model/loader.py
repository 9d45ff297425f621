"""Load the shipped demo model into ComfyUI's MODEL / CLIP / VAE objects.

The file holds standard SD1.x keys (model.diffusion_model., cond_stage_model.transformer., first_stage_model.)
and its architecture in the safetensors metadata, because ComfyUI's checkpoint detection only recognises
SD1.5 at its real widths: the loader builds the same ComfyUI classes with the recorded widths instead.
"""
from __future__ import annotations

import json
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "attn_edit_demo.safetensors"

_CACHE: dict = {}


class DemoModelError(RuntimeError):
    pass


def read(path: Path = WEIGHTS) -> tuple[dict, dict]:
    """State dict and parsed metadata; a clear error when the file is missing or is not ours."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not path.is_file():
        raise DemoModelError(f"The demo model weights are missing at {path}. They ship with the pack; reinstall "
                             "it, or retrain them with `python -m demo_model.train` from the pack's folder.")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if "architecture" not in meta:
        raise DemoModelError(f"{path} has no 'architecture' metadata: it is not an attention-edit demo model.")
    return load_file(str(path)), {k: json.loads(v) for k, v in meta.items()}


def _split(sd: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def load(path: Path = WEIGHTS):
    """(MODEL patcher, CLIP, VAE) built from ComfyUI's classes; cached per file modification time."""
    key = (str(path), path.stat().st_mtime if path.is_file() else None)
    if key in _CACHE:
        return _CACHE[key]
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.sd
    import comfy.sd1_clip
    import comfy.supported_models
    import comfy.supported_models_base

    from . import architecture as arch

    sd, meta = read(path)
    spec = meta["architecture"]

    config = comfy.supported_models.SD15(dict(spec["unet"]))
    load_device = mm.get_torch_device()
    unet_dtype = mm.unet_dtype(model_params=0, supported_dtypes=config.supported_inference_dtypes)
    config.set_inference_dtype(unet_dtype, mm.unet_manual_cast(unet_dtype, load_device,
                                                              config.supported_inference_dtypes))
    base = config.get_model({}, "")
    base.load_model_weights(sd, arch.UNET_PREFIX)
    model = comfy.model_patcher.ModelPatcher(base, load_device=load_device, offload_device=mm.unet_offload_device())

    target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
    clip = comfy.sd.CLIP(target, model_options={"clip_l_model_config": spec["clip"]})
    missing, unexpected = clip.cond_stage_model.clip_l.transformer.load_state_dict(
        _split(sd, arch.CLIP_PREFIX), strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise DemoModelError(f"{path}: text encoder keys do not match (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}).")

    vae = comfy.sd.VAE(sd=_split(sd, arch.VAE_PREFIX), config={"params": spec["vae"]})
    _CACHE.clear()
    _CACHE[key] = (model, clip, vae)
    return _CACHE[key]
