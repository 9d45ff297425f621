"""Prompt-to-Prompt on a video model, in real ComfyUI: a tiny random-weight Wan 2.1 text-to-video layout built from
ComfyUI's WanModel, its Wan text-encoder classes (UMT5 padded to 512, SentencePiece model read from the tokenizer
data as from a real file) and its video VAE. Latents are [B, 16, frames, H, W]."""
import pytest
import torch

from tests.integration.conftest import p2p_workflow, sample

SOURCE = "a red cat sitting on a mat"
TARGET = "a red dog sitting on a mat"
FRAMES = 9  # pixel frames: (9 - 1) / 4 + 1 = 3 latent frames


def video_p2p(node="AttnEdit_P2PReplace", targets=TARGET, size=64, steps=4, cfg=1.0, patched=True, layout="wan",
              **options):
    wf = p2p_workflow(node=node, layout=layout, source=SOURCE, targets=targets, cfg=cfg, steps=steps,
                      scheduler="simple", patched=patched, **options)
    wf["5"] = {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": size, "height": size, "length": FRAMES,
                                                                   "batch_size": 1}}
    return wf


def test_every_block_is_reached_self_and_cross(comfy):
    out, run = sample(comfy, video_p2p(steps=3))
    assert out.shape == (2, 16, 3, 8, 8)
    assert run["family"] == "Wan" and run["layers"] == 2 and run["layers_called"] == run["layers"], run
    assert run["cross_calls"] == run["layers"] * run["model_calls"], run
    assert run["self_calls"] == run["layers"] * run["model_calls"], run
    assert run["edited_cross_calls"] > 0 and run["injected_self_calls"] > 0, run
    assert torch.isfinite(out).all()


def test_identical_prompts_give_identical_rows(comfy):
    out, run = sample(comfy, video_p2p(targets=SOURCE))
    assert run["edited_cross_calls"] > 0
    torch.testing.assert_close(out[1], out[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_windows_of_zero_give_exactly_the_plain_batch(comfy, cfg):
    edited, run = sample(comfy, video_p2p(cross=0.0, self_=0.0, cfg=cfg, negative="blurry"))
    plain, _ = sample(comfy, video_p2p(cross=0.0, self_=0.0, cfg=cfg, negative="blurry", patched=False))
    assert run["cross_calls"] > 0
    assert torch.equal(edited, plain)


def test_reweight_one_is_the_identity(comfy):
    out, run = sample(comfy, video_p2p(node="AttnEdit_P2PReweight", reweight="cat: 1.0"))
    assert run["edited_cross_calls"] > 0
    torch.testing.assert_close(out[1], out[0], atol=1e-4, rtol=0)


def test_the_edit_keeps_the_edited_video_closer_to_the_source_than_plain_generation(comfy):
    edited, _ = sample(comfy, video_p2p(cfg=3.0))
    plain, _ = sample(comfy, video_p2p(cfg=3.0, patched=False))
    assert torch.equal(edited[0], plain[0])  # the source row is never touched
    assert (edited[1] - edited[0]).norm() < 0.95 * (plain[1] - plain[0]).norm()


def test_local_blend_masks_each_frame_and_keeps_the_source_outside(comfy):
    out, run = sample(comfy, video_p2p(size=128, blend_words="cat | dog", blend_threshold=0.8))
    assert run["blend_applied"] > 0 and run["blend_map_size"] == (3, 8, 8), run
    mask = run["blend_mask"]  # [edits, 1, frames, H, W]
    assert mask.shape == (1, 1, 3, 16, 16) and 0 < mask.mean() < 1
    assert not all(torch.equal(mask[:, :, 0], mask[:, :, f]) for f in range(1, 3)), "one mask per frame"
    outside = mask[0, 0] == 0  # [frames, H, W]
    torch.testing.assert_close(out[1][:, outside], out[0][:, outside], atol=1e-5, rtol=0)


def test_a_user_mask_keeps_the_source_outside_on_every_frame(comfy):
    wf = video_p2p()
    wf["30"] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 64, "height": 64}}
    wf["31"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 32, "height": 64}}
    wf["32"] = {"class_type": "MaskComposite", "inputs": {"destination": ["30", 0], "source": ["31", 0], "x": 0,
                                                          "y": 0, "operation": "add"}}
    wf["2"]["inputs"]["mask"] = ["32", 0]
    out, run = sample(comfy, wf)
    assert run["user_mask_covers"] == pytest.approx(0.5)
    torch.testing.assert_close(out[1][..., 4:], out[0][..., 4:], atol=0, rtol=0)
    assert not torch.equal(out[1][..., :4], out[0][..., :4])


