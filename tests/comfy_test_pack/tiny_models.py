"""Tiny random-weight MODEL / CLIP / VAE built from ComfyUI's own classes (docs/testing.md).

Layouts keep the real block structure of each family with shrunken widths:
- sd15: 4 levels x 2 res blocks, attention on the first three levels and the middle (as SD1.5), context 64.
- sd2v: the same with linear projections, 64-wide heads, fp32 attention and v-prediction (SD2.x).
- sdxl: 3 levels x 2 res blocks, no attention on level 0, depth 1/2 (SDXL: 0/2/10), clip_l ⊕ clip_g context, ADM.
- dit:  a tiny AuraFlow MMDiT, a DiT no backend reaches, used to check that such models are refused.
- flux / sd3 / qwen_image / chroma / z_image / flux2: tiny joint-attention layouts (build_joint).
- wan: a tiny Wan 2.1 text-to-video model with its video VAE (build_wan).
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
    if layout == "dit":  # a DiT no backend of the pack reaches (AuraFlow's MMDiT): must be refused
        unet_config = {"in_channels": 4, "out_channels": 4, "patch_size": 2, "dim": 64, "n_layers": 2,
                       "n_double_layers": 1, "n_heads": 2, "global_conddim": 64, "cond_seq_dim": 64, "max_seq": 64}
        config = comfy.supported_models.AuraFlow(unet_config)
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


# ------------------------------------------------------------------------------------------------
# Transformer (joint-attention) layouts. Text encoders keep the real tokenizers ComfyUI ships (T5
# SentencePiece, CLIP BPE) with shrunken widths; the DiTs keep their block structure.

T5_TINY = {"d_ff": 128, "d_kv": 16, "d_model": 64, "num_heads": 4, "num_layers": 2, "vocab_size": 32128}

FLUX_CONFIGS = {
    # Flux.1-dev: guidance embedding, double + single blocks, 3-axis RoPE (axes sum to the head width).
    "flux": dict(image_model="flux", in_channels=16, out_channels=16, vec_in_dim=64, context_in_dim=64,
                 hidden_size=64, mlp_ratio=2.0, num_heads=2, depth=2, depth_single_blocks=2, axes_dim=[8, 12, 12],
                 theta=10000, patch_size=2, qkv_bias=True, guidance_embed=True, txt_ids_dims=[]),
}
# The benchmark layout: Flux's real widths (hidden 3072, 24 heads of 128) at reduced depth, random weights.
FLUX_CONFIGS["flux_full"] = dict(FLUX_CONFIGS["flux"], vec_in_dim=768, context_in_dim=4096, hidden_size=3072,
                                 mlp_ratio=4.0, num_heads=24, depth=2, depth_single_blocks=4, axes_dim=[16, 56, 56])


def build_flux_model(layout: str, seed: int = 0):
    import comfy.model_patcher
    import comfy.supported_models

    config = comfy.supported_models.Flux(dict(FLUX_CONFIGS[layout]))
    config.set_inference_dtype(torch.float32, None)
    base = config.get_model({}, "")
    init_weights(base, seed)
    with torch.no_grad():
        # trained Flux reads the prompt from T5's tokens; CLIP's pooled vector only nudges the modulation
        base.diffusion_model.vector_in.out_layer.weight.mul_(0.05)
        # QK-norm scales (RMSNorm "scale", not "weight": init_weights would leave them ~0.02, i.e. uniform
        # attention): peaked attention, as a trained model's, so that editing the maps shows in the image
        for name, p in base.named_parameters():
            if name.endswith("norm.scale"):
                p.fill_(2.5)
    device = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(base, load_device=device, offload_device=device)


def build_flux_clip(seed: int = 0, full_width: bool = False):
    """FluxClipModel (CLIP-L pooled + T5-XXL tokens) with tiny widths and ComfyUI's real tokenizers."""
    import comfy.sd
    import comfy.supported_models_base
    import comfy.text_encoders.flux

    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.flux.FluxTokenizer,
                                                    comfy.text_encoders.flux.flux_clip(dtype_t5=torch.float32))
    options = {"clip_l_model_config": CLIP_L, "t5xxl_model_config": T5_TINY}
    if full_width:
        options = {"clip_l_model_config": {"projection_dim": 768},
                   "t5xxl_model_config": dict(T5_TINY, d_model=4096, num_heads=64, d_kv=64)}
    clip = comfy.sd.CLIP(target, model_options=options)
    init_weights(clip.cond_stage_model, seed + 1)
    return clip


