"""Direct Inversion (Ju et al., "PnP Inversion: Boosting Diffusion-based Editing with 3 Lines of Code",
ICLR 2024), independent of ComfyUI.

The method. DDIM inversion at cfg 1 records the latents z*_T ... z*_0 of the image (Algorithm 1, "DDIM
inversion"). While editing, every sampling step first runs as usual (source and target branches batched,
the target branches taking the source's attention through P2P), then the source branch is moved back onto
the recorded trajectory: the official code adds the difference d_t = z*_{t-1} - z~_{t-1} between the
recorded latent and the one the CFG step produced (Algorithm 1's three added lines; official
models/p2p/inversion.py:375-390 `offset_calculate`, models/p2p/p2p_guidance_forward.py:103-116, where only
row 0 gets the offset). The source branch thus reconstructs the image exactly at any cfg while the targets
keep their own predictions.

Here the correction is applied to the sampler's *denoised* output instead of its latent, which gives the
same latents without a second pass: an Euler (= deterministic DDIM in sigma space, see ddim.py) step from
x at sigma to sigma_next is

    x_next = x + (x - denoised) / sigma * (sigma_next - sigma),

so choosing row 0's denoised as `euler_target_denoised(x, z*_next, sigma, sigma_next)` lands that row on
z*_next whatever the model predicted. The official code needs its offsets from a separate CFG sampling pass
over the trajectory (offset_calculate), at a fixed cfg; this needs none, so its cost is a plain DDIM inversion
plus the edit, and the sampling cfg stays free. Exact only for one model evaluation per step on the recorded
sigmas (euler / ddim); the adapter refuses other samplers.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def sampling_trajectory(ascending: Sequence[Tensor]) -> Tensor:
    """The inversion's latents (ddim.invert's trajectory: x_0 first, x_T last) reordered by sampling step:
    out[i] is the latent at the i-th sigma of the descending sampling schedule, out[0] = x_T, out[-1] = x_0."""
    if len(ascending) < 2:
        raise ValueError("a trajectory needs at least 2 latents (x_0 and x_T)")
    return torch.stack(list(ascending)[::-1])


def euler_target_denoised(x: Tensor, z_next: Tensor, sigma: float, sigma_next: float) -> Tensor:
    """The denoised prediction for which one Euler/DDIM step from (x, sigma) lands exactly on z_next.

    From x_next = x + (x - d) (sigma_next - sigma) / sigma = z_next:  d = x + (z_next - x) sigma / (sigma - sigma_next).
    At sigma_next = 0 the step returns d itself, so d = z_next (no division, no rounding)."""
    if not sigma > sigma_next >= 0:
        raise ValueError(f"need sigma > sigma_next >= 0, got {sigma} and {sigma_next}")
    if sigma_next == 0:
        return z_next.clone()
    return x + (z_next - x) * (sigma / (sigma - sigma_next))


def schedule_offset(recorded: Tensor, sigmas: Tensor, rtol: float = 1e-4) -> int | None:
    """Where `sigmas` (a sampler's descending schedule) sits inside the recorded one: the index k with
    sigmas == recorded[k:k + len(sigmas)] within rtol (absolute 1e-6 at 0), or None when it is not a contiguous
    run of the recorded schedule (another scheduler, step count, denoise or a rewritten last sigma)."""
    rec, sig = recorded.detach().double().cpu(), sigmas.detach().double().cpu()
    n = len(sig)
    if n < 2 or n > len(rec):
        return None
    for k in range(len(rec) - n + 1):
        window = rec[k:k + n]
        if torch.all((window - sig).abs() <= rtol * window.abs() + 1e-6):
            return k
    return None


def step_of(recorded: Tensor, sigma: float, rtol: float = 1e-4) -> int | None:
    """Index i of the recorded sampling sigma equal to `sigma` (within rtol), excluding the final one (no step
    starts there); None when the sampler evaluates the model off the recorded sigmas."""
    rec = recorded.detach().double().cpu()[:-1]
    hits = ((rec - sigma).abs() <= rtol * rec.abs() + 1e-6).nonzero().flatten()
    return int(hits[0]) if len(hits) else None

