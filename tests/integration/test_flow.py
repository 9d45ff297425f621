"""Flow models in real ComfyUI (tiny Flux and SD3 layouts): ODE inversion with each solver comes back through the
stock SamplerCustom, Direct Inversion keeps the source row exact, FlowEdit with identical prompts returns the input;
bad input is refused with node, input and fix named."""
import pytest
import torch

from tests.integration.test_inversion import CAPTION, graph

STEPS = 10


def flow_graph(layout="flux"):
    return graph(layout, channels=16)


def invert(g, solver="euler", steps=STEPS, **extra):
    g["10"] = {"class_type": "AttnEdit_FlowInversion", "inputs": {
        "model": ["1", 0], "latent": ["2", 0], "positive": ["3", 0], "steps": steps, "solver": solver, "cfg": 1.0,
        **extra}}
    return ["10", 0], ["10", 1], ["10", 2]


def sample_back(g, x_T, sigmas, sampler, cfg=1.0, model=("1", 0), positive=("3", 0)):
    g["11"] = {"class_type": "SamplerCustom", "inputs": {
        "model": list(model), "add_noise": False, "noise_seed": 0, "cfg": cfg, "positive": list(positive),
        "negative": ["4", 0], "sampler": sampler, "sigmas": sigmas, "latent_image": x_T}}
    g["12"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "latent": ["11", 0]}}
    g["14"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "input", "latent": ["2", 0]}}
    return g


def run(comfy, g):
    comfy.reset_cache()
    comfy.run(g)
    return comfy.captured["input"]["latent"]["samples"], comfy.captured["out"]["latent"]["samples"]


def refusal(comfy, g):
    comfy.reset_cache()
    result = comfy.run(g, expect_success=False)
    assert not result["ok"]
    return result["error"]["exception_message"]


def round_trip_error(comfy, layout, solver, steps=STEPS):
    g = flow_graph(layout)
    x_T, sigmas, sampler = invert(g, solver, steps)
    x0, rec = run(comfy, sample_back(g, x_T, sigmas, sampler))
    return float((rec - x0).abs().mean() / x0.abs().mean())


@pytest.mark.parametrize("layout", ["flux", "sd3"])
def test_flow_inversion_comes_back_through_the_stock_sampler(comfy, layout):
    errors = {s: round_trip_error(comfy, layout, s) for s in ("euler", "midpoint", "fireflow")}
    # Measured, mean |error| / mean |latent| at 10 / 20 / 40 steps (random weights: the tiny Flux's velocity field
    # is rough, its QK gains peaked): flux euler 0.29 / 0.16 / 0.081, midpoint 0.17 / 0.052 / 0.019, fireflow
    # 0.15 / 0.042 / 0.020; sd3 euler 0.034 / 0.018 / 0.0092, midpoint 0.0029 / 0.0014 / 0.00035, fireflow
    # 0.0013 / 0.0008 / 0.00014: first and second order.
    assert errors["euler"] < {"flux": 0.4, "sd3": 0.05}[layout], errors
    assert errors["midpoint"] < 0.7 * errors["euler"] and errors["fireflow"] < 0.7 * errors["euler"], errors


def test_second_order_beats_euler_at_equal_model_calls(comfy):
    euler = round_trip_error(comfy, "sd3", "euler", steps=10)  # 10 calls each way
    fireflow = round_trip_error(comfy, "sd3", "fireflow", steps=9)  # 10 calls each way
    midpoint = round_trip_error(comfy, "sd3", "midpoint", steps=5)  # 10 calls each way
    assert fireflow < euler and midpoint < euler, (euler, fireflow, midpoint)


