"""Token alignment between a source prompt and an edited prompt (Prompt-to-Prompt).

- Replace (word swap): a [77, 77] matrix M with target attention = source attention @ M
  (rows = source slots, columns = target slots), seq_aligner.py:152-195.
- Refine (added / changed phrases): Needleman-Wunsch over the token ids, giving for each target
  slot the source slot it copies and an alpha (1 = copy the source map), seq_aligner.py:61-128.
"""

from __future__ import annotations

import difflib
from typing import Sequence

import torch

from .tokens import MAX_LEN, PromptTokens

_LEFT, _UP, _DIAG = 1, 2, 3


class WordCountMismatch(ValueError):
    """Replace needs prompts with the same number of words."""


def replacement_mapper(src: PromptTokens, tgt: PromptTokens, max_len: int = MAX_LEN) -> torch.Tensor:
    """Word-swap mapper, FloatTensor[max_len, max_len] (rows: source slots, columns: target).

    Words are compared position by position (lowercased). A swapped word with as many tokens as
    its replacement maps token to token; otherwise every source token of the word gives
    1/len(target tokens) to each target token of the word (seq_aligner.py:167-172).

    DEVIATION from the official loop: after the last swap it writes `mapper[j, j]` on the
    *target* index (seq_aligner.py:180-183), so when the swapped words split into different
    token counts every later token reads the wrong source slot. We keep aligning by source
    position (`mapper[i, j]`, as the official loop does between swaps, seq_aligner.py:176-179),
    and target columns left over when the source runs out map to the last source slot, so no
    column is empty.
    """
    if len(src.words) != len(tgt.words):
        raise WordCountMismatch(_count_mismatch_message(src, tgt))
    for pt in (src, tgt):
        if pt.eos_position >= max_len:
            raise ValueError(f"prompt has {len(pt.ids)} tokens, too many for max_len={max_len}")
    mapper = torch.zeros(max_len, max_len)
    if src.layout.bos is not None:
        mapper[0, 0] = 1.0  # BOS
    last_src = 0
    for ps, pt_ in zip(src.positions, tgt.positions):
        if not pt_:
            continue
        if len(ps) == len(pt_):
            mapper[list(ps), list(pt_)] = 1.0
        elif not ps:  # a word with no tokens (not seen with CLIP BPE): reuse the previous slot
            mapper[last_src, list(pt_)] = 1.0
        else:
            mapper[torch.tensor(ps)[:, None], torch.tensor(pt_)[None, :]] = 1.0 / len(pt_)
        last_src = max(ps, default=last_src)
    # EOS and padding, paired by source position.
    i, j = src.eos_position, tgt.eos_position
    while i < max_len and j < max_len:
        mapper[i, j] = 1.0
        i, j = i + 1, j + 1
    mapper[max_len - 1, j:] = 1.0
    return mapper


def _count_mismatch_message(src: PromptTokens, tgt: PromptTokens) -> str:
    a, b = src.word_texts, tgt.word_texts
    only_src, only_tgt = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op != "equal":
            only_src += a[i1:i2]
            only_tgt += b[j1:j2]
    return (
        f"Replace needs prompts with the same number of words, but the source prompt has "
        f"{len(a)} words and the target prompt has {len(b)} (punctuation counts as a word). "
        f"Differing words: source {only_src} vs target {only_tgt}. "
        f"Swap words one for one, or use Refine to add or remove words."
    )


def needleman_wunsch(
    x: Sequence, y: Sequence, gap: int = 0, match: int = 1, mismatch: int = -1
) -> list[int]:
    """Global alignment of x and y; returns, for each y[j], the index in x it aligns to or -1.

    Same scoring, tie-break and traceback as seq_aligner.py:61-104: a cell takes left (y
    inserted) on a tie, then up (x deleted), then diagonal. With the defaults a mismatch (-1)
    scores below a gap (0), so a changed token becomes delete + insert and maps to -1.
    """
    n, m = len(x), len(y)
    score = [[0] * (m + 1) for _ in range(n + 1)]
    move = [[0] * (m + 1) for _ in range(n + 1)]
    for j in range(1, m + 1):
        score[0][j], move[0][j] = j * gap, _LEFT
    for i in range(1, n + 1):
        score[i][0], move[i][0] = i * gap, _UP
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            left = score[i][j - 1] + gap
            up = score[i - 1][j] + gap
            diag = score[i - 1][j - 1] + (match if x[i - 1] == y[j - 1] else mismatch)
            best = max(left, up, diag)
            score[i][j] = best
            move[i][j] = _LEFT if best == left else _UP if best == up else _DIAG
    y_to_x = [-1] * m
    i, j = n, m
    while i > 0 or j > 0:
        step = move[i][j]
        if step == _DIAG:
            i, j = i - 1, j - 1
            y_to_x[j] = i
        elif step == _LEFT:
            j -= 1
        else:
            i -= 1
    return y_to_x


def refinement_mapper(
    src: PromptTokens, tgt: PromptTokens, max_len: int = MAX_LEN
) -> tuple[torch.Tensor, torch.Tensor]:
    """Refine mapper: (LongTensor[max_len] source slot per target slot, FloatTensor[max_len] alphas).

    Aligns [BOS +] tokens + EOS of both prompts (seq_aligner.py:107-118). alpha = 1 where the target
    token aligned to a source token, 0 where it was inserted. Inserted tokens get source slot 0
    (the official keeps -1, which torch indexing reads as the last slot; with alpha 0 the value
    is unused either way). Slots past the target's EOS map to the same slot (`len(y) + arange`),
    alpha 1.
    """
    x, y = src.full_ids, tgt.full_ids
    if max(len(x), len(y)) > max_len:
        raise ValueError(f"prompt has more than {max_len - 2} tokens, too many for max_len={max_len}")
    y_to_x = torch.tensor(needleman_wunsch(x, y), dtype=torch.int64)
    mapper = torch.zeros(max_len, dtype=torch.int64)
    alphas = torch.ones(max_len)
    mapper[: len(y)] = y_to_x.clamp(min=0)
    alphas[: len(y)] = y_to_x.ne(-1).float()
    mapper[len(y):] = (len(y) + torch.arange(max_len - len(y))).clamp(max=max_len - 1)
    return mapper, alphas
