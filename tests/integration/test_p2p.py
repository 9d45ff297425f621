"""Prompt-to-Prompt in real ComfyUI on tiny SD1.5 / SD2 (v) / SDXL layouts, through the stock KSampler."""
import pytest
import torch

from tests.integration.conftest import p2p_workflow, sample

LAYOUTS = ["sd15", "sdxl", "sd2v"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_identical_prompts_give_identical_rows(comfy, layout):
    out, run = sample(comfy, p2p_workflow(layout=layout, targets="a cat sitting on a mat"))
    assert out.shape[0] == 2
    assert run["edited_cross_calls"] > 0 and run["injected_self_calls"] > 0
    assert torch.equal(out[0], out[1])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_zero_windows_equal_a_plain_batched_generation(comfy, layout):
    patched, run = sample(comfy, p2p_workflow(layout=layout, cross=0.0, self_=0.0))
    plain, _ = sample(comfy, p2p_workflow(layout=layout, patched=False))
    assert run["layers_called"] == run["layers"] and run["edited_cross_calls"] == 0
    assert torch.equal(patched, plain)
    assert not torch.equal(plain[0], plain[1]), "the two prompts should give different rows"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_replace_edits_the_target_row_and_leaves_the_source_row(comfy, layout):
    edited, run = sample(comfy, p2p_workflow(layout=layout))
    naive, _ = sample(comfy, p2p_workflow(layout=layout, patched=False))
    assert torch.equal(edited[0], naive[0]), "row 0 (source) must not depend on the edit"
    assert not torch.allclose(edited[1], naive[1], atol=1e-4), "the edit had no effect"
    # structure kept: the edit is closer to the source than the naive re-generation is
    assert (edited[1] - edited[0]).abs().mean() < (naive[1] - naive[0]).abs().mean()


@pytest.mark.parametrize("layout", ["sd15", "sdxl"])
def test_reweight_one_is_the_identity(comfy, layout):
    reweighted, run = sample(comfy, p2p_workflow(node="AttnEdit_P2PReweight", layout=layout, reweight="cat: 1.0"))
    plain, _ = sample(comfy, p2p_workflow(node="AttnEdit_P2PReweight", layout=layout, reweight="cat: 1.0",
                                          patched=False))
    assert run["edited_cross_calls"] > 0
    assert torch.allclose(reweighted, plain, atol=1e-6, rtol=0)
    stronger, _ = sample(comfy, p2p_workflow(node="AttnEdit_P2PReweight", layout=layout, reweight="cat: 2.0"))
    assert torch.equal(stronger[0], plain[0]) and not torch.allclose(stronger[1], plain[1], atol=1e-4)


def test_refine_adds_a_phrase(comfy):
    out, run = sample(comfy, p2p_workflow(node="AttnEdit_P2PRefine", targets="a fluffy cat sitting on a mat"))
    same, _ = sample(comfy, p2p_workflow(node="AttnEdit_P2PRefine", targets="a cat sitting on a mat"))
    assert run["edited_cross_calls"] > 0
    assert torch.equal(same[0], same[1])
    assert not torch.allclose(out[1], out[0], atol=1e-4)


@pytest.mark.parametrize("sampler", ["euler", "ddim"])
@pytest.mark.parametrize("layout", ["sd15", "sdxl"])
def test_local_blend_keeps_the_source_outside_the_mask(comfy, layout, sampler):
    # random weights attend almost uniformly: a high threshold and 8x8 maps (256 px) give a real mask
    out, run = sample(comfy, p2p_workflow(layout=layout, sampler=sampler, blend_words="cat | dog",
                                          blend_threshold=0.9, width=256, height=256, steps=3))
    mask = run["blend_mask"]
    assert run["blend_applied"] > 0
    outside = mask[0, 0] == 0
    assert 0 < outside.sum() < outside.numel(), "degenerate mask"
    diff = (out[1] - out[0]).abs()
    # measured: 0 (sd15) and 7.5e-9 (sdxl): euler's last step x + (x - D)/s * (0 - s) rounds, it is D only
    # up to float error where an earlier, larger mask let the rows differ
    assert diff[:, outside].max().item() < 1e-6, "edited row differs from the source outside the mask"
    assert diff[:, ~outside].max().item() > 0


@pytest.mark.parametrize("resolution, size", [("auto (P2P 16x16)", (16, 16)), ("latent", (32, 32)),
                                              ("latent/2", (16, 16)), ("latent/4", (8, 8)), ("latent/8", (4, 4))])
def test_blend_resolution_picks_the_layers_whose_maps_make_the_mask(comfy, resolution, size):
    # 256 px: a 32x32 latent; SD1.5 has cross-attention at latent, latent/2, latent/4 and in the middle block (latent/8)
    out, run = sample(comfy, p2p_workflow(blend_words="cat | dog", blend_resolution=resolution, width=256,
                                          height=256, steps=2))
    assert run["blend_map_size"] == size and run["blend_applied"] > 0


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmpp_2m_sde", "dpmpp_2m", "heun"])
def test_other_samplers_share_noise_across_rows(comfy, sampler):
    out, run = sample(comfy, p2p_workflow(targets="a cat sitting on a mat", sampler=sampler))
    assert torch.equal(out[0], out[1]), f"{sampler}: identical prompts gave different rows"


def test_cfg_one_and_split_cond_uncond_calls(comfy, monkeypatch):
    out, run = sample(comfy, p2p_workflow(cfg=1.0))
    assert run["edited_cross_calls"] > 0
    batched, _ = sample(comfy, p2p_workflow())
    import comfy.model_management as mm

    real = mm.get_free_memory

    def tight(dev=None, torch_free_too=False):  # _calc_cond_batch sees no room: one UNet call per cond
        return real(dev, torch_free_too) if torch_free_too else 1

    monkeypatch.setattr(mm, "get_free_memory", tight)
    split, run = sample(comfy, p2p_workflow())
    assert run["unet_calls"] == 2 * 4
    assert torch.allclose(split, batched, rtol=1e-4, atol=1e-4)  # values reach 1e2 on random weights


def test_long_negative_prompt_does_not_shift_tokens(comfy):
    negative = ", ".join(["blurry low quality bad anatomy"] * 20)  # > 75 tokens: two chunks
    same, run = sample(comfy, p2p_workflow(targets="a cat sitting on a mat", negative=negative))
    assert torch.equal(same[0], same[1])
    edited, _ = sample(comfy, p2p_workflow(negative=negative))
    assert not torch.allclose(edited[0], edited[1], atol=1e-4)


def test_two_edits_from_one_model_are_independent_and_reruns_repeat(comfy):
    wf = p2p_workflow()
    wf["12"] = {"class_type": "AttnEdit_P2PReplace", "inputs": {**wf["2"]["inputs"], "target_prompts": "a cat sitting on a rug"}}
    wf["16"] = {"class_type": "KSampler", "inputs": {**wf["6"]["inputs"], "model": ["12", 0], "positive": ["12", 1],
                                                     "latent_image": ["12", 2]}}
    wf["17"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "second", "latent": ["16", 0]}}
    comfy.run(wf)
    first, second = comfy.captured["out"]["latent"]["samples"], comfy.captured["second"]["latent"]["samples"]
    alone, _ = sample(comfy, p2p_workflow())
    assert torch.equal(first, alone)
    assert torch.equal(first[0], second[0]) and not torch.equal(first[1], second[1])
    again, rerun = sample(comfy, p2p_workflow(), fresh=False)  # cached: nothing re-runs, same result
    assert rerun is None and torch.equal(again, alone)


