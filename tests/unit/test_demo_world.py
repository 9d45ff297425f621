import numpy as np
import pytest
from scipy import ndimage

from demo_world.analyser import analyse, match
from demo_world.scene import (BACKGROUNDS, COLOURS, SIZES, TEMPLATES, Obj, Scene, caption, parse_caption,
                              random_caption, random_scene, render)


def _accuracy(degrade, n=300, seed=0) -> dict[str, float]:
    rng, noise_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    hits: dict[str, list] = {"shape": [], "colour": [], "size": [], "background": [], "count": [], "pos": []}
    for _ in range(n):
        scene = random_scene(rng)
        m = match(scene, analyse(degrade(render(scene), noise_rng)))
        for k in ("shape", "colour", "size"):
            hits[k] += m[k]
        hits["background"].append(m["background"])
        hits["count"].append(m["count"])
        hits["pos"] += [e for e in m["position_error"] if e is not None]
    return {k: float(np.mean(v)) for k, v in hits.items()}


def _blur_and_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = ndimage.gaussian_filter(img / 255.0, sigma=(1.0, 1.0, 0))
    return np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1)


def test_analyser_recovers_clean_renders():
    acc = _accuracy(lambda img, rng: img)
    for k in ("shape", "colour", "size", "background", "count"):
        assert acc[k] >= 0.98, acc
    assert acc["pos"] * 64 < 1.0, acc  # mean position error under a pixel


def test_analyser_survives_blur_and_noise():
    acc = _accuracy(_blur_and_noise)
    for k in ("shape", "colour", "size", "background", "count"):
        assert acc[k] >= 0.90, acc
    assert acc["pos"] * 64 < 2.0, acc


def test_render_is_deterministic_and_anti_aliased():
    scene = random_scene(np.random.default_rng(3), n_objects=(2,))
    assert scene == random_scene(np.random.default_rng(3), n_objects=(2,))
    img = render(scene)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert np.array_equal(img, render(scene))
    pure = {BACKGROUNDS[scene.background]} | {COLOURS[o.colour] for o in scene.objects}
    assert sum(tuple(p) not in pure for p in img.reshape(-1, 3)) > 20  # soft edges
    assert render(scene, size=128).shape == (128, 128, 3)


def test_random_scenes_are_sorted_and_do_not_overlap():
    rng = np.random.default_rng(7)
    for _ in range(200):
        scene = random_scene(rng)
        assert 1 <= len(scene.objects) <= 2
        for o in scene.objects:
            assert SIZES[o.size] / 2 < o.cx < 1 - SIZES[o.size] / 2
        if len(scene.objects) == 2:
            a, b = scene.objects
            half = (SIZES[a.size] + SIZES[b.size]) / 2
            assert a.cx < b.cx and (b.cx - a.cx > half or abs(b.cy - a.cy) > half)


def test_caption_wording():
    scene = Scene([Obj("square", "blue", "small", 0.75, 0.5), Obj("circle", "red", "large", 0.3, 0.2)], "gray")
    assert caption(scene) == "a large red circle and a small blue square on a gray background"
    assert caption(scene, with_position=True) == (
        "a large red circle at the top left and a small blue square on the right on a gray background")
    assert caption(Scene([Obj("cross", "orange", None)], "black")) == "an orange cross on a black background"


def test_captions_are_deterministic_and_parse_back():
    rng = np.random.default_rng(11)
    for i in range(100):
        scene = random_scene(rng)
        assert caption(scene) == caption(scene)
        expected = [(o.shape, o.colour, o.size) for o in scene.objects]
        for text in (caption(scene), caption(scene, True, i % len(TEMPLATES)), random_caption(scene, rng)):
            parsed = parse_caption(text)
            assert [(o.shape, o.colour, o.size) for o in parsed.objects] == expected, text
            assert parsed.background == scene.background, text
    partial = parse_caption("A red circle and a large square, grey background")
    assert [(o.shape, o.colour, o.size) for o in partial.objects] == [("circle", "red", None), ("square", None, "large")]
    assert partial.background == "gray"


def test_match_flags_edits():
    scene = Scene([Obj("circle", "red", "large", 0.3, 0.5), Obj("square", "blue", "small", 0.75, 0.5)], "gray")
    found = analyse(render(scene))
    assert match(scene, found)["all"]
    swapped = Scene([Obj("triangle", "red", "large", 0.3, 0.5), Obj("square", "green", "small", 0.75, 0.5)], "gray")
    m = match(swapped, found)
    assert m["shape"] == [False, True] and m["colour"] == [True, False] and not m["all"]
    m = match(parse_caption("a red circle and a small blue square on a white background"), found)
    assert m["shape"] == [True, True] and m["size"] == [None, True] and not m["background"]
    one = Scene([scene.objects[0]], "gray")
    assert not match(scene, analyse(render(one)))["count"]
    assert match(scene, analyse(render(one)))["shape"] == [True, False]


@pytest.mark.parametrize("dtype", ["uint8", "float"])
def test_analyse_accepts_uint8_and_float(dtype):
    img = render(Scene([Obj("diamond", "purple", "small", 0.5, 0.5)], "white"))
    found = analyse(img if dtype == "uint8" else img / 255.0)
    assert [(o.shape, o.colour, o.size) for o in found.objects] == [("diamond", "purple", "small")]
    assert found.background == "white"


def test_scene_from_caption_keeps_what_the_caption_says_and_fills_the_rest():
    import numpy as np

    from demo_world.scene import SIZES, caption, parse_caption, scene_from_caption

    for seed in range(30):
        rng = np.random.default_rng(seed)
        scene = scene_from_caption("a red circle and a large square", rng)
        assert [(o.shape, o.colour) for o in scene.objects if o.shape == "circle"] == [("circle", "red")]
        assert [o.size for o in scene.objects if o.shape == "square"] == ["large"]
        assert all(o.size in SIZES and o.colour and o.cx is not None for o in scene.objects)
        parsed = parse_caption(caption(scene))
        assert sorted(o.shape for o in parsed.objects) == ["circle", "square"]


def test_scene_from_caption_rejects_captions_without_one_or_two_objects():
    import numpy as np
    import pytest

    from demo_world.scene import scene_from_caption

    for text in ("a photo of a cat", "a circle, a square and a cross"):
        with pytest.raises(ValueError, match="one or two"):
            scene_from_caption(text, np.random.default_rng(0))


def test_quality_silhouette_iou_separates_kept_reshaped_and_moved_objects():
    from benchmarks.quality import compare, silhouette_iou
    from demo_world.scene import Obj, Scene, render

    def draw(shape, colour, cx, bg="gray"):
        return render(Scene([Obj(shape, colour, "large", cx, 0.5)], bg), 128)

    circle = draw("circle", "red", 0.4)
    assert silhouette_iou(circle, draw("circle", "blue", 0.4)) > 0.97  # colour swap in place: same silhouette
    assert abs(silhouette_iou(circle, draw("square", "red", 0.4)) - np.pi / 4) < 0.03  # circle inside its square
    assert silhouette_iou(circle, draw("circle", "red", 0.6, bg="white")) < 0.35  # moved
    trial = compare(circle, draw("square", "red", 0.4), "shape", "square")
    assert trial.success and trial.kept and trial.shift < 0.01 and trial.background_change == 0.0
