"""BLIP caption, edit direction, apply / save / load in real ComfyUI."""
import shutil

import pytest
import torch

from tests.integration.test_workflows import tiny_blip  # noqa: F401  (fixture: models/blip/tiny)


def tiny(layout="sd15"):
    return {"1": {"class_type": "AttnEditTest_TinyModels", "inputs": {"layout": layout, "seed": 0}}}


def direction_graph(layout="sd15", source="cat", target="dog"):
    g = tiny(layout)
    g["2"] = {"class_type": "AttnEdit_EditDirection", "inputs": {"clip": ["1", 1], "source": source, "target": target}}
    g["3"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a photo of a cat"}}
    g["4"] = {"class_type": "AttnEdit_ApplyEditDirection", "inputs": {
        "conditioning": ["3", 0], "edit_direction": ["2", 0], "strength": 0.5}}
    g["5"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "d", "conditioning": ["4", 0]}}
    return g


def run_direction(comfy, layout):
    """The cat -> dog direction of the layout's encoder; the applied and the original conditioning are captured as
    'd' and 'c'."""
    g = direction_graph(layout)
    g["5"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "d", "direction": ["2", 0],
                                                               "conditioning": ["4", 0]}}
    g["6"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "c", "conditioning": ["3", 0]}}
    run(comfy, g)
    return comfy.captured["d"]["direction"]


def run(comfy, g, ok=True):
    comfy.reset_cache()
    return comfy.run(g, expect_success=ok)


def test_blip_captions_one_string_per_image(comfy):
    g = {"1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
         "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}},
         "3": {"class_type": "AttnEdit_BLIPCaption", "inputs": {"image": ["2", 0], "blip_model": "tiny",
                                                                 "prefix": "a photo of", "max_new_tokens": 8}},
         "4": {"class_type": "AttnEditTest_Capture", "inputs": {"name": "caption", "text": ["3", 0]}}}
    run(comfy, g)
    text = comfy.captured["caption"]["text"]
    assert isinstance(text, str) and text.startswith("a photo of")


def test_blip_folder_without_weights_names_the_folder_and_files(comfy):
    broken = comfy.tmp / "models" / "blip" / "broken"
    broken.mkdir(exist_ok=True)
    try:
        g = {"1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
             "3": {"class_type": "AttnEdit_BLIPCaption", "inputs": {"image": ["1", 0], "blip_model": "broken"}},
             "4": {"class_type": "AttnEditTest_Capture", "inputs": {"name": "caption", "text": ["3", 0]}}}
        message = run(comfy, g, ok=False)["error"]["exception_message"]
        assert "AttnEdit_BLIPCaption: input 'blip_model'" in message and str(broken) in message
        assert "config.json" in message and "blip-image-captioning-base" in message
    finally:
        shutil.rmtree(broken)


@pytest.mark.parametrize("layout", ["sd15", "sdxl"])
def test_direction_is_the_mean_difference_and_apply_adds_it(comfy, layout):
    from directions.templates import expand_concept

    direction = run_direction(comfy, layout)
    applied, original = comfy.captured["d"]["conditioning"], comfy.captured["c"]["conditioning"]
    assert torch.allclose(applied[0][0], original[0][0] + 0.5 * direction.embeddings, atol=1e-5)
    clip = comfy.test_pack.nodes._MODELS[(layout, 0)][1]

    def mean(concept):
        embs = [clip.encode_from_tokens(clip.tokenize(s)) for s in expand_concept(concept)]
        return torch.cat(embs)[:, :77].float().mean(0)

    assert direction.source_count == direction.target_count == len(expand_concept("cat")) >= 120
    assert torch.allclose(direction.embeddings, mean("dog") - mean("cat"), atol=1e-4)
    assert (direction.pooled is not None) == (layout == "sdxl")
    assert direction.width == clip.encode_from_tokens(clip.tokenize("x")).shape[-1]


def test_direction_from_another_encoder_is_refused(comfy):
    g = direction_graph("sdxl")
    g["6"] = {"class_type": "AttnEditTest_TinyModels", "inputs": {"layout": "sd15", "seed": 0}}
    g["3"]["inputs"]["clip"] = ["6", 1]
    message = run(comfy, g, ok=False)["error"]["exception_message"]
    assert message.startswith("AttnEdit_ApplyEditDirection: input 'edit_direction'") and "Recompute" in message


