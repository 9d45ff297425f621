"""The example workflows, written once as API-format graphs and rendered to both formats:

- example_workflows/<title>.json  ComfyUI UI format (what the template browser lists, by file name, and the
                                  editor opens), with a thumbnail <title>.jpg (scripts/run_examples.py --thumbnails)
- workflows/api/<name>.json       API format (what /prompt and headless scripts take; the tests execute these)

Run `python scripts/workflows.py` after changing a spec (it boots ComfyUI from $COMFYUI_PATH to read the
node definitions); a test checks the committed files are what this script produces.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UI_DIR = "example_workflows"  # the folder ComfyUI's template browser lists a pack's workflows from
CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
NEGATIVE = "blurry, low quality, deformed"
BLIP_FOLDER = "blip-image-captioning-base"  # models/blip/<this>: Salesforce/blip-image-captioning-base


def _loader():
    return {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}}


def _sampler(model, positive, latent, seed=8888, steps=50, cfg=7.5, sampler="euler", scheduler="ddim_uniform"):
    return {"class_type": "KSampler", "inputs": {
        "model": model, "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler, "scheduler": scheduler,
        "positive": positive, "negative": ["4", 0], "latent_image": latent, "denoise": 1.0}}


def _p2p(node, extra, width=512, height=512, title="p2p"):
    """Loader -> P2P node -> KSampler -> VAEDecode -> SaveImage (row 0 source, rows 1.. edits)."""
    return {
        "1": _loader(),
        "2": {"class_type": node, "inputs": {"model": ["1", 0], "clip": ["1", 1], "latent": ["3", 0], **extra}},
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": NEGATIVE}},
        "5": _sampler(["2", 0], ["2", 1], ["2", 2]),
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": f"attn_edit/{title}"}},
    }


def _real_image(inversion: dict, p2p_model, sampler_model, sigmas, x_T, cfg, negative, title):
    """LoadImage -> VAEEncode -> caption -> <inversion> -> P2P word swap -> SamplerCustom (add_noise off)."""
    return {
        "1": _loader(),
        "20": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "21": {"class_type": "VAEEncode", "inputs": {"pixels": ["20", 0], "vae": ["1", 2]}},
        "22": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a photo of a cat"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "23": inversion,
        "2": {"class_type": "AttnEdit_P2PReplace", "inputs": {
            "model": p2p_model, "clip": ["1", 1], "latent": x_T, "source_prompt": "a photo of a cat",
            "target_prompts": "a photo of a dog", "cross_replace": 0.8, "self_replace": 0.5, "word_schedule": "",
            "reweight": "", "blend_words": "", "blend_threshold": 0.3, "blend_start": 0.2}},
        "24": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "5": {"class_type": "SamplerCustom", "inputs": {
            "model": ["2", 0], "add_noise": False, "noise_seed": 0, "cfg": cfg, "positive": ["2", 1],
            "negative": negative, "sampler": ["24", 0], "sigmas": sigmas, "latent_image": ["2", 2]}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": f"attn_edit/{title}"}},
    }


def _regularized_inversion(lambda_ac, lambda_kl):
    return {"class_type": "AttnEdit_DDIMInvertRegularized", "inputs": {
        "model": ["1", 0], "latent": ["21", 0], "positive": ["22", 0], "steps": 50, "lambda_ac": lambda_ac,
        "lambda_kl": lambda_kl, "reg_steps": 5, "ac_rolls": 5, "cfg": 1.0, "scheduler": "ddim_uniform", "seed": 0}}


SPECS = {
    "p2p_word_swap": _p2p("AttnEdit_P2PReplace", {
        "source_prompt": "a cat sitting next to a mirror",
        "target_prompts": "a tiger sitting next to a mirror\na lion sitting next to a mirror",
        "cross_replace": 0.8, "self_replace": 0.4, "word_schedule": "", "reweight": "", "blend_words": "",
        "blend_threshold": 0.3, "blend_start": 0.0}, title="word_swap"),
    "p2p_refine": _p2p("AttnEdit_P2PRefine", {
        "source_prompt": "a photo of a house on a mountain",
        "target_prompts": "a photo of a house on a mountain at winter\na photo of a house on a mountain at fall",
        "cross_replace": 0.8, "self_replace": 0.4, "word_schedule": "", "reweight": "", "blend_words": "",
        "blend_threshold": 0.3, "blend_start": 0.0}, title="refine"),
    "p2p_reweight": _p2p("AttnEdit_P2PReweight", {
        "prompt": "a smiling bunny doll", "reweight": "smiling: 5", "cross_replace": 0.8, "self_replace": 0.4,
        "word_schedule": "", "blend_words": "", "blend_threshold": 0.3, "blend_start": 0.0}, title="reweight"),
    "p2p_local_blend": _p2p("AttnEdit_P2PReplace", {
        "source_prompt": "a painting of a squirrel eating a burger",
        "target_prompts": "a painting of a lion eating a burger\na painting of a cat eating a burger",
        "cross_replace": 0.8, "self_replace": 0.4, "word_schedule": "", "reweight": "",
        "blend_words": "squirrel | lion, cat", "blend_threshold": 0.3, "blend_start": 0.0},
        title="local_blend"),
    # Real images. Null-text: the returned MODEL carries the optimised null text; sample at its cfg.
    "real_p2p_null_text": _real_image(
        {"class_type": "AttnEdit_NullTextInversion", "inputs": {
            "model": ["1", 0], "latent": ["21", 0], "positive": ["22", 0], "negative": ["4", 0], "steps": 50,
            "cfg": 7.5, "inner_steps": 10, "early_stop": 1e-5, "scheduler": "ddim_uniform", "learning_rate": 0.01}},
        p2p_model=["23", 0], sampler_model=["2", 0], sigmas=["23", 2], x_T=["23", 1], cfg=7.5, negative=["4", 0],
        title="real_null_text"),
    # Direct Inversion (Ju et al., PnP Inversion): plain DDIM inversion that records its trajectory; the returned MODEL
    # keeps the source row exactly on it, so the sampling cfg is free. Sample with euler/ddim, add_noise off.
    "real_p2p_direct_inversion": _real_image(
        {"class_type": "AttnEdit_DirectInversion", "inputs": {
            "model": ["1", 0], "latent": ["21", 0], "positive": ["22", 0], "steps": 50, "cfg": 1.0,
            "scheduler": "ddim_uniform"}},
        p2p_model=["23", 0], sampler_model=["2", 0], sigmas=["23", 2], x_T=["23", 1], cfg=7.5, negative=["4", 0],
        title="real_direct_inversion"),
    # Negative-prompt inversion (Miyake et al.): plain DDIM inversion, then the caption as the negative prompt.
    "real_p2p_negative_prompt": _real_image(
        _regularized_inversion(0.0, 0.0), p2p_model=["1", 0], sampler_model=["2", 0], sigmas=["23", 1],
        x_T=["23", 0], cfg=7.5, negative=["22", 0], title="real_negative_prompt"),
    # pix2pix-zero's regularized inversion; edited with guidance 5 and the caption as negative (edit_real.py).
    "real_p2p_regularized_ddim": _real_image(
        _regularized_inversion(20.0, 20.0), p2p_model=["1", 0], sampler_model=["2", 0], sigmas=["23", 1],
        x_T=["23", 0], cfg=5.0, negative=["22", 0], title="real_regularized_ddim"),
    # pix2pix-zero on a real image: BLIP caption -> regularized inversion -> cat->dog direction -> guided sampling
    "pix2pix_zero_real": {
        "1": _loader(),
        "20": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "21": {"class_type": "VAEEncode", "inputs": {"pixels": ["20", 0], "vae": ["1", 2]}},
        "40": {"class_type": "AttnEdit_BLIPCaption", "inputs": {
            "image": ["20", 0], "blip_model": BLIP_FOLDER, "prefix": "", "max_new_tokens": 30}},
        "22": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ["40", 0]}},
        "23": {"class_type": "AttnEdit_DDIMInvertRegularized", "inputs": {
            "model": ["1", 0], "latent": ["21", 0], "positive": ["22", 0], "steps": 50, "lambda_ac": 20.0,
            "lambda_kl": 20.0, "reg_steps": 5, "ac_rolls": 5, "cfg": 1.0, "scheduler": "ddim_uniform", "seed": 0}},
        "41": {"class_type": "AttnEdit_EditDirection", "inputs": {"clip": ["1", 1], "source": "cat", "target": "dog"}},
        "42": {"class_type": "AttnEdit_ApplyEditDirection", "inputs": {
            "conditioning": ["22", 0], "edit_direction": ["41", 0], "strength": 1.0}},
        "30": {"class_type": "AttnEdit_CrossAttnGuidedSampler", "inputs": {
            "model": ["1", 0], "positive": ["22", 0], "edit_positive": ["42", 0], "negative": ["22", 0],
            "latent": ["23", 0], "sigmas": ["23", 1], "steps": 50, "scheduler": "ddim_uniform", "cfg": 5.0,
            "xa_guidance": 0.1, "mode": "real image (latent = inverted x_T)", "seed": 0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["30", 0], "vae": ["1", 2]}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["30", 1], "vae": ["1", 2]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "attn_edit/p2pzero_edit"}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "attn_edit/p2pzero_rec"}},
    },
    # pix2pix-zero on a generated image (official edit_synthetic.py: xa 0.15, guidance 5, empty negative)
    "pix2pix_zero_synthetic": {
        "1": _loader(),
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "22": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a photo of a cat on a sofa"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "41": {"class_type": "AttnEdit_EditDirection", "inputs": {"clip": ["1", 1], "source": "cat", "target": "dog"}},
        "42": {"class_type": "AttnEdit_ApplyEditDirection", "inputs": {
            "conditioning": ["22", 0], "edit_direction": ["41", 0], "strength": 1.0}},
        "43": {"class_type": "AttnEdit_SaveEditDirection", "inputs": {"edit_direction": ["41", 0], "name": "cat_to_dog"}},
        "30": {"class_type": "AttnEdit_CrossAttnGuidedSampler", "inputs": {
            "model": ["1", 0], "positive": ["22", 0], "edit_positive": ["42", 0], "negative": ["4", 0],
            "latent": ["3", 0], "steps": 50, "scheduler": "ddim_uniform", "cfg": 5.0, "xa_guidance": 0.15,
            "mode": "synthetic (latent = empty, seeded noise)", "seed": 0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["30", 0], "vae": ["1", 2]}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["30", 1], "vae": ["1", 2]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "attn_edit/p2pzero_syn_edit"}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "attn_edit/p2pzero_syn_rec"}},
    },
    "p2p_attention_maps": {
        "1": _loader(),
        "2": {"class_type": "AttnEdit_AttentionMaps", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "latent": ["3", 0], "vae": ["1", 2],
            "prompt": "a cute teddy bear sitting on a wooden bench", "negative": NEGATIVE, "seed": 8888,
            "steps": 50, "cfg": 7.5, "sampler_name": "euler", "scheduler": "ddim_uniform",
            "resolution": "latent/4 (P2P)", "tile_size": 128, "columns": 8}},
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 1], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "attn_edit/maps_image"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "attn_edit/maps"}},
    },
}


# ---- The demo model (AttnEdit_DemoModelLoader): 128 px, 20 steps, seconds on a CPU.
DEMO_STEPS, DEMO_CFG, DEMO_SEED = 20, 7.5, 1
# Null-text on the demo model, sized for the demo's time budget: 10 DDIM steps, 5 inner steps (the official code
# runs up to 10 at 50 steps, stopping early below 1e-5) and lr 0.3, since its 64-wide text encoder barely moves at
# the paper's 0.01. Reconstruction PSNR on 4 drawn scenes (benchmarks/quality.py inversion): 27.2 dB in 9 s per
# image, against 27.9 dB with 10 inner steps (16 s), 17.2 dB at lr 0.01, 16.8 dB for plain DDIM at cfg 7.5 and
# 28.4 dB for the VAE round trip alone.
DEMO_NULL_TEXT = {"steps": 10, "inner_steps": 5, "early_stop": 1e-5, "learning_rate": 0.3}
DEMO_P2P = {"cross_replace": 0.8, "self_replace": 0.4, "word_schedule": "", "reweight": "", "blend_words": "",
            "blend_threshold": 0.3, "blend_start": 0.0}


def _demo_p2p(node, extra, title):
    api = _p2p(node, {**DEMO_P2P, **extra}, width=128, height=128, title=f"demo/{title}")
    api["1"] = {"class_type": "AttnEdit_DemoModelLoader", "inputs": {"architecture": "unet"}}
    api["4"]["inputs"]["text"] = ""
    api["5"]["inputs"].update(seed=DEMO_SEED, steps=DEMO_STEPS, cfg=DEMO_CFG)
    return api


def _demo_real(caption, inversion, edit, title):
    """Draw a scene (never seen in training) -> VAEEncode -> <inversion> -> P2P word swap -> SamplerCustom."""
    api = _real_image(inversion, p2p_model=["23", 0], sampler_model=["2", 0], sigmas=["23", 2], x_T=["23", 1],
                      cfg=DEMO_CFG, negative=["4", 0], title=f"demo/{title}")
    api["1"] = {"class_type": "AttnEdit_DemoModelLoader", "inputs": {"architecture": "unet"}}
    api["20"] = {"class_type": "AttnEdit_DemoSceneImage", "inputs": {"caption": caption, "seed": 3, "size": 128}}
    api["22"]["inputs"]["text"] = ["20", 1]
    api["2"]["inputs"].update(source_prompt=caption, target_prompts=edit, **{
        k: v for k, v in DEMO_P2P.items() if k not in ("word_schedule", "reweight", "blend_words")})
    api["8"] = {"class_type": "SaveImage", "inputs": {"images": ["20", 0], "filename_prefix": f"demo/{title}_input"}}
    return api


DEMO_SPECS = {
    "demo_shape_swap": _demo_p2p("AttnEdit_P2PReplace", {
        "source_prompt": "a large red circle on a gray background",
        "target_prompts": "a large red square on a gray background\na large red triangle on a gray background"},
        "shape_swap"),
    "demo_colour_swap": _demo_p2p("AttnEdit_P2PReplace", {
        "source_prompt": "a large red circle on a white background",
        "target_prompts": "a large blue circle on a white background\na large green circle on a white background"},
        "colour_swap"),
    "demo_refine": _demo_p2p("AttnEdit_P2PRefine", {
        "source_prompt": "a square on a black background",
        "target_prompts": "a yellow square on a black background\na small pink square on a black background"},
        "refine"),
    "demo_reweight": _demo_p2p("AttnEdit_P2PReweight", {
        "prompt": "a large orange diamond on a white background", "reweight": "orange: -2"}, "reweight"),
    "demo_local_blend": _demo_p2p("AttnEdit_P2PReplace", {
        "source_prompt": "a large red circle and a small blue square on a gray background",
        "target_prompts": "a large red triangle and a small blue square on a gray background",
        "blend_words": "circle | triangle", "blend_resolution": "latent/2"}, "local_blend"),
    "demo_real_null_text": _demo_real(
        "a large green circle on a white background",
        {"class_type": "AttnEdit_NullTextInversion", "inputs": {
            "model": ["1", 0], "latent": ["21", 0], "positive": ["22", 0], "negative": ["4", 0],
            "cfg": DEMO_CFG, "scheduler": "ddim_uniform", **DEMO_NULL_TEXT}},
        "a large green square on a white background", "real_null_text"),
    "demo_real_direct_inversion": _demo_real(
        "a large orange square on a black background",
        {"class_type": "AttnEdit_DirectInversion", "inputs": {
            "model": ["1", 0], "latent": ["21", 0], "positive": ["22", 0], "steps": DEMO_STEPS, "cfg": 1.0,
            "scheduler": "ddim_uniform"}},
        "a large orange circle on a black background", "real_direct_inversion"),
    "demo_pix2pix_zero": {
        "1": {"class_type": "AttnEdit_DemoModelLoader", "inputs": {"architecture": "unet"}},
        "20": {"class_type": "AttnEdit_DemoSceneImage", "inputs": {
            "caption": "a large purple circle on a gray background", "seed": 5, "size": 128}},
        "21": {"class_type": "VAEEncode", "inputs": {"pixels": ["20", 0], "vae": ["1", 2]}},
        "22": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ["20", 1]}},
        "23": {"class_type": "AttnEdit_DDIMInvertRegularized", "inputs": {
            "model": ["1", 0], "latent": ["21", 0], "positive": ["22", 0], "steps": DEMO_STEPS, "lambda_ac": 20.0,
            "lambda_kl": 20.0, "reg_steps": 5, "ac_rolls": 5, "cfg": 1.0, "scheduler": "ddim_uniform", "seed": 0}},
        "41": {"class_type": "AttnEdit_EditDirection", "inputs": {"clip": ["1", 1], "source": "circle",
                                                                  "target": "square"}},
        "42": {"class_type": "AttnEdit_ApplyEditDirection", "inputs": {
            "conditioning": ["22", 0], "edit_direction": ["41", 0], "strength": 1.0}},
        "30": {"class_type": "AttnEdit_CrossAttnGuidedSampler", "inputs": {
            "model": ["1", 0], "positive": ["22", 0], "edit_positive": ["42", 0], "negative": ["22", 0],
            "latent": ["23", 0], "sigmas": ["23", 1], "steps": DEMO_STEPS, "scheduler": "ddim_uniform", "cfg": 5.0,
            "xa_guidance": 0.1, "mode": "real image (latent = inverted x_T)", "seed": 0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["30", 0], "vae": ["1", 2]}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["30", 1], "vae": ["1", 2]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["20", 0], "filename_prefix": "demo/p2pzero_input"}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "demo/p2pzero_rec"}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "demo/p2pzero_edit"}},
    },
}

# ---- The demo DiT (the loader's architecture 'dit'): Flux's architecture at 128 px, rectified flow sampled as Flux
# is (euler / simple) but with real classifier-free guidance and an empty negative, as it was trained.
DEMO_DIT_CFG = 5.0
DEMO_DIT_BLEND_THRESHOLD = 0.5
# pix2pix-zero's cross-attention guidance on joint attention (the output maps of joint_maps.py)
DIT_XA_GUIDANCE = 0.1


def _demo_dit(name: str) -> dict:
    """The UNet demo workflow `name` on the demo DiT."""
    api = json.loads(json.dumps(DEMO_SPECS[name]))
    api["1"]["inputs"] = {"architecture": "dit"}
    api["3"] = {"class_type": "EmptySD3LatentImage", "inputs": {"width": 128, "height": 128, "batch_size": 1}}
    api["5"]["inputs"].update(cfg=DEMO_DIT_CFG, scheduler="simple")
    api["2"]["inputs"].pop("blend_resolution", None)  # one joint grid: the maps' resolution is not a choice
    if api["2"]["inputs"].get("blend_words"):  # the output maps' mask: 43 % of the image at 0.5, 60 % at 0.3
        api["2"]["inputs"]["blend_threshold"] = DEMO_DIT_BLEND_THRESHOLD
    api["7"]["inputs"]["filename_prefix"] = api["7"]["inputs"]["filename_prefix"].replace("demo/", "demo/dit_")
    return api


DEMO_DIT_SPECS = {f"demo_dit_{n[len('demo_'):]}": _demo_dit(n) for n in (
    "demo_shape_swap", "demo_colour_swap", "demo_refine", "demo_reweight", "demo_local_blend")}

def _demo_dit_real(name: str) -> dict:
    """The UNet demo's real-image workflow `name` on the demo DiT (flow schedule, its cfg)."""
    api = json.loads(json.dumps(DEMO_SPECS[name]))
    api["1"]["inputs"] = {"architecture": "dit"}
    api["23"]["inputs"]["scheduler"] = "simple"
    api["5"]["inputs"]["cfg"] = DEMO_DIT_CFG
    for node in ("7", "8"):
        api[node]["inputs"]["filename_prefix"] = api[node]["inputs"]["filename_prefix"].replace("demo/", "demo/dit_")
    return api


