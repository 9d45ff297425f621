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


# Output maps (joint_maps.py) are sharper than a UNet's cross-attention: the official 3×3 max-pool dilates them past
# the object. Measured on the demo DiT (16×16 tokens, two-object scenes, threshold 0.3, 8 scenes): 3×3 pooling
# covered 76 % of the image and 85 % of the other object, no pooling 60 %.
JOINT_POOL = 1


def word_maps(maps: torch.Tensor, token_weights: torch.Tensor) -> torch.Tensor:
    """maps [N, HW, 77] head-averaged cross-attention, token_weights [N, 77] (1 on each row's blend
    tokens) -> [N, HW], the summed map of each row's blend words."""
    return torch.einsum("nps,ns->np", maps.float(), token_weights.to(maps.device, torch.float32))


def blend_mask(accumulated: torch.Tensor, threshold: float, size: tuple[int, int], pool: int = 3) -> torch.Tensor:
    """accumulated [N, h, w] (row 0 = source) -> float mask [N-1, 1, H, W] for the edited rows; `pool` the odd
    max-pool kernel (official: 3). A video's maps [N, F, h, w] give [N-1, 1, F, H, W]: each frame pooled,
    resized, normalised by its own maximum and thresholded on its own."""
    frames = accumulated.shape[1:-2]
    n = accumulated.shape[0]
    m = accumulated.reshape(-1, 1, *accumulated.shape[-2:]).float()  # one 2-D map per row and frame
    if pool > 1:
        m = F.max_pool2d(m, kernel_size=pool, stride=1, padding=pool // 2)
    m = F.interpolate(m, size=size, mode="nearest")
    peak = m.amax(dim=(2, 3), keepdim=True)
    m = torch.where(peak > 0, m / peak.clamp_min(1e-12), torch.zeros_like(m))
    m = (m > threshold).reshape(n, 1, *frames, *size)
    return (m[:1] | m[1:]).float()


def user_region(mask: torch.Tensor, rows: int, spatial: tuple[int, ...]) -> torch.Tensor:
    """A user's MASK [M, H, W] (M = 1 or `rows`) -> [rows, 1, *spatial] in 0-1: resized bilinearly to the latent's
    last two axes as ComfyUI resizes a noise mask (comfy.utils.reshape_mask), each mask its own edited row's, the
    same on every frame of a video latent."""
    m = F.interpolate(mask[:, None].float(), size=spatial[-2:], mode="bilinear").clamp(0, 1)
    m = m.reshape(m.shape[0], 1, *([1] * (len(spatial) - 2)), *spatial[-2:])
    return m.expand(rows, 1, *spatial).contiguous()


def apply_blend(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x [N, C, H, W], mask [N-1, 1 or C, H, W] in 0-1: rows 1.. become the official x_0 + mask·(x_i − x_0); row 0
    is unchanged. torch.lerp is exact at both ends: x_i where the mask is 1, x_0 (bit for bit) where it is 0."""
    out = x.clone()
    out[1:] = torch.lerp(x[:1].expand_as(x[1:]), x[1:], mask.to(x))
    return out
