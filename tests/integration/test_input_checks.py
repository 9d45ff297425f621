"""Bad input that used to slip through: each now fails at the node with a message naming node, input and fix."""
from tests.integration.conftest import p2p_workflow


def error_of(comfy, prompt):
    comfy.reset_cache()
    result = comfy.run(prompt, expect_success=False)
    assert not result["ok"]
    return result["error"]


def maps_workflow(channels=4):
    return {
        "1": {"class_type": "AttnEditTest_TinyModels", "inputs": {"layout": "sd15", "seed": 0}},
        "2": {"class_type": "AttnEditTest_SyntheticLatent",
              "inputs": {"seed": 5, "width": 64, "height": 64, "channels": channels}},
        "3": {"class_type": "AttnEdit_AttentionMaps", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "latent": ["2", 0], "prompt": "a cat sitting on a mat",
            "negative": "", "seed": 0, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
            "resolution": "latent/4 (P2P)"}},
        "4": {"class_type": "AttnEditTest_Capture", "inputs": {"name": "maps", "image": ["3", 0]}},
    }


def test_attention_maps_checks_the_latent_like_the_other_nodes(comfy):
    comfy.run(maps_workflow())  # a 4-channel latent runs
    message = error_of(comfy, maps_workflow(channels=16))["exception_message"]
    assert message.startswith("AttnEdit_AttentionMaps: input 'latent'"), message
    assert "4-channel" in message and "VAE" in message


def test_regularized_inversion_below_cfg_one_needs_a_negative(comfy):
    graph = {
        "1": {"class_type": "AttnEditTest_TinyModels", "inputs": {"layout": "sd15", "seed": 0}},
        "2": {"class_type": "AttnEditTest_SyntheticLatent", "inputs": {"seed": 5, "width": 64, "height": 64,
                                                                       "channels": 4}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a cat"}},
        "10": {"class_type": "AttnEdit_DDIMInvertRegularized", "inputs": {
            "model": ["1", 0], "latent": ["2", 0], "positive": ["3", 0], "steps": 4, "lambda_ac": 20.0,
            "lambda_kl": 20.0, "reg_steps": 1, "ac_rolls": 1, "cfg": 0.5}},
        "11": {"class_type": "AttnEditTest_Capture", "inputs": {"name": "x_T", "latent": ["10", 0]}},
    }
    message = error_of(comfy, graph)["exception_message"]
    assert message.startswith("AttnEdit_DDIMInvertRegularized: input 'negative': cfg 0.5"), message
    graph["10"]["inputs"]["cfg"] = 1.0
    comfy.run(graph)  # cfg 1 needs none


def test_reweight_factors_that_cannot_stay_finite_are_refused(comfy):
    message = error_of(comfy, p2p_workflow(reweight="cat: 1e30"))["exception_message"]
    assert message.startswith("AttnEdit_P2PReplace: input 'reweight'") and "beyond ±100" in message, message


def test_the_error_type_prints_as_a_module_name_not_a_path(comfy):
    error = error_of(comfy, p2p_workflow(reweight="horse: 2"))
    assert error["exception_type"] == "attention_edit.InputError", error["exception_type"]