DEMO_DIT_SPECS["demo_dit_real_direct_inversion"] = _demo_dit_real("demo_real_direct_inversion")
# pix2pix-zero on the demo DiT: the UNet demo's graph with the regularized flow inversion (Euler, as the guided sampler
# steps) in place of DDIM inversion.
DEMO_DIT_SPECS["demo_dit_pix2pix_zero"] = json.loads(json.dumps(DEMO_SPECS["demo_pix2pix_zero"]))
_p2pz = DEMO_DIT_SPECS["demo_dit_pix2pix_zero"]
_p2pz["1"]["inputs"] = {"architecture": "dit"}
_p2pz["23"] = {"class_type": "AttnEdit_FlowInversion", "inputs": {
    "model": ["1", 0], "latent": ["21", 0], "positive": ["22", 0], "steps": DEMO_STEPS, "solver": "euler", "cfg": 1.0,
    "scheduler": "simple", "lambda_ac": 20.0, "lambda_kl": 20.0, "reg_steps": 5, "ac_rolls": 5, "seed": 0}}
_p2pz["30"]["inputs"].update(scheduler="simple", cfg=DEMO_DIT_CFG, xa_guidance=DIT_XA_GUIDANCE)
for _node in ("8", "9", "10"):
    _p2pz[_node]["inputs"]["filename_prefix"] = _p2pz[_node]["inputs"]["filename_prefix"].replace("demo/", "demo/dit_")