def test_x_T_is_noise_like_and_the_sigmas_start_below_1(comfy):
    g = flow_graph()
    x_T, sigmas, _ = invert(g)
    g["12"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "latent": x_T, "sigmas": sigmas}}
    comfy.reset_cache()
    comfy.run(g)
    s = comfy.captured["out"]["sigmas"]
    assert float(s[0]) == pytest.approx(comfy.pack("inversion.comfy_adapter").FLOW_SIGMA_TOP) and float(s[-1]) == 0
    assert torch.isfinite(comfy.captured["out"]["latent"]["samples"]).all()


@pytest.mark.parametrize("layout", ["flux", "sd3"])
def test_direct_inversion_keeps_row_0_exact_on_flow_models_under_p2p(comfy, layout):
    g = flow_graph(layout)
    g["10"] = {"class_type": "AttnEdit_DirectInversion", "inputs": {
        "model": ["1", 0], "latent": ["2", 0], "positive": ["3", 0], "steps": STEPS, "cfg": 1.0,
        "scheduler": "simple"}}
    g["20"] = {"class_type": "AttnEdit_P2PReplace", "inputs": {
        "model": ["10", 0], "clip": ["1", 1], "latent": ["10", 1], "source_prompt": CAPTION,
        "target_prompts": CAPTION.replace("cat", "dog"), "cross_replace": 0.8, "self_replace": 0.5}}
    g["9"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
    sample_back(g, ["20", 2], ["10", 2], ["9", 0], cfg=4.0, model=("20", 0), positive=("20", 1))
    x0, out = run(comfy, g)
    assert out.shape[0] == 2
    assert float((out[0] - x0[0]).abs().max()) < 1e-4 * (1 + float(x0.abs().max()))
    assert float((out[1] - out[0]).abs().max()) > 1e-3, "the edited row did not change"


def flow_edit(g, target=CAPTION, **extra):
    g["5"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": target}}
    g["10"] = {"class_type": "AttnEdit_FlowEdit", "inputs": {
        "model": ["1", 0], "latent": ["2", 0], "source": ["3", 0], "target": ["5", 0], "steps": STEPS, "n_max": 8,
        "n_min": 0, "n_avg": 1, "source_cfg": 3.5, "target_cfg": 3.5, "seed": 0, "negative": ["4", 0], **extra}}
    g["12"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "latent": ["10", 0]}}
    g["14"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "input", "latent": ["2", 0]}}
    return g


@pytest.mark.parametrize("layout", ["flux", "sd3"])
def test_flow_edit_with_identical_prompts_returns_the_input(comfy, layout):
    x0, out = run(comfy, flow_edit(flow_graph(layout)))
    assert float((out - x0).abs().max()) < 1e-5 * (1 + float(x0.abs().max()))
    x0, out = run(comfy, flow_edit(flow_graph(layout), target=CAPTION.replace("cat", "dog")))
    assert float((out - x0).abs().max()) > 1e-3  # a real edit moves it
    x0, again = run(comfy, flow_edit(flow_graph(layout), target=CAPTION.replace("cat", "dog")))
    assert torch.equal(out, again)  # seeded: the same edit twice


def test_flow_edit_last_steps_sample_plainly(comfy):
    _, edited = run(comfy, flow_edit(flow_graph("sd3"), n_min=3))
    x0, _ = run(comfy, flow_edit(flow_graph("sd3")))
    assert float((edited - x0).abs().max()) > 1e-4  # the n_min steps re-noise and sample: not the identity


@pytest.mark.parametrize("node, inputs, node_input, text", [
    ("inversion", {"steps": 1}, "steps", "at least 2"),
    ("inversion", {"cfg": 3.0}, "negative", "negative conditioning"),
    ("flow_edit", {"n_max": 20}, "n_max", "1..steps"),
    ("flow_edit", {"n_min": 9}, "n_min", "0..n_max"),
])
def test_bad_inputs_are_refused(comfy, node, inputs, node_input, text):
    g = flow_graph("sd3")
    if node == "inversion":
        x_T, sigmas, sampler = invert(g, **inputs)
        sample_back(g, x_T, sigmas, sampler)
        name = "AttnEdit_FlowInversion"
    else:
        flow_edit(g, **inputs)
        name = "AttnEdit_FlowEdit"
    message = refusal(comfy, g)
    assert message.startswith(f"{name}: input '{node_input}'") and text in message, message