def test_attention_maps_give_a_labelled_grid_per_frame(comfy):
    prompt = {
        "1": {"class_type": "AttnEditTest_TinyModels", "inputs": {"layout": "wan", "seed": 0}},
        "5": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64, "length": FRAMES,
                                                                  "batch_size": 1}},
        "2": {"class_type": "AttnEdit_AttentionMaps", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "latent": ["5", 0], "vae": ["1", 2], "prompt": "a red cat, sitting",
            "negative": "", "seed": 0, "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple",
            "resolution": "all", "tile_size": 32, "columns": 8, "mask_words": "cat | red"}},
        "7": {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "image": ["2", 0], "mask": ["2", 2]}},
    }
    comfy.reset_cache()
    comfy.run(prompt)
    grid, masks = comfy.captured["out"]["image"], comfy.captured["out"]["mask"]
    # one grid per latent frame: the frame, then a tile per word (a, red, cat, sitting): 5 tiles of 32 px + labels
    assert grid.shape == (3, 48, 5 * 32, 3)
    assert not torch.equal(grid[0], grid[2])
    assert masks.shape == (2, 64, 64) and 0.9 < masks.amax() <= 1 and masks.amin() >= 0


def test_words_map_onto_umt5s_padded_tokens(comfy):
    comfy.run(video_p2p(steps=1))
    clip = comfy.test_pack.nodes._MODELS[("wan", 0)][1]
    prompts = comfy.pack("nodes.clip_prompts")
    encoding = prompts.prompt_encoding(clip, "a red cat, sitting", "test", "prompt")
    words = encoding.primary.word_texts
    assert encoding.text_len == 512
    assert {w: encoding.word_slots(words.index(w)) for w in ("a", "red", "cat", "sitting")} == {
        "a": [0], "red": [1], "cat": [2], "sitting": [4]}
    assert prompts.encode_rows(clip, ["a red cat", "a red cat on a mat"])[0][0].shape[:2] == (2, 512)