# FlowEdit on a drawn scene: no inversion; the shape word changes.
DEMO_DIT_FLOW_EDIT = {"steps": DEMO_STEPS, "n_max": 15, "n_min": 0, "n_avg": 1, "source_cfg": 3.0, "target_cfg": 7.0}
DEMO_DIT_SPECS["demo_dit_flow_edit"] = {
    "1": {"class_type": "AttnEdit_DemoModelLoader", "inputs": {"architecture": "dit"}},
    "20": {"class_type": "AttnEdit_DemoSceneImage", "inputs": {
        "caption": "a large orange square on a black background", "seed": 3, "size": 128}},
    "21": {"class_type": "VAEEncode", "inputs": {"pixels": ["20", 0], "vae": ["1", 2]}},
    "22": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ["20", 1]}},
    "25": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1],
                                                      "text": "a large orange circle on a black background"}},
    "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
    "5": {"class_type": "AttnEdit_FlowEdit", "inputs": {
        "model": ["1", 0], "latent": ["21", 0], "source": ["22", 0], "target": ["25", 0], **DEMO_DIT_FLOW_EDIT,
        "seed": 0, "negative": ["4", 0], "scheduler": "simple"}},
    "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
    "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "demo/dit_flow_edit"}},
    "8": {"class_type": "SaveImage", "inputs": {"images": ["20", 0], "filename_prefix": "demo/dit_flow_edit_input"}},
}
DEMO_DIT_SPECS["demo_dit_attention_maps"] = {
    "1": {"class_type": "AttnEdit_DemoModelLoader", "inputs": {"architecture": "dit"}},
    "2": {"class_type": "AttnEdit_AttentionMaps", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "latent": ["3", 0], "vae": ["1", 2],
        "prompt": "a large red circle and a small blue square on a gray background", "negative": "",
        "seed": DEMO_SEED, "steps": DEMO_STEPS, "cfg": DEMO_DIT_CFG, "sampler_name": "euler", "scheduler": "simple",
        "resolution": "all", "tile_size": 128, "columns": 6}},
    "3": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 128, "height": 128, "batch_size": 1}},
    "6": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 1], "vae": ["1", 2]}},
    "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "demo/dit_maps_image"}},
    "8": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "demo/dit_maps"}},
}


def _word_mask_edit(api: dict, clip, vae, prompt: str, target: str, word: str, sampling: dict, title: str) -> dict:
    """Attention maps of the source prompt -> the edited word's map as a MASK (ThresholdMask makes it a region,
    GrowMask widens it a little) -> P2P word swap restricted to it -> sampler: the rest stays the source's."""
    api = json.loads(json.dumps(api))
    api.update({
        "20": {"class_type": "AttnEdit_AttentionMaps", "inputs": {
            "model": ["1", 0], "clip": clip, "latent": ["3", 0], "vae": vae, "prompt": prompt, "negative": "",
            "seed": sampling["seed"], "steps": sampling["steps"], "cfg": sampling["cfg"], "sampler_name": "euler",
            "scheduler": sampling["scheduler"], "resolution": "all", "tile_size": 128, "columns": 6,
            "mask_words": word}},
        "23": {"class_type": "ThresholdMask", "inputs": {"mask": ["20", 2], "value": 0.3}},
        "21": {"class_type": "GrowMask", "inputs": {"mask": ["23", 0], "expand": sampling["grow"],
                                                    "tapered_corners": True}},
        "22": {"class_type": "MaskToImage", "inputs": {"mask": ["21", 0]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["22", 0], "filename_prefix": f"{title}_mask"}},
    })
    api["2"]["inputs"].update(source_prompt=prompt, target_prompts=target, mask=["21", 0])
    api["7"]["inputs"]["filename_prefix"] = title
    return api


