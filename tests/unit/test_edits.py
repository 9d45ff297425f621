"""The V-side edit operations equal the official explicit-map formulas (P2P-nb cell 7)."""
import torch

from fractions import Fraction

import numpy as np

from attention.edits import (EditRow, attention_probabilities, cross_coefficients, inject_self_attention,
                             mix_cross_attention, schedule_step, self_window_active, window_active, window_bounds)

HEADS = 2


def naive_attend(q, k, v):
    b, hw, inner = q.shape
    d = inner // HEADS
    qh = q.reshape(b, hw, HEADS, d).transpose(1, 2)
    kh = k.reshape(b, -1, HEADS, d).transpose(1, 2)
    vh = v.reshape(b, -1, HEADS, d).transpose(1, 2)
    p = torch.softmax(qh @ kh.transpose(-1, -2) * d ** -0.5, -1)
    return (p @ vh).transpose(1, 2).reshape(b, hw, inner)


def official_edit(q, k, v, start, mappers, align, alpha, eq):
    """Explicit maps, the official way: P_i' = a*((r*(P0 M) + (1-r)*P_i) * e) + (1-a)*P_i."""
    p = attention_probabilities(q, k, HEADS).double()  # [B, H, HW, T]
    b, hw, inner = q.shape
    d = inner // HEADS
    vh = v.double().reshape(b, -1, HEADS, d).transpose(1, 2)
    out = (p @ vh).transpose(1, 2).reshape(b, hw, inner)
    p0 = p[start]
    for e in range(mappers.shape[0]):
        r = start + 1 + e
        base = torch.einsum("hpw,wn->hpn", p0, mappers[e].double())
        new = (align[e] * base + (1 - align[e]) * p[r]) * eq[e]
        pe = alpha[e] * new + (1 - alpha[e]) * p[r]
        out[r] = (pe @ vh[r]).transpose(0, 1).reshape(hw, inner)
    return out


