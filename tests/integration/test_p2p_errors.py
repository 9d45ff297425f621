"""Bad P2P inputs fail with a message naming the node, the input and the fix; nothing is left patched."""
import pytest

from tests.integration.conftest import p2p_workflow, sample


def error_of(comfy, prompt):
    comfy.reset_cache()
    result = comfy.run(prompt, expect_success=False)
    assert not result["ok"]
    return result["error"]["exception_message"]


@pytest.mark.parametrize("overrides, node_input, must_contain", [
    ({"targets": "a big dog sitting on a mat"}, "target_prompts", ["6 words", "has 7", "Refine"]),
    ({"reweight": "horse: 2"}, "reweight", ["'horse'", "cat"]),
    ({"blend_words": "horse | dog"}, "blend_words", ["horse", "sitting"]),
    ({"word_schedule": "cat: 0.7-0.2"}, "word_schedule", ["0.7-0.2"]),
    ({"source": "embedding:foo cat sitting on a mat"}, "source_prompt", ["embedding"]),
    ({"targets": " ".join(["cat"] * 80)}, "target_prompts", ["needs 2 chunk(s) of 75 CLIP tokens",
                                                            "source prompt needs 1"]),
    ({"targets": "\n\n"}, "target_prompts", ["one edited prompt per line"]),
])
def test_bad_inputs_name_node_input_and_fix(comfy, overrides, node_input, must_contain):
    message = error_of(comfy, p2p_workflow(**overrides))
    assert message.startswith(f"AttnEdit_P2PReplace: input '{node_input}'"), message
    for text in must_contain:
        assert text in message, message


def test_latent_batch_above_one_is_refused(comfy):
    wf = p2p_workflow()
    wf["5"]["inputs"]["batch_size"] = 2
    assert "input 'latent'" in error_of(comfy, wf)


def test_a_repeated_latent_is_refused_at_sampling(comfy):
    wf = p2p_workflow()
    wf["8"] = {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["2", 2], "amount": 2}}
    wf["6"]["inputs"]["latent_image"] = ["8", 0]
    message = error_of(comfy, wf)
    assert "latent batch of 4" in message and "2 prompts" in message


def test_dit_is_refused(comfy):
    message = error_of(comfy, p2p_workflow(layout="dit"))
    assert message.startswith("AttnEdit_P2PReplace: input 'model'") and "AuraFlow (MMDiT)" in message, message
    assert "register tokens" in message and "Chroma" in message, message


def test_every_refused_family_is_named_with_its_reason(comfy):
    """Networks ComfyUI ships that no backend patches: the message names the family and the real reason (their
    classes stand in here; a tiny AuraFlow is refused through a workflow above)."""
    from types import SimpleNamespace

    backends = comfy.pack("attention.backends")
    for module, (name, reason) in backends.REFUSED.items():
        network = type("Network", (), {"__module__": module + ".model"})()
        with pytest.raises(backends.UnsupportedModelError) as refused:
            backends.backend_for(SimpleNamespace(model=SimpleNamespace(diffusion_model=network)))
        message = str(refused.value)
        assert f"is {name} (Network)" in message and reason in message, message
    assert "no transformer_options" in backends.REFUSED["comfy.ldm.hydit"][1]


def test_after_an_error_the_base_model_is_untouched(comfy):
    error_of(comfy, p2p_workflow(reweight="horse: 2"))
    _, run = sample(comfy, p2p_workflow(patched=False))
    assert run is None  # no pack patch ran on the plain model


@pytest.mark.parametrize("layout", ["sd15", "flux"])
def test_a_plain_positive_with_the_p2p_model_is_refused(comfy, layout):
    from tests.integration.test_joint_attention import joint_p2p

    wf = joint_p2p("flux") if layout == "flux" else p2p_workflow()
    wf["9"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a cat sitting on a mat"}}
    wf["6"]["inputs"]["positive"] = ["9", 0]
    comfy.reset_cache()
    result = comfy.run(wf, expect_success=False)
    assert not result["ok"]
    message = result["error"]["exception_message"]
    assert "positive" in message and "AttnEdit_P2PReplace" in message, message
