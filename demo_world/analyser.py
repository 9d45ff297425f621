"""Deterministic analyser: recovers objects (shape, colour, size, position) and background from an image.

Meant for renders of demo_world.scene and for a diffusion model's imitations of them. Objects are found
by nearest named colour; shape, size and position come from fitting every shape template to the object's
soft mask, placed by the mask's centroid and scaled by its mass, both of which blur leaves unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np
from scipy import ndimage

from .scene import BACKGROUNDS, COLOURS, SHAPES, SIZES, Obj, Scene, shape_mask

PAD = 4  # pixels around a component searched for its faint edges
SCORE_BLUR = 0.025  # both masks are blurred (sigma, fraction of the image side) before comparing,
# so a blurred image scores like a sharp one


@dataclass
class Found(Obj):
    extent: float = 0.0  # side of the fitted shape's box, as a fraction of the image side
    area: int = 0  # pixels in the component
    rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)  # median colour of the object's interior
    shape_score: float = 0.0  # soft IoU with the best-fitting template; low means "no clear shape"


@dataclass
class Analysis(Scene):
    """A Scene whose objects are Found, sorted left to right."""

    background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)


def _template_stats(n: int = 256) -> dict[str, tuple[float, float]]:
    """Per shape: fraction of its box it fills, and its centroid's v (box coordinates, -1..1)."""
    t = (np.arange(n) + 0.5) / n * 2 - 1
    stats = {}
    for s in SHAPES:
        m = shape_mask(s, t[None, :], t[:, None])
        stats[s] = (float(m.mean()), float(np.broadcast_to(t[:, None], m.shape)[m].mean()))
    return stats


_STATS = _template_stats()
_COLOUR_RGB = np.array(list(COLOURS.values()), np.float32)


def _nearest(rgb: np.ndarray, table: dict[str, tuple[int, int, int]]) -> str:
    names = list(table)
    return names[int(np.argmin(((np.array(list(table.values())) - rgb) ** 2).sum(-1)))]


def _coverage(shape: str, cx: float, cy: float, extent: float, h: int, w: int, ss: int = 4) -> np.ndarray:
    """Anti-aliased coverage [h, w] of a shape with box centre (cx, cy) and box side extent, in pixels."""
    x = ((np.arange(w * ss) + 0.5) / ss)[None, :]
    y = ((np.arange(h * ss) + 0.5) / ss)[:, None]
    m = shape_mask(shape, (x - cx) / (extent / 2), (y - cy) / (extent / 2))
    return m.reshape(h, ss, w, ss).mean(axis=(1, 3))


def _fit_shape(alpha: np.ndarray, blur: float) -> tuple[str, float, float, float, float]:
    """Best template for a soft mask: shape, score (soft IoU), extent, cx, cy, in crop pixels."""
    h, w = alpha.shape
    mass = float(alpha.sum())
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    mx, my = float((alpha * xs).sum() / mass), float((alpha * ys).sum() / mass)
    target = ndimage.gaussian_filter(np.clip(alpha, 0, 1), blur)
    best = ("", -1.0, 0.0, 0.0, 0.0)
    for s in SHAPES:
        fill, v_centroid = _STATS[s]
        extent = float(np.sqrt(mass / fill))
        cy = my - v_centroid * extent / 2
        t = ndimage.gaussian_filter(_coverage(s, mx, cy, extent, h, w), blur)
        score = float(np.minimum(t, target).sum() / np.maximum(t, target).sum())
        if score > best[1]:
            best = (s, score, extent, mx, cy)
    return best


def analyse(image: np.ndarray, min_area: float = 0.003) -> Analysis:
    """image: [H, W, 3] uint8, or float in 0..1. min_area: smallest object kept, fraction of the image."""
    img = np.asarray(image, np.float32)
    if np.asarray(image).dtype != np.uint8:
        img = img * 255.0
    h, w = img.shape[:2]
    side = float(np.sqrt(h * w))
    bg_rgb = np.median(np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]]), axis=0)
    # foreground: pixels nearer to some object colour than to the measured background colour
    palette = np.concatenate([bg_rgb[None], _COLOUR_RGB])
    fg = ((img[:, :, None, :] - palette) ** 2).sum(-1).argmin(-1) != 0
    labels, _ = ndimage.label(fg)
    objects = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        comp = labels == i
        area = int(comp[sl].sum())
        if area < min_area * h * w:
            continue
        core = ndimage.binary_erosion(comp[sl])
        rgb = np.median(img[sl][core if core.sum() >= 3 else comp[sl]], axis=0)
        colour = _nearest(rgb, COLOURS)
        # soft mask: where each pixel lies between background and object colour, near the component only
        y0, y1 = max(sl[0].start - PAD, 0), min(sl[0].stop + PAD, h)
        x0, x1 = max(sl[1].start - PAD, 0), min(sl[1].stop + PAD, w)
        near = ndimage.binary_dilation(comp[y0:y1, x0:x1], iterations=2)
        d = rgb - bg_rgb
        alpha = ((img[y0:y1, x0:x1] - bg_rgb) @ d) / max(float(d @ d), 1e-6) * near
        if alpha.sum() < 1:
            continue
        shape, score, extent, cx, cy = _fit_shape(alpha, SCORE_BLUR * side)
        extent /= side
        size = min(SIZES, key=lambda s: abs(np.log(extent / SIZES[s])))
        objects.append(Found(shape, colour, size, (x0 + cx) / w, (y0 + cy) / h,
                             extent, area, tuple(float(c) for c in rgb), score))
    objects.sort(key=lambda o: o.cx)
    return Analysis(objects, _nearest(bg_rgb, BACKGROUNDS), tuple(float(c) for c in bg_rgb))




def _pair(expected: list[Obj], found: list[Obj]) -> list[Obj | None]:
    """Found object for each expected one: nearest positions if both sides have them, else left-to-right order."""
    if not all(o.cx is not None for o in expected + found):
        return [found[i] if i < len(found) else None for i in range(len(expected))]
    slots = list(range(len(found))) + [None] * len(expected)

    def cost(p):
        return sum(2.0 if j is None else np.hypot(e.cx - found[j].cx, e.cy - found[j].cy)
                   for e, j in zip(expected, p))

    best = min(permutations(slots, len(expected)), key=cost)
    return [None if j is None else found[j] for j in best]


def match(expected: Scene, found: Scene) -> dict:
    """Per expected object: shape/colour/size correct (None where the expectation leaves it open) and
    position error (normalised units; None without positions); plus background, count and 'all'."""
    pairs = _pair(expected.objects, found.objects)
    out: dict = {"background": expected.background is None or expected.background == found.background,
                 "count": len(expected.objects) == len(found.objects)}
    for attr in ("shape", "colour", "size"):
        out[attr] = [None if getattr(e, attr) is None else (f is not None and getattr(f, attr) == getattr(e, attr))
                     for e, f in zip(expected.objects, pairs)]
    out["position_error"] = [
        None if e.cx is None or f is None or f.cx is None else float(np.hypot(e.cx - f.cx, e.cy - f.cy))
        for e, f in zip(expected.objects, pairs)]
    out["all"] = out["background"] and out["count"] and all(
        x is not False for a in ("shape", "colour", "size") for x in out[a])
    return out
