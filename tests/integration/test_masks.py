"""Masks in and out: the maps node's word masks and the user MASK input of every P2P node, in real ComfyUI on tiny
UNet and joint-attention layouts (stock mask nodes make the user's mask, as an artist would)."""
import pytest
import torch

from tests.integration.conftest import p2p_workflow, sample

from tests.integration.test_joint_attention import FLUX2

LAYOUTS = ["sd15", "flux", "sd3", "qwen_image", "chroma", "z_image", FLUX2]
JOINT = {"flux", "sd3", "qwen_image", "chroma", "z_image", "flux2"}


def _latent_node(layout, size):
    kind = ("EmptyFlux2LatentImage" if layout == "flux2" else "EmptySD3LatentImage" if layout in JOINT
            else "EmptyLatentImage")
    return {"class_type": kind, "inputs": {"width": size, "height": size, "batch_size": 1}}


def _left_half_mask(wf, size, edits=1):
    """SolidMask + MaskComposite: 1 on the image's left half, 0 elsewhere (repeated per edit if edits > 1)."""
    wf["30"] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": size, "height": size}}
    wf["31"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": size // 2, "height": size}}
    wf["32"] = {"class_type": "MaskComposite", "inputs": {"destination": ["30", 0], "source": ["31", 0], "x": 0,
                                                          "y": 0, "operation": "add"}}
    if edits > 1:
        wf["33"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["34", 0], "amount": edits}}
        wf["34"] = {"class_type": "MaskToImage", "inputs": {"mask": ["32", 0]}}
        wf["35"] = {"class_type": "ImageToMask", "inputs": {"image": ["33", 0], "channel": "red"}}
        return ["35", 0]
    return ["32", 0]


def masked_p2p(layout, size=128, edits=1, **options):
    targets = "\n".join(["a red dog sitting on a mat", "a red fox sitting on a mat"][:edits])
    wf = p2p_workflow(layout=layout, source="a red cat sitting on a mat", targets=targets, width=size, height=size,
                      cfg=1.0 if layout in JOINT else 5.0, steps=4, **options)
    wf["5"] = _latent_node(layout, size)
    wf["2"]["inputs"]["mask"] = _left_half_mask(wf, size, edits)
    return wf


def _rows(out):
    return out.reshape(out.shape[0], -1, *out.shape[-2:])  # Qwen-Image's latents carry a frame axis


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_user_mask_keeps_the_source_latent_outside_it(comfy, layout):
    out, run = sample(comfy, masked_p2p(layout))
    assert run["user_mask_covers"] == pytest.approx(0.5, abs=0.07)
    rows = _rows(out)
    w = rows.shape[-1]
    right, left = rows[..., w // 2 + 1:], rows[..., : w // 2 - 1]
    assert torch.equal(right[1], right[0])  # bit for bit: the blend takes the source row where the mask is 0
    assert (left[1] - left[0]).abs().mean() > 1e-3  # and the edit changed the inside


def _changed(out):
    rows = _rows(out)
    return (rows[1] != rows[0]).any(dim=0)  # [H, W]: where the edit differs from the source


@pytest.mark.parametrize("layout", ["sd15", "flux"])
def test_a_mask_per_edit_and_a_mask_combined_with_blend_words(comfy, layout):
    out, run = sample(comfy, masked_p2p(layout, edits=2))
    rows = _rows(out)
    w = rows.shape[-1]
    for edit in (1, 2):
        assert torch.equal(rows[edit][..., w // 2 + 1:], rows[0][..., w // 2 + 1:])
    user_only = _changed(sample(comfy, masked_p2p(layout))[0])
    both, run = sample(comfy, masked_p2p(layout, blend_words="cat | dog", blend_threshold=0.8))
    both = _changed(both)
    assert run["blend_applied"] > 0
    assert not both[:, w // 2 + 1:].any()  # the words' region never reaches past the user's mask
    assert 0 < both.sum() < user_only.sum()  # and narrows it


@pytest.mark.parametrize("layout", ["sd15", "flux"])
def test_a_mask_of_the_wrong_batch_size_is_refused(comfy, layout):
    wf = masked_p2p(layout, edits=1)
    wf["2"]["inputs"]["mask"] = _left_half_mask(wf, 128, edits=3)
    comfy.reset_cache()
    result = comfy.run(wf, expect_success=False)
    message = result["error"]["exception_message"]
    assert not result["ok"] and "'mask'" in message and "one per edited prompt (1)" in message, message


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_maps_node_returns_a_mask_per_named_word(comfy, layout):
    prompt = {
        "1": {"class_type": "AttnEditTest_TinyModels", "inputs": {"layout": layout, "seed": 0}},
        "5": _latent_node(layout, 64),
        "2": {"class_type": "AttnEdit_AttentionMaps", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "latent": ["5", 0], "prompt": "a red cat, sitting on a mat",
            "negative": "", "seed": 0, "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple",
            "resolution": "all", "tile_size": 32, "columns": 8, "mask_words": "cat | red, mat"}},
        "7": {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "mask": ["2", 2]}},
        "8": {"class_type": "GrowMask", "inputs": {"mask": ["2", 2], "expand": 1, "tapered_corners": True}},
        "9": {"class_type": "AttnEditTest_Capture", "inputs": {"name": "grown", "mask": ["8", 0]}},
    }
    comfy.reset_cache()
    comfy.run(prompt)
    masks = comfy.captured["out"]["mask"]
    assert masks.shape == (2, 64, 64) and masks.min() >= 0 and masks.max() <= 1
    assert torch.allclose(masks.amax(dim=(1, 2)), torch.ones(2), atol=0.1)
    assert not torch.equal(masks[0], masks[1])  # two words, two maps
    assert comfy.captured["grown"]["mask"].shape == (2, 64, 64)  # a stock mask node takes them


def test_the_maps_node_refuses_a_word_the_prompt_lacks(comfy):
    prompt = {
        "1": {"class_type": "AttnEditTest_TinyModels", "inputs": {"layout": "flux", "seed": 0}},
        "5": _latent_node("flux", 64),
        "2": {"class_type": "AttnEdit_AttentionMaps", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "latent": ["5", 0], "prompt": "a red cat", "negative": "",
            "seed": 0, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "resolution": "all",
            "mask_words": "cat | horse"}},
        "7": {"class_type": "AttnEditTest_Capture", "inputs": {"name": "out", "mask": ["2", 2]}},
    }
    comfy.reset_cache()
    result = comfy.run(prompt, expect_success=False)
    message = result["error"]["exception_message"]
    assert not result["ok"] and "mask_words" in message and "horse" in message, message
