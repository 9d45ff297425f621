"""Architecture of the demo model: SD1.x with small widths, built from ComfyUI's own classes.

128 px images, an 8x VAE (16x16x4 latents, SD1.5's latent scale 0.18215), an SD1.x UNet with three levels
(16, 8, 4 tokens a side) and cross-attention on every level and the middle, and a CLIP text encoder that
uses the real CLIP BPE tokenizer (49408 tokens, 77 positions). eps-prediction on SD's scaled-linear
1000-step schedule, exactly as ComfyUI's SD15 model config samples it.
"""
from __future__ import annotations

import torch

IMAGE_SIZE = 128

UNET_CONFIG = dict(
    use_checkpoint=False, image_size=16, use_spatial_transformer=True, legacy=False, in_channels=4,
    out_channels=4, model_channels=32, channel_mult=[1, 2, 4], num_res_blocks=[1, 1, 1], adm_in_channels=None,
    transformer_depth=[1, 1, 1], transformer_depth_output=[1, 1, 1, 1, 1, 1], transformer_depth_middle=1,
    use_linear_in_transformer=False, context_dim=64, num_heads=-1, num_head_channels=32,
    use_temporal_resblock=False, use_temporal_attention=False)

CLIP_CONFIG = {"hidden_size": 64, "intermediate_size": 256, "num_attention_heads": 2, "num_hidden_layers": 4,
               "projection_dim": 64}

# 64 channels, not fewer: ComfyUI's VAE normalises in 32 groups, and with one channel a group (ch 32) the
# absolute colour of flat regions is normalised away (yellow decodes as orange, pink as orange).

VAE_CONFIG = {"ddconfig": {"double_z": True, "z_channels": 4, "resolution": IMAGE_SIZE, "in_channels": 3,
                           "out_ch": 3, "ch": 64, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 0,
                           "attn_resolutions": [], "dropout": 0.0}, "embed_dim": 4}

# Standard SD1.x checkpoint prefixes.
UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."


def unet_model(dtype=torch.float32):
    """ComfyUI BaseModel (SD15 config: eps, scaled-linear schedule) around the small UNet."""
    import comfy.supported_models

    config = comfy.supported_models.SD15(dict(UNET_CONFIG))
    config.set_inference_dtype(dtype, None)
    return config.get_model({}, "")


def clip_model(dtype=torch.float32):
    """ComfyUI CLIP (SD1 tokenizer + SD1ClipModel) with the small text encoder."""
    import comfy.sd
    import comfy.sd1_clip
    import comfy.supported_models_base

    target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
    return comfy.sd.CLIP(target, model_options={"clip_l_model_config": CLIP_CONFIG, "dtype": dtype})


def autoencoder():
    from comfy.ldm.models.autoencoder import AutoencoderKL

    return AutoencoderKL(**VAE_CONFIG)


def text_transformer(clip) -> torch.nn.Module:
    """The CLIPTextModel_ inside a ComfyUI CLIP: tokens [B, 77] -> last hidden state after the final LN."""
    return clip.cond_stage_model.clip_l.transformer.text_model
