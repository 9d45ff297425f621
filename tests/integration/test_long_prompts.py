"""Prompts longer than one 77-token CLIP chunk (and T5 prompts past their padding) in real ComfyUI: every row of
an edit encodes to the same chunks, words are found in whichever chunk holds them, and what cannot be aligned is
refused by name."""
import pytest
import torch

from tests.integration.conftest import p2p_workflow, sample
from tests.integration.test_joint_attention import joint_p2p

FILLER = ", highly detailed, sharp focus, soft light, golden hour, film grain, wide angle, volumetric fog"
SOURCE = "a cat sitting on a mat" + FILLER * 4 + ", a red ball next to a small tree"  # ~110 CLIP tokens
TARGET = SOURCE.replace("red ball", "blue ball")  # the swap is in the second chunk


def encoding(comfy, layout, prompt):
    comfy.run(p2p_workflow(layout=layout, steps=1) if layout in ("sd15", "sdxl") else joint_p2p(layout, steps=1))
    clip = comfy.test_pack.nodes._MODELS[(layout, 0)][1]
    prompts = comfy.pack("nodes.clip_prompts")
    return clip, prompts, prompts.prompt_encoding(clip, prompt, "test", "prompt")


@pytest.mark.parametrize("layout", ["sd15", "sdxl"])
def test_a_long_prompt_is_two_chunks_and_its_words_are_found_in_both(comfy, layout):
    clip, prompts, enc = encoding(comfy, layout, SOURCE)
    assert [seg.offset for seg, _ in enc.segments] == [0, 77] and enc.text_len == 154
    words = enc.primary.word_texts
    assert enc.word_slots(words.index("cat")) == [2]
    ball = enc.word_slots(len(words) - 6)
    assert words[len(words) - 6] == "ball" and all(77 < s < 154 for s in ball)
    cond = prompts.encode_rows(clip, [SOURCE, TARGET])
    assert cond[0][0].shape[:2] == (2, 154)
    # the rows are what CLIPTextEncode gives for each prompt alone
    alone = clip.encode_from_tokens(clip.tokenize(TARGET))
    assert torch.equal(cond[0][0][1:], alone)


@pytest.mark.parametrize("layout", ["sd15", "sdxl"])
def test_identical_long_prompts_give_identical_rows(comfy, layout):
    out, run = sample(comfy, p2p_workflow(layout=layout, source=SOURCE, targets=SOURCE))
    assert run["edited_cross_calls"] > 0 and torch.equal(out[0], out[1])


@pytest.mark.parametrize("layout", ["sd15", "sdxl"])
def test_a_swap_in_the_second_chunk_edits_the_target_and_keeps_the_source(comfy, layout):
    edited, run = sample(comfy, p2p_workflow(layout=layout, source=SOURCE, targets=TARGET, word_schedule="blue: 0.5",
                                             blend_words="ball"))
    naive, _ = sample(comfy, p2p_workflow(layout=layout, source=SOURCE, targets=TARGET, patched=False))
    assert run["edited_cross_calls"] > 0
    assert run["blend_updates"] > 0 or layout == "sdxl"  # the tiny SDXL at 128 px has no 16x16 level to blend from
    assert torch.equal(edited[0], naive[0])
    assert not torch.allclose(edited[1], naive[1], atol=1e-4)
    assert (edited[1] - edited[0]).abs().mean() < (naive[1] - naive[0]).abs().mean()


def test_a_long_negative_with_a_long_positive_runs(comfy):
    """ComfyUI repeats cond and uncond to a common length (here 2 and 3 chunks -> 6): the edit folds copies."""
    negative = ", ".join(["blurry low quality bad anatomy"] * 40)  # three chunks
    same, run = sample(comfy, p2p_workflow(source=SOURCE, targets=SOURCE, negative=negative))
    assert run["edited_cross_calls"] > 0 and torch.equal(same[0], same[1])
    edited, _ = sample(comfy, p2p_workflow(source=SOURCE, targets=TARGET, negative=negative))
    assert torch.equal(edited[0], same[0]) and not torch.allclose(edited[1], edited[0], atol=1e-4)


