"""Joint-attention backend (Flux.1, SD3 / SD3.5 MMDiT, Qwen-Image, Chroma, Z-Image): one hook on every attention
call. The families themselves are `JointFamily` entries, a file each (flux.py, sd3.py, ...).

In ComfyUI 0.8 every attention call of these networks goes through `optimized_attention`, wrapped by
`wrap_attn` (comfy/ldm/modules/attention.py), which hands the call to
`transformer_options["optimized_attention_override"](func, *args, **kwargs)` when that is set. The joint
sequence is text first, then image tokens (Flux: comfy/ldm/flux/layers.py DoubleStreamBlock.forward and
model.py forward_orig, single blocks on cat(txt, img); SD3: mmdit.py _block_mixing, context first; Qwen-Image:
qwen_image/model.py Attention.forward). q and k arrive after RoPE.

Layouts differ per family and are normalised here to [B, heads, L, D]:
- Flux, Qwen-Image: `func(q, k, v, heads, skip_reshape=True, mask=...)` with q/k/v [B, H, L, D]; the
  models set `block_type` / `block_index` in transformer_options.
- SD3 MMDiT: `func(q, k, v, heads=H)` with q/k [B, L, H·D] and v [B, L, H, D]; no block id is set, so a
  block is its position among the joint calls of one model call. SD3.5's image-only attention (block 0,
  `x_block_self_attn`) has no text tokens and runs plain.
An APPLY_MODEL wrapper (MMDiT never calls the DIFFUSION_MODEL wrapper) records the step, the text length
(the conditioning's token count, rounded up where the family pads it) and the latent grid before each model call.
Calls shorter than text + image (text-only or image-only refiners, SD3.5's image-only attention) run plain.
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import (EDITOR_KEY, RUN_KEY, WRAPPER_KEY, Backend, JointCall, JointLayer, PatchNotCalledError, RunState,
                   begin_model_call)

OVERRIDE_KEY = "optimized_attention_override"
PREVIOUS_OVERRIDE_KEY = "attn_edit_previous_override"


@dataclass(frozen=True)
class JointFamily:
    """A model family whose text and image tokens share one attention (text first)."""

    name: str
    network: tuple[str, str]  # ComfyUI's diffusion-model class: (module, class name)
    block_lists: tuple[tuple[str, str], ...]  # (kind, attribute of the diffusion model holding the blocks)
    block_ids: bool = True  # the model sets block_type / block_index in transformer_options
    subclasses: bool = False  # subclasses of `network` are this family too (else the exact class only)
    text_pad_multiple: str | None = None  # attribute: the model pads its text tokens to a multiple of it

    def matches(self, diffusion_model) -> bool:
        import importlib

        cls = getattr(importlib.import_module(self.network[0]), self.network[1])
        return isinstance(diffusion_model, cls) if self.subclasses else type(diffusion_model) is cls

    def layers(self, diffusion_model) -> list[JointLayer]:
        layers, order = [], 0
        for kind, attr in self.block_lists:
            for index in range(len(getattr(diffusion_model, attr, None) or [])):
                layers.append(JointLayer(kind, index, order))
                order += 1
        return layers


def joint_backend(family: JointFamily, model) -> "JointBackend | None":
    dm = model.model.diffusion_model
    if any(getattr(b, "flipped_img_txt", False) for b in getattr(dm, "double_blocks", [])):
        return None  # image-first joint sequences: not supported (no ComfyUI model ships them for editing)
    return JointBackend(family)


def _apply_model_wrapper(executor, x, t, c_concat, c_crossattn, control, transformer_options, **kwargs):
    run = transformer_options.get(RUN_KEY) if transformer_options else None
    if run is not None:
        patch = run.data.get("patch_size", 2)
        grid = ((x.shape[-2] + patch // 2) // patch, (x.shape[-1] + patch // 2) // patch)
        text_len = int(c_crossattn.shape[1]) if c_crossattn is not None else 0
        multiple = run.data.get("text_multiple", 1)
        text_len = -(-text_len // multiple) * multiple
        begin_model_call(run, x.shape[0], transformer_options, text_len=text_len, grid=grid)
        run.data["joint_call_order"] = 0
    return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)


def _to_bhld(t, heads):
    """[B, L, H·D] or [B, L, H, D] -> [B, H, L, D]."""
    b, length = t.shape[0], t.shape[1]
    return t.reshape(b, length, heads, -1).transpose(1, 2)


def _joint_override(func, *args, **kwargs):
    topts = kwargs.get("transformer_options") or {}
    previous = topts.get(PREVIOUS_OVERRIDE_KEY)
    inner = (lambda *a, **kw: previous(func, *a, **kw)) if previous is not None else func
    editor, run = topts.get(EDITOR_KEY), topts.get(RUN_KEY)
    if editor is None or run is None or run.step is None:
        return inner(*args, **kwargs)
    q, k, v = args[:3]
    rest = list(args[3:])
    heads = rest.pop(0) if rest else kwargs.pop("heads")
    mask = rest.pop(0) if rest else kwargs.pop("mask", None)
    skip_reshape = kwargs.get("skip_reshape", False)
    if rest or kwargs.get("skip_output_reshape"):
        return inner(*args, **kwargs)
    length = q.shape[2] if skip_reshape else q.shape[1]
    text_len = run.step.text_len
    grid = run.step.grid
    if mask is not None or text_len == 0 or length < text_len + grid[0] * grid[1]:
        # masked calls (a padding mask would be sliced wrongly) and image-only calls (SD3.5 block 0's extra
        # attention) run as ComfyUI would
        kw = dict(kwargs, mask=mask) if mask is not None else kwargs
        return inner(q, k, v, heads, **kw) if skip_reshape else inner(q, k, v, heads=heads, **kw)
    if run.backend.spec.block_ids and "block_type" in topts:
        kind, index = topts["block_type"], topts.get("block_index", 0)
        layer = run.data["layer_by_id"].get((kind, index))
    else:
        layer = run.data["layer_by_order"].get(run.data.get("joint_call_order", 0))
    run.data["joint_call_order"] = run.data.get("joint_call_order", 0) + 1
    if layer is None:
        return inner(q, k, v, heads, **kwargs) if skip_reshape else inner(q, k, v, heads=heads, **kwargs)
    run.calls["joint"] += 1
    run.layers_seen.add(layer)
    kw = {key: val for key, val in kwargs.items() if key not in ("skip_reshape",)}
    if skip_reshape:
        def attend(q_, k_, v_):
            return inner(q_, k_, v_, heads, skip_reshape=True, **kw)
    else:
        def attend(q_, k_, v_):
            b = q_.shape[0]
            return inner(*(t.transpose(1, 2).reshape(b, t.shape[2], -1) for t in (q_, k_, v_)), heads=heads, **kw)
        q, k, v = _to_bhld(q, heads), _to_bhld(k, heads), _to_bhld(v, heads)
    call = JointCall(q, k, v, heads, slice(0, text_len), slice(text_len, text_len + grid[0] * grid[1]), layer,
                     attend)
    return editor.joint_attention(call, run)


class OverrideBackend(Backend):
    """A family reached through ComfyUI's `optimized_attention_override` (joint attention; Wan): the hook, an
    APPLY_MODEL wrapper that records each model call's layout, and another pack's override kept underneath."""

    override = None  # staticmethod: the attention hook
    wrapper = None  # staticmethod: the APPLY_MODEL wrapper
    counted = "joint"  # the RunState.calls entry that proves the hook was reached
    reached = "joint-attention blocks"
    output = "image"

    def install(self, m, layers: list[JointLayer]) -> None:
        import comfy.patcher_extension

        self.reclaim(m.model_options, layers)
        m.model_options["transformer_options"][OVERRIDE_KEY] = self.override
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY, self.wrapper)

    def reclaim(self, model_options: dict, layers: list[JointLayer]) -> None:
        """Another pack's attention override (set before ours, or after ours and so replacing it) keeps running
        underneath ours: ours calls it for every plain attention."""
        topts = model_options.setdefault("transformer_options", {})
        other = topts.get(OVERRIDE_KEY)
        if other is not None and other is not self.override:
            topts = model_options["transformer_options"] = dict(topts)
            topts[PREVIOUS_OVERRIDE_KEY] = other
            topts[OVERRIDE_KEY] = self.override

    def check_called(self, editor, run: RunState, layers: list[JointLayer]) -> None:
        if run.calls["model"] > 0 and run.calls[self.counted] == 0:
            raise PatchNotCalledError(
                f"{editor.node_name}: the model ran {run.calls['model']} times but none of its {len(layers)} "
                f"{self.reached} reached this pack's hook. Another node probably replaced ComfyUI's attention "
                f"override on the same MODEL after this node; the result would have been the unedited {self.output}.")


class JointBackend(OverrideBackend):
    override = staticmethod(_joint_override)
    wrapper = staticmethod(_apply_model_wrapper)

    def __init__(self, spec: JointFamily):
        self.spec = spec
        self.family = spec.name

    def layers(self, model) -> list[JointLayer]:
        return self.spec.layers(model.model.diffusion_model)

    def text_multiple(self, model) -> int:
        if not self.spec.text_pad_multiple:
            return 1
        return int(getattr(model.model.diffusion_model, self.spec.text_pad_multiple, None) or 1)

    def new_run(self, model, layers: list[JointLayer]) -> RunState:
        run = RunState(self, {layer: layer for layer in layers})
        run.data["layer_by_id"] = {(layer.kind, layer.index): layer for layer in layers}
        run.data["layer_by_order"] = {layer.order: layer for layer in layers}
        dm = model.model.diffusion_model
        run.data["patch_size"] = int(getattr(dm, "patch_size", 2) or 2)
        run.data["text_multiple"] = self.text_multiple(model)
        return run

    def summary(self, run: RunState, layers: list[JointLayer]) -> dict:
        return {**super().summary(run, layers), "joint_calls": run.calls["joint"]}
