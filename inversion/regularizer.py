"""pix2pix-zero's noise regularizer (Parmar et al. 2023, §3.1 "noise regularization").

During DDIM inversion each predicted eps is pushed toward white Gaussian noise by gradient steps
on an auto-correlation loss over a pyramid and on a KL term. Semantics follow the official
src/utils/ddim_inv.py: auto_corr_loss 23-39, kl_divergence 41-44, update loop 113-130.

`auto_corr_loss` and `kl_loss` are the differentiable definitions. `regularize_noise` uses their
closed-form gradients (checked against autograd in tests/unit/test_inversion_math.py): vectorised
over channels, no autograd graph and no host sync per update, so ~30 updates per inversion step
stay cheap next to a UNet call. Math runs in fp32 (fp64 stays fp64) on a copy of eps.

Rolls are drawn from [min_roll, side // 2) with min_roll = 1, as the current official code does
(`randrange(1, H // 2)`); its first release drew `randrange(H // 2)`, which also gives 0 and turns that
term into mean(x²)², a variance penalty fighting the KL term: min_roll=0 reproduces that release.

Deviations from the official code (inert for the official setting, B = 1 and a square latent):
  * the roll source is injectable (torch.Generator or explicit ints) instead of Python's `random`.
  * batches: losses are summed over samples, so each sample gets its own B = 1 gradient (the
    official code asserts B == 1; its KL would pool the whole tensor). Rolls are shared by samples.
  * non-square latents: the pyramid stops when the *shorter* side is <= 8 and rolls are drawn from
    the shorter side (official: H for both, so a narrow W could be pooled down to 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Union

import torch
import torch.nn.functional as F
from torch import Tensor

RollSource = Union[torch.Generator, Iterable[int], None]
_PYRAMID_MIN_SIDE = 8  # ddim_inv.py:36 `if noise.shape[2] <= 8: break`


def pyramid_shapes(h: int, w: int) -> list[tuple[int, int]]:
    """(h, w) of each level: avg_pool2d(2) halving (floor) until the shorter side is <= 8."""
    shapes = [(h, w)]
    while min(h, w) > _PYRAMID_MIN_SIDE:
        h, w = h // 2, w // 2
        shapes.append((h, w))
    return shapes


def roll_table(
    source: RollSource, leading: tuple[int, ...], shapes: list[tuple[int, int]], min_roll: int = 1
) -> Tensor:
    """Roll amounts [*leading, levels] (int64, CPU), e.g. leading = (evaluations, channels): one per
    (evaluation, channel, level), filled in the official draw order. A generator (or None: torch's
    global RNG) draws uniformly from [min_roll, min_side // 2), or gives min_roll when that range is
    empty (sides < 4). Explicit integers are used in order."""
    size = (*leading, len(shapes))
    count = math.prod(size)
    if source is None or isinstance(source, torch.Generator):
        device = source.device if source is not None else "cpu"
        u = torch.rand(size, generator=source, device=device, dtype=torch.float64).cpu()
        high = torch.tensor([min(s) // 2 for s in shapes], dtype=torch.float64)
        span = (high - min_roll).clamp_min(1)
        return (min_roll + torch.floor(u * span)).long()
    vals = []
    for v in source:
        vals.append(int(v))
        if len(vals) == count:
            return torch.tensor(vals, dtype=torch.long).view(size)
    raise ValueError(f"explicit rolls: need {count} values, got {len(vals)}")


def auto_corr_loss(x: Tensor, rolls: RollSource | Tensor = None, min_roll: int = 1) -> Tensor:
    """Sum over samples, channels c and pyramid levels of
    mean(n * roll(n, r, dim=H))² + mean(n * roll(n, r, dim=W))²   (ddim_inv.py:23-39),
    one roll r per (channel, level) shared by both terms. rolls: a [C, levels] table, explicit
    ints in (channel, level) order, or a generator. Differentiable (the reference definition)."""
    shapes = pyramid_shapes(x.shape[-2], x.shape[-1])
    table = rolls if isinstance(rolls, Tensor) else roll_table(rolls, (x.shape[1],), shapes, min_roll)
    loss = x.new_zeros(())
    for c in range(x.shape[1]):
        noise = x[:, c : c + 1]
        for level in range(len(shapes)):
            if level:
                noise = F.avg_pool2d(noise, kernel_size=2)
            r = int(table[c, level])
            for dim in (2, 3):
                loss = loss + (noise * torch.roll(noise, r, dim)).mean(dim=(1, 2, 3)).pow(2).sum()
    return loss


def kl_loss(x: Tensor) -> Tensor:
    """var + mean² - 1 - log(var + 1e-7) per sample, summed over the batch (ddim_inv.py:41-44;
    unbiased var as torch.var). Twice KL(N(mean, var) || N(0, 1)), up to the 1e-7."""
    flat = x.flatten(1)
    var = flat.var(dim=1)
    return (var + flat.mean(dim=1) ** 2 - 1 - torch.log(var + 1e-7)).sum()


def _kl_loss_and_grad(x: Tensor) -> tuple[Tensor, Tensor]:
    flat = x.flatten(1)
    n = flat.shape[1]
    mu = flat.mean(dim=1, keepdim=True)
    d = flat - mu
    dof = max(n - 1, 1)  # torch.var's unbiased divisor (n = 1 would divide by 0)
    var = d.pow(2).sum(dim=1, keepdim=True) / dof
    loss = (var + mu**2 - 1 - torch.log(var + 1e-7)).sum()
    # d var/dx = 2(x - mu)/(n - 1), d mu/dx = 1/n
    grad = (1 - 1 / (var + 1e-7)) * (2 / dof) * d + (2 / n) * mu
    return loss, grad.view_as(x)


class _AutoCorrPlan:
    """Closed-form auto_corr_loss gradient for one latent shape in ~30 tensor ops per evaluation.

    The pyramid is flattened to P [B, C, T] (T = total elements over levels). One gather reads
    S_{+r}n and S_{-r}n along H and W for every channel and level at once, with
    torch.roll(n, r, d)[i] = n[(i - r) mod size]. For m = mean(n * S_r n) over N elements,
    dm/dn = (S_r n + S_{-r} n) / N; level gradients reach the latent through avg_pool2d's adjoint:
    each latent element gets 4^-l times its level-l ancestor's gradient (0 where a floor-halving
    dropped its odd row/column).
    """

    def __init__(self, h: int, w: int, device: torch.device, dtype: torch.dtype):
        self.shapes = pyramid_shapes(h, w)
        lev, row, col, hh, ww, off = [], [], [], [], [], []
        start = 0
        for level, (lh, lw) in enumerate(self.shapes):
            n = lh * lw
            lev.append(torch.full((n,), level))
            row.append(torch.arange(lh).repeat_interleave(lw))
            col.append(torch.arange(lw).repeat(lh))
            hh.append(torch.full((n,), lh))
            ww.append(torch.full((n,), lw))
            off.append(torch.full((n,), start))
            start += n
        lev, row, col, hh, ww, off = (torch.cat(v) for v in (lev, row, col, hh, ww, off))
        self.total = start
        ones = torch.ones_like(row)
        # four index variants, in this order: roll +r along H, -r along H, +r along W, -r along W
        self.base = torch.cat([off + col, off + col, off + row * ww, off + row * ww]).to(device)
        self.stride = torch.cat([ww, ww, ones, ones]).to(device)
        self.coord = torch.cat([row, row, col, col]).to(device)
        self.size = torch.cat([hh, hh, ww, ww]).to(device)
        self.sign = torch.cat([ones, -ones, ones, -ones]).to(device)
        self.lev4 = lev.repeat(4).to(device)
        self.sizes = [lh * lw for lh, lw in self.shapes]
        self.lev = lev.to(device)
        self.two_over_n = torch.tensor([2 / n for n in self.sizes], device=device, dtype=dtype)
        # ancestors of each latent element in the flattened pyramid, and their weights 4^-l
        i0, j0 = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)
        anc, wgt, start = [], [], 0
        for level, (lh, lw) in enumerate(self.shapes):
            ia, ja = i0 >> level, j0 >> level
            valid = (ia < lh) & (ja < lw)
            anc.append(torch.where(valid, start + ia * lw + ja, 0))
            wgt.append(valid.double() / 4**level)
            start += lh * lw
        self.anc = torch.stack(anc, dim=1).to(device)  # [H*W, L]
        self.wgt = torch.stack(wgt, dim=1).to(device, dtype)

    def gather_index(self, rolls: Tensor) -> Tensor:
        """Rolls [..., C, L] (int64, on the plan's device) -> pyramid gather indices [..., C, 4T]."""
        r = rolls.index_select(-1, self.lev4)
        return self.base + self.stride * torch.remainder(self.coord - self.sign * r, self.size)

    def loss_and_grad(self, x: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        """auto_corr_loss(x, rolls) and its gradient, index = gather_index(rolls) of shape [C, 4T]."""
        b, c = x.shape[:2]
        levels = [x]
        for h, w in self.shapes[1:]:  # avg_pool2d(2) as a reshape-mean (no CPU thread pool for tiny maps)
            levels.append(levels[-1][..., : 2 * h, : 2 * w].reshape(b, c, h, 2, w, 2).mean(dim=(3, 5)))
        p = torch.cat([lv.flatten(2) for lv in levels], dim=2)  # [B, C, T]
        q = p.gather(2, index.unsqueeze(0).expand(b, -1, -1)).view(b, c, 4, self.total)
        shifted, back = q[:, :, 0::2], q[:, :, 1::2]  # S_r n and S_-r n, along H then W
        prod = (p[:, :, None] * shifted).split(self.sizes, dim=-1)
        m = torch.stack([seg.mean(dim=-1) for seg in prod], dim=-1)  # [B, C, 2, L]: mean(n * S_r n)
        loss = m.pow(2).sum()
        coef = (m * self.two_over_n).index_select(-1, self.lev)  # 2m / N per element, [B, C, 2, T]
        g = (coef * (shifted + back)).sum(dim=2)  # [B, C, T]
        grad = (g.index_select(2, self.anc.flatten()).view(b, c, *self.anc.shape) * self.wgt).sum(dim=-1)
        return loss, grad.view_as(x)


@lru_cache(maxsize=4)
def _plan(h: int, w: int, device: torch.device, dtype: torch.dtype) -> _AutoCorrPlan:
    return _AutoCorrPlan(h, w, device, dtype)


@dataclass
class RegularizerStats:
    updates: int = 0  # gradient updates applied
    skipped_ac: int = 0  # auto-correlation updates skipped: NaN/Inf loss or gradient
    skipped_kl: int = 0  # KL updates skipped: NaN/Inf loss or gradient
    ac_loss: float | None = None  # last auto-correlation loss evaluated (before its update)
    kl_loss: float | None = None  # kl_loss of the returned eps
    clipped: int = 0  # updates cut down to the size of eps (runaway steps)

    @property
    def skipped(self) -> int:
        return self.skipped_ac + self.skipped_kl


# Small latents, flat regions and noise far from unit scale make these mean-based gradients explode (the
# official loop has no guard; other projects report NaNs). An update is clipped to the size of the noise map
# itself: ordinary SD noise never comes near the bound, a runaway step is cut down instead of diverging.
MAX_STEP_RATIO = 1.0


def _clip_step(step: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
    """(step scaled to RMS <= MAX_STEP_RATIO * RMS(e), whether it was scaled); no host sync."""
    size = step.pow(2).mean().sqrt()
    bound = MAX_STEP_RATIO * e.pow(2).mean().sqrt()
    clipped = size > bound
    return torch.where(clipped, step * (bound / size.clamp_min(1e-30)), step), clipped


def regularize_noise(
    eps: Tensor,
    lambda_ac: float = 20.0,
    lambda_kl: float = 20.0,
    reg_steps: int = 5,
    ac_rolls: int = 5,
    generator: RollSource = None,
    min_roll: int = 1,
) -> tuple[Tensor, RegularizerStats]:
    """Regularize a predicted noise map eps [B, C, H, W] (ddim_inv.py:113-130).

    reg_steps times: ac_rolls sequential updates e -= lambda_ac * (grad auto_corr_loss / ac_rolls),
    each with fresh rolls, then one update e -= lambda_kl * grad kl_loss. A term with lambda <= 0
    is left out (as officially); both <= 0, or reg_steps <= 0, return eps itself, bit-identical.
    An update whose loss or gradient is NaN/Inf is skipped, one larger than eps itself is clipped to
    that size; both are counted. generator: a seeded
    torch.Generator for reproducible runs, explicit ints (reg_steps * ac_rolls * C * levels, in
    official draw order), or None (torch's global RNG). Returns eps in its input dtype.
    """
    if eps.ndim != 4:
        raise ValueError(f"regularize_noise expects eps of shape [B, C, H, W], got {tuple(eps.shape)}")
    stats = RegularizerStats()
    use_ac, use_kl = lambda_ac > 0 and ac_rolls > 0, lambda_kl > 0
    if reg_steps <= 0 or not (use_ac or use_kl):
        return eps, stats
    with torch.no_grad():
        # a copy in fp32 (or fp64); made here it is a normal tensor even if eps is an inference one
        e = eps.detach().to(torch.promote_types(eps.dtype, torch.float32), copy=True)
        if use_ac:
            plan = _plan(e.shape[-2], e.shape[-1], e.device, e.dtype)
            table = roll_table(generator, (reg_steps, ac_rolls, e.shape[1]), plan.shapes, min_roll)
            table = table.to(e.device)
        ok_ac: list[Tensor] = []
        ok_kl: list[Tensor] = []
        clips: list[Tensor] = []
        ac_last = None
        for step in range(reg_steps):
            if use_ac:  # indices for this step's ac_rolls evaluations, [ac_rolls, C, 4T]
                index = plan.gather_index(table[step])
            for k in range(ac_rolls if use_ac else 0):
                ac_last, grad = plan.loss_and_grad(e, index[k])
                # one finiteness test for loss and gradient, no host sync (a sum of finite
                # values this small cannot overflow)
                step_ac, was_clipped = _clip_step(lambda_ac * (grad / ac_rolls), e)  # ddim_inv.py:121-122
                ok_ac.append(torch.isfinite(ac_last + grad.sum()))
                clips.append(was_clipped)
                e = torch.where(ok_ac[-1], e - step_ac, e)
            if use_kl:
                loss, grad = _kl_loss_and_grad(e)
                step_kl, was_clipped = _clip_step(lambda_kl * grad, e)  # ddim_inv.py:127-128
                ok_kl.append(torch.isfinite(loss + grad.sum()))
                clips.append(was_clipped)
                e = torch.where(ok_kl[-1], e - step_kl, e)
        # one host sync for all statistics
        nan = e.new_full((), float("nan"))
        summary = torch.stack(
            [torch.stack(ok_ac).sum().to(e.dtype) if ok_ac else nan,
             torch.stack(ok_kl).sum().to(e.dtype) if ok_kl else nan,
             ac_last if ac_last is not None else nan,
             kl_loss(e),
             torch.stack(clips).sum().to(e.dtype) if clips else e.new_zeros(())]
        ).tolist()
        stats.clipped = int(summary[4])
        stats.skipped_ac = len(ok_ac) - int(summary[0]) if ok_ac else 0
        stats.skipped_kl = len(ok_kl) - int(summary[1]) if ok_kl else 0
        stats.updates = len(ok_ac) + len(ok_kl) - stats.skipped
        stats.ac_loss = summary[2] if ac_last is not None else None
        stats.kl_loss = summary[3]
    return e.to(eps.dtype), stats


@torch.no_grad()
def lag1_autocorrelation(x: Tensor) -> float:
    """Mean lag-1 spatial autocorrelation (non-circular, along H and W) of each [b, c] plane,
    normalised by the plane's variance: about 0 for white noise, near 1 for smooth fields."""
    x = x.detach().to(torch.promote_types(x.dtype, torch.float32))
    z = x - x.mean(dim=(-2, -1), keepdim=True)
    var = z.pow(2).mean(dim=(-2, -1)).clamp_min(1e-12)
    ch = (z[..., 1:, :] * z[..., :-1, :]).mean(dim=(-2, -1)) / var
    cw = (z[..., :, 1:] * z[..., :, :-1]).mean(dim=(-2, -1)) / var
    return float(((ch + cw) / 2).mean())


@torch.no_grad()
def kl_to_standard_normal(x: Tensor) -> float:
    """KL(N(mean, var) || N(0, 1)) of each sample's values, averaged over the batch; 0 for N(0, 1)."""
    flat = x.detach().to(torch.promote_types(x.dtype, torch.float32)).flatten(1)
    mu, var = flat.mean(dim=1), flat.var(dim=1).clamp_min(1e-12)
    return float((0.5 * (var + mu**2 - 1 - torch.log(var))).mean())
