"""The one place where ComfyUI's model is patched.

`patch_model` clones a ModelPatcher, registers attn1/attn2 *replace* patches on every transformer
block of its UNet, and installs the wrappers that give each sampling run a fresh `RunState`
(ComfyUI 0.8.0 comfy/model_patcher.py: ModelPatcher.set_model_attn2_replace, add_wrapper_with_key).
The patches are module-level functions that read the
editor (config only, deepcopy-safe) and the run state from `extra_options`, so they survive
`ModelPatcher.clone()` and cached node outputs.

Editors (P2P, attention-map recording, …) subclass `AttentionEditor`; the math they call lives in
plain-torch modules next to this one.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import torch

EDITOR_KEY = "attn_edit"
RUN_KEY = "attn_edit_run"
WRAPPER_KEY = "attn_edit"

log = logging.getLogger("comfyui-attention-edit")

# Summaries of the last sampling runs (node, layers patched, calls received): logged, and read by tests.
RUN_HISTORY: deque[dict] = deque(maxlen=32)


class UnsupportedModelError(ValueError):
    pass


class PatchNotCalledError(RuntimeError):
    pass


@dataclass(frozen=True)
class Layer:
    """One BasicTransformerBlock: the replace-patch key and its UNet resolution level."""

    block: str  # "input" | "middle" | "output"
    number: int
    depth: int  # block_index inside the SpatialTransformer
    level: int  # number of 2x downsamplings between the latent and this block


@dataclass
class StepContext:
    """Where the sampler is, computed once per UNet call (DIFFUSION_MODEL wrapper)."""

    index: int  # step index in sample_sigmas (multi-evaluation samplers: the step whose interval holds sigma)
    total: int  # number of steps in the schedule
    sigma: float
    cond_or_uncond: tuple[int, ...]
    rows_per_chunk: int

    def chunk_rows(self, kind: int) -> list[int]:
        """Starting row of every chunk of the given kind (0 = positive, 1 = negative)."""
        n = self.rows_per_chunk
        return [i * n for i, c in enumerate(self.cond_or_uncond) if c == kind]


@dataclass
class RunState:
    """Mutable per-sampling-run state. Created in the OUTER_SAMPLE wrapper, dropped afterwards."""

    layers: dict[tuple[str, int, int], Layer]
    max_level: int
    step: StepContext | None = None
    calls: dict[str, int] = field(default_factory=lambda: {"attn1": 0, "attn2": 0, "unet": 0})
    layers_seen: set = field(default_factory=set)
    data: dict = field(default_factory=dict)  # editor-owned per-run data

    def layer(self, extra_options) -> Layer:
        block = extra_options["block"]
        return self.layers[(block[0], block[1], extra_options.get("block_index", 0))]


class AttentionEditor:
    """Base editor: plain attention, counted. Subclasses override the hooks they need.

    Keep subclasses config-only: ModelPatcher.clone() deep-copies them with model_options.
    """

    node_name = "AttnEdit"
    shares_row_noise = False  # stochastic samplers: one noise draw for every latent row (all prompts)

    def start_run(self, run: RunState) -> None:
        pass

    def finish_run(self, run: RunState) -> None:
        pass

    def self_attention(self, q, k, v, heads, extra_options, run: RunState):
        return plain_attention(q, k, v, heads, extra_options)

    def cross_attention(self, q, k, v, heads, extra_options, run: RunState):
        return plain_attention(q, k, v, heads, extra_options)

    def post_cfg(self, denoised: torch.Tensor, args: dict, run: RunState) -> torch.Tensor:
        return denoised


def plain_attention(q, k, v, heads, extra_options):
    """Exactly what CrossAttention.forward computes without a patch (attention.py:801)."""
    import comfy.ldm.modules.attention as attention  # looked up at call time: backends can change

    return attention.optimized_attention(q, k, v, heads, attn_precision=extra_options.get("attn_precision"))


# ---------------------------------------------------------------------------------------------
# Model gate and layer enumeration


def unet_of(model):
    """The UNetModel inside a ModelPatcher, or a clear error for DiTs and anything else."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    diffusion_model = getattr(getattr(model, "model", None), "diffusion_model", None)
    if not isinstance(diffusion_model, UNetModel):
        kind = type(diffusion_model).__name__ if diffusion_model is not None else type(model).__name__
        raise UnsupportedModelError(
            f"this model's diffusion network is {kind}, not a UNet with cross-attention. "
            "Attention editing works on SD1.x, SD2.x and SDXL (UNet) checkpoints; SD3, Flux and other "
            "transformer (DiT) models never call UNet attention patches, so an edit would silently do nothing."
        )
    return diffusion_model


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


