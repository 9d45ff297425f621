"""The one place where ComfyUI's model is patched: the seam between editors and model families.

`patch_model(model, editor)` clones a ModelPatcher and lets the model family's *backend* install its hooks
on the clone (attention/unet_backend.py: attn1/attn2 replace patches on every UNet transformer block;
attention/joint_backend.py: ComfyUI's `optimized_attention_override` for the joint attention of Flux,
SD3/3.5 and Qwen-Image). Shared here: the wrappers that give each sampling run a fresh `RunState`
(OUTER_SAMPLE), row-shared noise for stochastic samplers (SAMPLER_SAMPLE), the post-CFG hook, and the
loud failure when no patched layer was reached. The hooks are module-level functions that read the editor
(config only, deepcopy-safe) and the run state from transformer_options, so they survive
`ModelPatcher.clone()` and cached node outputs (ComfyUI 0.8: comfy/model_patcher.py ModelPatcher.clone,
comfy/patcher_extension.py WrappersMP).

Editors (P2P, attention maps, guidance) subclass `AttentionEditor` and speak to the backends through it:
UNet backends call `self_attention` / `cross_attention`, joint backends call `joint_attention` with a
`JointCall` (text and image token spans, the latent grid, and the plain attention function).
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


@dataclass
class StepContext:
    """Where the sampler is, computed once per model call."""

    index: int  # step index in sample_sigmas (multi-evaluation samplers: the step whose interval holds sigma)
    total: int  # number of steps in the schedule
    sigma: float
    cond_or_uncond: tuple[int, ...]
    rows_per_chunk: int
    text_len: int = 0  # joint attention: text tokens per row in this call
    grid: tuple[int, int] = (0, 0)  # joint attention: image tokens as (rows, columns)

    def chunk_rows(self, kind: int) -> list[int]:
        """Starting row of every chunk of the given kind (0 = positive, 1 = negative)."""
        n = self.rows_per_chunk
        return [i * n for i, c in enumerate(self.cond_or_uncond) if c == kind]


@dataclass
class RunState:
    """Mutable per-sampling-run state. Created in the OUTER_SAMPLE wrapper, dropped afterwards."""

    backend: "Backend"
    layers: dict
    max_level: int = 0  # UNet: deepest resolution level
    step: StepContext | None = None
    calls: dict[str, int] = field(default_factory=lambda: {"attn1": 0, "attn2": 0, "joint": 0, "model": 0})
    layers_seen: set = field(default_factory=set)
    data: dict = field(default_factory=dict)  # editor-owned per-run data

    def layer(self, extra_options):
        """The UNet layer of an attn1/attn2 call."""
        block = extra_options["block"]
        return self.layers[(block[0], block[1], extra_options.get("block_index", 0))]


@dataclass
class JointCall:
    """One joint (text + image) attention call, in the layout [B, heads, L, D] whatever the family.

    `text` and `image` are the token spans of the sequence; `attend(q, k, v)` runs ComfyUI's attention
    exactly as the model would have (same function, options and any other pack's override) on tensors of
    this layout, queries possibly fewer than keys, and returns [B, Lq, heads·D]."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    heads: int
    text: slice
    image: slice
    layer: "JointLayer"
    attend: object

    def plain(self) -> torch.Tensor:
        return self.attend(self.q, self.k, self.v)


@dataclass(frozen=True)
class JointLayer:
    kind: str  # "double" | "single" (Flux), "joint" (SD3 MMDiT, Qwen-Image)
    index: int  # block index within its kind
    order: int  # position among all joint blocks of the model, 0-based


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

    def joint_attention(self, call: JointCall, run: RunState):
        return call.plain()

    def post_cfg(self, denoised: torch.Tensor, args: dict, run: RunState) -> torch.Tensor:
        return denoised

    def check_conds(self, conds: dict) -> None:
        """Called at the start of a run with the guider's conditionings ({"positive": [cond dicts], ...})."""


INNER_PATCH_KEY = "attn_edit_inner_patch"


def plain_attention(q, k, v, heads, extra_options):
    """What the layer computes without our patch: another node's replace patch for this layer if there is one
    (SAG, PAG, ...: ours wraps it, see unet_backend.py), else exactly CrossAttention.forward's attention
    (ComfyUI 0.8 comfy/ldm/modules/attention.py). transformer_options travel on, so another pack's
    `optimized_attention_override` (SageAttention, caching packs) still runs under our patches."""
    inner = extra_options.get(INNER_PATCH_KEY)
    if inner is not None:
        return inner(q, k, v, extra_options)
    import comfy.ldm.modules.attention as attention  # looked up at call time: backends can change

    return attention.optimized_attention(q, k, v, heads, attn_precision=extra_options.get("attn_precision"),
                                         transformer_options=extra_options)


class Backend:
    """A model family's hooks. Config-only (it travels in model_options)."""

    family = ""

    def layers(self, model) -> list:
        raise NotImplementedError

    def install(self, m, layers: list) -> None:
        raise NotImplementedError

    def new_run(self, model, layers: list) -> RunState:
        return RunState(self, {layer: layer for layer in layers})

    def check_called(self, editor: AttentionEditor, run: RunState, layers: list) -> None:
        raise NotImplementedError

    def reclaim(self, model_options: dict, layers: list) -> None:
        """At the start of a run: hooks that a later node replaced are put back, wrapping that node's."""

    def summary(self, run: RunState, layers: list) -> dict:
        return {"layers": len(layers), "layers_called": len(run.layers_seen), "model_calls": run.calls["model"]}


def backend_for(model) -> Backend:
    """The backend of this model's family, or a clear error naming the class."""
    from .joint_backend import joint_backend_for
    from .unet_backend import UNetBackend, is_unet

    if is_unet(model):
        return UNetBackend()
    backend = joint_backend_for(model)
    if backend is not None:
        return backend
    diffusion_model = getattr(getattr(model, "model", None), "diffusion_model", None)
    kind = type(diffusion_model).__name__ if diffusion_model is not None else type(model).__name__
    raise UnsupportedModelError(
        f"this model's diffusion network is {kind}, which attention editing does not support. Supported: "
        "SD1.x, SD2.x and SDXL (UNet cross-attention) and Flux.1 / Flux.2, SD3 / SD3.5 and Qwen-Image (joint "
        "attention). Other networks (video models, other DiTs) never reach this pack's attention hooks, so an "
        "edit would silently do nothing.")


# ---------------------------------------------------------------------------------------------
# Shared hooks


def step_index(sample_sigmas: torch.Tensor, sigma: float) -> int:
    """Index i of the step whose interval [sigma_i, sigma_{i+1}) holds sigma (sigmas descending)."""
    s = sample_sigmas.detach().float().cpu()
    at_or_above = (s >= sigma * (1 - 1e-5)).nonzero()
    if len(at_or_above) == 0:
        return 0
    return min(int(at_or_above[-1]), max(len(s) - 2, 0))


def begin_model_call(run: RunState, batch: int, transformer_options: dict, **layout) -> None:
    """Record the step context of one model call (every backend calls this before the network runs)."""
    sigmas = transformer_options.get("sigmas")
    sample_sigmas = transformer_options.get("sample_sigmas")
    sigma = float(sigmas.max()) if sigmas is not None else 0.0
    if sample_sigmas is not None and len(sample_sigmas) > 1:
        index, total = step_index(sample_sigmas, sigma), len(sample_sigmas) - 1
    else:
        index, total = 0, 1
    cond_or_uncond = tuple(transformer_options.get("cond_or_uncond", (0,)))
    run.step = StepContext(index, total, sigma, cond_or_uncond, batch // max(len(cond_or_uncond), 1), **layout)
    run.calls["model"] += 1


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
    """Fresh RunState per sampling run (the EasyCache lifecycle, ComfyUI 0.8 comfy_extras/nodes_easycache.py
    easycache_sample_wrapper)."""
    import comfy.model_patcher

    guider = executor.class_obj
    original = guider.model_options
    guider.model_options = comfy.model_patcher.create_model_options_clone(original)
    topts = guider.model_options.setdefault("transformer_options", {})
    editor: AttentionEditor = topts[EDITOR_KEY]
    backend = backend_for(guider.model_patcher)
    layers = backend.layers(guider.model_patcher)
    backend.reclaim(guider.model_options, layers)
    topts = guider.model_options["transformer_options"]
    run = backend.new_run(guider.model_patcher, layers)
    topts[RUN_KEY] = run
    try:
        editor.check_conds(getattr(guider, "conds", None) or {})
        editor.start_run(run)
        result = executor(*args, **kwargs)
        backend.check_called(editor, run, layers)
        editor.finish_run(run)
        summary = {"node": editor.node_name, "family": backend.family, **backend.summary(run, layers),
                   **run.data.get("summary", {})}
        RUN_HISTORY.append(summary)
        log.info("%s: %d/%d %s layers called in %d model calls", editor.node_name, summary["layers_called"],
                 summary["layers"], backend.family, summary["model_calls"])
        return result
    finally:
        guider.model_options = original


def patch_model(model, editor: AttentionEditor):
    """A clone of `model` whose every attention layer goes through `editor` (via the family's backend)."""
    import comfy.patcher_extension

    backend = backend_for(model)
    layers = backend.layers(model)
    if not layers:
        raise UnsupportedModelError(f"{editor.node_name}: the model has no attention layers to patch.")
    existing = model.model_options.get("transformer_options", {}).get(EDITOR_KEY)
    if existing is not None:
        raise ValueError(
            f"{editor.node_name}: this MODEL already carries an attention edit from {existing.node_name}. "
            "Connect the loader's MODEL (or the model before the first AttnEdit node) instead of chaining edits."
        )
    m = model.clone()
    m.model_options.setdefault("transformer_options", {})[EDITOR_KEY] = editor
    backend.install(m, layers)
    m.set_model_sampler_post_cfg_function(_post_cfg)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, _outer_sample_wrapper)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_KEY, _sampler_sample_wrapper)
    log.info("%s: patched %d %s attention layers", editor.node_name, len(layers), backend.family)
    return m


def __getattr__(name):
    # UNet helpers kept importable from here (tests and the demo code use them).
    if name in ("enumerate_layers", "unet_of", "Layer"):
        from . import unet_backend

        return getattr(unet_backend, name)
    raise AttributeError(name)
