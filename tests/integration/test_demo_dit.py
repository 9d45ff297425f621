"""The shipped demo DiT: the file, the loader node, the joint-attention backend on it, and quality floors measured with
benchmarks/quality.py on few trials (the full table is in README; floors sit well below the measured values)."""
import numpy as np
import pytest
import torch

from benchmarks import quality as Q
from demo_model.loader import DIT_WEIGHTS, read


@pytest.fixture
def dit():
    with Q.architecture("dit"):
        yield


def test_weights_file_is_small_fp16_with_flux_keys_and_its_recipe():
    assert DIT_WEIGHTS.stat().st_size <= 25 * 2 ** 20
    sd, meta = read(DIT_WEIGHTS)
    assert {v.dtype for v in sd.values()} == {torch.float16}
    assert all(torch.isfinite(v).all() for v in sd.values())
    assert {k.split(".")[0] for k in sd} == {"model", "text_encoders", "vae"}
    assert sd["text_encoders.t5xxl.transformer.shared.weight"].shape[0] == 32128  # the real T5 vocabulary
    arch = meta["architecture"]
    assert arch["family"] == "flux" and arch["dit"]["guidance_embed"] is False
    assert arch["dit"]["context_in_dim"] == arch["t5"]["d_model"]
    assert meta["training"]["steps"] > 0 and "flux_shift" in meta["training"]


def test_loader_node_gives_a_flux_model_that_stock_nodes_sample(comfy, dit):
    api = Q._loader()
    api["2"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a large red circle on a "
                                                                                     "gray background"}}
    api["5"] = Q._ksampler(["1", 0], ["2", 0], ["3", 0], seed=0)
    api["6"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "latent": ["5", 0],
                                                                 "model": ["1", 0]}}
    comfy.reset_cache()
    comfy.run(api)
    model = comfy.captured["out"]["model"]
    assert type(model.model).__name__ == "Flux" and model.model.model_type.name == "FLUX"
    assert comfy.captured["out"]["latent"]["samples"].shape == (1, 16, 16, 16)
    backend = comfy.pack("attention.comfy_patch").backend_for(model)
    assert backend.family != "UNet"
    assert len(backend.layers(model)) == 6  # 2 double + 4 single blocks


def test_p2p_on_the_dit_reaches_every_block(comfy, dit):
    images = Q.p2p(comfy, "AttnEdit_P2PReplace", 1, source_prompt="a large red circle on a gray background",
                   target_prompts="a large blue circle on a gray background")
    assert len(images) == 2
    run = comfy.pack("attention.comfy_patch").RUN_HISTORY[-1]
    assert run["layers_called"] == run["layers"] == 6 and run["edited_joint_calls"] > 0, run


# ---- quality floors (benchmarks/quality.py run_dit with few trials; README has the table). Fixed seeds, so the values
# are deterministic on one machine; the floors sit well below what the shipped weights measure.

def test_base_dit_follows_the_background_and_colour_words(comfy, dit):
    acc = Q.base_model(comfy, trials=8)  # benchmark, 16 captions: background 100 %, colour 54 % (chance 14 %)
    assert acc["background"] >= 0.8 and acc["colour"] >= 0.3, acc


def test_p2p_colour_swap_on_the_dit_keeps_the_structure_the_naive_baseline_loses(comfy, dit):
    p2p, naive = Q.p2p_swap(comfy, trials=4, attr="colour")  # 8 trials: 100 % vs 88 %, 0.026 vs 0.160, 0.71 vs 0.44
    assert p2p.mean("success") >= 0.5, Q._row(p2p)
    assert p2p.mean("shift") <= 0.5 * naive.mean("shift"), (Q._row(p2p), Q._row(naive))
    assert p2p.mean("silhouette_iou") >= naive.mean("silhouette_iou") + 0.1, (Q._row(p2p), Q._row(naive))