# ---------------------------------------------------------------------------------------------
# The patches (module-level: deepcopy-safe, never stale after clone)


def _attn1_replace(q, k, v, extra_options):
    editor, run = extra_options.get(EDITOR_KEY), extra_options.get(RUN_KEY)
    heads = extra_options["n_heads"]
    if editor is None or run is None or run.step is None:
        return plain_attention(q, k, v, heads, extra_options)
    run.calls["attn1"] += 1
    return editor.self_attention(q, k, v, heads, extra_options, run)


def _attn2_replace(q, k, v, extra_options):
    editor, run = extra_options.get(EDITOR_KEY), extra_options.get(RUN_KEY)
    heads = extra_options["n_heads"]
    if editor is None or run is None or run.step is None:
        return plain_attention(q, k, v, heads, extra_options)
    run.calls["attn2"] += 1
    block = extra_options["block"]
    run.layers_seen.add((block[0], block[1], extra_options.get("block_index", 0)))
    return editor.cross_attention(q, k, v, heads, extra_options, run)


def step_index(sample_sigmas: torch.Tensor, sigma: float) -> int:
    """Index i of the step whose interval [sigma_i, sigma_{i+1}) holds sigma (sigmas descending)."""
    s = sample_sigmas.detach().float().cpu()
    at_or_above = (s >= sigma * (1 - 1e-5)).nonzero()
    if len(at_or_above) == 0:
        return 0
    return min(int(at_or_above[-1]), max(len(s) - 2, 0))


def _diffusion_model_wrapper(executor, x, *args, **kwargs):
    transformer_options = kwargs.get("transformer_options")
    if transformer_options is None and len(args) >= 5:
        transformer_options = args[4]
    run = transformer_options.get(RUN_KEY) if transformer_options else None
    if run is not None:
        sigmas = transformer_options.get("sigmas")
        sample_sigmas = transformer_options.get("sample_sigmas")
        sigma = float(sigmas.max()) if sigmas is not None else 0.0
        if sample_sigmas is not None and len(sample_sigmas) > 1:
            index, total = step_index(sample_sigmas, sigma), len(sample_sigmas) - 1
        else:
            index, total = 0, 1
        cond_or_uncond = tuple(transformer_options.get("cond_or_uncond", (0,)))
        run.step = StepContext(index, total, sigma, cond_or_uncond, x.shape[0] // max(len(cond_or_uncond), 1))
        run.calls["unet"] += 1
    return executor(x, *args, **kwargs)


def _post_cfg(args):
    model_options = args["model_options"]
    transformer_options = model_options.get("transformer_options", {})
    editor, run = transformer_options.get(EDITOR_KEY), transformer_options.get(RUN_KEY)
    if editor is None or run is None:
        return args["denoised"]
    return editor.post_cfg(args["denoised"], args, run)


class _RowSharedNoise:
    """Noise sampler that draws for row 0 and gives every row the same noise."""

    def __init__(self, inner, rows: int):
        self.inner, self.rows = inner, rows

    def __call__(self, sigma, sigma_next):
        n = self.inner(sigma, sigma_next)
        return n.expand(self.rows, *n.shape[1:]).clone()


def _sampler_sample_wrapper(executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
    """Ancestral/SDE samplers draw fresh noise per row each step, which would make the prompts' rows
    diverge for reasons other than the edit. Hand them a row-shared noise sampler instead."""
    import inspect

    from comfy.k_diffusion.sampling import BrownianTreeNoiseSampler, default_noise_sampler

    editor = extra_args["model_options"].get("transformer_options", {}).get(EDITOR_KEY)
    ksampler = executor.class_obj
    function = getattr(ksampler, "sampler_function", None)
    if (editor is None or not editor.shares_row_noise or function is None or noise.shape[0] < 2
            or "noise_sampler" not in inspect.signature(function).parameters
            or ksampler.extra_options.get("noise_sampler") is not None):
        return executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)
    seed = extra_args.get("seed")
    if "sde" in function.__name__:
        positive = sigmas[sigmas > 0]
        inner = BrownianTreeNoiseSampler(noise[:1], positive.min(), positive.max(), seed=seed, cpu=True)
    else:
        inner = default_noise_sampler(noise[:1], seed=seed)
    original = ksampler.extra_options
    ksampler.extra_options = {**original, "noise_sampler": _RowSharedNoise(inner, noise.shape[0])}
    try:
        return executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)
    finally:
        ksampler.extra_options = original


