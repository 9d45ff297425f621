"""Wan 2.1 / 2.2 (ComfyUI 0.8 comfy/ldm/wan/model.py `WanModel`): video self-attention, then a separate
cross-attention of the video tokens to the text (UMT5, padded to 512), in every block.

Every call goes through `optimized_attention(q, k, v, heads=..., transformer_options=...)` with q/k/v
[B, L, heads·D], so ComfyUI's `optimized_attention_override` reaches them (`wrap_attn`). The model sets
block_type "double" and block_index before each block (WanModel.forward_orig); within a block the calls come in
order: self-attention (WanSelfAttention.forward, q/k after RoPE), then, for Wan 2.1 I2V / FLF, the image
cross-attention to the CLIP-vision tokens (left plain), then the text cross-attention (WanT2VCrossAttention /
WanI2VCrossAttention.forward). Wan 2.2 14B (high- and low-noise experts) and 5B TI2V are this class too.
An APPLY_MODEL wrapper records the step, the text length and the token grid (frames, rows, columns: patch 1×2×2)
before each model call. Other Wan variants (VACE, camera, HuMo, S2V, Animate) subclass WanModel with extra blocks
and are refused (attention/backends/__init__.py).
"""
from __future__ import annotations

from .base import EDITOR_KEY, RUN_KEY, CrossCall, JointLayer, RunState, begin_model_call
from .joint import PREVIOUS_OVERRIDE_KEY, OverrideBackend

POSITION_KEY = "wan_call_position"


def is_wan(model) -> bool:
    from comfy.ldm.wan.model import WanModel

    return type(getattr(getattr(model, "model", None), "diffusion_model", None)) is WanModel


def _roles(dm) -> tuple[str, ...]:
    from comfy.ldm.wan.model import WanI2VCrossAttention

    i2v = bool(dm.blocks) and isinstance(dm.blocks[0].cross_attn, WanI2VCrossAttention)
    return ("self", "image", "cross") if i2v else ("self", "cross")


def _apply_model_wrapper(executor, x, t, c_concat, c_crossattn, control, transformer_options, **kwargs):
    run = transformer_options.get(RUN_KEY) if transformer_options else None
    if run is not None:
        pt, ph, pw = run.data["patch"]
        frames, h, w = x.shape[-3:]
        grid = (-(-frames // pt), -(-h // ph), -(-w // pw))
        text_len = int(c_crossattn.shape[1]) if c_crossattn is not None else 0
        begin_model_call(run, x.shape[0], transformer_options, text_len=text_len, grid=grid)
        run.data[POSITION_KEY] = (-1, 0)
    return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)


def _wan_override(func, *args, **kwargs):
    topts = kwargs.get("transformer_options") or {}
    previous = topts.get(PREVIOUS_OVERRIDE_KEY)
    inner = (lambda *a, **kw: previous(func, *a, **kw)) if previous is not None else func
    editor, run = topts.get(EDITOR_KEY), topts.get(RUN_KEY)
    if editor is None or run is None or run.step is None or "block_index" not in topts or len(args) != 3:
        return inner(*args, **kwargs)
    q, k, v = args
    heads = kwargs.get("heads")
    if heads is None or kwargs.get("mask") is not None or kwargs.get("skip_reshape"):
        return inner(*args, **kwargs)
    index = topts["block_index"]
    block, count = run.data.get(POSITION_KEY, (-1, 0))
    if block != index:
        block, count = index, 0
    run.data[POSITION_KEY] = (block, count + 1)
    roles = run.data["roles"]
    role = roles[count] if count < len(roles) else "other"
    layer = run.data["layer_by_index"].get(index)
    grid = run.step.grid
    tokens = grid[0] * grid[1] * grid[2]
    if (layer is None or role not in ("self", "cross") or q.shape[1] != tokens
            or (role == "cross" and k.shape[1] != run.step.text_len)):
        return inner(*args, **kwargs)
    run.calls[role] += 1
    if role == "cross":
        run.layers_seen.add(layer)
    kw = {key: val for key, val in kwargs.items() if key != "heads"}

    def attend(q_, k_, v_):
        return inner(q_, k_, v_, heads=heads, **kw)

    return editor.video_attention(CrossCall(q, k, v, heads, role, grid, layer, attend), run)


class WanBackend(OverrideBackend):
    family = "Wan"
    override = staticmethod(_wan_override)
    wrapper = staticmethod(_apply_model_wrapper)
    counted = "cross"
    reached = "cross-attention blocks"
    output = "video"

    def layers(self, model) -> list[JointLayer]:
        blocks = model.model.diffusion_model.blocks
        return [JointLayer("block", i, i) for i in range(len(blocks))]

    def new_run(self, model, layers: list[JointLayer]) -> RunState:
        run = RunState(self, {layer: layer for layer in layers})
        dm = model.model.diffusion_model
        run.data["layer_by_index"] = {layer.index: layer for layer in layers}
        run.data["patch"] = tuple(int(p) for p in dm.patch_size)
        run.data["roles"] = _roles(dm)
        return run

    def summary(self, run: RunState, layers: list[JointLayer]) -> dict:
        return {**super().summary(run, layers), "self_calls": run.calls["self"], "cross_calls": run.calls["cross"]}