def test_an_interrupted_run_leaves_the_next_run_correct(comfy, monkeypatch):
    import comfy.model_management as mm

    reference, _ = sample(comfy, p2p_workflow(blend_words="cat | dog"))
    editor = comfy.pack("attention.p2p_editor").P2PEditor
    original = editor.cross_attention
    calls = {"n": 0}

    def interrupting(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 20:  # mid-sampling, after run state and blend maps exist
            mm.interrupt_current_processing(True)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(editor, "cross_attention", interrupting)
    comfy.reset_cache()
    result = comfy.run(p2p_workflow(blend_words="cat | dog"), expect_success=False)
    assert any(e == "execution_interrupted" for e, _ in result["messages"]), result["messages"][-1]
    monkeypatch.setattr(editor, "cross_attention", original)
    again, run = sample(comfy, p2p_workflow(blend_words="cat | dog"))
    assert torch.equal(again, reference) and run["blend_applied"] > 0


@pytest.mark.parametrize("width, height", [(72, 136), (200, 96)])
def test_non_square_sizes_not_multiple_of_64(comfy, width, height):
    out, run = sample(comfy, p2p_workflow(width=width, height=height, targets="a cat sitting on a mat",
                                          blend_words="cat"))
    assert out.shape[-2:] == (height // 8, width // 8)
    assert (out[0] - out[1]).abs().max() < 1e-4 and run["blend_applied"] > 0


def test_ksampler_advanced_and_sampler_custom_take_the_p2p_outputs(comfy):
    wf = p2p_workflow()
    edited, _ = sample(comfy, wf)
    adv = p2p_workflow()
    inputs = adv["6"]["inputs"]
    adv["6"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "model": inputs["model"], "add_noise": "enable", "noise_seed": inputs["seed"], "steps": inputs["steps"],
        "cfg": inputs["cfg"], "sampler_name": "euler", "scheduler": "normal", "positive": inputs["positive"],
        "negative": inputs["negative"], "latent_image": inputs["latent_image"], "start_at_step": 0,
        "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    advanced, run = sample(comfy, adv)
    assert torch.equal(advanced, edited) and run["edited_cross_calls"] > 0


@pytest.mark.parametrize("other,inputs", [("SelfAttentionGuidance", {"scale": 0.5, "blur_sigma": 2.0}),
                                          ("PerturbedAttentionGuidance", {"scale": 3.0})])
@pytest.mark.parametrize("order", ["before", "after"])
def test_stock_attention_patching_nodes_compose_with_p2p_in_either_order(comfy, other, inputs, order):
    """SAG and PAG patch the middle block's self-attention; ours wraps theirs instead of replacing it (or being
    replaced): the run succeeds, their guidance changes the result, and the edit still reaches every layer."""
    alone, run_alone = sample(comfy, p2p_workflow())
    wf = p2p_workflow()
    if order == "before":
        wf["8"] = {"class_type": other, "inputs": {"model": ["1", 0], **inputs}}
        wf["2"]["inputs"]["model"] = ["8", 0]
    else:
        wf["8"] = {"class_type": other, "inputs": {"model": ["2", 0], **inputs}}
        wf["6"]["inputs"]["model"] = ["8", 0]
    combined, run = sample(comfy, wf)
    assert torch.isfinite(combined).all()
    assert not torch.allclose(combined, alone, atol=1e-4), f"{other} had no effect"
    assert run["layers_called"] == run["layers"] and run["injected_self_calls"] >= run_alone["injected_self_calls"]
    assert run["edited_cross_calls"] >= run_alone["edited_cross_calls"] > 0


@pytest.mark.parametrize("layout", ["sd15", "flux"])
def test_weighted_and_escaped_prompts_edit_their_words(comfy, layout):
    """ComfyUI weight syntax applies to the encoding exactly as CLIPTextEncode applies it, while words are found
    without it: '(red:1.4)' is the word 'red', '\\(' a literal bracket."""
    from tests.integration.test_joint_attention import joint_p2p

    source = "a (red:1.4) cat \\(big\\) sitting on a mat"
    target = "a (red:1.4) dog \\(big\\) sitting on a mat"
    make = joint_p2p if layout == "flux" else p2p_workflow
    wf = make(layout=layout, source=source, targets=target, reweight="red: 1.5", blend_words="cat | dog")
    wf["9"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": target}}
    wf["10"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "stock", "conditioning": ["9", 0]}}
    wf["11"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "ours", "conditioning": ["2", 1]}}
    comfy.reset_cache()
    result = comfy.run(wf)
    ours, stock = comfy.captured["ours"]["conditioning"], comfy.captured["stock"]["conditioning"]
    assert torch.equal(ours[0][0][1:2], stock[0][0])  # row 1 = the weighted target, encoded as ComfyUI does
    unweighted = comfy.pack("nodes.clip_prompts").encode_rows(
        comfy.test_pack.nodes._MODELS[(layout, 0)][1], ["a red dog (big) sitting on a mat"])
    assert not torch.equal(ours[0][0][1:2], unweighted[0][0])  # the weight did change the encoding
    assert result["ok"]


def test_a_word_key_applies_only_to_the_edited_prompts_that_contain_it(comfy):
    """'dog: 0' with targets 'dog' and 'rug': the dog row takes the key, the rug row keeps the default window."""
    both, _ = sample(comfy, p2p_workflow(targets="a dog sitting on a mat\na cat sitting on a rug",
                                         word_schedule="dog: 0"))
    dog_keyed, _ = sample(comfy, p2p_workflow(word_schedule="dog: 0"))
    dog_plain, _ = sample(comfy, p2p_workflow())
    rug_plain, _ = sample(comfy, p2p_workflow(targets="a cat sitting on a rug"))
    assert both.shape[0] == 3
    effect = (dog_keyed[1] - dog_plain[1]).abs().max()
    assert effect > 0.05, "the key had no effect"
    # rows of different batch sizes agree to float rounding (~1e-4 here; random-weight latents reach ~300)
    assert (both[1] - dog_keyed[1]).abs().max() < 1e-3
    assert (both[2] - rug_plain[1]).abs().max() < 1e-3


def test_split_sampling_counts_windows_per_sampler_run_as_documented(comfy):
    """Two KSamplerAdvanced nodes (steps 0-4, then 4-8) each count the windows over their own part; with the
    first part's P2P node injecting throughout (1.0) and the second's not at all (0.0), the split run edits as
    one 8-step KSampler with cross 0.5 (int(0.5 * 9) = 4 steps) and self 0.5 (int(0.5 * 8) = 4 steps)."""
    whole, _ = sample(comfy, p2p_workflow(steps=8, cross=0.5, self_=0.5))
    wf = p2p_workflow(steps=8, cross=1.0, self_=1.0)
    wf["12"] = {"class_type": "AttnEdit_P2PReplace", "inputs": {**wf["2"]["inputs"], "cross_replace": 0.0,
                                                               "self_replace": 0.0}}
    common = {"seed": 3, "steps": 8, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
              "negative": ["4", 0]}
    wf["6"] = {"class_type": "KSamplerAdvanced", "inputs": {
        **common, "model": ["2", 0], "positive": ["2", 1], "latent_image": ["2", 2], "add_noise": "enable",
        "noise_seed": 3, "start_at_step": 0, "end_at_step": 4, "return_with_leftover_noise": "enable"}}
    wf["16"] = {"class_type": "KSamplerAdvanced", "inputs": {
        **common, "model": ["12", 0], "positive": ["12", 1], "latent_image": ["6", 0], "add_noise": "disable",
        "noise_seed": 3, "start_at_step": 4, "end_at_step": 8, "return_with_leftover_noise": "disable"}}
    for k in ("6", "16"):
        wf[k]["inputs"].pop("seed")
    wf["7"]["inputs"]["latent"] = ["16", 0]
    split, _ = sample(comfy, wf)
    torch.testing.assert_close(split, whole, atol=1e-4, rtol=1e-4)
    one_node = json_copy(wf)  # the same P2P node in both parts restarts its windows in the second
    one_node["16"]["inputs"].update(model=["2", 0], positive=["2", 1])
    restarted, _ = sample(comfy, one_node)
    assert not torch.allclose(restarted[1], whole[1], atol=1e-3)
    torch.testing.assert_close(restarted[0], whole[0], atol=1e-4, rtol=1e-4)  # the source row is never edited


def json_copy(obj):
    import json

    return json.loads(json.dumps(obj))
