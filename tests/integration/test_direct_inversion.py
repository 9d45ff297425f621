"""Direct Inversion in real ComfyUI: row 0 of the output is the input latent (with and without P2P after it), on
every UNet layout and with the stock samplers that can be exact; everything else is refused with node, input and
fix named."""
import pytest
import torch

from tests.integration.test_inversion import CAPTION, graph

STEPS = 10
# Measured max |row 0 - input latent| (VAE latent units, largest |value| 5.6): 2.4e-7 on sd15, sdxl and sd2v, at cfg
# 1 and 7.5, alone and under P2P: at most one float32 ulp at that magnitude (4.8e-7).
ROW0_TOLERANCE = 2e-6


def direct(g, steps=STEPS, cfg=1.0, latent=("2", 0), model=("1", 0), **extra):
    g["10"] = {"class_type": "AttnEdit_DirectInversion", "inputs": {
        "model": list(model), "latent": list(latent), "positive": ["3", 0], "steps": steps, "cfg": cfg, **extra}}
    return ["10", 0], ["10", 1], ["10", 2]


def p2p(g, model, x_T, target):
    g["20"] = {"class_type": "AttnEdit_P2PReplace", "inputs": {
        "model": model, "clip": ["1", 1], "latent": x_T, "source_prompt": CAPTION, "target_prompts": target,
        "cross_replace": 0.8, "self_replace": 0.5}}
    return ["20", 0], ["20", 1], ["20", 2]


def custom(g, model, positive, latent, sigmas, cfg=7.5, sampler="euler", add_noise=False):
    g["9"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": sampler}}
    g["11"] = {"class_type": "SamplerCustom", "inputs": {
        "model": model, "add_noise": add_noise, "noise_seed": 0, "cfg": cfg, "positive": positive,
        "negative": ["4", 0], "sampler": ["9", 0], "sigmas": sigmas, "latent_image": latent}}
    return capture(g, ["11", 0])


def capture(g, out):
    g["12"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "latent": out}}
    g["14"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "input", "latent": ["2", 0]}}
    return g


def run(comfy, g):
    history = comfy.pack("inversion.comfy_direct").RUN_HISTORY
    history.clear()
    comfy.reset_cache()
    comfy.run(g)
    c = comfy.captured
    return c["input"]["latent"]["samples"], c["out"]["latent"]["samples"], (history[-1] if history else None)


def refusal(comfy, g):
    comfy.reset_cache()
    result = comfy.run(g, expect_success=False)
    assert not result["ok"]
    return result["error"]["exception_message"]


@pytest.mark.parametrize("layout", ["sd15", "sdxl", "sd2v"])
def test_row_0_is_the_input_latent_alone_and_under_p2p(comfy, layout):
    g = graph(layout)
    model, x_T, sigmas = direct(g)
    x0, rec, summary = run(comfy, custom(g, model, ["3", 0], x_T, sigmas))
    error = float((rec[0] - x0[0]).abs().max())
    assert error < ROW0_TOLERANCE, error
    assert summary["steps"] == STEPS and summary["row0_drift"] < 1e-4, summary
    # the uncorrected source at cfg 7.5 drifts far: the correction did real work
    assert summary["source_correction"] > 0.1, summary

    g = graph(layout)
    model, x_T, sigmas = direct(g)
    model, positive, latent = p2p(g, model, x_T, CAPTION.replace("cat", "dog"))
    x0, edited, summary = run(comfy, custom(g, model, positive, latent, sigmas))
    assert edited.shape[0] == 2 and summary["rows"] == 2
    assert float((edited[0] - x0[0]).abs().max()) < ROW0_TOLERANCE
    assert float((edited[1] - edited[0]).abs().max()) > 1e-2, "the edited row did not change"


def test_plain_model_at_cfg_7_5_does_not_reconstruct(comfy):
    """The baseline the correction fixes: the same x_T sampled by the unpatched model at cfg 7.5 drifts."""
    g = graph()
    _, x_T, sigmas = direct(g)
    x0, rec, _ = run(comfy, custom(g, ["1", 0], ["3", 0], x_T, sigmas))
    assert float((rec[0] - x0[0]).abs().max()) > 1e-2


