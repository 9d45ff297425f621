"""Unit tests for inversion/direct.py (Direct Inversion): the source row lands on the recorded trajectory, the same
latents as the official per-step offset, and the schedule matching that decides what the adapter refuses."""
from __future__ import annotations

import pytest
import torch

from inversion.ddim import ddim_step, eps_from_denoised, invert
from inversion.direct import euler_target_denoised, sampling_trajectory, schedule_offset, step_of
from tests.unit.test_inversion_math import MU, SD, ddim_uniform, gaussian_denoiser


def euler(x, denoised, sigma, sigma_next):
    """ComfyUI's sample_euler step (k_diffusion/sampling.py), written out: x + (x - D)/sigma * (sigma_next - sigma)."""
    return x + (x - denoised) / sigma * (sigma_next - sigma)


def guided_denoiser(x, sigma, cfg=7.5):
    """A CFG combination of two closed-form Gaussian denoisers: what the sampler uses, not what inverted."""
    s2 = sigma.view(-1, 1, 1, 1) ** 2
    cond = MU + SD**2 / (SD**2 + s2) * (x - MU)
    uncond = -0.2 + 1.1**2 / (1.1**2 + s2) * (x + 0.2)
    return uncond + cfg * (cond - uncond)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_the_euler_step_with_the_target_denoised_lands_on_the_recorded_latent(dtype, tol):
    g = torch.Generator().manual_seed(0)
    sig = ddim_uniform(50)
    for i in range(50):
        sigma, sigma_next = float(sig[i]), float(sig[i + 1])
        x = (torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64) * (1 + sigma)).to(dtype)
        z_next = (torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64) * (1 + sigma_next)).to(dtype)
        d = euler_target_denoised(x, z_next, sigma, sigma_next)
        landed = euler(x, d, sigma, sigma_next)
        assert float((landed - z_next).abs().max()) <= tol * (1 + float(z_next.abs().max())), (i, sigma)
    x = torch.randn(1, 4, 8, 8, generator=g)
    z = torch.randn(1, 4, 8, 8, generator=g)
    assert torch.equal(euler_target_denoised(x, z, 0.03, 0.0), z)  # the last step returns the denoised itself
    with pytest.raises(ValueError):
        euler_target_denoised(x, z, 0.5, 0.7)


def test_same_source_latents_as_the_official_offset_and_back_to_x0():
    """Official (models/p2p/inversion.py:375-390, p2p_guidance_forward.py:103-116): step the source with the CFG
    prediction, then add d = z*_{t-1} - step(z*_t). Ours: replace the source's denoised. Same latents at every step;
    without either the CFG sampling drifts away from the image."""
    x0 = MU + SD * torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sig = ddim_uniform(20)
    _, ascending = invert(gaussian_denoiser, x0, sig.flip(0))
    recorded = sampling_trajectory(ascending)
    assert torch.equal(recorded[0], ascending[-1]) and torch.equal(recorded[-1], x0)
    ours = official = plain = recorded[0]
    for i in range(20):
        s, s_next = sig[i:i + 1], float(sig[i + 1])
        stepped = ddim_step(guided_denoiser(official, s), eps_from_denoised(official, guided_denoiser(official, s), s),
                            s_next)
        official = stepped + (recorded[i + 1] - stepped)  # the offset, computed on the recorded latent
        ours = euler(ours, euler_target_denoised(ours, recorded[i + 1], float(s), s_next), float(s), s_next)
        d_plain = guided_denoiser(plain, s)
        plain = euler(plain, d_plain, float(s), s_next)
        assert torch.allclose(ours, official, atol=1e-10) and torch.allclose(ours, recorded[i + 1], atol=1e-10)
    assert torch.allclose(ours, x0, atol=1e-12)
    assert float((plain - x0).abs().max()) > 0.5, "the uncorrected CFG sampling should drift (else nothing is tested)"


def test_schedule_offset_accepts_the_recorded_schedule_and_its_contiguous_runs_only():
    rec = ddim_uniform(10).float()
    assert schedule_offset(rec, rec.clone()) == 0
    assert schedule_offset(rec, rec[3:]) == 3
    assert schedule_offset(rec, rec * (1 + 3e-5)) == 0  # float noise of a recomputed schedule
    assert schedule_offset(rec, ddim_uniform(12).float()) is None  # another step count
    rewritten = rec[:6].clone()
    rewritten[-1] = 0.0  # KSamplerAdvanced end_at_step without leftover noise
    assert schedule_offset(rec, rewritten) is None
    assert schedule_offset(rec, rec[:1]) is None
    assert schedule_offset(rec, torch.cat([rec, rec[-1:]])) is None


def test_step_of_finds_schedule_sigmas_and_refuses_others():
    rec = ddim_uniform(10).float()
    for i in range(10):
        assert step_of(rec, float(rec[i])) == i
    assert step_of(rec, 0.0) is None  # no step starts at the final sigma
    assert step_of(rec, float(rec[2] + rec[3]) / 2) is None  # a midpoint evaluation (heun, dpm_2)


def test_sampling_trajectory_needs_two_latents():
    with pytest.raises(ValueError):
        sampling_trajectory([torch.zeros(1)])
