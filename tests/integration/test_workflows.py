"""The example workflows: committed files match their specs, and every API twin runs in real ComfyUI."""
import json

import pytest
import torch

from scripts.workflows import SPECS, dit_layout, on_tiny_models, render_all, ui_path
from tests.comfy_harness import REPO


@pytest.fixture(scope="module", autouse=True)
def tiny_blip(comfy):
    from tests.tiny_blip import make_tiny_blip

    path = comfy.tmp / "models" / "blip" / "tiny"
    if not (path / "config.json").exists():
        make_tiny_blip(path)
    return path


def test_committed_workflows_match_their_specs(comfy):
    for path, text in render_all(comfy.nodes.NODE_CLASS_MAPPINGS).items():
        assert (REPO / path).read_text() == text, f"{path} is stale: run python scripts/workflows.py"


def test_ui_workflows_are_well_formed(comfy):
    for name in SPECS:
        ui = json.loads(ui_path(name).read_text())
        ids = {n["id"] for n in ui["nodes"]}
        for link_id, src, src_slot, dst, dst_slot, kind in ui["links"]:
            assert src in ids and dst in ids
            dst_node = next(n for n in ui["nodes"] if n["id"] == dst)
            assert dst_node["inputs"][dst_slot]["link"] == link_id and dst_node["inputs"][dst_slot]["type"] == kind
        assert ui_path(name).with_suffix(".jpg").is_file(), f"{name}: no template-browser thumbnail"
        notes = [n for n in ui["nodes"] if n["type"] == "Note"]  # the frontend's own node: not in the prompt
        assert len(notes) == 1 and notes[0]["widgets_values"][0].strip(), f"{name}: no note says what it does"
        for n in ui["nodes"]:
            assert n["type"] in comfy.nodes.NODE_CLASS_MAPPINGS or n in notes


def test_every_seed_control_is_fixed_so_a_shared_workflow_repeats(comfy):
    """ComfyUI's frontend gives an INT input a "control after generate" widget when its option says so or, with
    the option absent, when it is named seed or noise_seed; a file that leaves the value unset gets "randomize"
    and the seed drifts after the first run. Every such widget must be written "fixed", in its place."""
    from scripts.workflows import _input_defs

    seeds = 0
    for name in SPECS:
        ui = json.loads(ui_path(name).read_text())
        for node in (n for n in ui["nodes"] if n["type"] != "Note"):
            values, k = node["widgets_values"], 0
            for input_name, kind, opts in _input_defs(comfy.nodes.NODE_CLASS_MAPPINGS[node["type"]]):
                if kind not in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
                    continue
                k += 1
                control = opts.get("control_after_generate")
                if kind == "INT" and (control if control is not None else input_name in ("seed", "noise_seed")):
                    assert values[k] == "fixed", f"{name}: {node['type']}.{input_name} control is {values[k]!r}"
                    k += 1
                    seeds += 1
                k += bool(opts.get("image_upload"))
            assert k == len(values), f"{name}: {node['type']} has {len(values)} widget values, the frontend reads {k}"
    assert seeds >= len(SPECS)  # every workflow samples with at least one seed


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("layout", ["sd15", "sdxl"])
def test_api_workflow_runs(comfy, name, layout):
    if name.startswith("demo_") and layout != "sd15":
        pytest.skip("demo workflows run on the demo model whatever the layout")
    if dit_layout(name) is not None:
        if layout != "sd15":
            pytest.skip("transformer-model workflows run on their own family's tiny layout")
        layout = dit_layout(name)
    if layout == "flux2":
        from tests.comfy_test_pack.tiny_models import tekken_file

        if tekken_file() is None:
            pytest.skip("no tekken vocabulary in the venv (scripts/env.sh downloads mistral-common's wheel)")
    comfy.reset_cache()
    result = comfy.run(on_tiny_models(json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text()), layout))
    saved = [img for out in result["outputs"].values() for img in out.get("images", [])]
    assert saved, "the workflow saved no image"
    import numpy as np
    from PIL import Image

    for img in saved:  # a NaN latent decodes to a constant black image
        pixels = np.asarray(Image.open(comfy.tmp / "output" / img.get("subfolder", "") / img["filename"]))
        assert pixels.std() > 0, f"{img['filename']} is a constant image (NaN upstream?)"


def test_attention_maps_grid_has_a_tile_per_token(comfy):
    api = on_tiny_models(SPECS["p2p_attention_maps"])
    api["9"] = {"class_type": "AttnEditTest_Capture", "inputs": {"name": "maps", "image": ["2", 0]}}
    api["2"]["inputs"].update(tile_size=32, columns=4)
    history = comfy.pack("attention.comfy_patch").RUN_HISTORY
    comfy.reset_cache()
    history.clear()
    comfy.run(api)
    grid = comfy.captured["maps"]["image"]
    tokens = 10  # "a cute teddy bear sitting on a wooden bench": teddy = 1 token, bench ... counted below
    from attention.tokens import PromptTokens
    from tests.clip_bpe import encode_piece, require

    require()
    tokens = len(PromptTokens.build(api["2"]["inputs"]["prompt"], encode_piece).ids)
    tiles = tokens + 1  # the decoded image first
    rows = (tiles + 3) // 4
    assert grid.shape == (1, rows * (32 + 16), 4 * 32, 3)
    assert history[-1]["attn2_calls"] > 0 and torch.isfinite(grid).all()
