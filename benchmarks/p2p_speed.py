"""P2P speed: KSampler on the P2P batch vs a plain KSampler on the same batch, side by side in one run.

Ratios the pack aims for: P2P edit / plain ≤ 1.15; after the injection windows / plain ≤ 1.05.
Rows: the full-width SD1.5 layout with random weights (860 M UNet parameters) and the tiny test model; on joint
attention, a full-width Flux layout of reduced depth (hidden 3072, 24 heads, 2 double + 4 single blocks, random
weights), a full-width Z-Image layout (dim 3840, 30 heads, 2 layers) and the tiny Flux / SD3 layouts; on video,
the full-width Wan 2.1 1.3B layout (dim 1536, 12 heads, 3 blocks) on a small clip.
"""
from __future__ import annotations

import statistics
import time

import torch

CASES = [
    # name, node, options
    ("replace (inside windows)", "replace", dict(cross_replace=1.0, self_replace=1.0)),
    ("replace + local blend", "replace", dict(cross_replace=1.0, self_replace=1.0, blend_words="cat | dog")),
    ("refine (two attention calls per edit)", "refine", dict(cross_replace=1.0, self_replace=1.0)),
    ("after the windows (patches idle)", "replace", dict(cross_replace=0.0, self_replace=0.0)),
]


def _models(layout: str):
    """(model, clip, latent channels, cfg): UNet layouts at cfg 7.5; Flux as Flux.1-dev runs (guidance-distilled,
    cfg 1: no negative pass); SD3 at cfg 4."""
    from tests.comfy_test_pack import tiny_models as tm

    if layout in ("flux", "flux_full"):
        return tm.build_flux_model(layout, 0), tm.build_flux_clip(0, full_width=layout == "flux_full"), 16, 1.0
    if layout == "sd3":
        model, clip, _ = tm.build_sd3(0)
        return model, clip, 16, 4.0
    if layout in ("flux2", "flux2_full"):  # Flux.2-dev: guidance-distilled, cfg 1; 128 latent channels at /16
        model, clip, _ = tm.build_flux2(0, full_width=layout.endswith("_full"))
        return model, clip, 128, 1.0
    if layout in ("z_image", "z_image_full"):  # Z-Image Turbo samples at cfg 1
        model, clip, _ = tm.build_z_image(0, full_width=layout.endswith("_full"))
        return model, clip, 16, 1.0
    if layout in ("wan", "wan_full"):  # Wan at real cfg
        model, clip, _ = tm.build_wan(0, full_width=layout.endswith("_full"))
        return model, clip, 16, 5.0
    return tm.build_model(layout, 0), tm.build_clip(layout, 0), 4, 7.5


def run(comfy, layout: str, size: int, steps: int, repeats: int, cases=None, memory: bool = False,
        frames: int = 0) -> list[tuple[str, float, float, float]]:
    """Median seconds (plain, P2P, ratio) per case; with `memory`, also the peak resident-memory growth of one
    plain and one P2P run of the first case. `frames`: latent frames of a video model's latent."""
    import nodes

    p2p = comfy.pack("nodes.p2p")
    clip_prompts = comfy.pack("nodes.clip_prompts")
    model, clip, channels, cfg = _models(layout)
    scale = 16 if channels == 128 else 8  # Flux.2's latents are /16
    latent = {"samples": torch.zeros(1, channels, *([frames] if frames else []), size // scale, size // scale)}
    source, target = "a cat sitting on a mat", "a dog sitting on a mat"
    refine_target = "a fluffy cat sitting on a red mat"
    negative = clip_prompts.encode_rows(clip, ["blurry"])
    scheduler = "normal" if channels == 4 else "simple"

    def sample(m, positive, lat):
        return nodes.common_ksampler(m, 1, steps, cfg, "euler", scheduler, positive, negative, lat)[0]["samples"]

    prepared = []
    with torch.inference_mode():
        for name, mode, options in [c for c in CASES if cases is None or c[0] in cases]:
            tgt = refine_target if mode == "refine" else target
            out = p2p.run_p2p(f"bench {name}", mode, model, clip, latent, source, [tgt], word_schedule="",
                              reweight="", **{"blend_words": "", "blend_threshold": 0.3, "blend_start": 0.0,
                                              **options})
            patched, positive, batched = out.result
            prepared.append((name, patched, positive, batched))
        sample(model, prepared[0][2], prepared[0][3])  # warm-up
        times = {name: [] for name, *_ in prepared}
        plain_times = {name: [] for name, *_ in prepared}
        for _ in range(repeats):  # interleave plain and patched runs so drift hits both alike
            for name, patched, positive, batched in prepared:
                t = time.perf_counter()
                sample(model, positive, batched)
                plain_times[name].append(time.perf_counter() - t)
                t = time.perf_counter()
                sample(patched, positive, batched)
                times[name].append(time.perf_counter() - t)
    rows = []
    for name, *_ in prepared:
        plain, edit = statistics.median(plain_times[name]), statistics.median(times[name])
        rows.append((name, plain, edit, edit / plain))
    if memory:
        from benchmarks.inversion_and_guidance import _peak_rss_mb

        name, patched, positive, batched = prepared[0]
        with torch.inference_mode():
            _, mb_plain = _peak_rss_mb(lambda: sample(model, positive, batched))
            _, mb_edit = _peak_rss_mb(lambda: sample(patched, positive, batched))
        rows.append((f"  peak RSS growth MB ({name}): plain / P2P", mb_plain, mb_edit, mb_edit / max(mb_plain, 1e-9)))
    return rows
