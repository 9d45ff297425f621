"""Null-text inversion (Mokady et al., CVPR 2023, Algorithm 1), independent of ComfyUI.

Plain DDIM inversion uses the conditional prediction only (cfg 1); sampling it back with CFG
drifts away from the image. Null-text inversion keeps the inverted x_T and, per sampling step i,
optimises the unconditional ("null") text embedding so that one CFG DDIM step from the current
latent lands on the inversion trajectory (the paper's eq. 3):

    min_u || x_{i+1}(x_cur, u) - x*_{i+1} ||²,   eps = eps_u + cfg (eps_c - eps_u)

Loop as in the official `NullInversion.null_optimization` (null_text_w_ptp.ipynb): eps_c once per
step without grad; Adam on u warm-started from the previous step's u, lr 1e-2 (1 - i/100); up to
inner_steps iterations, stopping early once the loss is below early_stop + i * 2e-5; then x_cur
advances with the optimised u, under no grad.

Deviations (none changes the official 50-step setting):
  * the step is DDIM in k-diffusion sigma space (inversion/ddim.py), and the MSE is measured in the
    official VP units: x_vp = x / sqrt(1 + sigma²), so the early-stop thresholds keep their meaning.
  * lr decay and threshold relaxation follow the fraction of the schedule done, f = i / n:
    lr (1 - f / 2) and early_stop + f * 1e-3. For n = 50 this is exactly 1 - i/100 and i * 2e-5;
    the literal formula would reach lr <= 0 beyond 100 steps.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from .ddim import ddim_step

EpsCond = Callable[[Tensor, Tensor], Tensor]
EpsUncond = Callable[[Tensor, Tensor, Tensor], Tensor]


def _cfg_step(x: Tensor, sigma: float, sigma_next: float, eps_c: Tensor, eps_u: Tensor, cfg: float) -> Tensor:
    eps = eps_u + cfg * (eps_c - eps_u)
    return ddim_step(x - sigma * eps, eps, sigma_next)


def optimize_null_embeddings(
    eps_cond: EpsCond,
    eps_uncond: EpsUncond,
    trajectory: Sequence[Tensor],
    sigmas_descending: Tensor | Sequence[float],
    uncond_init: Tensor,
    inner_steps: int = 10,
    early_stop: float = 1e-5,
    lr: float = 1e-2,
    cfg: float = 7.5,
    progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> tuple[list[Tensor], list[float]]:
    """Optimise one unconditional embedding per sampling step.

    eps_cond(x, sigma) -> eps_hat with the positive conditioning; called under no_grad.
    eps_uncond(x, sigma, uncond) -> eps_hat with `uncond` as the negative conditioning; must be
        differentiable w.r.t. uncond (it runs under inference_mode(False) + enable_grad, so the
        model's weights must not be inference tensors: see comfy_autograd.autograd_safe).
    Both take x [B, ...] in fp32 and sigma of shape [B]; eps_hat = (x - denoised) / sigma.
    trajectory: latents at each sigma of the *ascending* schedule, as `ddim.invert` returns them
        (trajectory[0] = x_0, trajectory[-1] = x_T); sigmas_descending is that schedule reversed
        (a final 0 or 1e-4 are both fine).
    Returns the embeddings for sampling steps 0..n-1 (detached, dtype and device of uncond_init),
    and per step the VP-scale MSE between the latent reached with the final embedding and the
    trajectory. inner_steps = 0 gives plain CFG sampling with uncond_init (the baseline).
    progress(done, n) is called after each step; check_interrupt() before every model call.
    """
    sig = [float(s) for s in sigmas_descending]
    n = len(sig) - 1
    if len(trajectory) != n + 1:
        raise ValueError(f"trajectory has {len(trajectory)} latents for a {n + 1}-sigma schedule")
    embeddings: list[Tensor] = []
    losses: list[float] = []
    with torch.inference_mode(False), torch.enable_grad():
        # fresh normal tensors: the inputs may be inference tensors from ComfyUI
        x = trajectory[-1].detach().to(torch.float32, copy=True)
        uncond = uncond_init.detach().to(torch.float32, copy=True)
        for i in range(n):
            sigma, sigma_next = sig[i], sig[i + 1]
            s = torch.full((x.shape[0],), sigma, device=x.device, dtype=torch.float32)
            target = trajectory[n - 1 - i].detach().to(torch.float32, copy=True)
            vp2 = 1.0 + sigma_next**2  # MSE in VP units: x_vp = x / sqrt(1 + sigma²)
            frac = i / n
            if check_interrupt is not None:
                check_interrupt()
            with torch.no_grad():
                eps_c = eps_cond(x, s).float()
            if eps_c.is_inference():
                eps_c = eps_c.clone()
            uncond = uncond.detach().requires_grad_(True)
            if inner_steps > 0:
                opt = torch.optim.Adam([uncond], lr=lr * (1.0 - frac / 2))
                for _ in range(inner_steps):
                    if check_interrupt is not None:
                        check_interrupt()
                    x_rec = _cfg_step(x, sigma, sigma_next, eps_c, eps_uncond(x, s, uncond).float(), cfg)
                    loss = torch.nn.functional.mse_loss(x_rec, target) / vp2
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if loss.item() < early_stop + frac * 1e-3:
                        break
            uncond = uncond.detach()
            embeddings.append(uncond.to(uncond_init.dtype, copy=True))
            with torch.no_grad():
                if check_interrupt is not None:
                    check_interrupt()
                x = _cfg_step(x, sigma, sigma_next, eps_c, eps_uncond(x, s, uncond).float(), cfg)
                losses.append(float(torch.nn.functional.mse_loss(x, target)) / vp2)
            if progress is not None:
                progress(i + 1, n)
    return embeddings, losses
