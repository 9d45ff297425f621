"""Prompt-to-Prompt edit operations on attention, in plain torch.

The official controllers (prompt-to-prompt_stable.ipynb cell 7, AttentionControlEdit and subclasses)
edit the explicit softmax maps P of every edited row i from the source row's maps P_0:

    Replace:   P_i' = a_t * (P_0 M_i) + (1 - a_t) * P_i                 (M_i: replacement mapper)
    Refine:    P_i' = a_t * (r * P_0[:, :, g_i] + (1 - r) * P_i) + (1 - a_t) * P_i
    Reweight:  the bracketed map is multiplied column-wise by the equalizer e_i before the a_t blend

with a_t the per-token injection window at step t. Every one of these is P_0·X + P_i·Y for matrices
acting on the *token* axis, and (P X) V = P (X V) (associativity), so an edited row is

    out_i = attend(q_0, k_0, M_i (A_i ⊙ V_i)) + attend(q_i, k_i, B_i ⊙ V_i)

with per-token coefficients A_i = a_t r e_i and B_i = a_t (1 - r) e_i + (1 - a_t). Rows whose B_i is
zero (plain Replace/Reweight inside the window) need no second call: they simply attend with the
source row's q and k. Nothing materialises P, so the fast attention backend keeps working.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import torch

MAX_TOKENS = 77


@dataclass
class EditRow:
    """How one edited prompt takes the source prompt's cross-attention (all indexed by token slot)."""

    mapper: torch.Tensor  # [77, 77]: source slot (row) -> target slot (column); identity for Reweight
    align: torch.Tensor  # [77]: 1 where the target slot takes the source map (Refine's alphas), else 0
    window_start: torch.Tensor  # [77]: injection window per target slot, as fractions of the schedule (float64
    #   holds the typed decimals exactly; window_bounds turns them into steps)
    window_end: torch.Tensor  # [77]
    reweight: torch.Tensor  # [77]: equalizer, 1 = unchanged


def schedule_step(fraction, steps: int) -> int:
    """int(fraction * steps) on the decimal the user typed, exactly: 0.53 of 100 steps is 53, where float
    arithmetic gives 52.99999... `fraction` is a Python float, a numpy scalar or a 0-d tensor; its shortest
    decimal form at its own precision is taken as the typed value ('0.53' for float32 and float64 alike)."""
    return _exact_step(_typed_decimal(fraction), int(steps))


def _typed_decimal(value) -> str:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = (value if value.dtype in (torch.float16, torch.float32, torch.float64) else value.double()).numpy()
    return repr(value) if isinstance(value, (float, int)) else str(value)


@lru_cache(maxsize=4096)
def _exact_step(decimal: str, steps: int) -> int:
    return int(Fraction(decimal) * steps)