DEMO_DIT_SPECS["demo_dit_word_mask"] = _word_mask_edit(
    DEMO_DIT_SPECS["demo_dit_shape_swap"], ["1", 1], ["1", 2],
    "a large red circle and a small blue square on a gray background",
    "a large pink circle and a small blue square on a gray background", "red, circle",
    {"seed": DEMO_SEED, "steps": DEMO_STEPS, "cfg": DEMO_DIT_CFG, "scheduler": "simple", "grow": 2},
    "demo/dit_word_mask")
DEMO_SPECS.update(DEMO_DIT_SPECS)
SPECS.update(DEMO_SPECS)

# ---- Transformer (joint-attention) models with ComfyUI's stock loaders.
DIT_LOADERS = {
    "flux": {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors",
                                                           "weight_dtype": "default"}},
             "11": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors",
                                                               "clip_name2": "t5xxl_fp16.safetensors",
                                                               "type": "flux"}},
             "12": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}}},
    "flux_checkpoint": {"1": {"class_type": "CheckpointLoaderSimple",
                              "inputs": {"ckpt_name": "flux1-dev-fp8.safetensors"}}},
    "sd3": {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd3.5_medium.safetensors"}}},
    "qwen_image": {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "qwen_image_fp8_e4m3fn.safetensors",
                                                                 "weight_dtype": "default"}},
                   "11": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors",
                                                                 "type": "qwen_image"}},
                   "12": {"class_type": "VAELoader", "inputs": {"vae_name": "qwen_image_vae.safetensors"}}},
    "flux2": {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux2_dev_fp8mixed.safetensors",
                                                            "weight_dtype": "default"}},
              "11": {"class_type": "CLIPLoader", "inputs": {"clip_name": "mistral_3_small_flux2_fp8.safetensors",
                                                            "type": "flux2"}},
              "12": {"class_type": "VAELoader", "inputs": {"vae_name": "flux2-vae.safetensors"}}},
    "chroma": {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "Chroma1-HD.safetensors",
                                                             "weight_dtype": "default"}},
               "11": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5xxl_fp16.safetensors", "type": "chroma"}},
               "12": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}}},
    "z_image": {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "z_image_turbo_bf16.safetensors",
                                                              "weight_dtype": "default"}},
                "11": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_3_4b.safetensors", "type": "lumina2"}},
                "12": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}}},
}
# Sampling as each family's ComfyUI example workflow: Flux.1-dev guidance-distilled (cfg 1, FluxGuidance 3.5),
# SD3.5 cfg 4.5 with a negative, Qwen-Image cfg 2.5 (its shift is set by the model's sampling settings), Chroma (not
# distilled) cfg 4 with a negative, Z-Image Turbo (distilled) 9 steps at cfg 1.
DIT_SAMPLING = {"flux": dict(steps=20, cfg=1.0, sampler="euler", scheduler="simple", size=1024),
                "flux_checkpoint": dict(steps=20, cfg=1.0, sampler="euler", scheduler="simple", size=1024),
                "sd3": dict(steps=28, cfg=4.5, sampler="euler", scheduler="sgm_uniform", size=1024),
                "qwen_image": dict(steps=20, cfg=2.5, sampler="euler", scheduler="simple", size=1328),
                "chroma": dict(steps=26, cfg=4.0, sampler="euler", scheduler="beta", size=1024),
                "flux2": dict(steps=20, cfg=1.0, sampler="euler", scheduler="simple", size=1024),
                "z_image": dict(steps=9, cfg=1.0, sampler="euler", scheduler="simple", size=1024)}


def _dit(family: str, node: str, extra: dict, title: str) -> dict:
    """Stock loaders -> P2P node [-> FluxGuidance] -> KSampler -> VAEDecode -> SaveImage."""
    loaders = DIT_LOADERS[family]
    clip = ["11", 0] if "11" in loaders else ["1", 1]
    vae = ["12", 0] if "12" in loaders else ["1", 2]
    s = DIT_SAMPLING[family]
    api = {**json.loads(json.dumps(loaders)),
           "2": {"class_type": node, "inputs": {"model": ["1", 0], "clip": clip, "latent": ["3", 0],
                                                "cross_replace": 0.8, "self_replace": 0.4, "word_schedule": "",
                                                "blend_words": "", "blend_threshold": 0.3, "blend_start": 0.0,
                                                **({} if node == "AttnEdit_P2PReweight" else {"reweight": ""}),
                                                **extra}},
           "3": {"class_type": "EmptyFlux2LatentImage" if family == "flux2" else "EmptySD3LatentImage",
                 "inputs": {"width": s["size"], "height": s["size"], "batch_size": 1}},
           "4": {"class_type": "CLIPTextEncode", "inputs": {
               "clip": clip, "text": "" if family.startswith("flux") else NEGATIVE}},
           "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": vae}},
           "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": f"attn_edit/{title}"}}}
    positive = ["2", 1]
    if family.startswith("flux"):  # guidance-distilled: the guidance in the conditioning (Flux.2-dev: 4)
        api["10"] = {"class_type": "FluxGuidance", "inputs": {"conditioning": ["2", 1],
                                                              "guidance": 4.0 if family == "flux2" else 3.5}}
        positive = ["10", 0]
    api["5"] = _sampler(["2", 0], positive, ["2", 2], seed=8888, steps=s["steps"], cfg=s["cfg"],
                        sampler=s["sampler"], scheduler=s["scheduler"])
    return api


def _dit_maps(family: str, title: str) -> dict:
    loaders = DIT_LOADERS[family]
    s = DIT_SAMPLING[family]
    return {**json.loads(json.dumps(loaders)),
            "2": {"class_type": "AttnEdit_AttentionMaps", "inputs": {
                "model": ["1", 0], "clip": ["11", 0], "latent": ["3", 0], "vae": ["12", 0],
                "prompt": "a cute teddy bear sitting on a wooden bench", "negative": "", "seed": 8888,
                "steps": s["steps"], "cfg": s["cfg"], "sampler_name": s["sampler"], "scheduler": s["scheduler"],
                "resolution": "all", "tile_size": 128, "columns": 8}},
            "3": {"class_type": "EmptySD3LatentImage", "inputs": {"width": s["size"], "height": s["size"],
                                                                  "batch_size": 1}},
            "6": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 1], "vae": ["12", 0]}},
            "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": f"attn_edit/{title}_image"}},
            "8": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": f"attn_edit/{title}"}}}


def _dit_real(family: str, edit: dict, title: str, negative: str = "") -> dict:
    """Stock loaders -> LoadImage -> VAEEncode -> caption / edit prompts -> <edit> -> VAEDecode -> SaveImage."""
    loaders = DIT_LOADERS[family]
    clip = ["11", 0] if "11" in loaders else ["1", 1]
    vae = ["12", 0] if "12" in loaders else ["1", 2]
    api = {**json.loads(json.dumps(loaders)),
           "20": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
           "21": {"class_type": "VAEEncode", "inputs": {"pixels": ["20", 0], "vae": vae}},
           "22": {"class_type": "CLIPTextEncode", "inputs": {"clip": clip, "text": "a photo of a cat"}},
           "25": {"class_type": "CLIPTextEncode", "inputs": {"clip": clip, "text": "a photo of a dog"}},
           "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": clip, "text": negative}},
           "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": vae}},
           "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": f"attn_edit/{title}"}}}
    api.update(json.loads(json.dumps(edit).replace('"CLIP"', json.dumps(clip))))
    return api