def test_ksampler_advanced_with_ddim_and_no_added_noise_is_exact(comfy):
    g = graph()
    model, x_T, _ = direct(g, scheduler="ddim_uniform")
    g["11"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "model": model, "add_noise": "disable", "noise_seed": 0, "steps": STEPS, "cfg": 5.0, "sampler_name": "ddim",
        "scheduler": "ddim_uniform", "positive": ["3", 0], "negative": ["4", 0], "latent_image": x_T,
        "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    x0, rec, summary = run(comfy, capture(g, ["11", 0]))
    assert float((rec[0] - x0[0]).abs().max()) < ROW0_TOLERANCE and summary["steps"] == STEPS


def test_rerunning_the_cached_workflow_gives_the_same_edit(comfy):
    g = graph()
    model, x_T, sigmas = direct(g)
    g = custom(g, *p2p(g, model, x_T, CAPTION.replace("cat", "dog"))[:2], ["20", 2], sigmas)
    _, first, _ = run(comfy, g)
    comfy.run(g)  # cached inversion and P2P node, fresh sampler run
    g["11"]["inputs"]["cfg"] = 7.0
    comfy.run(g)
    g["11"]["inputs"]["cfg"] = 7.5
    comfy.run(g)
    assert torch.equal(comfy.captured["out"]["latent"]["samples"], first)


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "euler_ancestral", "heun"])
def test_samplers_that_cannot_follow_the_trajectory_are_refused(comfy, sampler):
    g = graph()
    model, x_T, sigmas = direct(g)
    message = refusal(comfy, custom(g, model, ["3", 0], x_T, sigmas, sampler=sampler))
    assert message.startswith("AttnEdit_DirectInversion") and "input 'sampler'" in message, message
    assert sampler in message and "euler or ddim" in message, message


def test_another_schedule_is_refused(comfy):
    g = graph()
    model, x_T, _ = direct(g)
    g["30"] = {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "karras", "steps": STEPS,
                                                          "denoise": 1.0}}
    message = refusal(comfy, custom(g, model, ["3", 0], x_T, ["30", 0]))
    assert "input 'sigmas'" in message and "SIGMAS output" in message, message


def test_added_noise_is_refused(comfy):
    g = graph()
    model, x_T, sigmas = direct(g)
    message = refusal(comfy, custom(g, model, ["3", 0], x_T, sigmas, add_noise=True))
    assert "input 'add_noise'" in message and "add_noise off" in message, message


def test_a_batch_whose_row_0_is_not_the_source_is_refused(comfy):
    g = graph()
    model, x_T, sigmas = direct(g)
    g["31"] = {"class_type": "AttnEditTest_SyntheticLatent", "inputs": {"seed": 9, "width": 64, "height": 64,
                                                                        "channels": 4}}
    g["32"] = {"class_type": "LatentBatch", "inputs": {"samples1": ["31", 0], "samples2": x_T}}
    message = refusal(comfy, custom(g, model, ["3", 0], ["32", 0], sigmas))
    assert "input 'latent_image'" in message and "Row 0 must be the source" in message, message


@pytest.mark.parametrize("layout, inputs, node_input, text", [
    ("sd15", {"steps": 1}, "steps", "at least 2"),
    ("sd15", {"cfg": 3.0}, "negative", "negative conditioning"),
    ("dit", {}, "model", "does not support"),
])
def test_bad_inputs_are_refused(comfy, layout, inputs, node_input, text):
    g = graph(layout)
    model, x_T, sigmas = direct(g, **inputs)
    message = refusal(comfy, custom(g, model, ["3", 0], x_T, sigmas))
    assert message.startswith(f"AttnEdit_DirectInversion: input '{node_input}'") and text in message, message


def test_latent_of_another_model_family_is_refused(comfy):
    g = graph(channels=16)
    model, x_T, sigmas = direct(g)
    message = refusal(comfy, custom(g, model, ["3", 0], x_T, sigmas))
    assert message.startswith("AttnEdit_DirectInversion: input 'latent'") and "this model's VAE" in message, message


def test_a_model_that_already_carries_p2p_is_refused(comfy):
    g = graph()
    g["40"] = {"class_type": "AttnEdit_P2PReplace", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "latent": ["2", 0], "source_prompt": CAPTION,
        "target_prompts": CAPTION.replace("cat", "dog"), "cross_replace": 0.8, "self_replace": 0.5}}
    model, x_T, sigmas = direct(g, model=("40", 0))
    message = refusal(comfy, custom(g, model, ["3", 0], x_T, sigmas))
    assert message.startswith("AttnEdit_DirectInversion: input 'model'") and "after this node" in message, message


def test_a_noise_mask_is_refused(comfy):
    g = graph()
    model, x_T, sigmas = direct(g)
    g["33"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}}
    g["34"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": x_T, "mask": ["33", 0]}}
    message = refusal(comfy, custom(g, model, ["3", 0], ["34", 0], sigmas))
    assert "input 'latent_image'" in message and "noise mask" in message, message