def _outer_sample_wrapper(executor, *args, **kwargs):
    """Fresh RunState per sampling run (the EasyCache lifecycle, nodes_easycache.py:144-173)."""
    import comfy.model_patcher

    guider = executor.class_obj
    original = guider.model_options
    guider.model_options = comfy.model_patcher.create_model_options_clone(original)
    topts = guider.model_options.setdefault("transformer_options", {})
    editor: AttentionEditor = topts[EDITOR_KEY]
    layers = enumerate_layers(unet_of(guider.model_patcher))
    run = RunState({(l.block, l.number, l.depth): l for l in layers}, max(l.level for l in layers))
    topts[RUN_KEY] = run
    try:
        editor.start_run(run)
        result = executor(*args, **kwargs)
        if run.calls["unet"] > 0 and run.calls["attn2"] == 0:
            raise PatchNotCalledError(
                f"{editor.node_name}: the model ran {run.calls['unet']} times but none of the "
                f"{len(layers)} patched attention layers was called. Another node probably replaced this "
                "pack's attention patches (e.g. a later attention-patching node on the same MODEL); "
                "the result would have been the unedited image."
            )
        editor.finish_run(run)
        summary = {
            "node": editor.node_name,
            "layers": len(layers),
            "layers_called": len(run.layers_seen),
            "unet_calls": run.calls["unet"],
            "attn1_calls": run.calls["attn1"],
            "attn2_calls": run.calls["attn2"],
            **run.data.get("summary", {}),
        }
        RUN_HISTORY.append(summary)
        log.info("%s: %d/%d layers called, %d UNet calls, %d attn2 calls", editor.node_name,
                 summary["layers_called"], summary["layers"], summary["unet_calls"], summary["attn2_calls"])
        return result
    finally:
        guider.model_options = original


def patch_model(model, editor: AttentionEditor):
    """A clone of `model` whose every UNet attention layer goes through `editor`."""
    import comfy.patcher_extension

    layers = enumerate_layers(unet_of(model))
    if not layers:
        raise UnsupportedModelError(f"{editor.node_name}: the model's UNet has no transformer blocks to patch.")
    existing = model.model_options.get("transformer_options", {}).get(EDITOR_KEY)
    if existing is not None:
        raise ValueError(
            f"{editor.node_name}: this MODEL already carries an attention edit from {existing.node_name}. "
            "Connect the loader's MODEL (or the model before the first AttnEdit node) instead of chaining edits."
        )
    m = model.clone()
    m.model_options.setdefault("transformer_options", {})[EDITOR_KEY] = editor
    for layer in layers:
        m.set_model_attn1_replace(_attn1_replace, layer.block, layer.number, layer.depth)
        m.set_model_attn2_replace(_attn2_replace, layer.block, layer.number, layer.depth)
    m.set_model_sampler_post_cfg_function(_post_cfg)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, _outer_sample_wrapper)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, _diffusion_model_wrapper)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_KEY, _sampler_sample_wrapper)
    log.info("%s: patched %d attention layers (attn1 + attn2)", editor.node_name, len(layers))
    return m
