import pytest

from tests.comfy_harness import Comfy, comfyui_found, comfyui_path, forget_dead_models


@pytest.fixture(scope="session")
def comfy():
    if not comfyui_found():
        pytest.skip(f"no ComfyUI at {comfyui_path()} (bash scripts/get_comfyui.sh, or set COMFYUI_PATH)")
    return Comfy()


@pytest.fixture(autouse=True)
def _no_dead_models():
    """Tests drop the clones they made in any order; see comfy_harness.forget_dead_models."""
    yield
    forget_dead_models()


def sampler_workflow(layout="sd15", patch=None, positive="a cat sitting on a mat", negative="", width=64,
                     height=64, steps=3, cfg=5.0, sampler="euler", scheduler="normal", seed=1, batch=1):
    """API-format: tiny models -> [patch node] -> 2x CLIPTextEncode -> EmptyLatent -> KSampler -> Capture."""
    model_ref = ["1", 0]
    prompt = {
        "1": {"class_type": "AttnEditTest_TinyModels", "inputs": {"layout": layout, "seed": 0}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": positive}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": negative}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": batch}},
        "6": {"class_type": "KSampler", "inputs": {"model": model_ref, "positive": ["3", 0], "negative": ["4", 0],
                                                   "latent_image": ["5", 0], "seed": seed, "steps": steps, "cfg": cfg,
                                                   "sampler_name": sampler, "scheduler": scheduler, "denoise": 1.0}},
        "7": {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "latent": ["6", 0]}},
    }
    if patch is not None:
        prompt["2"] = {"class_type": patch, "inputs": {"model": ["1", 0]}}
        prompt["6"]["inputs"]["model"] = ["2", 0]
    return prompt


def p2p_workflow(node="AttnEdit_P2PReplace", layout="sd15", source="a cat sitting on a mat",
                 targets="a dog sitting on a mat", cross=0.8, self_=0.4, negative="", width=128, height=128,
                 steps=4, cfg=5.0, sampler="euler", scheduler="normal", seed=3, patched=True, **options):
    """API-format: tiny models -> P2P node -> KSampler (model = patched or the plain one) -> Capture."""
    inputs = {"model": ["1", 0], "clip": ["1", 1], "latent": ["5", 0], "cross_replace": cross,
              "self_replace": self_, **options}
    if node == "AttnEdit_P2PReweight":
        inputs["prompt"] = source
    else:
        inputs["source_prompt"] = source
        inputs["target_prompts"] = targets
    return {
        "1": {"class_type": "AttnEditTest_TinyModels", "inputs": {"layout": layout, "seed": 0}},
        "2": {"class_type": node, "inputs": inputs},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": negative}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["2", 0] if patched else ["1", 0], "positive": ["2", 1],
                                                   "negative": ["4", 0], "latent_image": ["2", 2], "seed": seed,
                                                   "steps": steps, "cfg": cfg, "sampler_name": sampler,
                                                   "scheduler": scheduler, "denoise": 1.0}},
        "7": {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "latent": ["6", 0]}},
    }


def sample(comfy, prompt, fresh=True):
    """Run a workflow and return (captured latent samples, the patch's run summary or None)."""
    history = comfy.pack("attention.comfy_patch").RUN_HISTORY
    history.clear()
    if fresh:
        comfy.reset_cache()
    comfy.run(prompt)
    return comfy.captured["out"]["latent"]["samples"].clone(), (history[-1] if history else None)
