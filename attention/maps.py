"""Per-token cross-attention maps (the P2P paper's Fig. 4): recording and a labelled grid image."""
from __future__ import annotations

import torch
import torch.nn.functional as F

import uuid

from .backends.base import AttentionEditor, CrossCall, JointCall, RunState, plain_attention
from .edits import MAX_TOKENS, attention_probabilities, chunked_token_maps, token_maps
from .joint_maps import block_word_maps, late_step, run_map_orders

LEVELS = {"latent/4 (P2P)": 2, "latent/2": 1, "latent/8": 3, "all": None}

# Finished recordings by recorder key. The recorder itself is config-only: ModelPatcher.clone() deep-copies it,
# so a result kept on it would be lost on any clone between the maps node and the sampler.
RESULTS: dict[str, dict] = {}


class MapRecorder(AttentionEditor):
    """Records layer- and step-averaged attention maps of the positive rows onto the text tokens, edits nothing:
    UNet cross-attention probabilities averaged over heads; on joint attention the maps of joint_maps.py (output
    maps of the later blocks over the second half of the steps).

    The result of a run is published in RESULTS[self.key] (`take_result`)."""

    def __init__(self, node_name: str, level: int | None, slots: int = MAX_TOKENS):
        self.node_name = node_name
        self.level = level
        self.slots = slots  # the prompt's text length (77 a CLIP chunk); ComfyUI may repeat it to match a negative
        self.key = uuid.uuid4().hex

    def take_result(self) -> dict:
        return RESULTS.pop(self.key, {})

    def start_run(self, run: RunState) -> None:
        run.data["maps"] = {}  # (h, w) -> [B, h*w, T] sum
        run.data["counts"] = {}
        RESULTS.pop(self.key, None)

    def joint_attention(self, call: JointCall, run: RunState):
        out = call.plain()
        starts = run.step.chunk_rows(0)
        if (starts and call.layer.order in run_map_orders(run)
                and late_step(run.step.index, run.step.total)):
            rows = list(range(starts[0], starts[0] + run.step.rows_per_chunk))
            maps = block_word_maps(call, out, rows)
            hw = run.step.grid
            acc = run.data["maps"].get(hw)
            run.data["maps"][hw] = maps if acc is None else acc + maps
            run.data["counts"][hw] = run.data["counts"].get(hw, 0) + 1
        return out

    def video_attention(self, call: CrossCall, run: RunState):
        """Wan: the raw video-query × text-key maps of the text cross-attention (the P2P map; no text outputs to
        take ConceptAttention's from) of the later blocks (joint_maps.map_orders) over the second half of the steps,
        per frame."""
        starts = run.step.chunk_rows(0)
        if (call.kind == "cross" and starts and call.layer.order in run_map_orders(run)
                and late_step(run.step.index, run.step.total)):
            rows = list(range(starts[0], starts[0] + run.step.rows_per_chunk))
            maps = chunked_token_maps(call.q, call.k, call.heads, rows)
            acc = run.data["maps"].get(call.grid)
            run.data["maps"][call.grid] = maps if acc is None else acc + maps
            run.data["counts"][call.grid] = run.data["counts"].get(call.grid, 0) + 1
        return call.plain()

    def cross_attention(self, q, k, v, heads, extra_options, run: RunState):
        level = run.layer(extra_options).level
        wanted = self.level if self.level is None else min(self.level, run.max_level)
        starts = run.step.chunk_rows(0)
        if starts and (wanted is None or level == wanted):
            rows = list(range(starts[0], starts[0] + run.step.rows_per_chunk))
            maps = token_maps(attention_probabilities(q, k, heads, rows), self.slots)
            h, w = (int(s) for s in extra_options["activations_shape"][-2:])
            acc = run.data["maps"].get((h, w))
            run.data["maps"][(h, w)] = maps if acc is None else acc + maps
            run.data["counts"][(h, w)] = run.data["counts"].get((h, w), 0) + 1
        return plain_attention(q, k, v, heads, extra_options)

    def finish_run(self, run: RunState) -> None:
        """Average every recorded resolution, bring all to the largest one recorded, average them."""
        recorded = run.data["maps"]
        if not recorded:
            return
        videos = [grid for grid in recorded if len(grid) == 3]
        if videos:  # one grid per run: [B, T, F, h, w]
            grid = videos[0]
            acc = recorded[grid] / run.data["counts"][grid]
            RESULTS[self.key] = {"maps": acc.reshape(acc.shape[0], *grid, -1).permute(0, 4, 1, 2, 3).cpu(),
                                 "layer_calls": run.data["counts"][grid]}
            return
        target = max(recorded, key=lambda hw: hw[0] * hw[1])
        total = None
        for (h, w), acc in recorded.items():
            m = (acc / run.data["counts"][(h, w)]).reshape(acc.shape[0], h, w, -1).permute(0, 3, 1, 2)
            m = F.interpolate(m, size=target, mode="bilinear", align_corners=False)
            total = m if total is None else total + m
        RESULTS[self.key] = {"maps": (total / len(recorded)).cpu(),  # [B, T, H, W]
                             "layer_calls": sum(run.data["counts"].values())}


