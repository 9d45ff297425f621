"""Procedural world for the demo model: one or two flat shapes on a plain background, with captions.

Coordinates are normalised: cx, cy in [0, 1] (x to the right, y down) are the centre of the object's
bounding box, and a size is the box side as a fraction of the image side. Every shape fills a square box.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (250, 120, 10),
    "yellow": (240, 220, 30),
    "green": (40, 170, 60),
    "blue": (35, 75, 225),
    "purple": (135, 50, 185),
    "pink": (245, 130, 190),
}
# Disjoint from COLOURS, so an object never vanishes into its background.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (240, 240, 240),
    "gray": (128, 128, 128),
    "black": (25, 25, 25),
}
SIZES: dict[str, float] = {"small": 0.22, "large": 0.40}
EDGE_MARGIN = 0.03  # free border around every object
GAP = 0.06  # minimum free space between two objects' boxes
MIN_DX = 0.15  # centres this far apart in x, so "left to right" is unambiguous
CROSS_ARM = 1 / 3  # arm width of the cross, as a fraction of its box side

# Paraphrases for training diversity; template 0 is the canonical caption.
TEMPLATES = (
    "{objects} on a {bg} background",
    "a {bg} background with {objects}",
    "an image of {objects} on a {bg} background",
    "{objects}, {bg} background",
    "{objects} against a {bg} background",
)


@dataclass
class Obj:
    shape: str
    colour: str | None
    size: str | None
    cx: float | None = None
    cy: float | None = None


@dataclass
class Scene:
    objects: list[Obj]
    background: str | None


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test in box coordinates u, v in [-1, 1] (v down)."""
    au, av = np.abs(u), np.abs(v)
    if shape == "circle":
        return u * u + v * v <= 1
    if shape == "square":
        return (au <= 1) & (av <= 1)
    if shape == "triangle":  # apex up, base along the bottom of the box
        return (av <= 1) & (au <= (v + 1) / 2)
    if shape == "diamond":
        return au + av <= 1
    if shape == "cross":
        return ((au <= CROSS_ARM) & (av <= 1)) | ((av <= CROSS_ARM) & (au <= 1))
    raise ValueError(f"unknown shape {shape!r}")


def _choice(rng: np.random.Generator, items) -> str:
    return str(items[int(rng.integers(len(items)))])


def _fits(a: Obj, b: Obj) -> bool:
    if (a.shape, a.colour, a.size) == (b.shape, b.colour, b.size):
        return False
    dx, dy = abs(a.cx - b.cx), abs(a.cy - b.cy)
    half = (SIZES[a.size] + SIZES[b.size]) / 2 + GAP
    return dx >= MIN_DX and (dx >= half or dy >= half)


def random_scene(rng: np.random.Generator, n_objects: tuple[int, ...] = (1, 2)) -> Scene:
    """Random non-overlapping scene, objects sorted left to right."""
    n = int(n_objects[int(rng.integers(len(n_objects)))])
    objects: list[Obj] = []
    while len(objects) < n:
        size = _choice(rng, list(SIZES))
        lo = EDGE_MARGIN + SIZES[size] / 2
        o = Obj(_choice(rng, SHAPES), _choice(rng, list(COLOURS)), size,
                float(rng.uniform(lo, 1 - lo)), float(rng.uniform(lo, 1 - lo)))
        if all(_fits(o, p) for p in objects):
            objects.append(o)
        elif rng.random() < 0.05:  # a bad first object can make the rest impossible: start over
            objects = []
    return Scene(sorted(objects, key=lambda o: o.cx), _choice(rng, list(BACKGROUNDS)))


def render(scene: Scene, size: int = 64, supersample: int = 4) -> np.ndarray:
    """Anti-aliased RGB uint8 image [size, size, 3]: draw at supersample x, then box-average."""
    n = size * supersample
    t = (np.arange(n) + 0.5) / n
    x, y = t[None, :], t[:, None]
    img = np.empty((n, n, 3), np.float32)
    img[:] = BACKGROUNDS[scene.background]
    for o in scene.objects:
        r = SIZES[o.size] / 2
        img[shape_mask(o.shape, (x - o.cx) / r, (y - o.cy) / r)] = COLOURS[o.colour]
    img = img.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def position_phrase(cx: float, cy: float) -> str:
    h = "left" if cx < 0.4 else "right" if cx > 0.6 else ""
    v = "top" if cy < 0.4 else "bottom" if cy > 0.6 else ""
    if h and v:
        return f"at the {v} {h}"
    if h:
        return f"on the {h}"
    return f"at the {v}" if v else "in the center"


def object_phrase(o: Obj, with_position: bool = False) -> str:
    words = " ".join(w for w in (o.size, o.colour, o.shape) if w)
    phrase = ("an " if words[0] in "aeiou" else "a ") + words
    if with_position and o.cx is not None:
        phrase += " " + position_phrase(o.cx, o.cy)
    return phrase


def caption(scene: Scene, with_position: bool = False, template: int = 0) -> str:
    """Objects left to right, e.g. 'a large red circle and a small blue square on a gray background'."""
    phrases = [object_phrase(o, with_position) for o in sorted(scene.objects, key=lambda o: o.cx or 0)]
    objects = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return TEMPLATES[template].format(objects=objects, bg=scene.background)


def random_caption(scene: Scene, rng: np.random.Generator, p_position: float = 0.25) -> str:
    """A random paraphrase, sometimes with positions, for training."""
    return caption(scene, bool(rng.random() < p_position), int(rng.integers(len(TEMPLATES))))


_OBJ_RE = re.compile(
    rf"\b(?:({'|'.join(SIZES)})\s+)?(?:({'|'.join(COLOURS)})\s+)?({'|'.join(SHAPES)})\b")
_BG_RE = re.compile(rf"\b({'|'.join(BACKGROUNDS)}|grey)\s+background\b")


def parse_caption(text: str) -> Scene:
    """Objects (shape, colour, size; missing words are None) and background of any template's caption."""
    text = text.lower()
    bg = _BG_RE.search(text)
    background = bg.group(1).replace("grey", "gray") if bg else None
    return Scene([Obj(m.group(3), m.group(2), m.group(1)) for m in _OBJ_RE.finditer(text)], background)


def place(objects: list[Obj], rng: np.random.Generator, tries: int = 2000) -> list[Obj]:
    """The objects at random non-overlapping positions (sorted left to right), sizes and colours kept."""
    for _ in range(tries):
        placed: list[Obj] = []
        for o in objects:
            lo = EDGE_MARGIN + SIZES[o.size] / 2
            p = Obj(o.shape, o.colour, o.size, float(rng.uniform(lo, 1 - lo)), float(rng.uniform(lo, 1 - lo)))
            if not all(_fits(p, q) for q in placed):
                break
            placed.append(p)
        else:
            return sorted(placed, key=lambda o: o.cx)
    raise ValueError(f"could not place {len(objects)} objects without overlap")


def scene_from_caption(text: str, rng: np.random.Generator) -> Scene:
    """A drawable scene for a caption: missing sizes, colours and background drawn from rng, positions too."""
    parsed = parse_caption(text)
    if not 1 <= len(parsed.objects) <= 2:
        raise ValueError(f"found {len(parsed.objects)} objects in {text!r}; name one or two of "
                         f"{', '.join(SHAPES)} (e.g. 'a large red circle on a gray background')")
    objects = [Obj(o.shape, o.colour or _choice(rng, list(COLOURS)), o.size or _choice(rng, list(SIZES)))
               for o in parsed.objects]
    return Scene(place(objects, rng), parsed.background or _choice(rng, list(BACKGROUNDS)))
