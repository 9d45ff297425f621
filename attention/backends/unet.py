"""UNet backend (SD1.x, SD2.x, SDXL): attn1/attn2 replace patches on every transformer block.

ComfyUI 0.8 calls a replace patch registered for (block, number, block_index) instead of the attention of
that BasicTransformerBlock (comfy/ldm/modules/attention.py BasicTransformerBlock.forward); attn1 is
self-attention over the image tokens, attn2 cross-attention to the 77-token text. A DIFFUSION_MODEL wrapper
records the step context before each UNet call.
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import (EDITOR_KEY, INNER_PATCH_KEY, RUN_KEY, WRAPPER_KEY, Backend, PatchNotCalledError, RunState,
                   begin_model_call, plain_attention)

# Other nodes' replace patches on the layers we patch, kept in transformer_options and called underneath ours:
# {"attn1" | "attn2": {(block, number, depth): patch}}. A later node's patch found at run start moves here too.
INNER_PATCHES_KEY = "attn_edit_inner_patches"


@dataclass(frozen=True)
class Layer:
    """One BasicTransformerBlock: the replace-patch key and its UNet resolution level."""

    block: str  # "input" | "middle" | "output"
    number: int
    depth: int  # block_index inside the SpatialTransformer
    level: int  # number of 2x downsamplings between the latent and this block


def is_unet(model) -> bool:
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    return isinstance(getattr(getattr(model, "model", None), "diffusion_model", None), UNetModel)


def unet_of(model):
    """The UNetModel inside a ModelPatcher, or a clear error for any other network."""
    from .base import UnsupportedModelError

    if not is_unet(model):
        diffusion_model = getattr(getattr(model, "model", None), "diffusion_model", None)
        kind = type(diffusion_model).__name__ if diffusion_model is not None else type(model).__name__
        raise UnsupportedModelError(
            f"this model's diffusion network is {kind}, not a UNet with cross-attention. This input needs an "
            "SD1.x, SD2.x or SDXL (UNet) checkpoint.")
    return model.model.diffusion_model


def enumerate_layers(unet) -> list[Layer]:
    """Every BasicTransformerBlock with its replace key and resolution level, found by walking the UNet."""
    from comfy.ldm.modules.attention import SpatialTransformer
    from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, Upsample

    layers: list[Layer] = []

    def visit(block_name, number, module, level):
        for sub in module.modules() if hasattr(module, "modules") else []:
            if isinstance(sub, SpatialTransformer):
                for depth in range(len(sub.transformer_blocks)):
                    layers.append(Layer(block_name, number, depth, level))

    level = 0
    for i, block in enumerate(unet.input_blocks):
        if any(isinstance(m, Downsample) for m in block):
            level += 1
            continue
        visit("input", i, block, level)
    visit("middle", 0, unet.middle_block, level)
    for i, block in enumerate(unet.output_blocks):
        visit("output", i, block, level)
        if any(isinstance(m, Upsample) for m in block):
            level -= 1
    return layers


def _with_inner_patch(name: str, extra_options: dict) -> dict:
    """extra_options carrying the patch another node set for this layer (SAG's recording attention, PAG's
    perturbed pass), which plain_attention then calls instead of the plain attention."""
    block = extra_options.get("block")
    if block is None:
        return extra_options
    key = (block[0], block[1], extra_options.get("block_index", 0))
    inner = extra_options.get(INNER_PATCHES_KEY, {}).get(name, {}).get(key)
    run = extra_options.get(RUN_KEY)
    # block-level patches set for one extra model call (PAG's post-CFG pass) take precedence, as in ComfyUI
    block_level = run.data.get("call_patches", {}).get(name, {}).get((block[0], block[1])) if run else None
    inner = block_level or inner
    if inner is None:
        return extra_options
    return {**extra_options, INNER_PATCH_KEY: inner}


def _routed(name: str, q, k, v, extra_options):
    """One attn1 ("self") or attn2 ("cross") call: counted, then handed to the run's editor."""
    extra_options = _with_inner_patch(name, extra_options)
    editor, run = extra_options.get(EDITOR_KEY), extra_options.get(RUN_KEY)
    heads = extra_options["n_heads"]
    if editor is None or run is None or run.step is None:
        return plain_attention(q, k, v, heads, extra_options)
    run.calls[name] += 1
    if name == "attn1":
        return editor.self_attention(q, k, v, heads, extra_options, run)
    block = extra_options["block"]
    run.layers_seen.add((block[0], block[1], extra_options.get("block_index", 0)))
    return editor.cross_attention(q, k, v, heads, extra_options, run)