def build_flux_vae(seed: int = 0):
    """A 16-channel 8x VAE (Flux's latent format)."""
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencoderKL

    params = {"ddconfig": dict(VAE_PARAMS["ddconfig"], z_channels=16), "embed_dim": 16}
    ae = AutoencoderKL(**params)
    init_weights(ae, seed + 2)
    return comfy.sd.VAE(sd=ae.state_dict(), config={"params": params})


def build_sd3(seed: int = 0):
    """A tiny SD3 MMDiT (2 joint blocks, 64 wide) with SD3's three text encoders (CLIP-L, CLIP-G tiny; T5 one
    layer, but 4096 wide: SD3's encoder pads the CLIP features to 4096 to stack them with T5's tokens)."""
    import comfy.model_patcher
    import comfy.sd
    import comfy.supported_models
    import comfy.supported_models_base
    import comfy.text_encoders.sd3_clip

    unet_config = {"in_channels": 16, "pos_embed_scaling_factor": None, "input_size": None, "patch_size": 2,
                   "depth": 2, "adm_in_channels": 128, "context_embedder_config": {
                       "target": "torch.nn.Linear", "params": {"in_features": 4096, "out_features": 128}},
                   "pos_embed_max_size": 16, "num_patches": 256, "out_channels": 16, "qk_norm": "rms"}
    config = comfy.supported_models.SD3(unet_config)
    config.set_inference_dtype(torch.float32, None)
    base = config.get_model({}, "")
    init_weights(base, seed)
    with torch.no_grad():
        for name, p in base.named_parameters():
            if "ln_q" in name or "ln_k" in name:  # QK RMS-norm gains: peaked attention, as a trained model's
                p.fill_(2.5)
        g = torch.Generator().manual_seed(seed)
        for name, b in base.named_buffers():  # the positional table is an uninitialised buffer (torch.empty)
            if name.endswith("pos_embed"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.02)
    device = torch.device("cpu")
    model = comfy.model_patcher.ModelPatcher(base, load_device=device, offload_device=device)
    target = comfy.supported_models_base.ClipTarget(
        comfy.text_encoders.sd3_clip.SD3Tokenizer,
        comfy.text_encoders.sd3_clip.sd3_clip(clip_l=True, clip_g=True, t5=True, dtype_t5=torch.float32))
    clip = comfy.sd.CLIP(target, model_options={
        "clip_l_model_config": CLIP_L, "clip_g_model_config": CLIP_G,
        "t5xxl_model_config": {"d_ff": 64, "d_kv": 16, "d_model": 4096, "num_heads": 2, "num_layers": 1}})
    init_weights(clip.cond_stage_model, seed + 1)
    return model, clip, build_flux_vae(seed)


QWEN_TE = {"hidden_size": 256, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2,
           "num_key_value_heads": 1}  # head width stays Qwen2.5-VL's 128 (a class constant of its config)


def _tiny_qwen_text_encoder():
    """Qwen-Image's text encoder class (QwenImageTEModel: chat template, template trimming) over Qwen2.5-VL's
    language model alone: its vision tower (~670 M parameters) only serves image prompts."""
    import comfy.text_encoders.llama as llama
    import comfy.text_encoders.qwen_image as qwen_image
    from comfy import sd1_clip

    class LanguageModelOnly(llama.Qwen25_7BVLI):
        def __init__(self, config_dict, dtype, device, operations):
            torch.nn.Module.__init__(self)
            config = llama.Qwen25_7BVLI_Config(**config_dict)
            self.num_layers = config.num_hidden_layers
            self.model = llama.Llama2_(config, device=device, dtype=dtype, ops=operations)
            self.visual = None
            self.dtype = dtype

    class Encoder(qwen_image.Qwen25_7BVLIModel):
        def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
            sd1_clip.SDClipModel.__init__(self, device=device, textmodel_json_config={}, dtype=dtype,
                                          special_tokens={"pad": 151643}, layer_norm_hidden_state=False,
                                          model_class=LanguageModelOnly, enable_attention_masks=True,
                                          return_attention_masks=True, model_options=model_options)

    class TEModel(qwen_image.QwenImageTEModel):
        def __init__(self, device="cpu", dtype=None, model_options={}):
            sd1_clip.SD1ClipModel.__init__(self, device=device, dtype=dtype, name="qwen25_7b", clip_model=Encoder,
                                           model_options=model_options)

    return TEModel