# FlowEdit with the paper's settings per family (official FlowEdit: SD3 50 steps, n_max 33, cfg 3.5 / 13.5; Flux 28
# steps, n_max 24, guidance 1.5 / 5.5 through Flux.1-dev's guidance embedding).
def _flow_edit(steps, n_max, source_cfg, target_cfg):
    return {"5": {"class_type": "AttnEdit_FlowEdit", "inputs": {
        "model": ["1", 0], "latent": ["21", 0], "source": ["22", 0], "target": ["25", 0], "steps": steps,
        "n_max": n_max, "n_min": 0, "n_avg": 1, "source_cfg": source_cfg, "target_cfg": target_cfg, "seed": 0,
        "negative": ["4", 0], "scheduler": "simple"}}}


# Real-image P2P on a flow model: Direct Inversion (the flow ODE's Euler inversion, the source row kept exact) ->
# P2P word swap -> SamplerCustom (euler, add_noise off) on the inversion's SIGMAS.
def _flow_real_p2p(cfg):
    return {
        "23": {"class_type": "AttnEdit_DirectInversion", "inputs": {
            "model": ["1", 0], "latent": ["21", 0], "positive": ["22", 0], "steps": 28, "cfg": 1.0,
            "scheduler": "simple"}},
        "2": {"class_type": "AttnEdit_P2PReplace", "inputs": {
            "model": ["23", 0], "clip": "CLIP", "latent": ["23", 1], "source_prompt": "a photo of a cat",
            "target_prompts": "a photo of a dog", "cross_replace": 0.8, "self_replace": 0.4, "word_schedule": "",
            "reweight": "", "blend_words": "", "blend_threshold": 0.3, "blend_start": 0.0}},
        "24": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "5": {"class_type": "SamplerCustom", "inputs": {
            "model": ["2", 0], "add_noise": False, "noise_seed": 0, "cfg": cfg, "positive": ["2", 1],
            "negative": ["4", 0], "sampler": ["24", 0], "sigmas": ["23", 2], "latent_image": ["2", 2]}}}


# pix2pix-zero on a flow model: BLIP caption -> regularized flow inversion (Euler, which the guided sampler's steps
# retrace) -> cat->dog direction on the caption -> guided sampling, the caption as negative (pix2pix-zero's real-image
# setting). Flux.1-dev samples at cfg 1 with its guidance embedding (FluxGuidance on the caption, which the edit
# conditioning inherits); SD3.5 at real cfg.


def _dit_pix2pix_zero(family: str, cfg: float, steps: int, title: str) -> dict:
    api = _dit_real(family, {}, title)
    clip = api["22"]["inputs"]["clip"]
    vae = api["21"]["inputs"]["vae"]
    for node in ("25", "4", "6", "7"):
        del api[node]
    caption = ["22", 0]
    api["40"] = {"class_type": "AttnEdit_BLIPCaption", "inputs": {
        "image": ["20", 0], "blip_model": BLIP_FOLDER, "prefix": "", "max_new_tokens": 30}}
    api["22"]["inputs"]["text"] = ["40", 0]
    if family.startswith("flux"):
        api["10"] = {"class_type": "FluxGuidance", "inputs": {"conditioning": ["22", 0], "guidance": 3.5}}
        caption = ["10", 0]
    api.update({
        "23": {"class_type": "AttnEdit_FlowInversion", "inputs": {
            "model": ["1", 0], "latent": ["21", 0], "positive": caption, "steps": steps, "solver": "euler",
            "cfg": 1.0, "scheduler": "simple", "lambda_ac": 20.0, "lambda_kl": 20.0, "reg_steps": 5, "ac_rolls": 5,
            "seed": 0}},
        "41": {"class_type": "AttnEdit_EditDirection", "inputs": {"clip": clip, "source": "cat", "target": "dog"}},
        "42": {"class_type": "AttnEdit_ApplyEditDirection", "inputs": {
            "conditioning": caption, "edit_direction": ["41", 0], "strength": 1.0}},
        "30": {"class_type": "AttnEdit_CrossAttnGuidedSampler", "inputs": {
            "model": ["1", 0], "positive": caption, "edit_positive": ["42", 0], "negative": caption,
            "latent": ["23", 0], "sigmas": ["23", 1], "cfg": cfg, "xa_guidance": DIT_XA_GUIDANCE,
            "mode": "real image (latent = inverted x_T)", "seed": 0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["30", 0], "vae": vae}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["30", 1], "vae": vae}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": f"attn_edit/{title}_edit"}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": f"attn_edit/{title}_rec"}},
    })
    return api


def _cat_swap(family: str, name: str) -> dict:
    """Every family's word swap: a cat next to a mirror becomes a tiger and a lion."""
    return _dit(family, "AttnEdit_P2PReplace", {
        "source_prompt": "a cat sitting next to a mirror",
        "target_prompts": "a tiger sitting next to a mirror\na lion sitting next to a mirror"}, name)


DIT_SPECS = {
    "flux_pix2pix_zero": _dit_pix2pix_zero("flux", 1.0, 28, "flux_pix2pix_zero"),
    "sd35_pix2pix_zero": _dit_pix2pix_zero("sd3", 5.0, 50, "sd35_pix2pix_zero"),
    "flux_word_swap": _cat_swap("flux", "flux_word_swap"),
    "flux_word_swap_checkpoint": _dit("flux_checkpoint", "AttnEdit_P2PReplace", {
        "source_prompt": "a cat sitting next to a mirror",
        "target_prompts": "a tiger sitting next to a mirror"}, "flux_word_swap_checkpoint"),
    "flux_refine": _dit("flux", "AttnEdit_P2PRefine", {
        "source_prompt": "a photo of a house on a mountain",
        "target_prompts": "a photo of a house on a mountain at winter\na photo of a house on a mountain at fall"},
        "flux_refine"),
    "flux_reweight": _dit("flux", "AttnEdit_P2PReweight", {
        "prompt": "a smiling bunny doll", "reweight": "smiling: 2"}, "flux_reweight"),
    "flux_attention_maps": _dit_maps("flux", "flux_maps"),
    "sd35_word_swap": _cat_swap("sd3", "sd35_word_swap"),
    "qwen_image_word_swap": _cat_swap("qwen_image", "qwen_image_word_swap"),
    "flux2_word_swap": _cat_swap("flux2", "flux2_word_swap"),
    "chroma_word_swap": _cat_swap("chroma", "chroma_word_swap"),
    "z_image_word_swap": _cat_swap("z_image", "z_image_word_swap"),
    "flux_flow_edit": _dit_real("flux", _flow_edit(28, 24, 1.5, 5.5), "flux_flow_edit"),
    "sd35_flow_edit": _dit_real("sd3", _flow_edit(50, 33, 3.5, 13.5), "sd35_flow_edit", negative=NEGATIVE),
    "flux_real_p2p_direct_inversion": _dit_real("flux", _flow_real_p2p(cfg=1.0), "flux_real_p2p"),
}
# ---- Wan video models (ComfyUI's Wan examples: UNETLoader + CLIPLoader type wan + the Wan 2.1 VAE, 16 fps).
WAN_TEXT = {"11": {"class_type": "CLIPLoader", "inputs": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                                                          "type": "wan"}},
            "12": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}}}
WAN_NEGATIVE = "static, blurred, low quality, worst quality, deformed"
WAN_SOURCE, WAN_TARGET = "a cat walking on the grass in a garden", "a fox walking on the grass in a garden"


def _unet(name: str) -> dict:
    return {"class_type": "UNETLoader", "inputs": {"unet_name": name, "weight_dtype": "default"}}


def _save_video(images, title: str) -> dict:
    """The decoded frames of every row one after the other (source video first, then each edit)."""
    return {"class_type": "SaveAnimatedWEBP", "inputs": {"images": images, "filename_prefix": f"attn_edit/{title}",
                                                          "fps": 16.0, "lossless": False, "quality": 90,
                                                          "method": "default"}}