def _attn1_replace(q, k, v, extra_options):
    return _routed("attn1", q, k, v, extra_options)


def _attn2_replace(q, k, v, extra_options):
    return _routed("attn2", q, k, v, extra_options)


def _diffusion_model_wrapper(executor, x, *args, **kwargs):
    transformer_options = kwargs.get("transformer_options")
    if transformer_options is None and len(args) >= 5:
        transformer_options = args[4]
    run = transformer_options.get(RUN_KEY) if transformer_options else None
    if run is not None:
        begin_model_call(run, x.shape[0], transformer_options)
        run.data["call_patches"] = transformer_options.get("patches_replace", {})
    return executor(x, *args, **kwargs)


class UNetBackend(Backend):
    family = "UNet"

    def layers(self, model) -> list[Layer]:
        return enumerate_layers(unet_of(model))

    def new_run(self, model, layers: list[Layer]) -> RunState:
        return RunState(self, {(l.block, l.number, l.depth): l for l in layers}, max(l.level for l in layers))

    def install(self, m, layers: list[Layer]) -> None:
        import comfy.patcher_extension

        self.reclaim(m.model_options, layers)
        for layer in layers:
            m.set_model_attn1_replace(_attn1_replace, layer.block, layer.number, layer.depth)
            m.set_model_attn2_replace(_attn2_replace, layer.block, layer.number, layer.depth)
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY,
                               _diffusion_model_wrapper)

    def reclaim(self, model_options: dict, layers: list[Layer]) -> None:
        """Patches of other nodes on our layers (set before ours, or after ours and so replacing it) become inner
        patches that ours calls for its plain attention; ours goes (back) in front. Mutates `model_options`
        copy-on-write (the dicts it changes are copied first)."""
        topts = model_options.setdefault("transformer_options", {})
        replace = topts.get("patches_replace", {})
        inner = {name: dict(patches) for name, patches in topts.get(INNER_PATCHES_KEY, {}).items()}
        ours = {"attn1": _attn1_replace, "attn2": _attn2_replace}
        changed = False
        for name, patch in ours.items():
            table = replace.get(name, {})
            for layer in layers:
                key = (layer.block, layer.number, layer.depth)
                other = table.get(key) or table.get((layer.block, layer.number))
                if other is not None and other is not patch:
                    inner.setdefault(name, {})[key] = other
                    changed = True
        if changed:
            topts = model_options["transformer_options"] = dict(topts)
            topts[INNER_PATCHES_KEY] = inner
            replace = topts["patches_replace"] = {name: dict(t) for name, t in replace.items()}
            for name, patch in ours.items():
                for layer in layers:
                    if (layer.block, layer.number) in replace.get(name, {}):
                        del replace[name][(layer.block, layer.number)]
                    if (layer.block, layer.number, layer.depth) in replace.get(name, {}):
                        replace[name][(layer.block, layer.number, layer.depth)] = patch

    def check_called(self, editor, run: RunState, layers: list[Layer]) -> None:
        if run.calls["model"] > 0 and run.calls["attn2"] == 0:
            raise PatchNotCalledError(
                f"{editor.node_name}: the model ran {run.calls['model']} times but none of the "
                f"{len(layers)} patched attention layers was called. Another node probably replaced this "
                "pack's attention patches (e.g. a later attention-patching node on the same MODEL); "
                "the result would have been the unedited image."
            )

    def summary(self, run: RunState, layers: list[Layer]) -> dict:
        return {**super().summary(run, layers), "unet_calls": run.calls["model"], "attn1_calls": run.calls["attn1"],
                "attn2_calls": run.calls["attn2"]}
