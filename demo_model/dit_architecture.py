"""Architecture of the demo DiT: Flux shrunk, built from ComfyUI's own classes.

128 px images through a 16-channel 8x VAE (16x16x16 latents in Flux's latent format), a Flux transformer with
double-stream (joint) and single-stream blocks, 3-axis RoPE and QK-norm, patch size 1 (a 16x16 grid of image
tokens: at Flux's patch 2 the 8x8 grid leaves a small object two tokens wide, too coarse to keep or measure its
silhouette), and Flux's text encoders at small widths with the tokenizers ComfyUI ships: T5 (SentencePiece) for
the tokens the image attends to, CLIP-L for the pooled vector that modulates the blocks.

No guidance embedding: the model is trained with caption dropout and sampled with real classifier-free
guidance, so negative prompts, null-text and negative-prompt inversion work as on the UNet demo (a guidance
embedding is a distillation of CFG, which needs a CFG-trained teacher first). Rectified flow (velocity
prediction, x_t = (1 - s) x0 + s eps) sampled with ComfyUI's Flux model sampling (shift 1.15).
"""
from __future__ import annotations

import torch

from .architecture import CLIP_CONFIG, IMAGE_SIZE

# Over ComfyUI's t5_config_xxl.json (gated GELU, relative position buckets, vocabulary of 32128). The shipped file's
# two stages use FIRST_T5_CONFIG (its metadata holds the architecture it was built with); T5_CONFIG is the wider
# text path a continuation trains (train_dit.py --new-text).
T5_CONFIG = {"d_ff": 512, "d_kv": 64, "d_model": 128, "num_heads": 2, "num_layers": 6}
FIRST_T5_CONFIG = {"d_ff": 256, "d_kv": 32, "d_model": 64, "num_heads": 2, "num_layers": 4}

DIT_CONFIG = dict(image_model="flux", in_channels=16, out_channels=16, vec_in_dim=CLIP_CONFIG["hidden_size"],
                  context_in_dim=T5_CONFIG["d_model"], hidden_size=128, mlp_ratio=4.0, num_heads=2, depth=2,
                  depth_single_blocks=4,
                  axes_dim=[8, 28, 28], theta=10000, patch_size=1, qkv_bias=True, guidance_embed=False,
                  txt_ids_dims=[])

# Every caption of demo_world fits in 32 T5 tokens; Flux pads to 256, which would triple the cost here.
T5_MIN_LENGTH = 32

VAE_CONFIG = {"ddconfig": {"double_z": True, "z_channels": 16, "resolution": IMAGE_SIZE, "in_channels": 3,
                           "out_ch": 3, "ch": 64, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 0,
                           "attn_resolutions": [], "dropout": 0.0}, "embed_dim": 16}

# Flux checkpoint prefixes (as in a full Flux file).
DIT_PREFIX = "model.diffusion_model."
VAE_PREFIX = "vae."
CLIP_L_PREFIX = "text_encoders.clip_l.transformer."
T5_PREFIX = "text_encoders.t5xxl.transformer."


def flux_config(spec: dict | None = None):
    import comfy.supported_models

    return comfy.supported_models.Flux(dict(spec or DIT_CONFIG))


def dit_model(dtype=torch.float32, spec: dict | None = None):
    """ComfyUI's model_base.Flux (rectified flow, Flux model sampling) around the small transformer."""
    config = flux_config(spec)
    config.set_inference_dtype(dtype, None)
    return config.get_model({}, "")


def flux_clip(clip_config: dict | None = None, t5_config: dict | None = None, t5_min_length: int = T5_MIN_LENGTH,
              dtype=torch.float32):
    """ComfyUI CLIP with Flux's tokenizer and text encoders (CLIP-L pooled + T5 tokens) at small widths."""
    import comfy.sd
    import comfy.supported_models_base
    import comfy.text_encoders.flux

    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.flux.FluxTokenizer,
                                                    comfy.text_encoders.flux.flux_clip(dtype_t5=torch.float32))
    return comfy.sd.CLIP(target, tokenizer_data={"t5xxl_min_length": t5_min_length},
                         model_options={"dtype": dtype, "clip_l_model_config": dict(clip_config or CLIP_CONFIG),
                                        "t5xxl_model_config": dict(t5_config or T5_CONFIG)})


def autoencoder(config: dict | None = None):
    from comfy.ldm.models.autoencoder import AutoencoderKL

    return AutoencoderKL(**(config or VAE_CONFIG))


def use_text_config(t5_config: dict) -> None:
    """Build (and record) the DiT with another T5 width from here on: the training script's --text-config."""
    global T5_CONFIG, DIT_CONFIG
    T5_CONFIG = dict(t5_config)
    DIT_CONFIG = dict(DIT_CONFIG, context_in_dim=T5_CONFIG["d_model"])
