"""With comfy-kitchen installed (ComfyUI's requirements.txt brings it to every user), ComfyUI's RoPE is a custom op
without autograd or float64: the pack's gradient passes and the demo DiT's training run RoPE in plain torch for
exactly their own calls and leave ComfyUI as it was."""
import sys

import pytest
import torch


@pytest.fixture(scope="module")
def kitchen(comfy):
    import comfy.ldm.flux.math as flux_math
    import comfy.quant_ops

    ck = getattr(comfy.quant_ops, "ck", None)
    if ck is None or flux_math.apply_rope is not ck.apply_rope:
        pytest.skip("comfy-kitchen is not installed here, so ComfyUI uses its plain-torch RoPE already "
                    "(bash scripts/get_comfyui.sh installs ComfyUI's requirements, comfy-kitchen included)")
    return ck


def _tiny_flux(comfy):
    from tests.comfy_test_pack.tiny_models import build_flux_model

    dm = build_flux_model("flux").model.diffusion_model
    x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    ctx = torch.randn(1, 5, 64, generator=torch.Generator().manual_seed(1))
    y = torch.randn(1, 64, generator=torch.Generator().manual_seed(2))
    return dm, (x, torch.tensor([0.5]), ctx, y), {"guidance": torch.tensor([3.5])}


def _loss_grad(comfy, dm, args, kwargs):
    """d mean(out²) / d x, through ComfyUI's forward (its in-place residual adds made out-of-place)."""
    autograd = comfy.pack("inversion.comfy_autograd")
    x = args[0].clone().requires_grad_(True)
    autograd.plain(dm(x.as_subclass(autograd.NoInplace), *args[1:], **kwargs)).square().mean().backward()
    return x.grad


def test_gradients_and_float64_through_flux_work_only_with_plain_rope_and_comfyui_is_restored(comfy, kitchen):
    autograd = comfy.pack("inversion.comfy_autograd")
    flux_math = sys.modules["comfy.ldm.flux.math"]
    dm, args, kwargs = _tiny_flux(comfy)
    with torch.no_grad():
        reference = dm(*args, **kwargs)  # comfy-kitchen's RoPE

    # without the pack's context, ComfyUI's own path cannot do either: this is what the context is for
    with pytest.raises(RuntimeError, match="autograd"):
        _loss_grad(comfy, dm, args, kwargs)

    with autograd.plain_torch_rope() as rebound:
        assert rebound >= 2  # apply_rope and apply_rope1 of comfy/ldm/flux/math.py at least
        assert flux_math.apply_rope is autograd.rope
        grad = _loss_grad(comfy, dm, args, kwargs)
        with torch.no_grad():
            plain = dm(*args, **kwargs)
            dm.double()
            double = dm(*(a.double() for a in args), **{k: v.double() for k, v in kwargs.items()})
            dm.float()
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert torch.allclose(plain, reference, atol=1e-5, rtol=1e-4)  # the same rotation as the kitchen's op
    assert torch.allclose(double.float(), reference, atol=1e-4, rtol=1e-3)

    # ComfyUI's own functions are back, in every module that imported them by name
    assert flux_math.apply_rope is kitchen.apply_rope and flux_math.apply_rope1 is kitchen.apply_rope1
    for name in ("comfy.ldm.wan.model", "comfy.ldm.qwen_image.model", "comfy.ldm.lumina.model"):
        module = sys.modules.get(name)
        if module is not None:
            bound = module.__dict__.get("apply_rope1", module.__dict__.get("apply_rope"))
            assert bound in (kitchen.apply_rope, kitchen.apply_rope1), name


def test_plain_rope_is_undone_when_the_body_raises(comfy, kitchen):
    autograd = comfy.pack("inversion.comfy_autograd")
    flux_math = sys.modules["comfy.ldm.flux.math"]
    with pytest.raises(ValueError):
        with autograd.plain_torch_rope():
            raise ValueError("interrupted")
    assert flux_math.apply_rope is kitchen.apply_rope


def test_autograd_safe_differentiates_an_inference_built_flux_with_the_kitchen_installed(comfy, kitchen):
    """The guided sampler's pass: weights built under inference_mode, input gradient through Flux's RoPE."""
    autograd = comfy.pack("inversion.comfy_autograd")
    with torch.inference_mode():
        dm, args, kwargs = _tiny_flux(comfy)
        dm.requires_grad_(False)  # as ComfyUI's loaders leave weights (comfy/utils.py set_attr_param)
        assert next(dm.parameters()).is_inference()
    with torch.inference_mode(False), torch.enable_grad(), autograd.autograd_safe():
        args = tuple(a.clone() for a in args)
        grad = _loss_grad(comfy, dm, args, {k: v.clone() for k, v in kwargs.items()})
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert next(dm.parameters()).is_inference() and next(dm.parameters()).grad is None
