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


Piece = tuple[PromptTokens, list[PromptTokens]]  # one run of the text sequence: the source's tokens, each target's


def _key_slots(node: str, input_name: str, phrase: str, pieces: list[Piece], aligned) -> list[list[list[int]]]:
    """Per piece and edited prompt, the slots a word key ('lion: 0.4') applies to. As in the official code a
    key applies to the edited prompts that contain the word (here also through the source word they take); the
    others keep the default. Only a word in no prompt at all is refused."""
    slots = [[_positions_in_target(phrase, src, tgt, mapper, align)
              for tgt, mapper, align in zip(tgts, mappers, aligns)]
             for (src, tgts), (mappers, aligns) in zip(pieces, aligned)]
    if any(s for piece in slots for s in piece):
        return slots
    source, targets = pieces[0][0], pieces[0][1]
    if not any(_has_word(src, phrase) for src, _ in pieces):
        lines = "; ".join(f"edited prompt {i}: {', '.join(t.word_texts)}" for i, t in enumerate(targets, start=1))
        raise InputError(node, input_name, f"'{phrase}' is in no prompt: write a word of the source or of an "
                                           f"edited prompt. Source words: {', '.join(source.word_texts)}; "
                                           f"{lines}")
    log.warning("%s: %s '%s' is a source word that no edited prompt takes attention from; it changes nothing.",
                node, input_name, phrase)
    return slots


def _has_word(pt: PromptTokens, phrase: str) -> bool:
    try:
        find_word_positions(pt, phrase)
        return True
    except WordNotFound:
        return False


def _piece_words(pt: PromptTokens) -> list[int]:
    return [w for w, pos in enumerate(pt.positions) if pos]


def _check_chunk_alignment(node: str, i: int, chunk: int, src: PromptTokens, tgt: PromptTokens) -> None:
    """Replace pairs words one for one, so each chunk of a long prompt must hold the same words of both."""
    a, b = _piece_words(src), _piece_words(tgt)
    if a == b:
        return
    first = next(k for k in range(min(len(a), len(b)) + 1) if k == len(a) or k == len(b) or a[k] != b[k])
    word = a[first] if first < len(a) else b[first] if first < len(b) else a[-1]
    raise InputError(node, "target_prompts",
                     f"edited prompt {i}: the word swap moves words across a chunk boundary (ComfyUI encodes a "
                     f"long prompt in chunks of 75 tokens; chunk {chunk + 1} holds words from "
                     f"'{src.words[a[0]].text if a else '-'}' in the source but from "
                     f"'{tgt.words[b[0]].text if b else '-'}' here, first differing near "
                     f"'{src.words[word].text}'). Swap words of the same token length before the boundary, "
                     "move the swap after it, or use Refine.")


def _align(node: str, mode: str, chunk: int, src: PromptTokens, targets: list[PromptTokens], several: bool):
    """(mappers, aligns) of one piece: per edited prompt, where each target slot takes the source's map from."""
    n_slots = src.layout.length
    mappers, aligns = [], []
    for i, tgt in enumerate(targets, start=1):
        if mode == "replace":
            try:
                mappers.append(replacement_mapper(src, tgt, n_slots))
            except ValueError as e:
                raise InputError(node, "target_prompts", f"edited prompt {i}: {e}") from None
            if several:
                _check_chunk_alignment(node, i, chunk, src, tgt)
            aligns.append(torch.ones(n_slots))
        elif mode == "refine":
            gather, alphas = refinement_mapper(src, tgt, n_slots)
            mapper = torch.zeros(n_slots, n_slots)
            mapper[gather.clamp(0, n_slots - 1), torch.arange(n_slots)] = 1.0
            mappers.append(mapper)
            aligns.append(alphas.float())
        else:
            mappers.append(torch.eye(n_slots))
            aligns.append(torch.ones(n_slots))
    return mappers, aligns


def build_plan(node: str, mode: str, source: PromptTokens, targets: list[PromptTokens], cross_replace: float,
               self_replace: float, word_schedule: str = "", reweight: str = "", blend_words: str = "",
               blend_threshold: float = 0.3, blend_start: float = 0.0, blend_level: int | None = None) -> P2PPlan:
    """The plan of prompts that each fit one run of the text sequence (one CLIP chunk, or T5 alone)."""
    return build_sequence_plan(node, mode, [(source, targets)], cross_replace, self_replace, word_schedule,
                               reweight, blend_words, blend_threshold, blend_start, blend_level)