def test_flow_edit_without_negative_on_a_cfg_model_is_refused(comfy):
    g = flow_edit(flow_graph("sd3"))
    del g["10"]["inputs"]["negative"]
    message = refusal(comfy, g)
    assert message.startswith("AttnEdit_FlowEdit: input 'negative'"), message


def test_a_unet_model_and_a_foreign_latent_are_refused(comfy):
    g = graph("sd15")
    x_T, sigmas, sampler = invert(g)
    message = refusal(comfy, sample_back(g, x_T, sigmas, sampler))
    assert message.startswith("AttnEdit_FlowInversion: input 'model'") and "DDIM inversion" in message, message
    g = graph("flux", channels=4)
    x_T, sigmas, sampler = invert(g)
    message = refusal(comfy, sample_back(g, x_T, sigmas, sampler))
    assert message.startswith("AttnEdit_FlowInversion: input 'latent'") and "this model's VAE" in message, message


@pytest.mark.parametrize("layout", ["flux", "qwen_image", "chroma", "z_image"])
def test_regularized_flow_inversion_gives_whiter_noise(comfy, layout):
    from inversion.regularizer import kl_to_standard_normal, lag1_autocorrelation

    def x_T(**extra):
        g = graph(layout, size=128, channels=16)
        node = invert(g, "euler", **extra)[0]
        g["12"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "latent": node}}
        comfy.reset_cache()
        comfy.run(g)
        return comfy.captured["out"]["latent"]["samples"]

    plain, off = x_T(), x_T(lambda_ac=0.0, lambda_kl=0.0, reg_steps=5)
    reg = x_T(lambda_ac=20.0, lambda_kl=20.0)
    assert torch.equal(plain, off), "both weights 0 is plain inversion"
    # the LATENT is x_T / (1 - s_top) in VAE units: back to the noise the model sees
    fmt = comfy.test_pack.nodes._MODELS[(layout, 0)][0].model.latent_format
    top = comfy.pack("inversion.comfy_adapter").FLOW_SIGMA_TOP
    frames = [fmt.process_in(t)[:, :, 0] if t.ndim == 5 else fmt.process_in(t) for t in (plain, reg)]
    plain_eps, reg_eps = (f * (1 - top) for f in frames)
    assert lag1_autocorrelation(reg_eps) < lag1_autocorrelation(plain_eps), layout
    # the random tiny models already invert to about N(0, 1) (flux: KL 0.010, 0.048 regularized): the KL term is
    # pinned on the demo DiT, whose plain x_T is far from it (test_demo_dit.py)
    assert kl_to_standard_normal(reg_eps) < 0.2, layout
    assert torch.isfinite(reg).all()


@pytest.mark.parametrize("node", ["AttnEdit_DDIMInvertRegularized", "AttnEdit_NullTextInversion"])
def test_ddim_inversion_nodes_send_flow_models_to_the_flow_inversion(comfy, node):
    g = flow_graph()
    inputs = {"model": ["1", 0], "latent": ["2", 0], "positive": ["3", 0], "steps": 4, "cfg": 1.0}
    if node == "AttnEdit_DDIMInvertRegularized":
        inputs.update(lambda_ac=20.0, lambda_kl=20.0, reg_steps=5, ac_rolls=5)
    else:
        inputs.update(negative=["4", 0], inner_steps=1, early_stop=1e-5)
    g["10"] = {"class_type": node, "inputs": inputs}
    g["12"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "latent": ["10", 0 if "DDIM" in node
                                                                                          else 1]}}
    message = refusal(comfy, g)
    assert message.startswith(f"{node}: input 'model'") and "AttnEdit_FlowInversion" in message, message
