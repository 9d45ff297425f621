"""Rectified-flow ODE solvers for inversion and sampling, and FlowEdit; independent of ComfyUI.

Conventions (ComfyUI 0.8.0 comfy/model_sampling.py: CONST, the sampling of Flux, SD3 and Qwen-Image):
  latent    x_s = (1 - s) x0 + s eps                    s = sigma in [0, 1]
  model     denoise(x, s[B]) -> x0_hat = x - s v        v = eps - x0, the velocity dx/ds
  velocity  v_hat = (x - x0_hat) / s                    (k-diffusion's `d`; exact at any s > 0)

One solver step moves x from s to s_next along dx/ds = v(x, s), whichever way: s_next > s inverts (image ->
noise), s_next < s samples. So inversion and sampling are the same code on reversed schedules.

- euler:     x + h v(x, s)                                            1 model call per step
- midpoint:  x + h v(x + h/2 v(x, s), s + h/2)                         2 calls. RF-Solver's second-order step
             (Wang et al. 2024, eq. 8: x + h v + h^2/2 v', with v' the finite difference of v over the half
             step, which is exactly the explicit midpoint rule).
- fireflow:  the midpoint step, reusing the previous step's midpoint velocity as v(x, s)
             (Deng et al., "FireFlow", ICML 2025, Algorithm 1): 1 call per step after the first.

At s = 0 (an inversion's first step) the velocity is taken at SIGMA_FLOOR, as ComfyUI's FlipSigmas does.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from .ddim import SIGMA_FLOOR

Denoiser = Callable[[Tensor, Tensor], Tensor]
SOLVERS = ("euler", "midpoint", "fireflow")
CALLS_PER_STEP = {"euler": 1.0, "midpoint": 2.0, "fireflow": 1.0}


def velocity(denoise: Denoiser, x: Tensor, s: float) -> Tensor:
    s = max(s, SIGMA_FLOOR)
    sigma = torch.full((x.shape[0],), s, device=x.device, dtype=torch.promote_types(x.dtype, torch.float32))
    return (x - denoise(x, sigma)) / s


@torch.no_grad()
def solve(denoise: Denoiser, x: Tensor, sigmas: Sequence[float] | Tensor, solver: str = "euler",
          callback: Callable[[dict[str, Any]], None] | None = None,
          check_interrupt: Callable[[], None] | None = None) -> tuple[Tensor, int]:
    """Integrate from sigmas[0] to sigmas[-1] (ascending: invert; descending: sample). Returns (x, model calls)."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; one of {SOLVERS}")
    sig = [float(s) for s in (sigmas.tolist() if isinstance(sigmas, Tensor) else sigmas)]
    calls, carried = 0, None
    for i in range(len(sig) - 1):
        if check_interrupt is not None:
            check_interrupt()
        s, s_next = sig[i], sig[i + 1]
        h = s_next - s
        if solver == "fireflow" and carried is not None:
            v = carried
        else:
            v = velocity(denoise, x, s)
            calls += 1
        if solver == "euler":
            step_v = v
        else:
            step_v = velocity(denoise, x + 0.5 * h * v, s + 0.5 * h)
            calls += 1
            carried = step_v
        if callback is not None:
            callback({"x": x, "i": i, "sigma": torch.tensor([s]), "sigma_hat": torch.tensor([s]),
                      "denoised": x - max(s, SIGMA_FLOOR) * v})
        x = (x + h * step_v).to(x.dtype)
    return x, calls


