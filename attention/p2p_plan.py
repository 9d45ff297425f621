"""A Prompt-to-Prompt edit as plain tensors: what each edited prompt takes from the source prompt.

Built once per node execution from the prompts' tokens and the user's options; small, config-only and
deepcopy-safe (it travels inside ModelPatcher.model_options).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .edits import EditRow
from .options import parse_blend_words, parse_word_schedule, parse_word_values
from .seq_align import refinement_mapper, replacement_mapper
from .tokens import PromptTokens, WordNotFound, find_word_positions

log = logging.getLogger("comfyui-attention-edit")

MODES = ("replace", "refine", "reweight")


class InputError(ValueError):
    """A bad node input; the message names the node, the input and the fix."""

    # ComfyUI prints the exception type as module.qualname; a custom node's module is its folder path.
    __module__ = "attention_edit"

    def __init__(self, node: str, input_name: str, message: str):
        super().__init__(f"{node}: input '{input_name}': {message}")


@dataclass
class P2PPlan:
    node_name: str
    n_prompts: int
    mappers: torch.Tensor  # [E, T, T], T = the text encoder's sequence length (77 for CLIP)
    rows: list[EditRow]
    self_start: float
    self_end: float
    blend_tokens: torch.Tensor | None  # [N, T]: 1 on the blend words of each row (row 0 = source)
    blend_threshold: float
    blend_start: float
    blend_level: int | None = None  # UNet level whose maps drive the blend; None = the official choice

    @property
    def text_len(self) -> int:
        return self.mappers.shape[-1]


def _positions_in_target(phrase: str, src: PromptTokens, tgt: PromptTokens, mapper: torch.Tensor,
                         align: torch.Tensor) -> list[int]:
    """Target slots of a word of either prompt: found in the target directly, or a source word's slots carried
    through the mapper (e.g. the swapped-out word of a Replace); [] when neither prompt has it."""
    try:
        return find_word_positions(tgt, phrase)
    except WordNotFound:
        pass
    try:
        source_slots = find_word_positions(src, phrase)
    except WordNotFound:
        return []
    return ((mapper[source_slots] > 0).any(0) & (align > 0)).nonzero().flatten().tolist()


def _key_slots(node: str, input_name: str, phrase: str, source: PromptTokens, targets: list[PromptTokens],
               mappers: list[torch.Tensor], aligns: list[torch.Tensor]) -> list[list[int]]:
    """Per edited prompt, the slots a word key ('lion: 0.4') applies to. As in the official code a key applies
    to the edited prompts that contain the word (here also through the source word they take); the others
    keep the default. Only a word in no prompt at all is refused."""
    slots = [_positions_in_target(phrase, source, tgt, mapper, align)
             for tgt, mapper, align in zip(targets, mappers, aligns)]
    if any(slots):
        return slots
    try:
        find_word_positions(source, phrase)
    except WordNotFound:
        lines = "; ".join(f"edited prompt {i}: {', '.join(t.word_texts)}" for i, t in enumerate(targets, start=1))
        raise InputError(node, input_name, f"'{phrase}' is in no prompt: write a word of the source or of an "
                                           f"edited prompt. Source words: {', '.join(source.word_texts)}; "
                                           f"{lines}") from None
    log.warning("%s: %s '%s' is a source word that no edited prompt takes attention from; it changes nothing.",
                node, input_name, phrase)
    return slots


def build_plan(node: str, mode: str, source: PromptTokens, targets: list[PromptTokens], cross_replace: float,
               self_replace: float, word_schedule: str = "", reweight: str = "", blend_words: str = "",
               blend_threshold: float = 0.3, blend_start: float = 0.0, blend_level: int | None = None) -> P2PPlan:
    if mode not in MODES:
        raise ValueError(f"unknown P2P mode {mode!r}")
    if not targets:
        raise InputError(node, "target_prompts", "no edited prompt given: write one edited prompt per line.")
    n_slots = source.layout.length
    mappers, aligns = [], []
    for i, tgt in enumerate(targets):
        if mode == "replace":
            try:
                mappers.append(replacement_mapper(source, tgt, n_slots))
            except ValueError as e:
                raise InputError(node, "target_prompts", f"edited prompt {i + 1}: {e}") from None
            aligns.append(torch.ones(n_slots))
        elif mode == "refine":
            gather, alphas = refinement_mapper(source, tgt, n_slots)
            mapper = torch.zeros(n_slots, n_slots)
            mapper[gather.clamp(0, n_slots - 1), torch.arange(n_slots)] = 1.0
            mappers.append(mapper)
            aligns.append(alphas.float())
        else:
            mappers.append(torch.eye(n_slots))
            aligns.append(torch.ones(n_slots))

    try:
        schedule = parse_word_schedule(word_schedule)
    except ValueError as e:
        raise InputError(node, "word_schedule", str(e)) from None
    try:
        weights = parse_word_values(reweight)
    except ValueError as e:
        raise InputError(node, "reweight", str(e)) from None
    for phrase, value in weights:
        if not -2.0 <= value <= 2.0:
            log.warning("%s: reweight '%s: %g' is outside the paper's range [-2, 2]; results may saturate.",
                        node, phrase, value)

    schedule_slots = [(s, e, _key_slots(node, "word_schedule", phrase, source, targets, mappers, aligns))
                      for phrase, s, e in schedule]
    weight_slots = [(value, _key_slots(node, "reweight", phrase, source, targets, mappers, aligns))
                    for phrase, value in weights]
    rows = []
    for i, (mapper, align) in enumerate(zip(mappers, aligns)):
        start = torch.zeros(n_slots, dtype=torch.float64)  # float64: the typed fractions, exactly
        end = torch.full((n_slots,), float(cross_replace), dtype=torch.float64)
        for s, e, slots in schedule_slots:
            start[slots[i]], end[slots[i]] = s, e
        equalizer = torch.ones(n_slots)
        for value, slots in weight_slots:
            equalizer[slots[i]] = value
        rows.append(EditRow(mapper, align, start, end, equalizer))

    blend_tokens = None
    if blend_words.strip():
        try:
            source_words, target_words = parse_blend_words(blend_words)
        except ValueError as e:
            raise InputError(node, "blend_words", str(e)) from None
        blend_tokens = torch.zeros(len(targets) + 1, n_slots)
        for phrase in source_words:
            try:
                blend_tokens[0, find_word_positions(source, phrase)] = 1.0
            except WordNotFound as err:
                raise InputError(node, "blend_words", f"source prompt: {err}") from None
        # With several edited prompts each uses the target words it contains ('squirrel | lion, cat'), but
        # every target word must occur somewhere and every edited prompt must contain one.
        used = set()
        for row, tgt in enumerate(targets, start=1):
            for phrase in target_words:
                try:
                    blend_tokens[row, find_word_positions(tgt, phrase)] = 1.0
                    used.add(phrase)
                except WordNotFound:
                    pass
            if not blend_tokens[row].any():
                raise InputError(node, "blend_words",
                                 f"edited prompt {row} contains none of {', '.join(repr(w) for w in target_words)}; "
                                 f"its words are: {', '.join(tgt.word_texts)}")
        unused = [w for w in target_words if w not in used]
        if unused:
            raise InputError(node, "blend_words", f"{', '.join(repr(w) for w in unused)} occurs in no edited prompt")

    return P2PPlan(node, len(targets) + 1, torch.stack(mappers), rows, 0.0, float(self_replace), blend_tokens,
                   float(blend_threshold), float(blend_start), blend_level)


def combine_plans(plans: list[P2PPlan]) -> P2PPlan:
    """One plan over a text sequence made of several encoders' tokens side by side (SD3: the CLIP chunk, then
    T5): block-diagonal mappers, per-slot vectors concatenated in sequence order."""
    if len(plans) == 1:
        return plans[0]
    first = plans[0]
    mappers = torch.stack([torch.block_diag(*(p.mappers[e] for p in plans)) for e in range(first.mappers.shape[0])])
    rows = [EditRow(*(torch.cat([getattr(p.rows[e], f) for p in plans])
                      for f in ("mapper", "align", "window_start", "window_end", "reweight")))
            for e in range(len(first.rows))]
    for row, mapper in zip(rows, mappers):
        row.mapper = mapper
    blend = None
    if first.blend_tokens is not None:
        blend = torch.cat([p.blend_tokens for p in plans], dim=1)
    return P2PPlan(first.node_name, first.n_prompts, mappers, rows, first.self_start, first.self_end, blend,
                   first.blend_threshold, first.blend_start, first.blend_level)