def random_case(n_rows=3, chunks=(1, 0), hw=16, inner=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = n_rows * len(chunks)
    q = torch.randn(b, hw, inner, generator=g)
    k = torch.randn(b, 77, inner, generator=g)
    v = torch.randn(b, 77, inner, generator=g)
    starts = [i * n_rows for i, c in enumerate(chunks) if c == 0]
    return q, k, v, starts, g


def test_replace_inside_window_matches_official_formula():
    q, k, v, starts, g = random_case()
    mappers = torch.stack([torch.eye(77), torch.eye(77)[torch.randperm(77, generator=g)]])
    rows = [EditRow(m, torch.ones(77), torch.zeros(77), torch.full((77,), 0.8), torch.ones(77)) for m in mappers]
    a, b = cross_coefficients(rows, step=3, total=10)
    assert (b == 0).all()
    got = mix_cross_attention(q, k, v, naive_attend, starts, mappers, a, b)
    want = official_edit(q, k, v, starts[0], mappers, torch.ones(2, 77), torch.ones(2, 77), torch.ones(2, 77))
    assert torch.allclose(got.double(), want, atol=1e-5)
    assert torch.equal(got[:3], naive_attend(q, k, v)[:3]), "uncond chunk must be left alone"


def test_refine_with_reweight_and_per_word_windows_matches_official_formula():
    q, k, v, starts, g = random_case(n_rows=2, chunks=(0,))
    mapper = torch.zeros(77, 77)
    gather = torch.randint(0, 77, (77,), generator=g)
    mapper[gather, torch.arange(77)] = 1
    align = (torch.rand(77, generator=g) > 0.3).float()
    eq = torch.ones(77)
    eq[5] = 3.0
    eq[9] = -1.0
    start = torch.zeros(77)
    end = torch.full((77,), 0.8)
    end[7] = 0.2  # a word with a short window
    row = EditRow(mapper, align, start, end, eq)
    a, b = cross_coefficients([row], step=4, total=10)
    alpha = window_active(start, end, 4, 10)
    assert alpha[7] == 0 and alpha[0] == 1
    got = mix_cross_attention(q, k, v, naive_attend, starts, mapper[None], a, b)
    want = official_edit(q, k, v, 0, mapper[None], align[None], alpha[None], eq[None])
    assert torch.allclose(got.double(), want, atol=1e-5)


def test_outside_window_is_plain_attention_bit_for_bit():
    q, k, v, starts, _ = random_case()
    rows = [EditRow(torch.eye(77), torch.ones(77), torch.zeros(77), torch.full((77,), 0.5), torch.ones(77))] * 2
    a, b = cross_coefficients(rows, step=9, total=10)
    assert torch.equal(mix_cross_attention(q, k, v, naive_attend, starts, torch.stack([torch.eye(77)] * 2), a, b),
                       naive_attend(q, k, v))


def test_reweight_one_is_identity_for_identical_prompts():
    q, k, v, starts, _ = random_case(n_rows=2, chunks=(1, 0))
    q[3], k[3], v[3] = q[2], k[2], v[2]  # row 1 of the positive chunk has the source prompt
    row = EditRow(torch.eye(77), torch.ones(77), torch.zeros(77), torch.ones(77), torch.ones(77))
    a, b = cross_coefficients([row], 0, 10)
    out = mix_cross_attention(q, k, v, naive_attend, starts, torch.eye(77)[None], a, b)
    assert torch.allclose(out[3], out[2], atol=1e-6)


def test_repeated_token_copies_fold_exactly():
    """A 154-token negative makes ComfyUI repeat the 77-token positive twice; edits must be unchanged."""
    q, k, v, starts, g = random_case(n_rows=2, chunks=(0,))
    mapper = torch.eye(77)[torch.randperm(77, generator=g)]
    row = EditRow(mapper, torch.ones(77), torch.zeros(77), torch.ones(77), torch.ones(77))
    a, b = cross_coefficients([row], 0, 10)
    once = mix_cross_attention(q, k, v, naive_attend, starts, mapper[None], a, b)
    twice = mix_cross_attention(q, k.repeat(1, 2, 1), v.repeat(1, 2, 1), naive_attend, starts, mapper[None], a, b)
    assert torch.allclose(once, twice, atol=1e-5)


def test_self_injection_gives_source_maps_over_own_values():
    q, k, v, starts, _ = random_case(n_rows=3, chunks=(1, 0))
    q2, k2 = inject_self_attention(q, k, starts, 3)
    assert torch.equal(q2[:3], q[:3]) and torch.equal(q2[4], q[3]) and torch.equal(k2[5], k[3])


def test_official_window_rounding():
    # cross: int(0.8 * 51) = 40 -> steps 0..39 active of 50; self: int(0.4 * 50) = 20 -> steps 0..19
    assert window_active(torch.tensor([0.0]), torch.tensor([0.8]), 39, 50).item() == 1
    assert window_active(torch.tensor([0.0]), torch.tensor([0.8]), 40, 50).item() == 0
    assert self_window_active(0.0, 0.4, 19, 50) and not self_window_active(0.0, 0.4, 20, 50)
    assert not self_window_active(0.0, 0.0, 0, 50)


# Every two-decimal fraction a FLOAT widget with step 0.01 gives, and a few longer typed values.
SWEEP_FRACTIONS = [f"{i / 100:.2f}" for i in range(101)] + ["0.125", "0.333", "0.6667", "0.05", "0.999"]
SWEEP_STEPS = list(range(1, 151)) + [199, 250, 500, 999, 1000]


def test_window_bounds_are_exact_on_the_typed_decimals():
    """int(f*(T+1)) for cross-attention, int(f*T) for self-attention, against exact rational arithmetic;
    the windows hold float64 (what build_plan stores) or float32 (what a caller may pass)."""
    typed = [float(f) for f in SWEEP_FRACTIONS]
    for dtype in (torch.float64, torch.float32):
        fractions = torch.tensor(typed, dtype=dtype)
        for steps in SWEEP_STEPS:
            lo, hi = window_bounds(torch.zeros_like(fractions), fractions, steps)
            want = [int(Fraction(f) * (steps + 1)) for f in SWEEP_FRACTIONS]
            assert hi.tolist() == want, (dtype, steps)
            assert lo.tolist() == [0] * len(typed)
    for f, value in zip(SWEEP_FRACTIONS, typed):
        for steps in SWEEP_STEPS:
            assert schedule_step(value, steps) == int(Fraction(f) * steps), (f, steps)
            assert schedule_step(np.float32(value), steps) == int(Fraction(f) * steps), (f, steps)


def test_windows_the_float_nudge_got_wrong():
    """float32 * (T+1) + 1e-6 ended these windows a step early; exact arithmetic does not."""
    # 0.53 at 99 steps: int(0.53 * 100) = 53 (steps 0..52 active); 0.84 at 74 steps: int(0.84 * 75) = 63
    for f, steps, end in ((0.53, 99, 53), (0.84, 74, 63)):
        for dtype in (torch.float64, torch.float32):
            window = torch.tensor([f], dtype=dtype)
            assert window_active(torch.zeros(1, dtype=dtype), window, end - 1, steps).item() == 1
            assert window_active(torch.zeros(1, dtype=dtype), window, end, steps).item() == 0
    # self-attention and the local-blend start use int(f*T) on the same typed decimals
    assert self_window_active(0.0, 0.29, 28, 100) and not self_window_active(0.0, 0.29, 29, 100)
    assert self_window_active(0.57, 1.0, 57, 100) and not self_window_active(0.57, 1.0, 56, 100)
    assert schedule_step(0.29, 100) == 29 and schedule_step(0.57, 100) == 57