@pytest.mark.parametrize("layout", ["sd15", "sdxl"])
def test_direction_from_an_encoder_of_the_same_kind_with_other_weights_is_refused(comfy, layout):
    g = direction_graph(layout)
    g["6"] = {"class_type": "AttnEditTest_TinyModels", "inputs": {"layout": layout, "seed": 1}}
    g["3"]["inputs"]["clip"] = ["6", 1]  # same class and width, other weights
    message = run(comfy, g, ok=False)["error"]["exception_message"]
    assert message.startswith("AttnEdit_ApplyEditDirection: input 'edit_direction'") and "start token" in message
    g = direction_graph(layout)
    g["3"]["inputs"]["text"] = "a (photo:1.3) of a (cat:0.8)"  # weights leave the start token alone
    run(comfy, g)


def test_save_then_load_round_trips_and_reloads_when_the_file_changes(comfy):
    g = direction_graph()
    g["7"] = {"class_type": "AttnEdit_SaveEditDirection", "inputs": {"edit_direction": ["2", 0], "name": "t_cat_dog"}}
    run(comfy, g)
    path = comfy.tmp / "models" / "edit_directions" / "t_cat_dog.safetensors"
    assert path.exists()
    node = comfy.nodes.NODE_CLASS_MAPPINGS["AttnEdit_LoadEditDirection"]
    loaded = node.execute("t_cat_dog.safetensors").result[0]
    assert loaded.source == "cat" and loaded.target == "dog" and loaded.source_count >= 120
    before = node.fingerprint_inputs("t_cat_dog.safetensors")
    import os
    import time

    os.utime(path, (time.time() + 5, time.time() + 5))
    assert node.fingerprint_inputs("t_cat_dog.safetensors") != before


@pytest.mark.parametrize("field, value, text", [("source", "   ", "no sentences"), ("target", "\n", "no sentences")])
def test_empty_sentence_lists_are_refused(comfy, field, value, text):
    g = direction_graph(**{field: value})
    message = run(comfy, g, ok=False)["error"]["exception_message"]
    assert message.startswith(f"AttnEdit_EditDirection: input '{field}'") and text in message


UNPADDED = ("qwen_image", "chroma", "z_image")


@pytest.mark.parametrize("layout", ["flux", "sd3", "qwen_image", "chroma", "z_image", "wan"])
def test_directions_on_transformer_models_encoders(comfy, layout):
    """T5 (Flux), CLIP-L/G + T5 (SD3), UMT5 (Wan, to 512) pad every sentence to one length: per-position means,
    pooled part too where there is one;
    Qwen2.5-VL (Qwen-Image), Chroma's T5 and Qwen3 (Z-Image) do not pad: the sentences' mean tokens, added to every
    token."""
    from directions.templates import expand_concept

    direction = run_direction(comfy, layout)
    (applied, applied_extra), = comfy.captured["d"]["conditioning"]
    (original, original_extra), = comfy.captured["c"]["conditioning"]
    clip = comfy.test_pack.nodes._MODELS[(layout, 0)][1]
    encoded = {c: [clip.encode_from_tokens(clip.tokenize(s), return_pooled=True) for s in expand_concept(c)]
               for c in ("cat", "dog")}

    if layout in UNPADDED:
        assert direction.alignment == "mean" and direction.embeddings.shape[0] == 1
        assert len({c.shape[1] for c, _ in encoded["cat"]}) > 1, "unpadded sentences differ in length"

        def mean(concept):
            return torch.stack([c[0].float().mean(0) for c, _ in encoded[concept]]).mean(0, keepdim=True)
    else:
        assert direction.alignment == "position" and direction.embeddings.shape[0] == original.shape[1]

        def mean(concept):
            return torch.cat([c for c, _ in encoded[concept]]).float().mean(0)
    assert torch.allclose(direction.embeddings, mean("dog") - mean("cat"), atol=1e-4)
    assert torch.allclose(applied, original + 0.5 * direction.embeddings, atol=1e-5)
    assert (direction.pooled is not None) == (layout in ("flux", "sd3"))
    if direction.pooled is not None:
        pooled = {c: torch.cat([p for _, p in encoded[c]]).float().mean(0) for c in ("cat", "dog")}
        assert torch.allclose(direction.pooled, pooled["dog"] - pooled["cat"], atol=1e-4)
        assert torch.allclose(applied_extra["pooled_output"],
                              original_extra["pooled_output"] + 0.5 * direction.pooled, atol=1e-5)


def test_a_flux_direction_on_an_sd3_conditioning_is_refused(comfy):
    g = direction_graph("flux")
    g["6"] = {"class_type": "AttnEditTest_TinyModels", "inputs": {"layout": "sd3", "seed": 0}}
    g["3"]["inputs"]["clip"] = ["6", 1]
    message = run(comfy, g, ok=False)["error"]["exception_message"]
    assert message.startswith("AttnEdit_ApplyEditDirection: input 'edit_direction'"), message
    assert "FluxClipModel" in message and "recompute the direction" in message.lower(), message
