"""Load the shipped demo model into ComfyUI's MODEL / CLIP / VAE objects.

The file holds standard SD1.x keys (model.diffusion_model., cond_stage_model.transformer., first_stage_model.)
and its architecture in the safetensors metadata, because ComfyUI's checkpoint detection only recognises
SD1.5 at its real widths: the loader builds the same ComfyUI classes with the recorded widths instead.
"""
from __future__ import annotations

import json
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "attn_edit_demo.safetensors"
DIT_WEIGHTS = Path(__file__).resolve().parent / "attn_edit_demo_dit.safetensors"

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


def _cached(path: Path, build):
    """(MODEL patcher, CLIP, VAE) per file, rebuilt when the file changes."""
    key = str(path)
    stamp = path.stat().st_mtime if path.is_file() else None
    if key not in _CACHE or _CACHE[key][0] != stamp:
        _CACHE[key] = (stamp, build(path))
    return _CACHE[key][1]


def _patcher(base):
    import comfy.model_management as mm
    import comfy.model_patcher

    return comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(),
                                            offload_device=mm.unet_offload_device())


def _load_strict(module, sd: dict, prefix: str, path: Path, what: str) -> None:
    missing, unexpected = module.load_state_dict(_split(sd, prefix), strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise DemoModelError(f"{path}: {what} keys do not match (missing {missing[:3]}, unexpected {unexpected[:3]}).")


def _inference_config(config):
    import comfy.model_management as mm

    load_device = mm.get_torch_device()
    dtype = mm.unet_dtype(model_params=0, supported_dtypes=config.supported_inference_dtypes)
    config.set_inference_dtype(dtype, mm.unet_manual_cast(dtype, load_device, config.supported_inference_dtypes))
    return config


def load(path: Path = WEIGHTS):
    """The UNet demo model: (MODEL patcher, CLIP, VAE) built from ComfyUI's classes."""
    return _cached(path, _build_unet)


def load_dit(path: Path = DIT_WEIGHTS):
    """The demo DiT (Flux architecture): (MODEL patcher, CLIP, VAE) built from ComfyUI's classes."""
    return _cached(path, _build_dit)


def _build_dit(path: Path):
    import comfy.sd

    from . import dit_architecture as arch

    sd, meta = read(path)
    spec = meta["architecture"]
    if spec.get("family") != "flux":
        raise DemoModelError(f"{path} is not the demo DiT (its architecture metadata names no 'flux' family).")
    base = _inference_config(arch.flux_config(spec["dit"])).get_model({}, "")
    base.load_model_weights(sd, arch.DIT_PREFIX)
    clip = arch.flux_clip(spec["clip_l"], spec["t5"], spec["t5_min_length"])
    _load_strict(clip.cond_stage_model.clip_l.transformer, sd, arch.CLIP_L_PREFIX, path, "CLIP-L")
    _load_strict(clip.cond_stage_model.t5xxl.transformer, sd, arch.T5_PREFIX, path, "T5")
    vae = comfy.sd.VAE(sd=_split(sd, arch.VAE_PREFIX), config={"params": spec["vae"]})
    return _patcher(base), clip, vae


def _build_unet(path: Path):
    import comfy.sd
    import comfy.sd1_clip
    import comfy.supported_models
    import comfy.supported_models_base

    from . import architecture as arch

    sd, meta = read(path)
    spec = meta["architecture"]
    if "unet" not in spec:
        raise DemoModelError(f"{path} is not the UNet demo model (its architecture metadata has no 'unet').")
    base = _inference_config(comfy.supported_models.SD15(dict(spec["unet"]))).get_model({}, "")
    base.load_model_weights(sd, arch.UNET_PREFIX)

    target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
    clip = comfy.sd.CLIP(target, model_options={"clip_l_model_config": spec["clip"]})
    _load_strict(clip.cond_stage_model.clip_l.transformer, sd, arch.CLIP_PREFIX, path, "text encoder")
    vae = comfy.sd.VAE(sd=_split(sd, arch.VAE_PREFIX), config={"params": spec["vae"]})
    return _patcher(base), clip, vae
