"""The seam between editors and model families: the types both sides speak, and nothing that knows a family.

A *backend* (one per kind of attention: attention/backends/unet.py, joint.py, ...) installs its hooks on a
ModelPatcher clone, says which layer a call belongs to, gives the text and image token spans and the latent grid,
and runs plain attention exactly as ComfyUI would. An *editor* (P2P, attention maps, guidance) subclasses
`AttentionEditor` and receives the calls: UNet backends call `self_attention` / `cross_attention`, joint backends
`joint_attention` with a `JointCall`. Both are config-only (ModelPatcher.clone() deep-copies them with
model_options); per-run state lives in `RunState`, created fresh for every sampling run (attention/comfy_patch.py).
This module imports no backend and no editor.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

EDITOR_KEY = "attn_edit"
RUN_KEY = "attn_edit_run"
WRAPPER_KEY = "attn_edit"

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
    grid: tuple[int, ...] = (0, 0)  # image tokens as (rows, columns); video (frames, rows, columns)

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
    calls: dict[str, int] = field(default_factory=lambda: {"attn1": 0, "attn2": 0, "joint": 0, "self": 0, "cross": 0,
                                                           "model": 0})
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
    """A transformer block (joint-attention families; Wan's blocks too)."""

    kind: str  # "double" | "single" (Flux), "joint" (SD3 MMDiT, Qwen-Image), "block" (Wan)
    index: int  # block index within its kind
    order: int  # position among all joint blocks of the model, 0-based


@dataclass
class CrossCall:
    """One attention call of a model whose image (video) tokens attend to the text in a separate cross-attention
    (Wan): q [B, L, heads·D] of the video tokens; k, v [B, T, heads·D] of the text (`kind` "cross") or of the
    video tokens themselves (`kind` "self"). `grid` is the token grid (frames, rows, columns), L its product;
    `attend(q, k, v)` runs ComfyUI's attention exactly as the model would have (same function, options and any
    other pack's override) and returns [B, L, heads·D]."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    heads: int
    kind: str
    grid: tuple[int, int, int]
    layer: "JointLayer"
    attend: object

    def plain(self) -> torch.Tensor:
        return self.attend(self.q, self.k, self.v)


class AttentionEditor:
    """Base editor: plain attention, counted. Subclasses override the hooks they need.

    Keep subclasses config-only: ModelPatcher.clone() deep-copies them with model_options.
    """

    node_name = "AttnEdit"
    shares_row_noise = False  # stochastic samplers: one noise draw for every latent row (all prompts)
    step_range: tuple[int, int] | None = None  # (first step, steps of the whole schedule) of a split run

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

    def video_attention(self, call: CrossCall, run: RunState):
        """Self- and cross-attention of a separate-cross-attention video model (Wan): call.kind says which."""
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

    def text_padding(self, model, n: int) -> int:
        """Slots the model's conditioning puts before an n-token text (Flux.2 left-pads it with zeros to 512:
        ComfyUI 0.8 comfy/model_base.py Flux2.extra_conds), found by running the model's own extra_conds on a probe
        text whose tokens are numbered."""
        import torch

        probe = torch.arange(1, n + 1, dtype=torch.float32)[None, :, None].expand(1, n, 4).contiguous()
        try:
            channels = model.model.latent_format.latent_channels
            out = model.model.extra_conds(cross_attn=probe, pooled_output=None, device=torch.device("cpu"),
                                          noise=torch.zeros(1, channels, 8, 8))
            cond = out["c_crossattn"].cond[0, :, 0]
        except Exception:  # a model whose extra_conds needs more than this: it adds nothing we could find
            return 0
        first = (cond == 1).nonzero()
        return int(first[0]) if len(first) and cond.shape[0] >= n + int(first[0]) else 0

    def text_multiple(self, model) -> int:
        """The model pads its text tokens to a multiple of this before attention (1: it does not)."""
        return 1

    def reclaim(self, model_options: dict, layers: list) -> None:
        """At the start of a run: hooks that a later node replaced are put back, wrapping that node's."""

    def summary(self, run: RunState, layers: list) -> dict:
        return {"layers": len(layers), "layers_called": len(run.layers_seen), "model_calls": run.calls["model"]}


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
    step_range = getattr(transformer_options.get(EDITOR_KEY), "step_range", None)
    if step_range is not None:  # one part of a schedule split over several samplers: count in the whole one
        index, total = min(index + step_range[0], step_range[1] - 1), step_range[1]
    cond_or_uncond = tuple(transformer_options.get("cond_or_uncond", (0,)))
    run.step = StepContext(index, total, sigma, cond_or_uncond, batch // max(len(cond_or_uncond), 1), **layout)
    run.calls["model"] += 1
