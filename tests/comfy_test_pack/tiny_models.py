"""Tiny random-weight MODEL / CLIP / VAE built from ComfyUI's own classes (docs/testing.md).

Layouts keep the real block structure of each family with shrunken widths:
- sd15: 4 levels x 2 res blocks, attention on the first three levels and the middle (as SD1.5), context 64.
- sd2v: the same with linear projections, 64-wide heads, fp32 attention and v-prediction (SD2.x).
- sdxl: 3 levels x 2 res blocks, no attention on level 0, depth 1/2 (SDXL: 0/2/10), clip_l ⊕ clip_g context, ADM.
- dit:  a tiny SD3 MMDiT, used to check that DiT models are refused.
Weights are initialised explicitly from a seeded generator (ComfyUI's ops skip init: docs/testing.md, pitfall 1).
"""
from __future__ import annotations

import math

import torch

CLIP_L = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2, "num_hidden_layers": 3,
          "projection_dim": 64}
CLIP_G = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2, "num_hidden_layers": 3,
          "projection_dim": 64}

_UNET_COMMON = dict(use_checkpoint=False, image_size=32, use_spatial_transformer=True, legacy=False,
                    in_channels=4, out_channels=4, model_channels=32, use_temporal_resblock=False,
                    use_temporal_attention=False)

UNET_CONFIGS = {
    "sd15": dict(_UNET_COMMON, adm_in_channels=None, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 2, 2],
                 transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
                 transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
                 transformer_depth_middle=1, use_linear_in_transformer=False, context_dim=64),
    "sd2v": dict(_UNET_COMMON, adm_in_channels=None, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 2, 2],
                 transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
                 transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
                 transformer_depth_middle=1, use_linear_in_transformer=True, context_dim=64),
    "sdxl": dict(_UNET_COMMON, adm_in_channels=64 + 6 * 256, num_classes="sequential", num_res_blocks=[2, 2, 2],
                 channel_mult=[1, 2, 2], transformer_depth=[0, 0, 1, 1, 2, 2],
                 transformer_depth_output=[0, 0, 0, 1, 1, 1, 2, 2, 2],
                 transformer_depth_middle=2, use_linear_in_transformer=True, context_dim=128),
}

# The benchmark model: SD1.5's real UNet widths (860 M parameters) with random weights.
UNET_CONFIGS["sd15_full"] = dict(UNET_CONFIGS["sd15"], model_channels=320, channel_mult=[1, 2, 4, 4], context_dim=768)
CLIP_FULL_WIDTH: dict = {}  # no override: ComfyUI's own sd1_clip_config.json, the real CLIP-L (123 M parameters)

VAE_PARAMS = {"ddconfig": {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3,
                           "ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [],
                           "dropout": 0.0}, "embed_dim": 4}


def init_weights(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            elif name.endswith("weight") and ("norm" in name.lower() or "ln" in name.lower()):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def build_model(layout: str, seed: int = 0):
    import comfy.model_base
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    device = torch.device("cpu")
    if layout == "dit":
        unet_config = {"in_channels": 16, "pos_embed_scaling_factor": None, "input_size": None, "patch_size": 2,
                       "depth": 2, "adm_in_channels": 64, "context_embedder_config": {
                           "target": "torch.nn.Linear", "params": {"in_features": 64, "out_features": 128}},
                       "pos_embed_max_size": 16, "num_patches": 256, "out_channels": 16}
        config = comfy.supported_models.SD3(unet_config)
        config.set_inference_dtype(torch.float32, None)
        base = config.get_model({}, "")
    else:
        cls = {"sd15": comfy.supported_models.SD15, "sd15_full": comfy.supported_models.SD15,
               "sd2v": comfy.supported_models.SD20, "sdxl": comfy.supported_models.SDXL}[layout]
        config = cls(dict(UNET_CONFIGS[layout]))
        if layout == "sd15":
            config.unet_config["num_heads"], config.unet_config["num_head_channels"] = 2, -1
        elif layout == "sd15_full":
            config.unet_config["num_heads"], config.unet_config["num_head_channels"] = 8, -1
        else:
            config.unet_config["num_heads"], config.unet_config["num_head_channels"] = -1, 16
        config.set_inference_dtype(torch.float32, None)
        if layout == "sd2v":
            base = comfy.model_base.BaseModel(config, model_type=comfy.model_base.ModelType.V_PREDICTION)
        elif layout == "sdxl":
            base = comfy.model_base.SDXL(config, model_type=comfy.model_base.ModelType.EPS)
        else:
            base = config.get_model({}, "")
    init_weights(base, seed)
    return comfy.model_patcher.ModelPatcher(base, load_device=device, offload_device=device)


def build_clip(layout: str, seed: int = 0):
    import comfy.sd
    import comfy.sd1_clip
    import comfy.sdxl_clip
    import comfy.supported_models_base

    if layout == "sdxl":
        target = comfy.supported_models_base.ClipTarget(comfy.sdxl_clip.SDXLTokenizer, comfy.sdxl_clip.SDXLClipModel)
        options = {"clip_l_model_config": CLIP_L, "clip_g_model_config": CLIP_G}
    else:
        target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
        options = {"clip_l_model_config": CLIP_FULL_WIDTH if layout == "sd15_full" else CLIP_L}
    clip = comfy.sd.CLIP(target, model_options=options)
    init_weights(clip.cond_stage_model, seed + 1)
    return clip


def build_vae(seed: int = 0):
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencoderKL

    ae = AutoencoderKL(**VAE_PARAMS)
    init_weights(ae, seed + 2)
    return comfy.sd.VAE(sd=ae.state_dict(), config={"params": VAE_PARAMS})