@pytest.mark.parametrize("targets,needle", [
    (SOURCE + FILLER * 3, "needs 3 chunk(s) of 75 CLIP tokens but the source prompt needs 2"),
    (SOURCE.replace("cat", "hippopotamus"), "chunk boundary"),
])
def test_what_cannot_be_aligned_is_refused_by_name(comfy, targets, needle):
    comfy.reset_cache()
    result = comfy.run(p2p_workflow(source=SOURCE, targets=targets, steps=1), expect_success=False)
    message = result["error"]["exception_message"]
    assert not result["ok"] and "AttnEdit_P2PReplace" in message and needle in message, message


def test_refine_adds_words_to_a_long_prompt(comfy):
    out, run = sample(comfy, p2p_workflow(node="AttnEdit_P2PRefine", source=SOURCE, targets=SOURCE + ", at night"))
    assert run["edited_cross_calls"] > 0 and not torch.allclose(out[0], out[1], atol=1e-4)


def test_attention_maps_of_a_long_prompt_have_a_tile_per_token(comfy):
    clip, _, enc = encoding(comfy, "sd15", SOURCE)
    n_tokens = sum(len(pt.ids) for _, pt in enc.segments)
    prompt = {
        "1": {"class_type": "AttnEditTest_TinyModels", "inputs": {"layout": "sd15", "seed": 0}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "2": {"class_type": "AttnEdit_AttentionMaps", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "latent": ["5", 0], "prompt": SOURCE, "negative": "",
            "seed": 0, "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal",
            "resolution": "all", "tile_size": 32, "columns": 32}},
        "7": {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "image": ["2", 0]}},
    }
    comfy.reset_cache()
    comfy.run(prompt)
    grid = comfy.captured["out"]["image"]
    rows = -(-n_tokens // 32)
    assert n_tokens > 75 and grid.shape[1:3] == (rows * 48, 32 * 32)
    assert torch.isfinite(grid).all()


def test_sd3_long_prompt_puts_t5_after_the_clip_chunks(comfy):
    clip, prompts, enc = encoding(comfy, "sd3", SOURCE)
    assert [seg.key for seg, _ in enc.segments] == ["l", "l", "t5xxl"]
    assert enc.segments[2][0].offset == 154 and enc.text_len > 154 + 77  # T5 past its 77-token padding
    words = enc.primary.word_texts
    ball = enc.word_slots(len(words) - 6)
    assert any(77 < s < 154 for s in ball) and any(s >= 154 for s in ball)
    out, run = sample(comfy, joint_p2p("sd3", source=SOURCE, targets=SOURCE, steps=2))
    assert run["edited_joint_calls"] > 0
    torch.testing.assert_close(out[1], out[0], atol=1e-4, rtol=1e-5)  # float rounding of the spliced softmax


def test_flux_prompts_past_t5_padding_are_padded_to_the_longest_row(comfy):
    long_source = SOURCE + FILLER * 12  # > 256 T5 tokens
    clip, prompts, enc = encoding(comfy, "flux", long_source)
    assert enc.text_len > 256
    longer = prompts.prompt_encoding(clip, long_source + ", at night", "test", "prompt")
    assert longer.text_len > enc.text_len
    cond = prompts.encode_rows(clip, [long_source, long_source + ", at night"])
    assert cond[0][0].shape[1] == longer.text_len
    out, run = sample(comfy, joint_p2p("flux", source=long_source, targets=long_source, steps=2))
    assert run["edited_joint_calls"] > 0
    torch.testing.assert_close(out[1], out[0], atol=1e-4, rtol=1e-5)  # float rounding of the spliced softmax
    refined, _ = sample(comfy, joint_p2p("flux", node="AttnEdit_P2PRefine", source=long_source,
                                         targets=long_source + ", at night", steps=2))
    assert not torch.allclose(refined[0], refined[1], atol=1e-5)