def build_qwen_image(seed: int = 0):
    """A tiny Qwen-Image DiT (2 blocks, 2 heads of 32) with ComfyUI's Qwen-Image tokenizer and template."""
    import comfy.model_patcher
    import comfy.sd
    import comfy.supported_models
    import comfy.supported_models_base
    import comfy.text_encoders.qwen_image

    config = comfy.supported_models.QwenImage({
        "image_model": "qwen_image", "patch_size": 2, "in_channels": 64, "out_channels": 16, "num_layers": 2,
        "attention_head_dim": 32, "num_attention_heads": 2, "joint_attention_dim": QWEN_TE["hidden_size"],
        "axes_dims_rope": (8, 12, 12)})
    config.set_inference_dtype(torch.float32, None)
    base = config.get_model({}, "")
    init_weights(base, seed)
    with torch.no_grad():
        for name, p in base.named_parameters():
            if "norm_q" in name or "norm_k" in name or "norm_added_q" in name or "norm_added_k" in name:
                p.fill_(2.5)  # QK RMS-norm gains: peaked attention, as a trained model's
    device = torch.device("cpu")
    model = comfy.model_patcher.ModelPatcher(base, load_device=device, offload_device=device)
    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.qwen_image.QwenImageTokenizer,
                                                    _tiny_qwen_text_encoder())
    clip = comfy.sd.CLIP(target, model_options={"qwen25_7b_model_config": QWEN_TE})
    init_weights(clip.cond_stage_model, seed + 1)
    return model, clip, build_flux_vae(seed)


def _patcher(base):
    import comfy.model_patcher

    device = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(base, load_device=device, offload_device=device)


def _peaked_qk_norms(base, names: tuple[str, ...]) -> None:
    """QK RMS-norm gains at 2.5 (init_weights leaves RMSNorm "scale" ~0.02, i.e. uniform attention): peaked
    attention, as a trained model's, so that editing the maps shows in the image."""
    with torch.no_grad():
        for name, p in base.named_parameters():
            if any(n in name for n in names):
                p.fill_(2.5)


def _dit(config_class, unet_config: dict, qk_norms: tuple[str, ...], seed: int):
    """A diffusion model of ComfyUI's config class in fp32, seeded weights, peaked QK-norm gains."""
    config = config_class(unet_config)
    config.set_inference_dtype(torch.float32, None)
    base = config.get_model({}, "")
    init_weights(base, seed)
    _peaked_qk_norms(base, qk_norms)
    return base


def build_chroma(seed: int = 0):
    """A tiny Chroma (2 double + 2 single blocks, 64 wide; its modulation approximator shrunk to 64) with ComfyUI's
    PixArt T5 tokenizer (unpadded T5 + EOS)."""
    import comfy.sd
    import comfy.supported_models
    import comfy.supported_models_base
    import comfy.text_encoders.pixart_t5

    base = _dit(comfy.supported_models.Chroma, {
        "image_model": "chroma", "in_channels": 64, "out_channels": 64, "context_in_dim": T5_TINY["d_model"],
        "hidden_size": 64, "mlp_ratio": 2.0, "num_heads": 2, "depth": 2, "depth_single_blocks": 2,
        "axes_dim": [8, 12, 12], "theta": 10000, "patch_size": 2, "qkv_bias": True, "in_dim": 64, "out_dim": 64,
        "hidden_dim": 64, "n_layers": 2, "txt_ids_dims": [], "vec_in_dim": None}, ("norm.query_norm", "norm.key_norm"),
        seed)
    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.pixart_t5.PixArtTokenizer,
                                                    comfy.text_encoders.pixart_t5.pixart_te(dtype_t5=torch.float32))
    clip = comfy.sd.CLIP(target, model_options={"t5xxl_model_config": T5_TINY})
    init_weights(clip.cond_stage_model, seed + 1)
    return _patcher(base), clip, build_flux_vae(seed)


QWEN3_TE = {"hidden_size": 256, "intermediate_size": 256, "num_hidden_layers": 3, "num_attention_heads": 2,
            "num_key_value_heads": 1}  # head width stays Qwen3's 128 (a class constant of its config)


# The benchmark layouts: the real DiT widths at reduced depth (random weights), the tiny text encoders (the DiT's
# text projection takes their width). Z-Image: dim 3840, 30 heads of 128; Wan 2.1 1.3B: dim 1536, 12 heads, FFN 8960.
Z_IMAGE_FULL = {"dim": 3840, "n_heads": 30, "n_kv_heads": 30, "n_layers": 2, "n_refiner_layers": 1}
WAN_FULL = {"dim": 1536, "ffn_dim": 8960, "num_heads": 12, "num_layers": 3}


