"""Local blend (P2P-nb cell 7, LocalBlend): keep the edited rows equal to the source row outside the
region the blend words attend to.

Official: maps of the blend words from the 16×16 cross-attention layers (SD1.x at 512 px), summed over the
words' tokens, averaged over heads and layers, accumulated over the steps so far; max-pool k=1 (3×3,
stride 1); nearest resize to the latent; normalised by each row's maximum; thresholded at 0.3; the mask of
edit i is the union of the source's mask and edit i's mask; x_i ← x_0 + mask·(x_i − x_0).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def word_maps(maps: torch.Tensor, token_weights: torch.Tensor) -> torch.Tensor:
    """maps [N, HW, 77] head-averaged cross-attention, token_weights [N, 77] (1 on each row's blend
    tokens) -> [N, HW], the summed map of each row's blend words."""
    return torch.einsum("nps,ns->np", maps.float(), token_weights.to(maps.device, torch.float32))


def blend_mask(accumulated: torch.Tensor, threshold: float, size: tuple[int, int]) -> torch.Tensor:
    """accumulated [N, h, w] (row 0 = source) -> float mask [N-1, 1, H, W] for the edited rows."""
    m = F.max_pool2d(accumulated[:, None].float(), kernel_size=3, stride=1, padding=1)
    m = F.interpolate(m, size=size, mode="nearest")
    peak = m.amax(dim=(2, 3), keepdim=True)
    m = torch.where(peak > 0, m / peak.clamp_min(1e-12), torch.zeros_like(m))
    m = m > threshold
    return (m[:1] | m[1:]).float()


def apply_blend(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x [N, C, H, W]: rows 1.. take x_0 where the (binary) mask is 0; row 0 is unchanged.
    Same as the official x_0 + mask·(x_i − x_0), without its last-bit rounding."""
    out = x.clone()
    out[1:] = torch.where(mask.to(x.device) > 0, x[1:], x[:1].expand_as(x[1:]))
    return out
