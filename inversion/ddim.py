"""Deterministic DDIM (eta = 0) and DDIM inversion in ComfyUI's k-diffusion sigma space.

Conventions (ComfyUI 0.8.0 comfy/model_sampling.py: ModelSamplingDiscrete, EPS):
  latent   x = x_vp / sqrt(alphabar),      sigma = sqrt((1 - alphabar) / alphabar)
  model    denoise(x, sigma[B]) -> x0_hat   (any parameterisation: eps, v, ...)
  noise    eps_hat = (x - x0_hat) / sigma
  DDIM     x_next = x0_hat + sigma_next * eps_hat

The DDIM update is exact in this space: multiplying by sqrt(alphabar_next) gives the usual
x_vp' = sqrt(ab') x0 + sqrt(1 - ab') eps (Song et al. 2021, eq. 12 with sigma_t = 0). It equals one
Euler step of the probability-flow ODE, which is why ComfyUI's "ddim" sampler is `euler`.
Inversion runs the same update on the ascending schedule (pix2pix-zero ddim_inv.py:124,
null_text_w_ptp.ipynb `next_step`). Nothing here imports ComfyUI.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor

Denoiser = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[dict[str, Any]], None]
Regularizer = Callable[[Tensor, int], Tensor]

# ComfyUI's FlipSigmas (nodes_custom_sampler.py:263-270) replaces the leading sigma 0 of a flipped
# schedule by 1e-4, which ModelSamplingDiscrete.timestep maps to t = 0. We use the same floor when
# an inversion schedule starts at 0, so `invert` matches the stock FlipSigmas + euler path.
SIGMA_FLOOR = 1e-4


def _per_sample(sigma: Tensor | float, like: Tensor) -> Tensor:
    """Broadcast a scalar or [B] sigma against a [B, ...] latent."""
    s = torch.as_tensor(sigma, device=like.device, dtype=like.dtype)
    if s.ndim == 0:
        return s
    return s.reshape(-1, *([1] * (like.ndim - 1)))


def eps_from_denoised(x: Tensor, denoised: Tensor, sigma: Tensor | float) -> Tensor:
    """eps_hat = (x - x0_hat) / sigma; sigma may be a scalar or shape [B]."""
    return (x - denoised) / _per_sample(sigma, x)


def ddim_step(x0: Tensor, eps: Tensor, sigma_next: Tensor | float) -> Tensor:
    """Deterministic DDIM to noise level sigma_next: x_next = x0_hat + sigma_next * eps_hat."""
    return x0 + _per_sample(sigma_next, x0) * eps


def _sigma_list(sigmas: Tensor | Sequence[float]) -> list[float]:
    vals = [float(s) for s in (sigmas.tolist() if isinstance(sigmas, Tensor) else sigmas)]
    if len(vals) < 2:
        raise ValueError(f"a schedule needs at least 2 sigmas, got {len(vals)}")
    return vals


def _sigma_batch(sigma: float, x: Tensor) -> Tensor:
    dtype = torch.promote_types(x.dtype, torch.float32)
    return torch.full((x.shape[0],), sigma, device=x.device, dtype=dtype)


@torch.no_grad()
def invert(
    denoise: Denoiser,
    x0_latent: Tensor,
    sigmas_ascending: Tensor | Sequence[float],
    regularize: Regularizer | None = None,
    callback: Callback | None = None,
    check_interrupt: Callable[[], None] | None = None,
    keep_trajectory: bool = True,
) -> tuple[Tensor, list[Tensor]]:
    """DDIM inversion x_0 -> x_T along an ascending schedule.

    Step i evaluates the model at (x_i, sigma_i) and moves to sigma_{i+1} with `ddim_step`
    (regularize(eps, i) may rewrite eps first: pix2pix-zero). A leading sigma <= 0 is evaluated at
    SIGMA_FLOOR (see above): eps is undefined at sigma 0. The trajectory lists the latent at every
    sigma of the schedule, trajectory[0] = x0_latent and trajectory[-1] = x_T (empty when
    keep_trajectory is False). callback gets ComfyUI's k-diffusion dict {x, i, sigma, sigma_hat,
    denoised}; check_interrupt is called before every model evaluation and may raise.
    """
    sig = _sigma_list(sigmas_ascending)
    if any(b < a for a, b in zip(sig, sig[1:])):
        raise ValueError("invert() needs an ascending sigma schedule (flip the sampling sigmas)")
    x = x0_latent
    trajectory = [x] if keep_trajectory else []
    for i in range(len(sig) - 1):
        if check_interrupt is not None:
            check_interrupt()
        sigma = sig[i] if sig[i] > 0 else SIGMA_FLOOR
        s = _sigma_batch(sigma, x)
        denoised = denoise(x, s)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": s, "sigma_hat": s, "denoised": denoised})
        eps = eps_from_denoised(x, denoised, s)
        if regularize is not None:
            eps = regularize(eps, i)
            # pix2pix-zero recomputes x0 from the regularized noise (ddim_inv.py: pred_original_sample from
            # e_t after the reg loop), so x_next = x + (sigma_next - sigma) * eps_reg.
            denoised = x - _per_sample(s, x) * eps
        x = ddim_step(denoised, eps, sig[i + 1]).to(x0_latent.dtype)
        if keep_trajectory:
            trajectory.append(x)
    return x, trajectory


@torch.no_grad()
def sample(
    denoise: Denoiser,
    x_T: Tensor,
    sigmas_descending: Tensor | Sequence[float],
    callback: Callback | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> Tensor:
    """Deterministic DDIM sampling x_T -> x_0 (identical to ComfyUI's euler on the same sigmas)."""
    sig = _sigma_list(sigmas_descending)
    x = x_T
    for i in range(len(sig) - 1):
        if check_interrupt is not None:
            check_interrupt()
        s = _sigma_batch(sig[i], x)
        denoised = denoise(x, s)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": s, "sigma_hat": s, "denoised": denoised})
        if sig[i + 1] == 0:
            x = denoised.to(x_T.dtype)
        else:
            x = ddim_step(denoised, eps_from_denoised(x, denoised, s), sig[i + 1]).to(x_T.dtype)
    return x