def build_z_image(seed: int = 0, full_width: bool = False):
    """A tiny Z-Image NextDiT (2 main layers, 1 context and 1 noise refiner layer, 2 heads of 128: Z-Image's
    modulation needs dim >= 256) with text padded to a multiple of 32, and ComfyUI's Z-Image tokenizer (Qwen3,
    untrimmed chat template) over a tiny Qwen3."""
    import comfy.sd
    import comfy.supported_models
    import comfy.supported_models_base
    import comfy.text_encoders.z_image

    base = _dit(comfy.supported_models.ZImage, {
        "image_model": "lumina2", "patch_size": 2, "in_channels": 16, "dim": 256, "n_layers": 2,
        "n_refiner_layers": 1, "n_heads": 2, "n_kv_heads": 2, "qk_norm": True, "cap_feat_dim": QWEN3_TE["hidden_size"],
        "axes_dims": [32, 48, 48], "axes_lens": [1536, 512, 512], "rope_theta": 256.0, "z_image_modulation": True,
        "time_scale": 1000.0, "ffn_dim_multiplier": 8.0 / 3.0, "pad_tokens_multiple": 32,
        **(Z_IMAGE_FULL if full_width else {})}, ("q_norm", "k_norm"), seed)
    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.z_image.ZImageTokenizer,
                                                    comfy.text_encoders.z_image.te())
    clip = comfy.sd.CLIP(target, model_options={"qwen3_4b_model_config": QWEN3_TE})
    init_weights(clip.cond_stage_model, seed + 1)
    return _patcher(base), clip, build_flux_vae(seed)


UMT5_TINY = dict(T5_TINY, vocab_size=32000)  # the Pile-T5 SentencePiece vocabulary stands in for UMT5's


def build_wan_vae(seed: int = 0):
    """ComfyUI's Wan 2.1 video VAE (16 channels, 8x spatial, 4x temporal) at width 8, detected from its state dict
    by comfy.sd.VAE as a real file would be."""
    import comfy.sd
    from comfy.ldm.wan.vae import WanVAE

    vae = WanVAE(dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                 temperal_downsample=[False, True, True])
    init_weights(vae, seed + 2)
    return comfy.sd.VAE(sd=vae.state_dict())


def build_wan(seed: int = 0, image_to_video: bool = False, full_width: bool = False):
    """A tiny Wan 2.1 (2 blocks, 2 heads of 32; T2V, or I2V with its image cross-attention) with ComfyUI's Wan text
    encoder classes: WanT5Tokenizer reading a SentencePiece model from the tokenizer data as it reads UMT5's from
    a real text-encoder file (here Pile-T5's, which ComfyUI ships), padded to 512, over a tiny UMT5."""
    import comfy.sd
    import comfy.supported_models
    import comfy.supported_models_base
    import comfy.text_encoders.wan
    import os

    config_class = comfy.supported_models.WAN21_I2V if image_to_video else comfy.supported_models.WAN21_T2V
    base = _dit(config_class, {
        "image_model": "wan2.1", "model_type": "i2v" if image_to_video else "t2v", "patch_size": (1, 2, 2),
        "text_len": 512, "in_dim": 36 if image_to_video else 16, "dim": 64, "ffn_dim": 128, "freq_dim": 256,
        "text_dim": UMT5_TINY["d_model"], "out_dim": 16, "num_heads": 2, "num_layers": 2, "eps": 1e-6,
        **(WAN_FULL if full_width else {})}, ("norm_q", "norm_k"), seed)
    spiece = os.path.join(os.path.dirname(comfy.text_encoders.wan.__file__), "t5_pile_tokenizer", "tokenizer.model")
    with open(spiece, "rb") as f:
        tokenizer_data = {"spiece_model": f.read()}
    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.wan.WanT5Tokenizer,
                                                    comfy.text_encoders.wan.te(dtype_t5=torch.float32))
    clip = comfy.sd.CLIP(target, tokenizer_data=tokenizer_data, model_options={"umt5xxl_model_config": UMT5_TINY})
    init_weights(clip.cond_stage_model, seed + 1)
    return _patcher(base), clip, build_wan_vae(seed)


# Flux.2's tokenizer reads a Mistral "tekken" vocabulary from the text-encoder file. Tests take a real one from the
# mistral-common wheel (scripts/env.sh downloads it, no install) and give it the v7 layout of Flux.2's file: a list
# of 1000 special tokens, the first 20 named as Mistral's.
MISTRAL_COMMON_WHEEL = "mistral_common-1.13.1-py3-none-any.whl"
MISTRAL_SPECIALS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                    "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]",
                    "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]"]
MISTRAL_TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 30, "num_attention_heads": 2,
                "num_key_value_heads": 1}  # 30 layers: Flux.2 stacks the outputs of layers 10, 20 and 30