def _two_experts(high_model, low_model, steps=4, split=2):
    """Wan 2.2 14B's wiring: the high-noise expert samples the first steps with leftover noise, the low-noise expert
    the rest (two KSamplerAdvanced nodes); here both experts are the same tiny model, so the split run must equal
    one KSampler run."""
    wf = video_p2p(steps=steps)
    common = {"noise_seed": 3, "steps": steps, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple",
              "positive": ["2", 1], "negative": ["4", 0]}
    wf["6"] = {"class_type": "KSamplerAdvanced", "inputs": {
        **common, "model": high_model, "add_noise": "enable", "latent_image": ["2", 2], "start_at_step": 0,
        "end_at_step": split, "return_with_leftover_noise": "enable"}}
    wf["8"] = {"class_type": "KSamplerAdvanced", "inputs": {
        **common, "model": low_model, "add_noise": "disable", "latent_image": ["6", 0], "start_at_step": split,
        "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    wf["7"]["inputs"]["latent"] = ["8", 0]
    for node_id, model, start in (("10", ["2", 0], 0), ("11", ["1", 0], split)):
        wf[node_id] = {"class_type": "AttnEdit_P2PStepRange", "inputs": {
            "model": model, "positive": ["2", 1], "steps": steps, "start_at_step": start}}
    return wf


def test_two_experts_with_step_ranges_give_the_single_sampler_run(comfy):
    single, _ = sample(comfy, video_p2p(steps=4))
    split, run = sample(comfy, _two_experts(["10", 0], ["11", 0]))
    assert run["edited_cross_calls"] > 0
    torch.testing.assert_close(split, single, atol=1e-5, rtol=0)
    # without the ranges, the low-noise part is unedited and each part counts its windows on its own
    unranged, _ = sample(comfy, _two_experts(["2", 0], ["1", 0]))
    assert (unranged[1] - single[1]).abs().max() > 1e-3


def test_step_range_refuses_a_conditioning_without_an_edit(comfy):
    wf = _two_experts(["10", 0], ["11", 0])
    wf["11"]["inputs"]["positive"] = ["4", 0]
    comfy.reset_cache()
    result = comfy.run(wf, expect_success=False)
    message = result["error"]["exception_message"]
    assert message.startswith("AttnEdit_P2PStepRange: input 'positive'") and "P2P node" in message, message


def video_graph():
    from tests.integration.test_inversion import graph

    g = graph("wan", channels=16)
    g["2"]["inputs"]["frames"] = 3
    return g


def test_flow_inversion_of_a_video_comes_back_through_the_stock_sampler(comfy):
    from tests.integration.test_flow import invert, run, sample_back

    def error(solver, steps):
        g = video_graph()
        x_T, sigmas, sampler = invert(g, solver, steps=steps)
        x0, rec = run(comfy, sample_back(g, x_T, sigmas, sampler))
        assert rec.shape == x0.shape == (1, 16, 3, 8, 8)
        return float((rec - x0).abs().mean() / x0.abs().mean())

    # measured on the tiny random Wan (shift 8: a rough field), mean |error| / mean |latent| at 10 / 20 / 40 steps:
    # euler 0.52 / 0.28 / 0.14, midpoint 0.12 / 0.082 / 0.031: both converge, second order below first
    euler, midpoint, midpoint_40 = error("euler", 20), error("midpoint", 20), error("midpoint", 40)
    assert midpoint < 0.5 * euler and midpoint_40 < 0.06, (euler, midpoint, midpoint_40)


def test_direct_inversion_keeps_the_source_video_exact_under_p2p(comfy):
    from tests.integration.test_flow import run, sample_back
    from tests.integration.test_inversion import CAPTION

    g = video_graph()
    g["10"] = {"class_type": "AttnEdit_DirectInversion", "inputs": {
        "model": ["1", 0], "latent": ["2", 0], "positive": ["3", 0], "steps": 6, "cfg": 1.0, "scheduler": "simple"}}
    g["20"] = {"class_type": "AttnEdit_P2PReplace", "inputs": {
        "model": ["10", 0], "clip": ["1", 1], "latent": ["10", 1], "source_prompt": CAPTION,
        "target_prompts": CAPTION.replace("cat", "dog"), "cross_replace": 0.8, "self_replace": 0.5}}
    sample_back(g, ["20", 2], ["10", 2], ["9", 0], cfg=4.0, model=("20", 0), positive=("20", 1))
    x0, out = run(comfy, g)
    assert out.shape == (2, 16, 3, 8, 8)
    assert float((out[0] - x0[0]).abs().max()) < 1e-4 * (1 + float(x0.abs().max()))
    assert float((out[1] - out[0]).abs().max()) > 1e-3, "the edited row did not change"


def test_flow_edit_on_a_video(comfy):
    from tests.integration.test_flow import flow_edit, run
    from tests.integration.test_inversion import CAPTION

    x0, out = run(comfy, flow_edit(video_graph()))
    assert out.shape == x0.shape and float((out - x0).abs().max()) < 1e-5 * (1 + float(x0.abs().max()))
    x0, out = run(comfy, flow_edit(video_graph(), target=CAPTION.replace("cat", "dog")))
    assert float((out - x0).abs().max()) > 1e-3


def test_image_to_video_edits_the_text_and_leaves_the_image_cross_attention(comfy):
    """Wan 2.1 I2V as users wire it: the P2P positive through WanImageToVideo (start image, CLIP-vision tokens in
    front of the text); per block the self-attention, the image cross-attention (plain) and the text one."""
    def graph(targets):
        wf = video_p2p(targets=targets, layout="wan_i2v")
        wf["41"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
        wf["42"] = {"class_type": "AttnEditTest_ClipVisionOutput", "inputs": {"seed": 0}}
        wf["40"] = {"class_type": "WanImageToVideo", "inputs": {
            "positive": ["2", 1], "negative": ["4", 0], "vae": ["1", 2], "width": 64, "height": 64, "length": FRAMES,
            "batch_size": 1, "start_image": ["41", 0], "clip_vision_output": ["42", 0]}}
        wf["6"]["inputs"].update(positive=["40", 0], negative=["40", 1])
        return wf

    same, run = sample(comfy, graph(SOURCE))
    assert run["cross_calls"] == run["self_calls"] == run["layers"] * run["model_calls"], run
    torch.testing.assert_close(same[1], same[0], atol=1e-4, rtol=0)
    edited, _ = sample(comfy, graph(TARGET))
    assert float((edited[1] - edited[0]).abs().max()) > 1e-3