def test_second_order_flow_inversion_beats_euler_at_about_equal_model_calls_on_the_dit(comfy, dit):
    # benchmark, 4 drawn scenes: euler 10 steps (20 calls) 23.5 dB, fireflow 10 steps (22 calls) 26.0 dB, VAE 26.1
    text, seed = Q.drawn_captions(1)[0]
    euler = Q.psnr(*Q.flow_reconstruct(comfy, text, seed, "euler", 10))
    fireflow = Q.psnr(*Q.flow_reconstruct(comfy, text, seed, "fireflow", 10))
    vae = Q.psnr(*Q.reconstruct(comfy, text, seed, "vae"))
    assert fireflow >= euler + 1.0 and fireflow >= vae - 0.5, (euler, fireflow, vae)


def test_direct_inversion_p2p_on_the_dit_keeps_a_drawn_scene_better_than_naive(comfy, dit):
    # benchmark, 4 drawn scenes, colour swap: shift 0.038 vs 0.139, IoU 0.56 vs 0.24
    rows = Q.dit_real_swap(comfy, 4, "colour", methods=("direct_inversion", "naive"))
    p2p, naive = rows["direct_inversion"], rows["naive"]
    assert p2p.mean("shift") <= 0.6 * naive.mean("shift"), (Q._row(p2p), Q._row(naive))
    assert p2p.mean("silhouette_iou") >= naive.mean("silhouette_iou") + 0.1, (Q._row(p2p), Q._row(naive))


def test_dit_maps_put_an_object_word_on_its_object_at_three_times_chance(comfy, dit):
    # 16 captions, 9 objects read: 34.5 % of the word's map mass inside its object, which covers 9.6 % (3.6x chance;
    # the raw image->text attention these output maps replaced: 1.4x)
    loc = Q.map_localisation(comfy, 16)
    assert loc["n"] >= 6 and loc["inside"] >= 3.0 * loc["chance"], loc


def test_a_user_mask_keeps_the_source_latent_outside_it_on_the_dit(comfy, dit):
    region = np.zeros((Q.SIZE, Q.SIZE), bool)
    region[16:80, 8:72] = True  # a box around the left object, as drawn in the mask editor
    comfy.masks["user"] = torch.from_numpy(region.astype(np.float32))[None]
    api = Q._loader()
    api["20"] = {"class_type": "AttnEditTest_Mask", "inputs": {"name": "user"}}
    api["2"] = {"class_type": "AttnEdit_P2PReplace", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "latent": ["3", 0], **Q.P2P, "mask": ["20", 0],
        "source_prompt": "a large red circle and a small blue square on a gray background",
        "target_prompts": "a large red triangle and a small blue square on a gray background"}}
    api["5"] = Q._ksampler(["2", 0], ["2", 1], ["2", 2], seed=1)
    api["6"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "latent": ["5", 0]}}
    comfy.reset_cache()
    comfy.run(api)
    rows = comfy.captured["out"]["latent"]["samples"]
    outside = torch.ones(rows.shape[-2:], dtype=torch.bool)
    outside[1:11, 0:10] = False  # the box at latent size (/8), one latent pixel of bilinear margin each side
    assert torch.equal(rows[1][:, outside], rows[0][:, outside])
    assert (rows[1][:, 3:9, 2:8] - rows[0][:, 3:9, 2:8]).abs().mean() > 1e-3


def test_local_blend_on_the_dit_keeps_the_mask_small_and_the_other_object(comfy, dit):
    # 16 scenes, 8 read, threshold 0.5: mask 43 % of the image; other object changed 2.9 vs 8.2 without blend (0.36x)
    lb = Q.local_blend(comfy, 16)
    assert lb["blend"]["n"] >= 4, lb
    assert lb["blend"]["mask"] <= 0.5, lb
    assert lb["blend"]["other"] <= 0.5 * lb["p2p"]["other"], lb
    assert lb["blend"]["background"] <= lb["p2p"]["background"], lb


def test_regularized_flow_inversion_gives_whiter_noise_on_the_dit(comfy, dit):
    # benchmark (16 drawn scenes, Euler, 20 steps): see README, pix2pix-zero on the DiT
    noise = Q.flow_noise(comfy, 2)
    plain, regularized = noise[0.0], noise[20.0]
    assert regularized["lag1"] < plain["lag1"], noise
    assert regularized["kl"] < plain["kl"], noise
