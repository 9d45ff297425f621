"""Unit tests for inversion/: DDIM in sigma space, pix2pix-zero's regularizer, null-text core.

Reference values come from hand computation or from straightforward re-implementations written
here (numpy loops, the official update order with autograd), never from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inversion.ddim import SIGMA_FLOOR, ddim_step, eps_from_denoised, invert, sample
from inversion.null_text import optimize_null_embeddings
from inversion.regularizer import (
    _AutoCorrPlan,
    auto_corr_loss,
    kl_loss,
    kl_to_standard_normal,
    lag1_autocorrelation,
    pyramid_shapes,
    regularize_noise,
    roll_table,
)

# ---------------------------------------------------------------------------------------------
# helpers


def sd_alphas_cumprod() -> torch.Tensor:
    """SD1.x/2.x training schedule: ldm 'linear' = linspace(sqrt b0, sqrt b1)², 1000 steps."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0)


def ddim_uniform(steps: int) -> torch.Tensor:
    """ComfyUI's ddim_uniform scheduler: sigmas[1::1000//steps] descending, then 0."""
    ab = sd_alphas_cumprod()
    sigmas = ((1 - ab) / ab) ** 0.5
    picked = [float(sigmas[t]) for t in range(1, 1000, max(1000 // steps, 1))][::-1]
    return torch.tensor(picked + [0.0], dtype=torch.float64)


def smooth_noise(shape, scale: float = 0.5, k: int = 5, seed: int = 0) -> torch.Tensor:
    """Spatially correlated noise: white noise box-blurred (circular), rescaled to std `scale`."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    w = torch.ones(shape[1], 1, k, k) / (k * k)
    y = F.conv2d(F.pad(x, (k // 2,) * 4, mode="circular"), w, groups=shape[1])
    return y / y.std() * scale


def np_auto_corr(x: np.ndarray, rolls: np.ndarray) -> float:
    """Independent auto-correlation loss: block-mean pyramid, np.roll, explicit loops."""
    total = 0.0
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            n = x[b, c]
            level = 0
            while True:
                r = int(rolls[c, level])
                total += np.mean(n * np.roll(n, r, axis=0)) ** 2
                total += np.mean(n * np.roll(n, r, axis=1)) ** 2
                if min(n.shape) <= 8:
                    break
                h, w = n.shape[0] // 2, n.shape[1] // 2
                n = n[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))
                level += 1
    return total


def np_numeric_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = f(x)
        flat[i] = old - h
        down = f(x)
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return g


# ---------------------------------------------------------------------------------------------
# regularizer: values and gradients


def test_auto_corr_hand_checked_2x2():
    # x = [[a, b], [c, d]] = [[1, 2], [3, 4]], roll 1 on a 2x2 grid (one pyramid level):
    # m_H = mean(x * roll_H) = (ac + bd)/2 = 5.5, m_W = (ab + cd)/2 = 7  ->  5.5² + 7² = 79.25
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64, requires_grad=True)
    loss = auto_corr_loss(x, [1])
    assert loss.item() == pytest.approx(79.25, abs=1e-12)
    # dL/da = m_H * c + m_W * b, etc. (for size 2, roll(+1) == roll(-1))
    expected = torch.tensor([[[[30.5, 29.0], [33.5, 32.0]]]], dtype=torch.float64)
    loss.backward()
    assert torch.allclose(x.grad, expected, atol=1e-12)
    plan = _AutoCorrPlan(2, 2, x.device, torch.float64)
    value, grad = plan.loss_and_grad(x.detach(), plan.gather_index(torch.tensor([[1]])))
    assert value.item() == pytest.approx(79.25, abs=1e-12)
    assert torch.allclose(grad, expected, atol=1e-12)
    # one public update: e - lambda * grad / ac_rolls
    out, stats = regularize_noise(
        x.detach(), lambda_ac=0.01, lambda_kl=0, reg_steps=1, ac_rolls=1, generator=[1]
    )
    assert torch.allclose(out, x.detach() - 0.01 * expected, atol=1e-12)
    assert stats.updates == 1 and stats.skipped == 0


def test_kl_hand_checked():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64, requires_grad=True)
    var, mu = 5.0 / 3.0, 2.5  # unbiased variance, as torch.var in the official code
    assert kl_loss(x).item() == pytest.approx(var + mu**2 - 1 - math.log(var + 1e-7), abs=1e-12)
    kl_loss(x).backward()
    vals = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    expected = (1 - 1 / (var + 1e-7)) * 2 * (vals - mu) / 3 + 2 * mu / 4
    assert torch.allclose(x.grad.flatten(), expected, atol=1e-12)
    out, _ = regularize_noise(x.detach(), lambda_ac=0, lambda_kl=0.1, reg_steps=1)
    assert torch.allclose(out.flatten(), vals - 0.1 * expected, atol=1e-12)


def test_pyramid_levels():
    assert pyramid_shapes(64, 64) == [(64, 64), (32, 32), (16, 16), (8, 8)]  # "4 levels for 64²"
    assert pyramid_shapes(128, 96) == [(128, 96), (64, 48), (32, 24), (16, 12), (8, 6)]
    assert pyramid_shapes(13, 13) == [(13, 13), (6, 6)]
    assert pyramid_shapes(40, 56) == [(40, 56), (20, 28), (10, 14), (5, 7)]
    # a constant 1 gives 1 per term: 2 terms x levels x channels
    assert auto_corr_loss(torch.ones(1, 4, 64, 64), torch.Generator().manual_seed(0)).item() == 32.0
    assert auto_corr_loss(torch.ones(1, 2, 13, 13), torch.Generator().manual_seed(0)).item() == 8.0


@pytest.mark.parametrize("shape", [(1, 2, 20, 12), (1, 3, 13, 9), (2, 2, 10, 10)])
def test_auto_corr_matches_independent_numpy(shape):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    shapes = pyramid_shapes(*shape[-2:])
    rolls = roll_table(torch.Generator().manual_seed(4), (shape[1],), shapes)
    xn = x.numpy().copy()
    expected = np_auto_corr(xn, rolls.numpy())
    xt = x.clone().requires_grad_(True)
    value = auto_corr_loss(xt, rolls)
    assert value.item() == pytest.approx(expected, rel=1e-12)
    value.backward()
    numeric = np_numeric_grad(lambda a: np_auto_corr(a, rolls.numpy()), xn)
    assert np.allclose(xt.grad.numpy(), numeric, atol=1e-9)
    plan = _AutoCorrPlan(*shape[-2:], x.device, torch.float64)
    pvalue, pgrad = plan.loss_and_grad(x, plan.gather_index(rolls))
    assert pvalue.item() == pytest.approx(expected, rel=1e-12)
    assert np.allclose(pgrad.numpy(), numeric, atol=1e-9)


@pytest.mark.parametrize(
    "shape", [(1, 4, 64, 64), (1, 4, 64, 96), (2, 4, 40, 56), (1, 4, 17, 9), (1, 2, 3, 5)]
)
def test_closed_form_gradient_matches_autograd(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    plan = _AutoCorrPlan(*shape[-2:], x.device, torch.float64)
    rolls = roll_table(torch.Generator().manual_seed(2), (shape[1],), plan.shapes)
    xt = x.clone().requires_grad_(True)
    ref = auto_corr_loss(xt, rolls)
    ref.backward()
    value, grad = plan.loss_and_grad(x, plan.gather_index(rolls))
    assert value.item() == pytest.approx(ref.item(), rel=1e-12)
    assert torch.allclose(grad, xt.grad, rtol=1e-10, atol=1e-15)


def official_loop(eps, lambda_ac, lambda_kl, reg_steps, ac_rolls, rolls):
    """ddim_inv.py:113-130 transcribed with autograd, rolls taken from an explicit list."""
    c = eps.shape[1]
    n_levels = len(pyramid_shapes(*eps.shape[-2:]))
    it = iter(rolls)
    e_t = eps.clone()
    for _ in range(reg_steps):
        if lambda_ac > 0:
            for _ in range(ac_rolls):
                var = e_t.detach().clone().requires_grad_(True)
                auto_corr_loss(var, [next(it) for _ in range(c * n_levels)]).backward()
                e_t = e_t - lambda_ac * (var.grad.detach() / ac_rolls)
        if lambda_kl > 0:
            var = e_t.detach().clone().requires_grad_(True)
            kl_loss(var).backward()
            e_t = e_t - lambda_kl * var.grad.detach()
        e_t = e_t.detach()
    return e_t


def test_update_order_matches_official_loop():
    eps = smooth_noise((1, 4, 32, 24), scale=0.7).double()
    rolls = torch.randint(1, 4, (2 * 3 * 4 * 3,), generator=torch.Generator().manual_seed(0)).tolist()
    expected = official_loop(eps, 20.0, 20.0, 2, 3, rolls)
    out, stats = regularize_noise(eps, 20.0, 20.0, reg_steps=2, ac_rolls=3, generator=rolls)
    assert torch.allclose(out, expected, rtol=0, atol=1e-12)
    assert (stats.updates, stats.skipped) == (2 * (3 + 1), 0)
    assert (out - eps).abs().max() > 1e-3  # the updates did something


def test_batch_samples_are_independent():
    eps = torch.stack([smooth_noise((1, 4, 16, 16), seed=s)[0] for s in (0, 1)]).double()
    n_rolls = 5 * 5 * 4 * 2  # reg_steps * ac_rolls * channels * levels
    rolls = torch.randint(1, 4, (n_rolls,), generator=torch.Generator().manual_seed(0)).tolist()
    both, _ = regularize_noise(eps, generator=rolls)
    for i in range(2):
        alone, _ = regularize_noise(eps[i : i + 1], generator=rolls)
        assert torch.allclose(both[i : i + 1], alone, rtol=0, atol=1e-12)


def test_roll_draws():
    shapes = pyramid_shapes(64, 48)
    table = roll_table(torch.Generator().manual_seed(0), (200, 4), shapes)
    for level, (h, w) in enumerate(shapes):
        vals = table[:, :, level]
        assert vals.min() >= 1 and vals.max() < min(h, w) // 2
        assert vals.max() == min(h, w) // 2 - 1  # the whole range is reachable
    first_release = roll_table(torch.Generator().manual_seed(0), (200, 4), shapes, min_roll=0)
    assert (first_release == 0).any()  # min_roll=0: the first release's randrange(H // 2)
    assert torch.equal(table, roll_table(torch.Generator().manual_seed(0), (200, 4), shapes))
    with pytest.raises(ValueError, match="need"):
        roll_table([1, 2], (4,), shapes)


def test_lambda_zero_is_identity():
    eps = torch.randn(1, 4, 16, 16)
    for kwargs in ({"lambda_ac": 0, "lambda_kl": 0}, {"reg_steps": 0}):
        out, stats = regularize_noise(eps, **kwargs)
        assert out is eps and stats.updates == 0
    half = eps.half()
    assert regularize_noise(half, lambda_ac=0, lambda_kl=0)[0] is half


def test_regularizer_whitens_smooth_noise():
    # official defaults on a 4x16x16 field
    x = smooth_noise((1, 4, 16, 16))
    y, stats = regularize_noise(x, generator=torch.Generator().manual_seed(0))
    assert (stats.updates, stats.skipped) == (30, 0)
    assert lag1_autocorrelation(x) == pytest.approx(0.772, abs=0.01)
    assert lag1_autocorrelation(y) < lag1_autocorrelation(x) - 0.04  # measured 0.772 -> 0.715
    assert kl_to_standard_normal(y) < 0.6 * kl_to_standard_normal(x)  # measured 0.321 -> 0.170
    # 4x64x64 (SD 512²): the mean-based losses' gradients scale as 1/N, so the official lambdas
    # barely move it (lag-1 0.7966 -> 0.7958); larger lambdas show the same effect
    x = smooth_noise((1, 4, 64, 64))
    y, _ = regularize_noise(x, generator=torch.Generator().manual_seed(0))
    assert lag1_autocorrelation(y) < lag1_autocorrelation(x)
    assert kl_to_standard_normal(y) < kl_to_standard_normal(x)
    y, _ = regularize_noise(x, 2000.0, 2000.0, generator=torch.Generator().manual_seed(0))
    assert lag1_autocorrelation(y) < 0.6  # measured 0.515
    assert kl_to_standard_normal(y) < 0.02  # measured 0.006
    white = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(1))
    assert abs(lag1_autocorrelation(white)) < 0.03 and kl_to_standard_normal(white) < 1e-3


def test_nan_guard():
    flat = torch.zeros(1, 4, 16, 16)
    out, stats = regularize_noise(flat)
    assert torch.isfinite(out).all() and stats.skipped == 0
    eps = torch.randn(1, 4, 16, 16)
    eps[0, 1, 3, 5] = float("inf")
    out, stats = regularize_noise(eps, generator=torch.Generator().manual_seed(0))
    assert not out.isnan().any()
    assert torch.equal(out, eps)  # every update skipped, eps passed through
    assert (stats.skipped_ac, stats.skipped_kl, stats.updates) == (25, 5, 0)
    # one-element latent: var has no degrees of freedom; must not raise or produce NaN
    out, _ = regularize_noise(torch.ones(1, 1, 1, 1))
    assert not out.isnan().any()


def test_fp16_and_inference_tensors():
    x = smooth_noise((1, 4, 24, 40))
    ref, _ = regularize_noise(x, generator=torch.Generator().manual_seed(0))
    out, stats = regularize_noise(x.half(), generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 2e-3  # fp16 rounding of input and output only
    assert stats.kl_loss is not None and math.isfinite(stats.kl_loss)
    with torch.inference_mode():
        inf_x = x.clone()
        inside, _ = regularize_noise(inf_x, generator=torch.Generator().manual_seed(0))
    outside, _ = regularize_noise(inf_x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(inside, ref) and torch.equal(outside, ref)


# ---------------------------------------------------------------------------------------------
# DDIM in sigma space

MU, SD = 0.3, 0.8  # data ~ N(MU, SD²) per element: the ideal denoiser is known in closed form


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """E[x0 | x0 + sigma n = x] for x0 ~ N(MU, SD²)."""
    s2 = sigma.view(-1, 1, 1, 1) ** 2
    return MU + SD**2 / (SD**2 + s2) * (x - MU)


def vp_ideal_x0(x_vp, a, b):
    """E[x0 | a x0 + b n = x_vp] in VP units (what a trained network approximates)."""
    return MU + SD**2 * a / (a**2 * SD**2 + b**2) * (x_vp - a * MU)


def eps_model_denoiser(x, sigma):
    """An eps-prediction network wrapped like ComfyUI's EPS: input x/sqrt(σ²+1), D = x - σ eps."""
    s = sigma.view(-1, 1, 1, 1)
    a, b = 1 / (1 + s**2) ** 0.5, s / (1 + s**2) ** 0.5
    x_vp = x * a
    eps = (x_vp - a * vp_ideal_x0(x_vp, a, b)) / b
    return x - s * eps


def v_model_denoiser(x, sigma):
    """A v-prediction network wrapped like ComfyUI's V_PREDICTION (sigma_data = 1)."""
    s = sigma.view(-1, 1, 1, 1)
    a, b = 1 / (1 + s**2) ** 0.5, s / (1 + s**2) ** 0.5
    x_vp = x * a
    x0 = vp_ideal_x0(x_vp, a, b)
    v = a * (x_vp - a * x0) / b - b * x0
    return x / (s**2 + 1) - v * s / (s**2 + 1) ** 0.5


def test_ddim_step_is_vp_ddim():
    ab = sd_alphas_cumprod()
    t, t_prev = 981, 961
    x_vp = torch.randn(1, 4, 8, 8, dtype=torch.float64)
    eps = torch.randn(1, 4, 8, 8, dtype=torch.float64)
    # DDIM eta=0 (Song et al. eq. 12) in VP units
    x0 = (x_vp - (1 - ab[t]) ** 0.5 * eps) / ab[t] ** 0.5
    x_prev_vp = ab[t_prev] ** 0.5 * x0 + (1 - ab[t_prev]) ** 0.5 * eps
    sigma, sigma_prev = ((1 - ab[t]) / ab[t]) ** 0.5, ((1 - ab[t_prev]) / ab[t_prev]) ** 0.5
    x_k = x_vp / ab[t] ** 0.5
    denoised = x_k - sigma * eps
    assert torch.allclose(eps_from_denoised(x_k, denoised, sigma.expand(1)), eps, atol=1e-12)
    assert torch.allclose(ddim_step(denoised, eps, sigma_prev) * ab[t_prev] ** 0.5, x_prev_vp, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_invert_then_sample_gaussian(dtype):
    noise = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0 = (MU + SD * noise).to(dtype)
    errors = {}
    for steps in (50, 100):
        desc = ddim_uniform(steps)
        x_T, traj = invert(gaussian_denoiser, x0, desc.flip(0))
        assert len(traj) == steps + 1 and traj[0] is x0 and traj[-1] is x_T
        assert x_T.dtype == dtype
        rec = sample(gaussian_denoiser, x_T, desc)
        errors[steps] = (rec - x0).double().pow(2).mean().sqrt().item()
    # measured rms: 0.0499 (50 steps), 0.0267 (100); first-order inversion mismatch
    assert errors[50] < 0.055
    assert 0.45 < errors[100] / errors[50] < 0.6


def test_invert_eps_and_v_models_agree():
    x0 = MU + SD * torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    desc = ddim_uniform(50)
    ref, _ = invert(gaussian_denoiser, x0, desc.flip(0))
    for wrapped in (eps_model_denoiser, v_model_denoiser):
        x_T, _ = invert(wrapped, x0, desc.flip(0))
        assert torch.allclose(x_T, ref, rtol=1e-9, atol=1e-9)
        assert torch.allclose(sample(wrapped, x_T, desc), sample(gaussian_denoiser, ref, desc), atol=1e-9)


def test_invert_sigma_zero_guard_and_hooks():
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    desc = ddim_uniform(10)
    seen = []

    def spy(x, sigma):
        seen.append(float(sigma[0]))
        return gaussian_denoiser(x, sigma)

    flipped = desc.flip(0)
    x_T, _ = invert(spy, x0, flipped)
    assert seen[0] == SIGMA_FLOOR and min(seen) > 0  # no evaluation at sigma 0
    comfy_flip = flipped.clone()
    comfy_flip[0] = 1e-4  # FlipSigmas
    assert torch.equal(invert(gaussian_denoiser, x0, comfy_flip)[0], x_T)
    calls = []
    x_T2, traj = invert(gaussian_denoiser, x0, flipped, callback=calls.append, keep_trajectory=False)
    assert traj == [] and torch.equal(x_T2, x_T)
    assert [c["i"] for c in calls] == list(range(10)) and set(calls[0]) >= {"x", "i", "sigma", "denoised"}

    def stop():
        raise InterruptedError

    with pytest.raises(InterruptedError):
        invert(gaussian_denoiser, x0, flipped, check_interrupt=stop)
    with pytest.raises(ValueError, match="ascending"):
        invert(gaussian_denoiser, x0, desc)


def test_invert_applies_regularizer_per_step():
    x0 = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    desc = ddim_uniform(4)
    steps_seen = []

    def reg(eps, i):
        steps_seen.append(i)
        return regularize_noise(eps, generator=torch.Generator().manual_seed(i))[0]

    plain, _ = invert(gaussian_denoiser, x0, desc.flip(0))
    x_T, _ = invert(gaussian_denoiser, x0, desc.flip(0), regularize=reg)
    assert steps_seen == list(range(4))
    assert torch.isfinite(x_T).all() and not torch.equal(x_T, plain)
    with torch.inference_mode():  # as inside a ComfyUI node
        x_T_inf, _ = invert(gaussian_denoiser, x0.clone(), desc.flip(0), regularize=reg)
    assert torch.allclose(x_T_inf, x_T)


# ---------------------------------------------------------------------------------------------
# null-text inversion with a toy linear "UNet"

G = torch.Generator().manual_seed(0)
EMB_SHAPE, LAT_SHAPE = (1, 6, 32), (1, 4, 8, 8)
W_TEXT = torch.randn(6 * 32, 4 * 8 * 8, generator=G) / (6 * 32) ** 0.5
COND = torch.randn(EMB_SHAPE, generator=G)
UNCOND0 = torch.zeros(EMB_SHAPE)


def toy_eps(x, sigma, emb):
    """Ideal eps for N(0, 1) data plus a text term linear in the embedding."""
    s = sigma.view(-1, 1, 1, 1)
    return x * s / (1 + s**2) + (emb.flatten(1) @ W_TEXT).view(x.shape) / (1 + s**2) ** 0.5


def cfg_sample(x_T, desc, uncond_per_step, cfg=7.5):
    x = x_T
    for i in range(len(desc) - 1):
        s = torch.full((x.shape[0],), float(desc[i]))
        ec, eu = toy_eps(x, s, COND), toy_eps(x, s, uncond_per_step[i])
        eps = eu + cfg * (ec - eu)
        x = ddim_step(x - s.view(-1, 1, 1, 1) * eps, eps, float(desc[i + 1]))
    return x


def test_null_text_recovers_cfg_reconstruction():
    desc = ddim_uniform(50).float()
    x0 = torch.randn(LAT_SHAPE, generator=torch.Generator().manual_seed(5))
    calls = {"cond": 0, "uncond": 0}

    def eps_cond(x, s):
        calls["cond"] += 1
        assert not torch.is_grad_enabled()
        return toy_eps(x, s, COND)

    def eps_uncond(x, s, u):
        calls["uncond"] += 1
        return toy_eps(x, s, u)

    with torch.inference_mode():  # ComfyUI runs nodes in inference mode
        x_T, traj = invert(lambda x, s: x - s.view(-1, 1, 1, 1) * toy_eps(x, s, COND), x0, desc.flip(0))
        plain_embs, plain_losses = optimize_null_embeddings(
            eps_cond, eps_uncond, traj, desc, UNCOND0, inner_steps=0
        )
        assert calls == {"cond": 50, "uncond": 50}
        progress = []
        embs, losses = optimize_null_embeddings(
            eps_cond, eps_uncond, traj, desc, UNCOND0, progress=lambda d, n: progress.append((d, n))
        )
    assert progress[-1] == (50, 50) and len(embs) == 50 and embs[0].shape == EMB_SHAPE
    assert all(torch.equal(e, UNCOND0) for e in plain_embs)
    plain_err = (cfg_sample(x_T, desc, plain_embs) - x0).pow(2).mean().item()
    nti_err = (cfg_sample(x_T, desc, embs) - x0).pow(2).mean().item()
    # measured: plain CFG 106.3, null-text 0.547 (cfg 1 reconstruction: 0.0039)
    assert plain_err > 50 and nti_err < 1.0 and plain_err / nti_err > 100
    assert losses[-1] == pytest.approx(nti_err, rel=1e-4)  # last loss = x_0 error (sigma 0)
    assert plain_losses[-1] == pytest.approx(plain_err, rel=1e-4)
    assert all(a < b for a, b in zip(losses[10:], plain_losses[10:]))


def test_null_text_official_lr_schedule(monkeypatch):
    lrs = []
    real_adam = torch.optim.Adam

    class SpyAdam(real_adam):
        def __init__(self, params, lr, **kw):
            lrs.append(lr)
            super().__init__(params, lr=lr, **kw)

    monkeypatch.setattr(torch.optim, "Adam", SpyAdam)
    desc = ddim_uniform(50).float()
    x0 = torch.randn(LAT_SHAPE, generator=torch.Generator().manual_seed(7))
    _, traj = invert(lambda x, s: x - s.view(-1, 1, 1, 1) * toy_eps(x, s, COND), x0, desc.flip(0))
    optimize_null_embeddings(lambda x, s: toy_eps(x, s, COND), toy_eps, traj, desc, UNCOND0, inner_steps=1)
    assert lrs == pytest.approx([1e-2 * (1 - i / 100) for i in range(50)], rel=1e-12)


def test_null_text_early_stop_and_validation():
    desc = ddim_uniform(10).float()
    x0 = torch.randn(LAT_SHAPE, generator=torch.Generator().manual_seed(6))
    _, traj = invert(lambda x, s: x - s.view(-1, 1, 1, 1) * toy_eps(x, s, COND), x0, desc.flip(0))
    n_uncond = []

    def eps_uncond(x, s, u):
        n_uncond.append(1)
        return toy_eps(x, s, u)

    eps_cond = lambda x, s: toy_eps(x, s, COND)  # noqa: E731
    optimize_null_embeddings(eps_cond, eps_uncond, traj, desc, UNCOND0, early_stop=1e9)
    assert len(n_uncond) == 10 * (1 + 1)  # one Adam step per sampling step, then the advance
    n_uncond.clear()
    optimize_null_embeddings(eps_cond, eps_uncond, traj, desc, UNCOND0, inner_steps=3, early_stop=0.0)
    assert len(n_uncond) == 10 * (3 + 1)
    with pytest.raises(ValueError, match="trajectory"):
        optimize_null_embeddings(eps_cond, eps_uncond, traj[1:], desc, UNCOND0)


def test_runaway_updates_are_clipped_not_exploding():
    """Official update on an 8x8 latent with noise of scale 5 runs away to 1e18 within 30 updates."""
    from inversion.regularizer import regularize_noise

    eps = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 5
    out, stats = regularize_noise(eps, 20, 20, 5, 5, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all() and out.abs().max() < 10 * eps.abs().max()
    assert stats.clipped > 0 and stats.skipped == 0
    calm, calm_stats = regularize_noise(torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(1)),
                                        generator=torch.Generator().manual_seed(0))
    assert calm_stats.clipped == 0, "ordinary unit noise must never reach the bound"


def test_autograd_safe_lets_gradients_through_inference_weights_without_touching_them():
    import pytest

    from inversion.comfy_adapter import autograd_safe

    with torch.inference_mode():
        layer = torch.nn.Linear(4, 3)
        x = torch.randn(2, 4)
    assert layer.weight.is_inference()
    with torch.inference_mode(False), torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        with pytest.raises(RuntimeError):
            layer(xg).pow(2).sum().backward()
        xg = x.clone().requires_grad_(True)
        with autograd_safe():
            loss = layer(xg).pow(2).sum()
        (grad,) = torch.autograd.grad(loss, xg)
    with torch.no_grad():
        expected = 2 * (x @ layer.weight.T + layer.bias) @ layer.weight
    assert torch.allclose(grad, expected, atol=1e-6)
    assert layer.weight.is_inference() and layer.weight.grad is None


def test_regularized_flow_denoiser_moves_the_implied_noise_and_keeps_x():
    from inversion.flow import regularized_denoiser

    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    s = 0.4
    x = (1 - s) * x0 + s * eps
    sigma = torch.tensor([s])
    exact = regularized_denoiser(lambda xx, ss: x0.clone(), lambda e: e)
    torch.testing.assert_close(exact(x, sigma), x0)  # identity regularizer: the prediction itself
    target = torch.randn(1, 4, 8, 8, generator=g)
    moved = regularized_denoiser(lambda xx, ss: x0.clone(), lambda e: target)(x, sigma)
    # the prediction's implied noise is now the regularized one, on the same x_s
    torch.testing.assert_close((x - (1 - s) * moved) / s, target, rtol=1e-4, atol=1e-4)
    five = regularized_denoiser(lambda xx, ss: x0[:, :, None].clone(), lambda e: e * 0 + target[0])
    out = five(x[:, :, None], sigma)  # frame-axis latents go through frame by frame
    assert out.shape == (1, 4, 1, 8, 8)
    assert torch.equal(regularized_denoiser(lambda xx, ss: x0, lambda e: target)(x, torch.tensor([0.0])), x0)
