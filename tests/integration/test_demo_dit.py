"""The shipped demo DiT: the file, the loader node, the joint-attention backend on it, and quality floors measured with
benchmarks/quality.py on few trials (the full table is in README; floors sit well below the measured values)."""
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