def _wan_word_swap(title: str, experts: bool) -> dict:
    """Wan 2.1 T2V 1.3B (one KSampler, 30 steps, cfg 6, 832x480, 33 frames), or Wan 2.2 T2V 14B (the high-noise expert
    for steps 0-10 and the low-noise one for 10-20 of 20 in two KSamplerAdvanced nodes, cfg 3.5, 640x640, 81 frames):
    each expert's model through a P2P Step Range node, so both carry the edit and its windows count over all 20."""
    api = {**json.loads(json.dumps(WAN_TEXT)),
           "1": _unet("wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors" if experts
                      else "wan2.1_t2v_1.3B_fp16.safetensors"),
           "2": {"class_type": "AttnEdit_P2PReplace", "inputs": {
               "model": ["1", 0], "clip": ["11", 0], "latent": ["3", 0], "source_prompt": WAN_SOURCE,
               "target_prompts": WAN_TARGET, "cross_replace": 0.8, "self_replace": 0.4, "word_schedule": "",
               "reweight": "", "blend_words": "", "blend_threshold": 0.3, "blend_start": 0.0}},
           "3": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {
               "width": 640 if experts else 832, "height": 640 if experts else 480, "length": 81 if experts else 33,
               "batch_size": 1}},
           "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["11", 0], "text": WAN_NEGATIVE}},
           "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["12", 0]}},
           "7": _save_video(["6", 0], title)}
    if not experts:
        api["5"] = _sampler(["2", 0], ["2", 1], ["2", 2], seed=8888, steps=30, cfg=6.0, sampler="uni_pc",
                            scheduler="simple")
        return api
    api["13"] = _unet("wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors")
    common = {"noise_seed": 8888, "steps": 20, "cfg": 3.5, "sampler_name": "euler", "scheduler": "simple",
              "positive": ["2", 1], "negative": ["4", 0]}
    api["14"] = {"class_type": "AttnEdit_P2PStepRange", "inputs": {
        "model": ["2", 0], "positive": ["2", 1], "steps": 20, "start_at_step": 0}}
    api["15"] = {"class_type": "AttnEdit_P2PStepRange", "inputs": {
        "model": ["13", 0], "positive": ["2", 1], "steps": 20, "start_at_step": 10}}
    api["8"] = {"class_type": "KSamplerAdvanced", "inputs": {
        **common, "model": ["14", 0], "add_noise": "enable", "latent_image": ["2", 2], "start_at_step": 0,
        "end_at_step": 10, "return_with_leftover_noise": "enable"}}
    api["5"] = {"class_type": "KSamplerAdvanced", "inputs": {
        **common, "model": ["15", 0], "add_noise": "disable", "latent_image": ["8", 0], "start_at_step": 10,
        "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    return api


def _wan_flow_edit(title: str) -> dict:
    """FlowEdit on a video (LoadVideo -> its frames -> the Wan VAE) with Wan 2.1 T2V 1.3B. Settings scaled from the
    official SD3 ones (n_max 2/3 of the steps, real cfg); no trained Wan could be measured here."""
    return {**json.loads(json.dumps(WAN_TEXT)),
            "1": _unet("wan2.1_t2v_1.3B_fp16.safetensors"),
            "20": {"class_type": "LoadVideo", "inputs": {"file": "example.mp4"}},
            "23": {"class_type": "GetVideoComponents", "inputs": {"video": ["20", 0]}},
            "21": {"class_type": "VAEEncode", "inputs": {"pixels": ["23", 0], "vae": ["12", 0]}},
            "22": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["11", 0], "text": WAN_SOURCE}},
            "25": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["11", 0], "text": WAN_TARGET}},
            "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["11", 0], "text": WAN_NEGATIVE}},
            **_flow_edit(30, 20, 5.0, 8.0),
            "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["12", 0]}},
            "7": _save_video(["6", 0], title)}


DIT_SPECS["wan_video_word_swap"] = _wan_word_swap("wan_video_word_swap", experts=False)
DIT_SPECS["wan22_video_word_swap"] = _wan_word_swap("wan22_video_word_swap", experts=True)
DIT_SPECS["wan_flow_edit"] = _wan_flow_edit("wan_flow_edit")
DIT_SPECS["flux_word_mask"] = _word_mask_edit(
    _dit("flux", "AttnEdit_P2PReplace", {}, "flux_word_mask"), ["11", 0], ["12", 0],
    "a cat sitting next to a mirror", "a tiger sitting next to a mirror", "cat",
    {"seed": 8888, "steps": 20, "cfg": 1.0, "scheduler": "simple", "grow": 24}, "attn_edit/flux_word_mask")
# Flux.1-dev is guidance-distilled: its P2P rows sample at cfg 1 with the guidance in the conditioning.
DIT_SPECS["flux_real_p2p_direct_inversion"]["10"] = {"class_type": "FluxGuidance", "inputs": {
    "conditioning": ["2", 1], "guidance": 3.5}}
DIT_SPECS["flux_real_p2p_direct_inversion"]["5"]["inputs"]["positive"] = ["10", 0]
SPECS.update(DIT_SPECS)


# Workflow name prefix -> the tiny layout its API twin runs on in the tests (first match wins)
DIT_LAYOUTS = (("flux2", "flux2"), ("flux", "flux"), ("sd35", "sd3"), ("qwen_image", "qwen_image"),
               ("chroma", "chroma"), ("z_image", "z_image"), ("wan", "wan"))


def dit_layout(name: str) -> str | None:
    """The tiny test layout a DiT workflow runs on, or None for the UNet workflows."""
    return next((layout for prefix, layout in DIT_LAYOUTS if name.startswith(prefix)), None)


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def _input_defs(cls) -> list[tuple[str, str, dict]]:
    types = cls.INPUT_TYPES()
    out = []
    for section in ("required", "optional"):
        for name, spec in types.get(section, {}).items():
            kind = "COMBO" if isinstance(spec[0], list) else spec[0]
            opts = dict(spec[1]) if len(spec) > 1 else {}
            choices = spec[0] if isinstance(spec[0], list) else opts.get("options")
            if kind == "COMBO" and "default" not in opts and choices:
                opts["default"] = choices[0]  # what the frontend's combo widget starts on
            out.append((name, kind, opts))
    return out


WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = ("seed", "noise_seed")


def has_seed_control(name: str, kind: str, opts: dict) -> bool:
    """Whether ComfyUI's frontend gives this input a "control after generate" widget (an extra widget value):
    an INT with control_after_generate set, or, when the option is absent, an INT named seed or noise_seed
    (frontend 1.35 useIntWidget: `control_after_generate ?? ["seed", "noise_seed"].includes(name)`)."""
    if kind != "INT":
        return False
    flag = opts.get("control_after_generate")
    return bool(flag) if flag is not None else name in SEED_NAMES


def _depths(api: dict) -> dict:
    depth = {}

    def visit(node_id):
        if node_id not in depth:
            links = [v[0] for v in api[node_id]["inputs"].values() if _is_link(v)]
            depth[node_id] = 1 + max((visit(n) for n in links), default=-1)
        return depth[node_id]

    for node_id in api:
        visit(node_id)
    return depth


# What each part of a graph does: the title of the group around a column of nodes.
ROLES = {
    "Model": ("CheckpointLoaderSimple", "UNETLoader", "CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader", "VAELoader",
              "AttnEdit_DemoModelLoader"),
    "Image": ("LoadImage", "AttnEdit_DemoSceneImage", "VAEEncode", "EmptyLatentImage", "EmptySD3LatentImage"),
    "Prompts": ("CLIPTextEncode", "FluxGuidance", "AttnEdit_BLIPCaption"),
    "Inversion": ("AttnEdit_DDIMInvertRegularized", "AttnEdit_NullTextInversion", "AttnEdit_DirectInversion",
                  "AttnEdit_FlowInversion"),
    "Edit": ("AttnEdit_P2PReplace", "AttnEdit_P2PRefine", "AttnEdit_P2PReweight", "AttnEdit_EditDirection",
             "AttnEdit_ApplyEditDirection", "AttnEdit_SaveEditDirection", "AttnEdit_AttentionMaps"),
    "Sample": ("KSampler", "KSamplerAdvanced", "SamplerCustom", "KSamplerSelect", "AttnEdit_CrossAttnGuidedSampler",
               "AttnEdit_FlowEdit"),
    "Output": ("VAEDecode", "SaveImage", "PreviewImage"),
}
ROLE_OF = {cls: role for role, classes in ROLES.items() for cls in classes}
IMAGE_PREVIEW = {"LoadImage": 300, "SaveImage": 300, "PreviewImage": 300}  # room for the picture after a run
TITLE_H, GAP, MIN_WIDTH = 30, 40, 320
SIZES_FILE = REPO / "scripts" / "frontend_sizes.json"


