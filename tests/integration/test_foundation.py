"""The pack loads in real ComfyUI, patches every attention layer of SD1.5/SDXL-layout UNets, and refuses DiTs."""
import pytest
import torch

from tests.integration.conftest import sampler_workflow


def test_pack_loads_through_comfyui_loader(comfy):
    import sys

    from tests.comfy_harness import REPO

    assert str(REPO) in comfy.nodes.LOADED_MODULE_DIRS.values()
    assert hasattr(sys.modules[str(REPO).replace(".", "_x_")], "comfy_entrypoint")
    ours = [k for k in comfy.nodes.NODE_CLASS_MAPPINGS if k.startswith("AttnEdit_")]
    assert {"AttnEdit_P2PReplace", "AttnEdit_P2PRefine", "AttnEdit_P2PReweight"} <= set(ours)
    for node_id in ours:
        assert comfy.nodes.NODE_CLASS_MAPPINGS[node_id].GET_SCHEMA().node_id == node_id


@pytest.mark.parametrize("layout", ["sd15", "sdxl", "sd2v"])
def test_identity_patch_is_called_everywhere_and_changes_nothing(comfy, layout):
    history = comfy.pack("attention.comfy_patch").RUN_HISTORY
    steps = 3
    comfy.run(sampler_workflow(layout, steps=steps))
    plain = comfy.captured["out"]["latent"]["samples"].clone()

    history.clear()
    comfy.run(sampler_workflow(layout, patch="AttnEditTest_IdentityPatch", steps=steps))
    patched = comfy.captured["out"]["latent"]["samples"]

    assert torch.equal(plain, patched), "an identity attention patch changed the sampled latent"
    (run,) = list(history)
    assert run["layers"] > 0
    assert run["layers_called"] == run["layers"], run
    assert run["unet_calls"] == steps, run  # euler: one batched cond+uncond call per step
    assert run["attn2_calls"] == run["layers"] * steps, run
    assert run["attn1_calls"] == run["layers"] * steps, run


def test_layer_counts_match_the_unet_structure(comfy):
    comfy_patch = comfy.pack("attention.backends.unet")
    from importlib import import_module

    tiny_models = import_module(comfy.test_pack.__name__ + ".tiny_models")
    sd15 = comfy_patch.enumerate_layers(comfy_patch.unet_of(tiny_models.build_model("sd15")))
    # SD1.5 layout: input 1,2(l0) 4,5(l1) 7,8(l2), middle (l3), output 3,4,5 (l2) 6,7,8 (l1) 9,10,11 (l0)
    assert len(sd15) == 16
    assert {(l.block, l.number): l.level for l in sd15 if l.block == "input"} == {
        ("input", 1): 0, ("input", 2): 0, ("input", 4): 1, ("input", 5): 1, ("input", 7): 2, ("input", 8): 2}
    assert [l.level for l in sd15 if l.block == "middle"] == [3]
    assert [l.level for l in sd15 if l.block == "output"] == [2, 2, 2, 1, 1, 1, 0, 0, 0]
    sdxl = comfy_patch.enumerate_layers(comfy_patch.unet_of(tiny_models.build_model("sdxl")))
    # SDXL layout: no attention at level 0; depth 1 at level 1, depth 2 at level 2 and in the middle
    assert {l.level for l in sdxl} == {1, 2}
    assert len(sdxl) == 2 * 1 + 2 * 2 + 2 + 3 * 2 + 3 * 1


def test_dit_model_is_refused_with_a_clear_message(comfy):
    result = comfy.run(sampler_workflow("dit", patch="AttnEditTest_IdentityPatch"), expect_success=False)
    assert not result["ok"]
    message = result["error"]["exception_message"]
    assert "AuraFlow" in message or "MMDiT" in message, message
    assert "does not support" in message and "Flux" in message, message