def tekken_file() -> "Path | None":
    import sys
    from pathlib import Path

    path = Path(sys.prefix) / "share" / "attn-edit" / MISTRAL_COMMON_WHEEL
    return path if path.is_file() else None


def tekken_v7() -> bytes:
    """mistral-common's tekken_240911.json (131072 ids, v3 layout) with the special-token list Flux.2's file has."""
    import json
    import zipfile

    path = tekken_file()
    if path is None:
        raise FileNotFoundError(f"{MISTRAL_COMMON_WHEEL} is not in the venv's share/attn-edit (scripts/env.sh)")
    data = json.loads(zipfile.ZipFile(path).read("mistral_common/data/tekken_240911.json"))
    names = MISTRAL_SPECIALS + [f"<SPECIAL_{i}>" for i in range(len(MISTRAL_SPECIALS), 1000)]
    data["special_tokens"] = [{"rank": i, "token_str": name, "is_control": True} for i, name in enumerate(names)]
    return json.dumps(data).encode()


# The benchmark layout: Flux.2-dev's real widths (hidden 6144, 48 heads of 128) at reduced depth, random weights.
FLUX2_FULL = {"hidden_size": 6144, "num_heads": 48, "axes_dim": [32, 32, 32, 32], "depth": 1, "depth_single_blocks": 2}


def build_flux2(seed: int = 0, full_width: bool = False):
    """A tiny Flux.2 (2 double + 2 single blocks, 128 wide, 128 latent channels, patch 1) with ComfyUI's Flux.2
    text-encoder classes over a 30-layer, 64-wide Mistral and a real tekken vocabulary, and a Flux.2 VAE (ComfyUI's
    default widths, random weights: the latent's batch norm makes it Flux.2's 128 channels)."""
    import comfy.sd
    import comfy.supported_models
    import comfy.supported_models_base
    import comfy.text_encoders.flux
    from comfy.ldm.models.autoencoder import AutoencoderKL

    base = _dit(comfy.supported_models.Flux2, {
        "image_model": "flux2", "in_channels": 128, "out_channels": 128, "vec_in_dim": None,
        "context_in_dim": 3 * MISTRAL_TINY["hidden_size"], "hidden_size": 128, "mlp_ratio": 3.0, "num_heads": 2,
        "depth": 2, "depth_single_blocks": 2, "axes_dim": [16, 16, 16, 16], "theta": 2000, "patch_size": 1,
        "qkv_bias": False, "guidance_embed": True, "txt_ids_dims": [3], "global_modulation": True,
        "mlp_silu_act": True, "ops_bias": False, "default_ref_method": "index", "ref_index_scale": 10.0,
        **(FLUX2_FULL if full_width else {})}, ("norm.query_norm", "norm.key_norm"), seed)
    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.flux.Flux2Tokenizer,
                                                    comfy.text_encoders.flux.flux2_te())
    clip = comfy.sd.CLIP(target, tokenizer_data={"tekken_model": tekken_v7()},
                         model_options={"mistral3_24b_model_config": MISTRAL_TINY})
    init_weights(clip.cond_stage_model, seed + 1)
    ddconfig = {"double_z": True, "z_channels": 32, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 32,
                "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
                "batch_norm_latent": True}
    vae = AutoencoderKL(ddconfig=ddconfig, embed_dim=32)
    init_weights(vae, seed + 2)
    decoder = comfy.sd.VAE(sd=vae.state_dict(), config={"params": {"ddconfig": ddconfig, "embed_dim": 32}})
    # what comfy.sd.VAE's own detection sets for a latent batch norm (the 'bn.running_mean' branch): 2x2 patches
    decoder.latent_channels, decoder.downscale_ratio, decoder.upscale_ratio = 4 * 32, 16, 16
    return _patcher(base), clip, decoder


JOINT_LAYOUTS = ("flux", "sd3", "qwen_image", "chroma", "z_image", "flux2")
VIDEO_LAYOUTS = ("wan",)


def build_joint(layout: str, seed: int = 0):
    """(MODEL, CLIP, VAE) of a tiny joint-attention layout."""
    if layout == "flux":
        return build_flux_model("flux", seed), build_flux_clip(seed), build_flux_vae(seed)
    builders = {"sd3": build_sd3, "qwen_image": build_qwen_image, "chroma": build_chroma, "z_image": build_z_image,
                "wan": build_wan, "flux2": build_flux2}
    if layout in builders:
        return builders[layout](seed)
    raise ValueError(f"unknown joint layout {layout!r}")