def window_bounds(start: torch.Tensor, end: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross-attention windows as step bounds [lo, hi): int(f*(T+1)) on the typed fractions, as
    ptp_utils.update_alpha_time_word (ptp_utils.py:264-274: the alpha table has num_steps + 1 rows)."""
    rows = total + 1

    def bounds(fractions: torch.Tensor) -> torch.Tensor:
        flat = fractions.detach().cpu().reshape(-1)
        values, inverse = torch.unique(flat, return_inverse=True)
        steps = torch.tensor([schedule_step(v, rows) for v in values], dtype=torch.long)
        return steps[inverse].reshape(fractions.shape)

    return bounds(start), bounds(end)


def window_active(start: torch.Tensor, end: torch.Tensor, step: int, total: int) -> torch.Tensor:
    """1.0 where step lies in its token's cross-attention window (window_bounds), else 0.0."""
    lo, hi = window_bounds(start, end, total)
    return ((lo <= step) & (step < hi)).float()


def self_window_active(start: float, end: float, step: int, total: int) -> bool:
    """Official self-attention window: int(start*T) <= step < int(end*T) (P2P-nb cell 7), on the typed fractions."""
    return schedule_step(start, total) <= step < schedule_step(end, total)


def cross_coefficients(rows: list[EditRow], step: int, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A [E, 77] (weight on the source map) and B [E, 77] (weight on the row's own map)."""
    a, b = [], []
    for row in rows:
        active = window_active(row.window_start, row.window_end, step, total)
        a.append(active * row.align * row.reweight)
        b.append(active * (1 - row.align) * row.reweight + (1 - active))
    return torch.stack(a), torch.stack(b)


def fold_tokens(v: torch.Tensor, slots: int = MAX_TOKENS) -> int:
    """Copies of the prompt's `slots`-token sequence in the token axis (ComfyUI repeats a 77-token cond to
    match a longer negative: comfy/conds.py CONDCrossAttn.concat). Softmax over r identical copies splits
    each weight r ways, so applying the same token-axis operator to every copy is exact."""
    tokens = v.shape[1]
    if tokens % slots:
        raise ValueError(f"cross-attention has {tokens} text tokens, not a multiple of {slots}")
    return tokens // slots


def map_values(mapper: torch.Tensor, weights: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """M (w ⊙ V) for V [E, T·r, C] (T = the mapper's slots), batched over E edited rows and the r copies."""
    e, tokens, c = v.shape
    slots = mapper.shape[-1]
    vv = v.reshape(e, tokens // slots, slots, c) * weights.to(v)[:, None, :, None]
    out = torch.einsum("ewn,ernc->erwc", mapper.to(v), vv)
    return out.reshape(e, tokens, c)


def scale_values(weights: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    e, tokens, c = v.shape
    slots = weights.shape[-1]
    return (v.reshape(e, tokens // slots, slots, c) * weights.to(v)[:, None, :, None]).reshape(e, tokens, c)


def row_kinds(a: torch.Tensor, b: torch.Tensor) -> tuple[list[bool], list[bool]]:
    """Per edited row: (attends with the source's q/k only, is untouched). One host sync; compute once per step."""
    return (b == 0).all(dim=1).tolist(), ((a == 0).all(dim=1) & (b == 1).all(dim=1)).tolist()


def mix_cross_attention(q, k, v, attend, chunk_starts: list[int], mappers: torch.Tensor, a: torch.Tensor,
                        b: torch.Tensor, kinds: tuple[list[bool], list[bool]] | None = None):
    """Cross-attention output with every positive chunk's rows 1.. edited from its row 0.

    q [B, HW, inner], k/v [B, T, inner]; chunk_starts: first row of each positive chunk (rows of a chunk are
    the prompts: source first); mappers [E, 77, 77]; a, b [E, 77]. `attend(q, k, v)` is the attention
    function (ComfyUI's optimized_attention with heads bound); `kinds` is row_kinds(a, b), if already known."""
    n_edits = mappers.shape[0]
    if not chunk_starts or n_edits == 0:
        return attend(q, k, v)
    fold_tokens(v, mappers.shape[-1])
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    extra_q, extra_k, extra_v, extra_rows = [], [], [], []
    source_only, untouched = kinds if kinds is not None else row_kinds(a, b)
    for start in chunk_starts:
        rows = torch.arange(start + 1, start + 1 + n_edits)
        mapped = map_values(mappers, a, v[rows])
        own = scale_values(b, v[rows])
        for e in range(n_edits):
            r = start + 1 + e
            if untouched[e]:
                continue
            if source_only[e]:
                q2[r], k2[r], v2[r] = q[start], k[start], mapped[e]
            else:
                v2[r] = own[e]
                extra_q.append(q[start])
                extra_k.append(k[start])
                extra_v.append(mapped[e])
                extra_rows.append(r)
    if not extra_rows:
        return attend(q2, k2, v2)
    out = attend(torch.cat([q2, torch.stack(extra_q)]), torch.cat([k2, torch.stack(extra_k)]),
                 torch.cat([v2, torch.stack(extra_v)]))
    result = out[: q.shape[0]].clone()
    result[extra_rows] += out[q.shape[0]:]
    return result


def inject_self_attention(q, k, chunk_starts: list[int], n_rows: int):
    """Self-attention maps of the source row for rows 1.. of every positive chunk: P_i := P_0 means
    attending with the source q and k over the row's own values (P2P-nb cell 7, replace_self_attention)."""
    if not chunk_starts or n_rows < 2:
        return q, k
    q2, k2 = q.clone(), k.clone()
    for start in chunk_starts:
        q2[start + 1:start + n_rows] = q[start:start + 1]
        k2[start + 1:start + n_rows] = k[start:start + 1]
    return q2, k2


def attention_probabilities(q, k, heads: int, rows: list[int] | None = None) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(d)) in fp32 for the given rows: [R, heads, HW, T]. Only for low-resolution layers."""
    if rows is not None:
        q, k = q[rows], k[rows]
    b, hw, inner = q.shape
    d = inner // heads
    qh = q.float().reshape(b, hw, heads, d).transpose(1, 2)
    kh = k.float().reshape(b, k.shape[1], heads, d).transpose(1, 2)
    return torch.softmax(qh @ kh.transpose(-1, -2) * d ** -0.5, dim=-1)


def token_maps(probs: torch.Tensor, slots: int = MAX_TOKENS) -> torch.Tensor:
    """[R, heads, HW, T·r] -> head-averaged maps over the T slots [R, HW, T], copies summed."""
    r, heads, hw, tokens = probs.shape
    return probs.mean(1).reshape(r, hw, tokens // slots, slots).sum(2)


def chunked_token_maps(q, k, heads: int, rows: list[int], chunk: int = 4096) -> torch.Tensor:
    """Head-averaged softmax(q kᵀ / sqrt(d)) of the given rows, [R, L, T] in fp32, computed a chunk of queries at a
    time so that a video's tokens never hold more than [R, heads, chunk, T] at once (the P2P map: video query ×
    text key)."""
    q, k = q[rows].float(), k[rows].float()
    r, length, inner = q.shape
    d = inner // heads
    kh = k.reshape(r, k.shape[1], heads, d).transpose(1, 2)
    out = torch.empty(r, length, k.shape[1], dtype=torch.float32, device=q.device)
    for start in range(0, length, chunk):
        qh = q[:, start:start + chunk].reshape(r, -1, heads, d).transpose(1, 2)
        out[:, start:start + chunk] = torch.softmax(qh @ kh.transpose(-1, -2) * d ** -0.5, dim=-1).mean(1)
    return out