def _frontend_sizes() -> dict:
    """Per node kind: the [width, height] ComfyUI's frontend computes for it and its title's width
    (measured by scripts/measure_frontend.py)."""
    return json.loads(SIZES_FILE.read_text()) if SIZES_FILE.is_file() else {}


def _titles(api: dict) -> dict:
    """Readable titles where the class name says too little: which prompt a text encoder holds."""
    titles = {}
    for node in api.values():
        for name, value in node["inputs"].items():
            if _is_link(value) and api[value[0]]["class_type"] == "CLIPTextEncode":
                role = {"negative": "Negative prompt", "positive": "Source prompt", "source": "Source prompt",
                        "target": "Target prompt", "conditioning": "Source prompt"}.get(name)
                if role and value[0] not in titles:
                    titles[value[0]] = role
    return titles


def _columns(api: dict) -> dict:
    """Column of each node: its graph depth, except that a node with no inputs other than a loader's sits just
    left of its first consumer (short links), and a chain of output nodes (decode, save) shares one column."""
    depth = _depths(api)
    consumers: dict = {}
    for node_id, node in api.items():
        for value in node["inputs"].values():
            if _is_link(value):
                consumers.setdefault(value[0], []).append(node_id)
    for node_id, node in api.items():
        has_inputs = any(_is_link(v) for v in node["inputs"].values())
        if not has_inputs and ROLE_OF.get(node["class_type"]) != "Model" and node_id in consumers:
            depth[node_id] = max(0, min(depth[c] for c in consumers[node_id]) - 1)
    column, merged = {}, {}
    for d in sorted(set(depth.values())):
        outputs_only = all(ROLE_OF.get(api[n]["class_type"]) == "Output" for n in depth if depth[n] == d)
        previous = merged.get(d - 1)
        merged[d] = previous if outputs_only and previous is not None and previous[1] else (d, outputs_only)
    order = sorted({m[0] for m in merged.values()})
    return {n: order.index(merged[d][0]) for n, d in depth.items()}


