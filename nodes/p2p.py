"""Prompt-to-Prompt nodes: one node between the loader and a stock sampler.

Each outputs the patched MODEL, the batched positive CONDITIONING (row 0 = source prompt, rows 1.. =
edits) and the LATENT repeated once per prompt with identical noise. Wire all three into KSampler
(with your usual negative); output row 0 is the source image, rows 1.. are the edits.
"""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..attention.backends import backend_for
from ..attention.comfy_patch import patch_model
from ..attention.options import parse_prompt_lines
from ..attention.p2p_editor import EDITOR_MARK, ROWS_MARK, P2PEditor
from ..attention.p2p_plan import InputError, build_sequence_plan
from .checks import require_editable_model, require_latent
from .clip_prompts import encode_rows, fit_to_model, prompt_encoding, same_chunks

CATEGORY = "attention_edit/prompt_to_prompt"

# Which UNet level's cross-attention maps drive local blend. Official P2P reads its 16x16 layers (SD1.x at
# 512 px: latent/4); at other model sizes another level can localise words better (the demo model: latent/2).
BLEND_AUTO = "auto (P2P 16x16)"
BLEND_RESOLUTIONS = {BLEND_AUTO: None, "latent": 0, "latent/2": 1, "latent/4": 2, "latent/8": 3}

_SCHEDULE_TIP = ("Fraction of the sampler run's schedule (its sigmas), counted from its start; for a run split over "
                 "several KSamplerAdvanced nodes (Wan 2.2's two experts) put a P2P Step Range node before each. "
                 "During it the source prompt's ")


def _common_inputs(reweight_node: bool):
    prompts = ([io.String.Input("prompt", multiline=True, tooltip="The prompt; the edit reweights some of its words.")]
               if reweight_node else
               [io.String.Input("source_prompt", multiline=True, tooltip="Prompt of the source image (row 0)."),
                io.String.Input("target_prompts", multiline=True,
                                tooltip="One edited prompt per line; each becomes one more output row.")])
    return [
        io.Model.Input("model"),
        io.Clip.Input("clip"),
        io.Latent.Input("latent", tooltip="Batch-1 latent: an empty latent, or an inverted x_T for real images."),
        *prompts,
        *([io.String.Input("reweight", default="", tooltip="word: factor, … e.g. 'fluffy: 2.0, red: -1'")]
          if reweight_node else []),
        io.Float.Input("cross_replace", default=0.8, min=0.0, max=1.0, step=0.01,
                       tooltip=_SCHEDULE_TIP + "cross-attention maps are injected into the edits."),
        io.Float.Input("self_replace", default=0.4, min=0.0, max=1.0, step=0.01,
                       tooltip=_SCHEDULE_TIP + "self-attention maps are injected (low-resolution layers only)."),
        io.String.Input("word_schedule", default="", optional=True,
                        tooltip="Per-word injection windows: 'lion: 0.4' (0 to 0.4) or 'lion: 0.1-0.6'."),
        *([] if reweight_node else [
            io.String.Input("reweight", default="", optional=True,
                            tooltip="Also scale words' attention: 'fluffy: 2.0, red: -1' (paper range -2..2).")]),
        io.String.Input("blend_words", default="", optional=True,
                        tooltip="Local blend: 'cat | dog' = words of the source | of the edits whose attention "
                                "marks the region allowed to change. Empty = no local blend."),
        io.Float.Input("blend_threshold", default=0.3, min=0.0, max=1.0, step=0.01, optional=True),
        io.Float.Input("blend_start", default=0.0, min=0.0, max=1.0, step=0.01, optional=True,
                       tooltip="Fraction of the schedule before local blend starts (null-text notebook: 0.2)."),
        io.Combo.Input("blend_resolution", options=list(BLEND_RESOLUTIONS), default=BLEND_AUTO,
                       optional=True,
                       tooltip="Cross-attention layers whose maps make the blend mask. Auto: the official 16x16 "
                               "layers (latent/4 at SD1.x 512 px and SDXL 1024 px). Pick another when the mask "
                               "covers everything or misses the object (the demo model: latent/2). Transformer "
                               "models have one token grid: this input does not apply."),
        io.Mask.Input("mask", optional=True,
                      tooltip="Region the edit may change (1 = change, 0 = keep the source): outside it the edited "
                              "rows keep the source row's latent at every step. One mask for every edited prompt, "
                              "or one per edited prompt; resized to the latent like ComfyUI's mask nodes. With "
                              "blend_words too, the edit changes only where both the mask and the words' region "
                              "allow (their product, the words' part from blend_start on)."),
    ]