def word_masks(maps: torch.Tensor, slot_groups: list[list[int]], size: tuple[int, int]) -> torch.Tensor:
    """maps [T, h, w] -> MASK [len(slot_groups), H, W]: per group the sum of its slots' maps, divided by its
    maximum (0-1), resized bilinearly to `size`. No group: one all-zero mask."""
    if not slot_groups:
        return torch.zeros(1, *size)
    m = torch.stack([maps[slots].float().sum(0) for slots in slot_groups])
    m = m / m.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return F.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].clamp(0, 1)


def _colormap(x: torch.Tensor) -> torch.Tensor:
    """[H, W] in [0, 1] -> [H, W, 3], a dark-blue → red → yellow ramp."""
    stops = torch.tensor([[0.05, 0.03, 0.25], [0.55, 0.05, 0.45], [0.95, 0.35, 0.10], [1.0, 0.95, 0.45]])
    pos = x.clamp(0, 1) * (len(stops) - 1)
    lo = pos.floor().long().clamp(max=len(stops) - 2)
    frac = (pos - lo)[..., None]
    return stops[lo] * (1 - frac) + stops[lo + 1] * frac


def render_token_grid(maps: torch.Tensor, labels: list[str], image: torch.Tensor | None = None, tile: int = 128,
                      columns: int = 8) -> torch.Tensor:
    """maps [T, h, w] (one per label) -> IMAGE [H, W, 3] in [0, 1]: one normalised heat map per token,
    blended over `image` ([H', W', 3]) when given, with the token's text under each tile."""
    from PIL import Image, ImageDraw

    label_h = 16
    tiles = []
    base = None
    if image is not None:
        base = F.interpolate(image.permute(2, 0, 1)[None].float(), size=(tile, tile), mode="bilinear",
                             align_corners=False)[0].permute(1, 2, 0)
    for m in maps:
        m = m.float()
        m = (m - m.min()) / (m.max() - m.min()).clamp_min(1e-12)
        m = F.interpolate(m[None, None], size=(tile, tile), mode="bilinear", align_corners=False)[0, 0]
        heat = _colormap(m)
        tiles.append(heat if base is None else 0.5 * base + 0.5 * heat)
    if base is not None:
        tiles.insert(0, base)
        labels = ["image"] + list(labels)
    cols = max(1, min(columns, len(tiles)))
    rows = (len(tiles) + cols - 1) // cols
    canvas = Image.new("RGB", (cols * tile, rows * (tile + label_h)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (t, label) in enumerate(zip(tiles, labels)):
        x, y = (i % cols) * tile, (i // cols) * (tile + label_h)
        canvas.paste(Image.fromarray((t.clamp(0, 1) * 255).byte().numpy()), (x, y))
        draw.text((x + 3, y + tile + 2), label[:20], fill=(0, 0, 0))
    import numpy as np

    return torch.from_numpy(np.asarray(canvas).astype("float32") / 255.0)