def to_ui(api: dict, node_classes: dict, note: str = "") -> dict:
    """Render an API-format graph in ComfyUI's UI (litegraph) format: a column per graph depth, nodes at the sizes
    the frontend gives them (no overlap, titles not cut), a group per column naming what it does, and a note."""
    depth = _columns(api)
    sizes = _frontend_sizes()
    titles = _titles(api)
    links, ui_nodes = [], []
    outputs: dict = {}
    for node_id in sorted(api, key=lambda n: (depth[n], int(n))):
        node = api[node_id]
        cls = node_classes[node["class_type"]]
        inputs, widgets, linked_widgets = [], [], []
        for name, kind, opts in _input_defs(cls):
            value = node["inputs"].get(name)
            if kind in WIDGET_TYPES and not _is_link(value):
                widgets.append(value if value is not None else opts.get("default"))
                if has_seed_control(name, kind, opts):
                    widgets.append("fixed")  # else the frontend defaults it to "randomize" and the seed drifts
                if opts.get("image_upload"):
                    widgets.append("image")
                continue
            link_id = None
            widget_input = kind in WIDGET_TYPES  # a widget fed by a link (e.g. a caption STRING)
            if widget_input:
                widgets.append(opts.get("default", ""))
                linked_widgets.append(name)
            if _is_link(value):
                link_id = len(links) + 1
                src, slot = value
                links.append([link_id, int(src), slot, int(node_id), len(inputs), kind])
                outputs.setdefault((src, slot), []).append(link_id)
            entry = {"name": name, "type": kind, "link": link_id}
            if widget_input:
                entry["widget"] = {"name": name}
            inputs.append(entry)
        names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
        key = node["class_type"] + ("|" + ",".join(sorted(linked_widgets)) if linked_widgets else "")
        width, height, title_width = sizes.get(key, [MIN_WIDTH, 120 + 26 * len(widgets), MIN_WIDTH - 70])
        title = titles.get(node_id) or getattr(cls, "DISPLAY_NAME", None) or node["class_type"]
        ui_node = {
            "id": int(node_id), "type": node["class_type"], "pos": [0, 0],
            "size": [max(width, title_width + 2 * TITLE_H + 10), height + IMAGE_PREVIEW.get(node["class_type"], 0)],
            "flags": {}, "order": 0, "mode": 0, "inputs": inputs,
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i}
                        for i, (n, t) in enumerate(zip(names, cls.RETURN_TYPES))],
            "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets}
        if node_id in titles:
            ui_node["title"] = titles[node_id]
        ui_nodes.append(ui_node)
    for order, n in enumerate(ui_nodes):
        n["order"] = order
        for out in n["outputs"]:
            out["links"] = outputs.get((str(n["id"]), out["slot_index"]), [])
    groups = _lay_out(ui_nodes, [depth[str(n["id"])] for n in ui_nodes], note)
    last_id = max(n["id"] for n in ui_nodes)
    return {"last_node_id": last_id, "last_link_id": len(links), "nodes": ui_nodes, "links": links,
            "groups": groups, "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [70, 10]}}, "version": 0.4}


def _lay_out(ui_nodes: list[dict], depths: list[int], note: str) -> list[dict]:
    """Columns left to right, each as wide as its widest node, nodes stacked with a gap; a group per column;
    the note (a frontend-only Note node, not part of the prompt) under the first column."""
    columns: dict[int, list[dict]] = {}
    for n, d in zip(ui_nodes, depths):
        columns.setdefault(d, []).append(n)
    if note:
        ui_nodes.append({"id": max(n["id"] for n in ui_nodes) + 1, "type": "Note", "pos": [0, 0], "size": [0, 220],
                         "flags": {}, "order": len(ui_nodes), "mode": 0, "inputs": [], "outputs": [],
                         "title": "About this workflow", "properties": {}, "widgets_values": [note],
                         "color": "#432", "bgcolor": "#653"})
        columns[min(columns)].append(ui_nodes[-1])
    groups, x = [], 40
    for d in sorted(columns):
        col = columns[d]
        width = max(MIN_WIDTH, *(n["size"][0] for n in col))
        y = 40 + 34 + TITLE_H  # the group's title bar, then the first node's
        for n in col:
            n["size"][0] = width
            n["pos"] = [x, y]
            y += n["size"][1] + TITLE_H + GAP
        roles = list(dict.fromkeys(ROLE_OF.get(n["type"], "Edit") for n in col if n["type"] != "Note"))
        groups.append({"title": " · ".join(roles), "bounding": [x - 15, 40, width + 30, y - GAP + 15 - 40],
                       "color": "#3f789e", "font_size": 22, "flags": {}})
        x += width + 30 + 40
    return groups


def on_tiny_models(api: dict, layout: str = "sd15", size: int = 128, steps: int = 3) -> dict:
    """The same graph with the checkpoint loader swapped for tiny random models (and the tiny BLIP 'tiny') and
    a short schedule: what the tests and the no-checkpoint demo run."""
    api = json.loads(json.dumps(api))
    separate = {"DualCLIPLoader": 1, "CLIPLoader": 1, "TripleCLIPLoader": 1, "VAELoader": 2}
    tiny = next((i for i, n in api.items() if n["class_type"] in ("CheckpointLoaderSimple", "UNETLoader")), None)
    for node_id, node in list(api.items()):
        if node["class_type"] in ("CheckpointLoaderSimple", "UNETLoader"):
            node["class_type"], node["inputs"] = "AttnEditTest_TinyModels", {"layout": layout, "seed": 0}
        if node["class_type"] in separate:  # the tiny models node gives MODEL, CLIP and VAE
            output = separate[node["class_type"]]
            del api[node_id]
            for other in api.values():
                for key, value in other["inputs"].items():
                    if isinstance(value, list) and len(value) == 2 and value[0] == node_id:
                        other["inputs"][key] = [tiny, output]
    for node in api.values():
        if node["class_type"] in ("EmptyLatentImage", "EmptySD3LatentImage", "EmptyFlux2LatentImage"):
            node["inputs"].update(width=size, height=size)
        if node["class_type"] == "EmptyHunyuanLatentVideo":  # 9 frames: 3 latent frames
            node["inputs"].update(width=size // 2, height=size // 2, length=9)
        for key in ("end_at_step", "start_at_step"):  # a split schedule keeps its split inside the short one
            if key in node["inputs"] and 0 < node["inputs"][key] < 10000:
                node["inputs"][key] = steps // 2
        if "steps" in node["inputs"]:
            node["inputs"]["steps"] = steps
        if "n_max" in node["inputs"]:  # FlowEdit: edit over the whole short schedule
            node["inputs"]["n_max"] = steps
        if node["class_type"] == "AttnEdit_BLIPCaption":
            node["inputs"]["blip_model"] = "tiny"
    return api


WHAT = {  # the node that makes the workflow what it is -> what it does, in a user's words
    "AttnEdit_P2PReplace": "Prompt-to-Prompt word swap: the output's first image is the source prompt's, each further "
                           "image an edited prompt's (one per line of target_prompts), drawn with the source's layout. "
                           "cross_replace / self_replace: the share of steps that take the source's attention.",
    "AttnEdit_P2PRefine": "Prompt-to-Prompt refine: words added to the prompt change the image while the words both "
                          "prompts share keep the source's attention (and so its layout).",
    "AttnEdit_P2PReweight": "Prompt-to-Prompt reweight: 'word: factor' scales how strongly a word acts (negative "
                            "factors push it away); the first image is the prompt unchanged.",
    "AttnEdit_AttentionMaps": "Attention maps: where each word of the prompt acts in the image, one tile per token, "
                              "averaged over steps and layers.",
    "AttnEdit_CrossAttnGuidedSampler": "pix2pix-zero: the image is inverted (regularized DDIM, or regularized flow "
                                       "inversion on flow models), an edit direction "
                                       "(target minus source word) moves its caption, and cross-attention guidance "
                                       "keeps the structure.",
    "AttnEdit_FlowEdit": "FlowEdit: an edit with no inversion, moving the image along the difference of the target "
                         "and source prompts' velocities.",
    "AttnEdit_DirectInversion": "Real-image P2P with Direct Inversion: the source row reconstructs the image exactly "
                                "and the edited row takes its attention from it.",
    "AttnEdit_NullTextInversion": "Real-image P2P with null-text inversion: the unconditional embedding is optimised "
                                  "per step so that the source row reconstructs the image.",
    "AttnEdit_DDIMInvertRegularized": "Real-image P2P after a regularized DDIM inversion (pix2pix-zero's noise "
                                      "regularizer).",
    "AttnEdit_FlowInversion": "Real-image P2P on a flow model: the image is inverted along the flow, then edited.",
}
PRIORITY = ["AttnEdit_CrossAttnGuidedSampler", "AttnEdit_FlowEdit", "AttnEdit_DirectInversion",
            "AttnEdit_NullTextInversion", "AttnEdit_FlowInversion", "AttnEdit_DDIMInvertRegularized",
            "AttnEdit_AttentionMaps", "AttnEdit_P2PRefine", "AttnEdit_P2PReweight", "AttnEdit_P2PReplace"]


def describe(name: str, api: dict) -> str:
    """The note shown beside a workflow: what it does and what it runs on."""
    classes = {n["class_type"] for n in api.values()}
    what = next((WHAT[c] for c in PRIORITY if c in classes), "")
    if {"AttnEdit_AttentionMaps", "AttnEdit_P2PReplace"} <= classes:
        what = ("Word-masked edit: the attention maps node finds where the named word acts (mask_words) and hands "
                "that region to the word swap as its mask, so only that object changes; the first image is the "
                "source prompt's.")
    if "AttnEdit_DemoModelLoader" in classes:
        arch = next(n["inputs"].get("architecture") for n in api.values()
                    if n["class_type"] == "AttnEdit_DemoModelLoader")
        runs = ("Runs as it is on the pack's small demo " + ("DiT (Flux architecture)" if arch == "dit" else "model")
                + ": no download; a drawn scene stands in for a photo.")
    else:
        files = [v for n in api.values() for k, v in n["inputs"].items()
                 if k in ("ckpt_name", "unet_name", "clip_name", "clip_name1", "clip_name2", "clip_name3",
                          "vae_name") and isinstance(v, str)]
        runs = "Needs " + ", ".join(dict.fromkeys(files)) + " in ComfyUI's models folders." if files else ""
        if "LoadImage" in classes:
            runs += " Load your own photo in Load Image."
        if "LoadVideo" in classes:
            runs += " Load your own video in Load Video (its frames are edited together)."
        if "SaveAnimatedWEBP" in classes:
            runs += " The saved animation shows the source video's frames, then each edit's."
    return "\n\n".join(part for part in (what, runs) if part)


FAMILIES = [("demo_dit_", "Demo DiT"), ("demo_", "Demo"), ("flux2_", "Flux.2"), ("flux_", "Flux"),
            ("sd35_", "SD3.5"), ("qwen_image_", "Qwen-Image"), ("chroma_", "Chroma"), ("z_image_", "Z-Image"),
            ("wan22_", "Wan 2.2"), ("wan_", "Wan"), ("p2p_", "SD1.5"), ("", "SD1.5")]
WHAT_TITLES = {
    "word_swap": "P2P word swap", "shape_swap": "P2P shape swap", "colour_swap": "P2P colour swap",
    "refine": "P2P refine", "reweight": "P2P reweight", "local_blend": "P2P local blend",
    "attention_maps": "attention maps", "word_swap_checkpoint": "P2P word swap (single-file checkpoint)",
    "real_direct_inversion": "photo edit, Direct Inversion + P2P",
    "real_p2p_direct_inversion": "photo edit, Direct Inversion + P2P",
    "real_null_text": "photo edit, null-text inversion + P2P", "real_p2p_null_text": "photo edit, null-text inversion + P2P",
    "real_p2p_negative_prompt": "photo edit, negative-prompt inversion + P2P",
    "real_p2p_regularized_ddim": "photo edit, regularized DDIM inversion + P2P",
    "pix2pix_zero": "pix2pix-zero photo edit", "pix2pix_zero_real": "pix2pix-zero photo edit",
    "pix2pix_zero_synthetic": "pix2pix-zero on a generated image", "flow_edit": "FlowEdit photo edit",
    "word_mask": "P2P edit inside a word mask", "video_word_swap": "P2P video word swap",
}


def template_title(name: str) -> str:
    """The UI file's name, which ComfyUI's template browser shows as the workflow's title:
    'SD1.5 - P2P word swap', 'Demo DiT - FlowEdit photo edit' (sorted by name, the families group)."""
    prefix, family = next((p, f) for p, f in FAMILIES if name.startswith(p))
    what = WHAT_TITLES[name[len(prefix):]]
    return f"{family} - {what.replace('photo', 'video') if family.startswith('Wan') else what}"


def ui_path(name: str) -> Path:
    return REPO / UI_DIR / f"{template_title(name)}.json"


def with_defaults(api: dict, node_classes: dict) -> dict:
    """The graph with every widget input written out (its default where the spec leaves it), as the frontend's
    graphToPrompt gives it: the API file is then the UI file's prompt, input by input."""
    api = json.loads(json.dumps(api))
    for node in api.values():
        for name, kind, opts in _input_defs(node_classes[node["class_type"]]):
            if kind in WIDGET_TYPES and name not in node["inputs"] and "default" in opts:
                node["inputs"][name] = opts["default"]
    return api


def render_all(node_classes: dict) -> dict[str, str]:
    """relative path -> file text, for every spec in both formats."""
    files = {}
    for name, spec in SPECS.items():
        api = with_defaults(spec, node_classes)
        files[f"workflows/api/{name}.json"] = json.dumps(api, indent=2) + "\n"
        files[f"{UI_DIR}/{template_title(name)}.json"] = json.dumps(to_ui(api, node_classes, describe(name, api)),
                                                                  indent=2) + "\n"
    return files


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    from tests.comfy_harness import Comfy

    comfy = Comfy()
    for path, text in render_all(comfy.nodes.NODE_CLASS_MAPPINGS).items():
        (REPO / path).parent.mkdir(parents=True, exist_ok=True)
        (REPO / path).write_text(text)
        print("wrote", path)