def _schema(node_id: str, display_name: str, description: str, reweight_node: bool = False):
    return io.Schema(
        node_id=node_id,
        display_name=display_name,
        category=CATEGORY,
        description=description,
        inputs=_common_inputs(reweight_node),
        outputs=[io.Model.Output(display_name="MODEL"),
                 io.Conditioning.Output(display_name="positive"),
                 io.Latent.Output(display_name="LATENT")],
    )


def _batched_latent(node: str, latent: dict, n: int, model) -> dict:
    """One row per prompt, all with the same noise (batch_index repeated)."""
    require_latent(node, model, latent, single=True)
    samples = latent["samples"]
    out = {**latent, "samples": samples.repeat(n, *([1] * (samples.ndim - 1)))}
    out["batch_index"] = [latent.get("batch_index", [0])[0]] * n  # one noise draw shared by every row
    if "noise_mask" in latent and latent["noise_mask"] is not None and latent["noise_mask"].shape[0] == 1:
        out["noise_mask"] = latent["noise_mask"].repeat(n, *([1] * (latent["noise_mask"].ndim - 1)))
    return out


def _user_mask(node: str, mask, n_edits: int):
    """MASK [M, H, W] (or [H, W]) -> float [M, H, W] in 0-1 with M = 1 or one per edited prompt; None passes."""
    if mask is None:
        return None
    mask = mask[None] if mask.ndim == 2 else mask
    if mask.ndim != 3 or mask.shape[0] not in (1, n_edits):
        raise InputError(node, "mask", f"got a mask batch of shape {tuple(mask.shape)}; give one mask, or one per "
                                       f"edited prompt ({n_edits}).")
    if not torch.isfinite(mask).all():
        raise InputError(node, "mask", "the mask contains NaN or Inf values.")
    return mask.detach().float().clamp(0, 1).cpu()


def run_p2p(node: str, mode: str, model, clip, latent, source_prompt: str, target_prompts: list[str],
            cross_replace: float, self_replace: float, word_schedule: str, reweight: str, blend_words: str,
            blend_threshold: float, blend_start: float, blend_resolution: str = BLEND_AUTO, mask=None):
    require_editable_model(node, model)
    if blend_resolution not in BLEND_RESOLUTIONS:
        raise InputError(node, "blend_resolution",
                         f"{blend_resolution!r} is not one of {', '.join(map(repr, BLEND_RESOLUTIONS))}.")
    source = prompt_encoding(clip, source_prompt, node, "source_prompt" if mode != "reweight" else "prompt")
    targets = [prompt_encoding(clip, p, node, "target_prompts" if mode != "reweight" else "prompt")
               for p in target_prompts]
    same_chunks(node, [source, *targets],
                ["source prompt"] + [f"edited prompt {i}" for i in range(1, len(targets) + 1)])
    source, *targets = fit_to_model([source, *targets], backend_for(model), model)
    # a piece per chunk of each text encoder the model attends to (SD3: CLIP then T5), side by side
    pieces = [(src_tokens, [t.segments[i][1] for t in targets]) for i, (_, src_tokens) in enumerate(source.segments)]
    plan = build_sequence_plan(node, mode, pieces, cross_replace, self_replace, word_schedule or "", reweight or "",
                               blend_words or "", blend_threshold, blend_start, BLEND_RESOLUTIONS[blend_resolution])
    editor = P2PEditor(plan, user_mask=_user_mask(node, mask, plan.n_prompts - 1))
    patched = patch_model(model, editor)
    positive = encode_rows(clip, [source_prompt, *target_prompts])
    positive[0][1][ROWS_MARK] = editor.key
    positive[0][1][EDITOR_MARK] = editor  # for AttnEdit_P2PStepRange: the same edit on another model
    return io.NodeOutput(patched, positive, _batched_latent(node, latent, plan.n_prompts, model))


class _PromptPairNode(io.ComfyNode):
    """Replace and Refine share inputs and execution; they differ in how tokens are aligned."""

    NODE_ID = MODE = ""

    @classmethod
    def execute(cls, model, clip, latent, source_prompt, target_prompts, cross_replace, self_replace,
                word_schedule="", reweight="", blend_words="", blend_threshold=0.3, blend_start=0.0,
                blend_resolution=BLEND_AUTO, mask=None):
        return run_p2p(cls.NODE_ID, cls.MODE, model, clip, latent, source_prompt, parse_prompt_lines(target_prompts),
                       cross_replace, self_replace, word_schedule, reweight, blend_words, blend_threshold,
                       blend_start, blend_resolution, mask)


