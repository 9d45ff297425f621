"""Prompt-to-Prompt and attention maps on joint (MM-DiT) attention, in real ComfyUI, on tiny random-weight
Flux / SD3 / Qwen-Image layouts built from ComfyUI's classes with the real tokenizers ComfyUI ships."""
import pytest
import torch

from tests.integration.conftest import p2p_workflow, sample

def _needs_tekken():
    from tests.comfy_test_pack.tiny_models import MISTRAL_COMMON_WHEEL, tekken_file

    return pytest.mark.skipif(tekken_file() is None, reason=f"no {MISTRAL_COMMON_WHEEL} in the venv (scripts/env.sh "
                                                          "downloads it): Flux.2's tokenizer needs a tekken vocabulary")


FLUX2 = pytest.param("flux2", marks=_needs_tekken())
LAYOUTS = ["flux", "sd3", "qwen_image", "chroma", "z_image", FLUX2]
SOURCE = "a red cat sitting on a mat"
TARGET = "a red dog sitting on a mat"


def joint_p2p(layout, node="AttnEdit_P2PReplace", source=SOURCE, targets=TARGET, cfg=1.0, patched=True, negative="",
              size=64, **kwargs):
    wf = p2p_workflow(node=node, layout=layout, source=source, targets=targets, cfg=cfg, width=size, height=size,
                      patched=patched, negative=negative, **kwargs)
    latent = "EmptyFlux2LatentImage" if layout == "flux2" else "EmptySD3LatentImage"  # Flux.2: 128 channels, /16
    wf["5"] = {"class_type": latent, "inputs": {"width": size, "height": size, "batch_size": 1}}
    return wf


