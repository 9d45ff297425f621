"""Gradients through ComfyUI's models, whatever ComfyUI was installed with.

Two things stand between autograd and a model ComfyUI built:

* Inference tensors. ComfyUI builds models inside torch.inference_mode() (0.8.0 execution.py:
  PromptExecutor.execute_async runs every node under it), so every weight is an inference tensor, which
  autograd refuses to save for backward. `autograd_safe` hands autograd a normal copy of each, made once.
* comfy-kitchen's RoPE. ComfyUI's requirements.txt installs comfy-kitchen, and then
  comfy/ldm/flux/math.py binds `apply_rope` / `apply_rope1` to the custom ops
  `torch.ops.comfy_kitchen.apply_rope{,1}`, which have no autograd formula ("Trying to backward through
  comfy_kitchen.apply_rope.default but no autograd formula was registered") and no float64 backend
  (NoCapableBackendError). Flux, Flux.2, Chroma, Qwen-Image, Lumina2/Z-Image, Wan, HiDream and Kandinsky5
  all rotate their queries and keys through these names (imported by name into their own modules).
  `plain_torch_rope` rebinds exactly those names to the same rotation in plain torch while it is active
  and puts ComfyUI's own functions back afterwards. Without comfy-kitchen ComfyUI already uses its
  plain-torch fallback and nothing is rebound.
"""
from __future__ import annotations

import contextlib
import sys

import torch

_ROPE_NAMES = ("apply_rope", "apply_rope1")


def rope1(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Interleaved rotary embedding as ComfyUI's Flux computes it: pairs (x[2k], x[2k+1]) times the 2x2 rotation
    freqs_cis[..., k, :, :] (comfy/ldm/flux/math.py rope(): [..., d/2, 2, 2]), in freqs_cis' dtype. Written
    without in-place ops so autograd can differentiate it."""
    pairs = x.to(freqs_cis.dtype).reshape(*x.shape[:-1], -1, 1, 2)
    out = freqs_cis[..., 0] * pairs[..., 0] + freqs_cis[..., 1] * pairs[..., 1]
    return out.reshape(*x.shape).type_as(x)


def rope(xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return rope1(xq, freqs_cis), rope1(xk, freqs_cis)


def _kitchen_ropes() -> dict[str, object]:
    """comfy-kitchen's RoPE functions as ComfyUI bound them, or {} when ComfyUI runs without comfy-kitchen."""
    flux_math = sys.modules.get("comfy.ldm.flux.math")
    ck = getattr(sys.modules.get("comfy.quant_ops"), "ck", None)
    if flux_math is None or ck is None:
        return {}
    return {name: getattr(ck, name) for name in _ROPE_NAMES
            if getattr(flux_math, name, None) is getattr(ck, name, object())}


@contextlib.contextmanager
def plain_torch_rope():
    """While active, every comfy.ldm module that bound comfy-kitchen's RoPE uses `rope` / `rope1` instead.
    Yields the number of names rebound (0 without comfy-kitchen). Not reentrant across threads: ComfyUI runs
    one prompt at a time, and the names are restored even when the body raises."""
    kitchen = _kitchen_ropes()
    plain = {"apply_rope": rope, "apply_rope1": rope1}
    swapped = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "comfy.ldm" or name.startswith("comfy.ldm.")):
            continue
        for attr, fn in kitchen.items():
            if module.__dict__.get(attr) is fn:
                swapped.append((module, attr, fn))
                setattr(module, attr, plain[attr])
    try:
        yield len(swapped)
    finally:
        for module, attr, fn in reversed(swapped):
            setattr(module, attr, fn)


class NoInplace(torch.Tensor):
    """ComfyUI's Flux and T5 blocks add their residuals in place (`x += ...`), which autograd refuses once the
    tensor is saved for a backward pass. Tensors of this class turn that add into an out-of-place one (Python
    rebinds the name to the result), so a gradient pass runs ComfyUI's own forward code unchanged
    (demo_model/train_dit.check_training_forward pins that the outputs are equal)."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch._C.TensorBase.add_:
            func = torch._C.TensorBase.add
        return super().__torch_function__(func, types, args, kwargs or {})


def plain(t: torch.Tensor) -> torch.Tensor:
    """A NoInplace tensor as a plain one."""
    return t.as_subclass(torch.Tensor)


class autograd_safe(torch.overrides.TorchFunctionMode):
    """Lets gradients flow through a ComfyUI model without touching it (use it together with
    inference_mode(False) and enable_grad). Every inference tensor that reaches a torch function (the weights,
    conditioning made by other nodes) is replaced by a normal copy, made once per tensor and kept for as long as
    this object lives, so one instance entered at every gradient pass of a loop copies the weights once (inference
    tensors cannot change outside inference mode, so a copy never goes stale). The shared model and its
    ModelPatcher stay exactly as they are, and no-grad passes outside it run at full speed. RoPE runs in plain
    torch while it is active (`plain_torch_rope`), since comfy-kitchen's op has no autograd."""

    def __init__(self):
        super().__init__()
        self._copies: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._rope = None

    def __enter__(self):
        self._rope = plain_torch_rope()
        self._rope.__enter__()
        try:
            return super().__enter__()
        except BaseException:
            self._rope.__exit__(None, None, None)
            raise

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._rope.__exit__(None, None, None)

    def _normal(self, value):
        if isinstance(value, torch.Tensor):
            if not value.is_inference():
                return value
            kept = self._copies.get(id(value))
            if kept is None or kept[0] is not value:  # the original is held, so its id is not reused
                kept = self._copies[id(value)] = (value, value.clone())
            return kept[1]
        if type(value) in (list, tuple) and any(isinstance(v, torch.Tensor) and v.is_inference() for v in value):
            return type(value)(self._normal(v) for v in value)
        return value

    def __torch_function__(self, func, types, args=(), kwargs=None):
        args = tuple(self._normal(a) for a in args)
        kwargs = {k: self._normal(v) for k, v in kwargs.items()} if kwargs else {}
        return func(*args, **kwargs)
