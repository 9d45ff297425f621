"""Prompt-to-Prompt on a video model, in real ComfyUI: a tiny random-weight Wan 2.1 text-to-video layout built from
ComfyUI's WanModel, its Wan text-encoder classes (UMT5 padded to 512, SentencePiece model read from the tokenizer
data as from a real file) and its video VAE. Latents are [B, 16, frames, H, W]."""
import pytest
import torch

from tests.integration.conftest import p2p_workflow, sample

SOURCE = "a red cat sitting on a mat"
TARGET = "a red dog sitting on a mat"
FRAMES = 9  # pixel frames: (9 - 1) / 4 + 1 = 3 latent frames


def video_p2p(node="AttnEdit_P2PReplace", targets=TARGET, size=64, steps=4, cfg=1.0, patched=True, **options):
    wf = p2p_workflow(node=node, layout="wan", source=SOURCE, targets=targets, cfg=cfg, steps=steps,
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