class P2PReplace(_PromptPairNode):
    NODE_ID, MODE = "AttnEdit_P2PReplace", "replace"

    @classmethod
    def define_schema(cls):
        return _schema(cls.NODE_ID, "P2P Word Swap (Replace)",
                       "Prompt-to-Prompt word swap: the edited prompts have the same words as the source "
                       "except swapped ones; the source's attention keeps layout and identity.")


class P2PRefine(_PromptPairNode):
    NODE_ID, MODE = "AttnEdit_P2PRefine", "refine"

    @classmethod
    def define_schema(cls):
        return _schema(cls.NODE_ID, "P2P Refine (add or change phrases)",
                       "Prompt-to-Prompt refinement: edited prompts may add or change phrases; tokens are "
                       "aligned to the source (Needleman-Wunsch) and aligned tokens take the source's maps.")


class P2PReweight(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return _schema("AttnEdit_P2PReweight", "P2P Reweight",
                       "Prompt-to-Prompt attention reweighting: strengthen (>1) or weaken (<1, negative) chosen "
                       "words. Row 0 is the original, row 1 the reweighted image.", reweight_node=True)

    @classmethod
    def execute(cls, model, clip, latent, prompt, reweight, cross_replace, self_replace, word_schedule="",
                blend_words="", blend_threshold=0.3, blend_start=0.0, blend_resolution=BLEND_AUTO, mask=None):
        node = "AttnEdit_P2PReweight"
        if not reweight.strip():
            raise InputError(node, "reweight", "give at least one 'word: factor', e.g. 'fluffy: 2.0'.")
        return run_p2p(node, "reweight", model, clip, latent, prompt, [prompt], cross_replace, self_replace,
                       word_schedule, reweight, blend_words, blend_threshold, blend_start, blend_resolution, mask)


class P2PStepRange(io.ComfyNode):
    """The edit of a P2P node on one part of a schedule split over several samplers (Wan 2.2 14B's high- and
    low-noise experts in two KSamplerAdvanced nodes, a refiner pass): the windows count in steps of the whole
    schedule, and the model of each part carries the same edit."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="AttnEdit_P2PStepRange",
            display_name="P2P Step Range",
            category=CATEGORY,
            description="Runs a P2P node's edit on one part of a schedule split over several KSamplerAdvanced "
                        "nodes: connect the P2P node's positive, the model this part samples with (the P2P node's "
                        "MODEL for the first part, e.g. Wan 2.2's high-noise expert; the other expert or model for "
                        "a later part) and the same steps / start_at_step as that part's KSamplerAdvanced. The "
                        "cross_replace and self_replace windows then count over the whole schedule.",
            inputs=[
                io.Model.Input("model", tooltip="The P2P node's MODEL, or another model (a second expert) to carry "
                                                "the same edit."),
                io.Conditioning.Input("positive", tooltip="The P2P node's positive output."),
                io.Int.Input("steps", default=20, min=1, max=10000,
                             tooltip="Steps of the whole schedule (the KSamplerAdvanced 'steps')."),
                io.Int.Input("start_at_step", default=0, min=0, max=10000,
                             tooltip="First step of this part (the KSamplerAdvanced 'start_at_step')."),
            ],
            outputs=[io.Model.Output(display_name="MODEL")],
        )

    @classmethod
    def execute(cls, model, positive, steps, start_at_step):
        import copy

        from ..attention.backends.base import EDITOR_KEY

        node = "AttnEdit_P2PStepRange"
        editors = [c[1].get(EDITOR_MARK) for c in positive if c[1].get(EDITOR_MARK) is not None]
        if not editors:
            raise InputError(node, "positive", "this conditioning does not come from a P2P node (Word Swap, Refine "
                                               "or Reweight): connect that node's positive output.")
        if start_at_step >= steps:
            raise InputError(node, "start_at_step", f"{start_at_step} is not inside a schedule of {steps} steps.")
        require_editable_model(node, model)
        editor = copy.copy(editors[0])
        editor.step_range = (int(start_at_step), int(steps))
        carried = model.model_options.get("transformer_options", {}).get(EDITOR_KEY)
        if carried is None:
            return io.NodeOutput(patch_model(model, editor))
        if getattr(carried, "key", None) != editor.key:
            raise InputError(node, "model", f"this MODEL already carries another edit ({carried.node_name}); "
                                            "connect the P2P node's own MODEL or a model without an edit.")
        patched = model.clone()
        topts = patched.model_options["transformer_options"] = dict(patched.model_options["transformer_options"])
        topts[EDITOR_KEY] = editor
        return io.NodeOutput(patched)


NODES = [P2PReplace, P2PRefine, P2PReweight, P2PStepRange]