def build_sequence_plan(node: str, mode: str, pieces: list[Piece], cross_replace: float, self_replace: float,
                        word_schedule: str = "", reweight: str = "", blend_words: str = "",
                        blend_threshold: float = 0.3, blend_start: float = 0.0,
                        blend_level: int | None = None) -> P2PPlan:
    """The plan over a text sequence made of pieces side by side (a long CLIP prompt's chunks; SD3's CLIP
    chunks, then T5): each piece is aligned on its own (block-diagonal mappers), while word keys and blend
    words are looked up in the whole prompt, so a word in any chunk counts."""
    if mode not in MODES:
        raise ValueError(f"unknown P2P mode {mode!r}")
    targets = pieces[0][1]
    if not targets:
        raise InputError(node, "target_prompts", "no edited prompt given: write one edited prompt per line.")
    several = len(pieces) > 1
    aligned = [_align(node, mode, c, src, tgts, several) for c, (src, tgts) in enumerate(pieces)]

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
    schedule_slots = [(s, e, _key_slots(node, "word_schedule", phrase, pieces, aligned)) for phrase, s, e in schedule]
    weight_slots = [(value, _key_slots(node, "reweight", phrase, pieces, aligned)) for phrase, value in weights]
    blend = _blend_tokens(node, pieces, blend_words) if blend_words.strip() else None

    plans = []
    for p, ((src, tgts), (mappers, aligns)) in enumerate(zip(pieces, aligned)):
        n_slots = src.layout.length
        rows = []
        for i, (mapper, align) in enumerate(zip(mappers, aligns)):
            start = torch.zeros(n_slots, dtype=torch.float64)  # float64: the typed fractions, exactly
            end = torch.full((n_slots,), float(cross_replace), dtype=torch.float64)
            for s, e, slots in schedule_slots:
                start[slots[p][i]], end[slots[p][i]] = s, e
            equalizer = torch.ones(n_slots)
            for value, slots in weight_slots:
                equalizer[slots[p][i]] = value
            rows.append(EditRow(mapper, align, start, end, equalizer))
        plans.append(P2PPlan(node, len(tgts) + 1, torch.stack(mappers), rows, 0.0, float(self_replace),
                             None if blend is None else blend[p], float(blend_threshold), float(blend_start),
                             blend_level))
    return combine_plans(plans)


def _blend_tokens(node: str, pieces: list[Piece], blend_words: str) -> list[torch.Tensor]:
    """Per piece [N, T]: 1 on the blend words' slots of each row (row 0 = source)."""
    try:
        source_words, target_words = parse_blend_words(blend_words)
    except ValueError as e:
        raise InputError(node, "blend_words", str(e)) from None
    n_rows = len(pieces[0][1]) + 1
    tokens = [torch.zeros(n_rows, src.layout.length) for src, _ in pieces]

    def mark(row: int, pt: PromptTokens, phrase: str, piece: int) -> bool:
        try:
            tokens[piece][row, find_word_positions(pt, phrase)] = 1.0
            return True
        except WordNotFound:
            return False

    for phrase in source_words:
        if not any([mark(0, src, phrase, p) for p, (src, _) in enumerate(pieces)]):
            try:
                find_word_positions(pieces[0][0], phrase)
            except WordNotFound as err:
                raise InputError(node, "blend_words", f"source prompt: {err}") from None
    # With several edited prompts each uses the target words it contains ('squirrel | lion, cat'), but
    # every target word must occur somewhere and every edited prompt must contain one.
    used = set()
    for row in range(1, n_rows):
        for phrase in target_words:
            if any([mark(row, tgts[row - 1], phrase, p) for p, (_, tgts) in enumerate(pieces)]):
                used.add(phrase)
        if not any(t[row].any() for t in tokens):
            tgt = pieces[0][1][row - 1]
            raise InputError(node, "blend_words",
                             f"edited prompt {row} contains none of {', '.join(repr(w) for w in target_words)}; "
                             f"its words are: {', '.join(tgt.word_texts)}")
    unused = [w for w in target_words if w not in used]
    if unused:
        raise InputError(node, "blend_words", f"{', '.join(repr(w) for w in unused)} occurs in no edited prompt")
    return tokens


def combine_plans(plans: list[P2PPlan]) -> P2PPlan:
    """One plan over a text sequence made of several encoders' tokens side by side (SD3: the CLIP chunk, then
    T5): block-diagonal mappers, per-slot vectors concatenated in sequence order."""
    if len(plans) == 1:
        return plans[0]
    first = plans[0]
    mappers = torch.stack([torch.block_diag(*(p.mappers[e] for p in plans)) for e in range(first.mappers.shape[0])])
    rows = [EditRow(mappers[e], *(torch.cat([getattr(p.rows[e], f) for p in plans])
                                  for f in ("align", "window_start", "window_end", "reweight")))
            for e in range(len(first.rows))]
    blend = None
    if first.blend_tokens is not None:
        blend = torch.cat([p.blend_tokens for p in plans], dim=1)
    return P2PPlan(first.node_name, first.n_prompts, mappers, rows, first.self_start, first.self_end, blend,
                   first.blend_threshold, first.blend_start, first.blend_level)