def plain_batch(layout, **kwargs):
    """The same batch (prompt rows, shared noise) sampled with the unpatched model."""
    return joint_p2p(layout, patched=False, cross=0.0, self_=0.0, **kwargs)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_joint_hook_is_reached_on_every_block(comfy, layout):
    out, run = sample(comfy, joint_p2p(layout, steps=3))
    assert run["family"] and run["layers"] > 0
    assert run["layers_called"] == run["layers"], run
    assert run["joint_calls"] == run["layers"] * run["model_calls"], run
    assert run["edited_joint_calls"] > 0 and torch.isfinite(out).all()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_identical_prompts_give_identical_rows(comfy, layout):
    out, run = sample(comfy, joint_p2p(layout, targets=SOURCE, steps=4))
    assert run["edited_joint_calls"] > 0
    torch.testing.assert_close(out[1], out[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_windows_of_zero_give_exactly_the_plain_batch(comfy, layout, cfg):
    edited, run = sample(comfy, joint_p2p(layout, cross=0.0, self_=0.0, steps=4, cfg=cfg, negative="blurry"))
    plain, _ = sample(comfy, plain_batch(layout, steps=4, cfg=cfg, negative="blurry"))
    assert run["joint_calls"] > 0
    assert torch.equal(edited, plain)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_reweight_one_is_the_identity(comfy, layout):
    out, run = sample(comfy, joint_p2p(layout, node="AttnEdit_P2PReweight", reweight="cat: 1.0", steps=4))
    assert run["edited_joint_calls"] > 0
    torch.testing.assert_close(out[1], out[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("node,targets,options,ratio", [
    ("AttnEdit_P2PReplace", TARGET, {}, 0.95),
    ("AttnEdit_P2PRefine", "a red fluffy cat sitting on a big mat", {}, 1.0),
    # a short window for the new word and a stronger colour word: kept less, still closer than plain
    ("AttnEdit_P2PReplace", TARGET, {"word_schedule": "dog: 0.2", "reweight": "red: 1.5"}, 1.0),
])
def test_edits_keep_the_edited_row_closer_to_the_source_than_plain_generation(comfy, layout, node, targets,
                                                                               options, ratio):
    edited, run = sample(comfy, joint_p2p(layout, node=node, targets=targets, steps=4, cfg=3.0, **options))
    plain, _ = sample(comfy, joint_p2p(layout, node=node, targets=targets, steps=4, cfg=3.0, patched=False,
                                       **options))
    assert torch.equal(edited[0], plain[0])  # the source row is never touched
    assert (edited[1] - edited[0]).norm() < ratio * (plain[1] - plain[0]).norm()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_local_blend_keeps_the_source_outside_the_mask(comfy, layout):
    # random weights attend broadly: a high threshold and an 8x8 token grid give a real mask
    out, run = sample(comfy, joint_p2p(layout, steps=4, size=128, blend_words="cat | dog", blend_threshold=0.8))
    assert run["blend_applied"] > 0 and run["blend_updates"] > 0
    mask = run["blend_mask"]
    assert 0 < mask.mean() < 1
    rows = out.reshape(out.shape[0], -1, *out.shape[-2:])  # Qwen-Image's latents carry a frame axis
    outside = mask.reshape(-1, *rows.shape[-2:])[0] == 0
    torch.testing.assert_close(rows[1][:, outside], rows[0][:, outside], atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_attention_maps_label_the_words(comfy, layout):
    prompt = {
        "1": {"class_type": "AttnEditTest_TinyModels", "inputs": {"layout": layout, "seed": 0}},
        "5": {"class_type": "EmptyFlux2LatentImage" if layout == "flux2" else "EmptySD3LatentImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "2": {"class_type": "AttnEdit_AttentionMaps", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "latent": ["5", 0], "prompt": "a red cat, sitting", "negative": "",
            "seed": 0, "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple",
            "resolution": "all", "tile_size": 32, "columns": 8}},
        "7": {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "image": ["2", 0]}},
    }
    comfy.reset_cache()
    comfy.run(prompt)
    grid = comfy.captured["out"]["image"]
    # one tile per word (a, red, cat, sitting), punctuation left out: 4 tiles of 32 px + 16 px labels
    assert grid.shape[1:3] == (48, 4 * 32)
    assert torch.isfinite(grid).all()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("node,options,needle", [
    ("AttnEdit_P2PReplace", {"targets": "a red dog sitting on the mat today"}, "same number of words"),
    ("AttnEdit_P2PReplace", {"reweight": "horse: 2"}, "horse"),
    ("AttnEdit_P2PReplace", {"targets": " ".join(["a red dog"] * 40)}, "chunk(s) of 75 CLIP tokens"),
])
def test_bad_input_names_node_input_and_fix(comfy, layout, node, options, needle):
    if "chunk" in needle and layout != "sd3":
        pytest.skip("only SD3's CLIP encoders read a long prompt in chunks; Flux's T5 and Qwen's LLM read it whole")
    comfy.reset_cache()
    result = comfy.run(joint_p2p(layout, node=node, steps=2, **options), expect_success=False)
    assert not result["ok"]
    message = result["error"]["exception_message"]
    assert node in message and needle in message, message


def test_another_packs_attention_override_keeps_running_under_ours(comfy):
    """An override (another attention-backend pack) set before or after the P2P node runs underneath ours, and
    the edit is the same as without it."""
    calls = comfy.test_pack.nodes.OVERRIDE_CALLS
    before = joint_p2p("flux", steps=2)
    before["8"] = {"class_type": "AttnEditTest_CountingOverride", "inputs": {"model": ["1", 0]}}
    before["2"]["inputs"]["model"] = ["8", 0]
    calls["count"] = 0
    out, run = sample(comfy, before)
    reference, _ = sample(comfy, joint_p2p("flux", steps=2))
    assert calls["count"] >= run["joint_calls"] > 0
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)

    after = joint_p2p("flux", steps=2)
    after["8"] = {"class_type": "AttnEditTest_CountingOverride", "inputs": {"model": ["2", 0]}}
    after["6"]["inputs"]["model"] = ["8", 0]
    calls["count"] = 0
    out_after, run_after = sample(comfy, after)
    assert calls["count"] >= run_after["joint_calls"] > 0
    torch.testing.assert_close(out_after, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout,slots,text_len", [
    # Flux: T5 only, no start token, padded to 256; 'a' is '▁' + 'a'
    ("flux", {"a": [0, 1], "red": [2], "cat": [3], "sitting": [5]}, 256),
    # SD3: the CLIP chunk (BOS in slot 0), then T5 from slot 77
    ("sd3", {"a": [1, 77, 78], "red": [2, 79], "cat": [3, 80], "sitting": [5, 82]}, 154),
    # Qwen-Image: the prompt right after the chat template's head, then its 5-token tail
    ("qwen_image", {"a": [0], "red": [1], "cat": [2], "sitting": [4]}, 10),
    # Chroma: T5 unpadded, the prompt then EOS
    ("chroma", {"a": [0, 1], "red": [2], "cat": [3], "sitting": [5]}, 7),
    # Z-Image: the whole chat template; the prompt after its 3-token head, then its 5-token tail
    ("z_image", {"a": [3], "red": [4], "cat": [5], "sitting": [7]}, 13),
    # Flux.2: BOS, the system prompt and [INST] (32 tokens of tekken), the prompt, [/INST]
    pytest.param("flux2", {"a": [32], "red": [33], "cat": [34], "sitting": [36]}, 38, marks=_needs_tekken()),
])
def test_words_map_onto_the_tokens_the_dit_attends_to(comfy, layout, slots, text_len):
    nodes = comfy.test_pack.nodes
    comfy.run(joint_p2p(layout, steps=1))  # builds (and caches) the layout's models
    clip = nodes._MODELS[(layout, 0)][1]
    encoding = comfy.pack("nodes.clip_prompts").prompt_encoding(clip, "a red cat, sitting", "test", "prompt")
    words = encoding.primary.word_texts
    assert {w: encoding.word_slots(words.index(w)) for w in slots} == slots
    assert encoding.text_len == text_len
    prompts = comfy.pack("nodes.clip_prompts")
    longer = "a red cat, sitting on a mat"
    cond = prompts.encode_rows(clip, ["a red cat, sitting", longer])
    if layout in ("qwen_image", "chroma", "z_image", "flux2"):  # unpadded: both rows as long as the longer prompt
        longer_len = prompts.prompt_encoding(clip, longer, "test", "prompt").text_len
        assert longer_len > text_len
        assert cond[0][0].shape[:2] == (2, longer_len)
    else:
        assert cond[0][0].shape[:2] == (2, text_len)


@_needs_tekken()
def test_flux2_text_sits_where_the_model_puts_it(comfy):
    """Flux.2's conditioning is left-padded with zeros to 512 by ComfyUI's model (model_base.Flux2.extra_conds): the
    words' slots are found by probing that, not from a constant; the edit then runs on every block."""
    comfy.run(joint_p2p("flux2", steps=1))
    model, clip, _ = comfy.test_pack.nodes._MODELS[("flux2", 0)]
    prompts, backends = comfy.pack("nodes.clip_prompts"), comfy.pack("attention.backends")
    encoding = prompts.prompt_encoding(clip, "a red cat, sitting", "test", "prompt")
    fitted = prompts.fit_to_model([encoding], backends.backend_for(model), model)[0]
    words = fitted.primary.word_texts
    assert fitted.text_len == 512
    assert {w: fitted.word_slots(words.index(w)) for w in ("cat", "sitting")} == {"cat": [508], "sitting": [510]}
    out, run = sample(comfy, joint_p2p("flux2", steps=2))
    assert run["layers_called"] == run["layers"] == 4 and run["edited_joint_calls"] > 0


@pytest.mark.parametrize("sampler,scheduler", [("euler_ancestral", "simple"), ("dpmpp_2m_sde", "beta"),
                                               ("dpmpp_2m", "sgm_uniform"), ("heun", "normal")])
def test_flux_samplers_share_noise_across_rows(comfy, sampler, scheduler):
    out, run = sample(comfy, joint_p2p("flux", targets=SOURCE, steps=3, sampler=sampler, scheduler=scheduler))
    assert run["edited_joint_calls"] > 0
    torch.testing.assert_close(out[1], out[0], atol=1e-4, rtol=0)


def test_flux_dev_wiring_with_flux_guidance_and_sampler_custom_advanced(comfy):
    """Flux.1-dev as users wire it: the P2P positive through FluxGuidance into BasicGuider (no negative pass),
    SamplerCustomAdvanced with RandomNoise, KSamplerSelect and BasicScheduler."""
    def graph(target, patched=True, cross=0.8, self_=0.4):
        wf = joint_p2p("flux", targets=target, steps=3, cross=cross, self_=self_)
        wf.pop("6")
        wf.update({
            "10": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["2", 1], "guidance": 3.5}},
            "11": {"class_type": "BasicGuider", "inputs": {"model": ["2", 0] if patched else ["1", 0],
                                                          "conditioning": ["10", 0]}},
            "12": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
            "13": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
            "14": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "simple", "steps": 3,
                                                             "denoise": 1.0}},
            "6": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["12", 0], "guider": ["11", 0],
                                                                   "sampler": ["13", 0], "sigmas": ["14", 0],
                                                                   "latent_image": ["2", 2]}},
        })
        return wf
    same, run = sample(comfy, graph(SOURCE))
    assert run["edited_joint_calls"] > 0
    torch.testing.assert_close(same[1], same[0], atol=1e-4, rtol=0)
    zero, _ = sample(comfy, graph(TARGET, cross=0.0, self_=0.0))
    plain, _ = sample(comfy, graph(TARGET, patched=False))
    assert torch.equal(zero, plain)


def test_ksampler_advanced_runs_the_edit(comfy):
    wf = joint_p2p("sd3", steps=4, cfg=3.0)
    edited, _ = sample(comfy, wf)
    inputs = wf["6"]["inputs"]
    wf["6"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "model": inputs["model"], "add_noise": "enable", "noise_seed": inputs["seed"], "steps": 4, "cfg": 3.0,
        "sampler_name": "euler", "scheduler": "normal", "positive": inputs["positive"],
        "negative": inputs["negative"], "latent_image": inputs["latent_image"], "start_at_step": 0,
        "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    advanced, run = sample(comfy, wf)
    assert run["edited_joint_calls"] > 0
    torch.testing.assert_close(advanced, edited, atol=1e-5, rtol=0)