def regularized_denoiser(denoise: Denoiser, regularize: Callable[[Tensor], Tensor]) -> Denoiser:
    """pix2pix-zero's noise regularizer (Parmar et al. 2023, §3.1) on a flow model's inversion.

    The network predicts x0_hat (ComfyUI's denoised), hence the velocity v_hat = (x - x0_hat) / s. The noise it
    implies follows from x_s = (1 - s) x0 + s eps and v = eps - x0:
        eps_hat = x0_hat + v_hat = x + (1 - s) v_hat
    (no division by s beyond the velocity's own). `regularize` pushes eps_hat towards white noise (auto-correlation
    and KL terms) giving eps'; keeping x_s fixed, the prediction consistent with eps' is
        x0' = (x - s eps') / (1 - s),   v' = v_hat + (eps' - eps_hat) / (1 - s)
    so every solver step (x + h v') moves along the regularized noise, as the DDIM step of ddim.invert does with
    the regularized eps. Predictions at s <= 0 or s >= 1 are passed through. `regularize` takes and returns
    [B, C, H, W]; frame-axis latents [B, C, T, H, W] are handed to it frame by frame as a batch."""

    def denoise_regularized(x: Tensor, sigma: Tensor) -> Tensor:
        x0 = denoise(x, sigma)
        s = float(sigma.flatten()[0])
        if not 0.0 < s < 1.0:
            return x0
        eps = x + (1.0 - s) * (x - x0) / s
        if eps.ndim == 5:
            b, c, t, h, w = eps.shape
            frames = eps.transpose(1, 2).reshape(b * t, c, h, w)
            eps_reg = regularize(frames).reshape(b, t, c, h, w).transpose(1, 2)
        else:
            eps_reg = regularize(eps)
        return (x - s * eps_reg.to(x.dtype)) / (1.0 - s)

    return denoise_regularized


def steps_for_calls(solver: str, calls: int) -> int:
    """Steps a solver can take with a budget of model calls (fireflow: one call more than its steps)."""
    if solver == "midpoint":
        return max(calls // 2, 1)
    if solver == "fireflow":
        return max(calls - 1, 1)
    return max(calls, 1)


@torch.no_grad()
def flow_edit(v_source: Callable[[Tensor, float], Tensor], v_target: Callable[[Tensor, float], Tensor],
              x_src: Tensor, sigmas: Sequence[float], n_max: int, n_min: int, n_avg: int,
              generator: torch.Generator, check_interrupt: Callable[[], None] | None = None,
              callback: Callable[[int, Tensor], None] | None = None) -> Tensor:
    """FlowEdit (Kulikov et al., ICCV 2025, Algorithm 1; official FlowEdit_utils.py FlowEditSD3/FlowEditFLUX).

    sigmas: the full descending schedule of T steps (T + 1 values, ending at 0). Steps with index below T - n_max
    are skipped. While index < T - n_min, the edit z moves by the average over n_avg noise draws of
    v_target(z + z_src_t - x_src) - v_source(z_src_t), with z_src_t = (1 - s) x_src + s eps: the difference of the
    two velocity fields on noised copies of the image, no inversion. The last n_min steps sample the target from
    the edit noised to that level (z + z_src_t - x_src) with v_target alone."""
    T = len(sigmas) - 1
    if not 0 <= n_min <= n_max <= T:
        raise ValueError(f"need 0 <= n_min <= n_max <= steps, got n_min {n_min}, n_max {n_max}, steps {T}")
    z = x_src.clone()
    x_tar = None
    for i in range(T - n_max, T):
        if check_interrupt is not None:
            check_interrupt()
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        if i < T - n_min:
            delta = torch.zeros_like(x_src)
            for _ in range(n_avg):
                eps = torch.randn(x_src.shape, generator=generator, dtype=x_src.dtype).to(x_src.device)
                z_src_t = (1 - s) * x_src + s * eps
                z_tar_t = z + z_src_t - x_src
                delta += (v_target(z_tar_t, s) - v_source(z_src_t, s)) / n_avg
            z = z + (s_next - s) * delta
        else:
            if x_tar is None:
                eps = torch.randn(x_src.shape, generator=generator, dtype=x_src.dtype).to(x_src.device)
                x_tar = z + ((1 - s) * x_src + s * eps) - x_src
            x_tar = x_tar + (s_next - s) * v_target(x_tar, s)
        if callback is not None:
            callback(i, z if x_tar is None else x_tar)
    return z if x_tar is None else x_tar
