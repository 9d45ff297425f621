"""The one place where ComfyUI's model is patched: `patch_model(model, editor)` clones a ModelPatcher and lets the
model family's backend (attention/backends/) install its hooks on the clone.

Shared here, whatever the family: the wrappers that give each sampling run a fresh `RunState` (OUTER_SAMPLE),
row-shared noise for stochastic samplers (SAMPLER_SAMPLE), the post-CFG hook, and the loud failure when no
patched layer was reached. The hooks are module-level functions that read the editor (config only, deepcopy-safe)
and the run state from transformer_options, so they survive `ModelPatcher.clone()` and cached node outputs
(ComfyUI 0.8: comfy/model_patcher.py ModelPatcher.clone, comfy/patcher_extension.py WrappersMP).
The types editors and backends share are in attention/backends/base.py.
"""
from __future__ import annotations

import logging
from collections import deque

from .backends import backend_for
from .backends.base import EDITOR_KEY, RUN_KEY, WRAPPER_KEY, AttentionEditor, UnsupportedModelError

log = logging.getLogger("comfyui-attention-edit")

# Summaries of the last sampling runs (node, layers patched, calls received): logged, and read by tests.
RUN_HISTORY: deque[dict] = deque(maxlen=32)


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
