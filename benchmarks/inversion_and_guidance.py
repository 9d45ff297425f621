"""Inversion and pix2pix-zero costs and reconstruction quality, side by side in one run.

- regularized DDIM inversion / plain DDIM inversion (target <= 1.2)
- null-text inversion / plain DDIM inversion (reported; the official costs up to ~10 UNet fwd+bwd per step)
- Direct Inversion / plain DDIM inversion, and Direct Inversion + P2P edit / plain DDIM inversion + P2P edit
  (target <= 1.3)
- cross-attention guided sampler / plain sampling of the same steps (target <= 3.5) and its stored-map memory
- reconstruction error of plain DDIM (cfg 1, cfg 7.5), negative-prompt inversion and null-text (cfg 7.5):
  latent MSE and decoded PSNR
- EditDirection on 1000 sentences (seconds)
"""
from __future__ import annotations

import math
import time

import torch


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _peak_rss_mb(fn):
    """(result, peak resident-memory growth in MB while fn ran), sampled every 10 ms (CPU runs)."""
    import threading

    import psutil

    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            done.wait(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        out = fn()
    finally:
        done.set()
        thread.join()
    return out, (peak[0] - base) / 2**20


def _latent(size: int, seed: int = 5) -> dict:
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.randn(1, 4, max(1, size // 32), max(1, size // 32), generator=g),
                           size=(size // 8, size // 8), mode="bicubic", align_corners=False)
    return {"samples": 2.0 * coarse + 0.3 * torch.randn(1, 4, size // 8, size // 8, generator=g)}


def _psnr(vae, a, b) -> float:
    ia, ib = vae.decode(a), vae.decode(b)
    mse = float(((ia - ib) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def run(comfy, layout: str, size: int, steps: int, with_null_text: bool, with_quality: bool):
    import nodes

    from tests.comfy_test_pack.tiny_models import build_clip, build_model, build_vae

    inv = comfy.pack("nodes.inversion")
    clip_prompts = comfy.pack("nodes.clip_prompts")
    adapter = comfy.pack("inversion.comfy_adapter")
    model, clip, vae = build_model(layout, 0), build_clip(layout, 0), build_vae(0)
    latent = _latent(size)
    caption = clip_prompts.encode_rows(clip, ["a photo of a cat sitting on a mat"])
    edit = clip_prompts.encode_rows(clip, ["a photo of a dog sitting on a mat"])
    empty = clip_prompts.encode_rows(clip, [""])
    rows, quality = [], []
    with torch.inference_mode():
        sigmas = adapter.schedule(model, steps, "ddim_uniform")
        regular = inv.DDIMInvertRegularized
        regular.execute(model, latent, caption, 2, 0.0, 0.0, 5, 5, 1.0)  # warm-up
        (plain_T, _), t_plain = _timed(lambda: regular.execute(model, latent, caption, steps, 0.0, 0.0, 5, 5, 1.0).result)
        _, t_reg = _timed(lambda: regular.execute(model, latent, caption, steps, 20.0, 20.0, 5, 5, 1.0).result)
        rows.append(("regularized DDIM inversion / plain DDIM inversion", t_plain, t_reg, t_reg / t_plain))
        if with_null_text:
            (nti_model, nti_T, _), t_nti = _timed(lambda: inv.NullTextInversion.execute(
                model, latent, caption, empty, steps, 7.5, 10, 1e-5).result)
            rows.append(("null-text inversion (10 inner) / plain DDIM inversion", t_plain, t_nti, t_nti / t_plain))
        direct = comfy.pack("nodes.direct_inversion").DirectInversion
        (di_model, di_T, _), t_di = _timed(lambda: direct.execute(model, latent, caption, steps, 1.0).result)
        rows.append(("Direct Inversion / plain DDIM inversion", t_plain, t_di, t_di / t_plain))

        def sample_back(m, x_T, cfg, negative, positive=caption):
            return nodes.common_ksampler(m, 0, steps, cfg, "euler", "ddim_uniform", positive, negative, x_T,
                                         disable_noise=True)[0]["samples"]

        p2p_replace = comfy.pack("nodes.p2p").P2PReplace

        def p2p_edit(m, x_T):
            patched, positive, batch = p2p_replace.execute(m, clip, x_T, "a photo of a cat sitting on a mat",
                                                           "a photo of a dog sitting on a mat", 0.8, 0.4).result
            return sample_back(patched, batch, 7.5, empty, positive)

        p2p_edit(model, plain_T)  # warm-up of the batch-2 path
        t_edit_plain = min(_timed(lambda: p2p_edit(model, plain_T))[1] for _ in range(2))
        t_edit_di = min(_timed(lambda: p2p_edit(di_model, di_T))[1] for _ in range(2))
        rows.append(("  P2P edit (cfg 7.5) on the Direct Inversion MODEL / on the plain model", t_edit_plain,
                     t_edit_di, t_edit_di / t_edit_plain))
        rows.append(("Direct Inversion + P2P edit / plain DDIM inversion + P2P edit", t_plain + t_edit_plain,
                     t_di + t_edit_di, (t_di + t_edit_di) / (t_plain + t_edit_plain)))
        if with_null_text:
            t_edit_nti = min(_timed(lambda: p2p_edit(nti_model, nti_T))[1] for _ in range(2))
            rows.append(("null-text inversion + P2P edit / plain DDIM inversion + P2P edit", t_plain + t_edit_plain,
                         t_nti + t_edit_nti, (t_nti + t_edit_nti) / (t_plain + t_edit_plain)))

        guided = comfy.pack("attention.comfy_guided_sampler").guided_sample
        (_, t_sample), mb_sample = _peak_rss_mb(lambda: _timed(lambda: sample_back(model, plain_T, 5.0, caption)))
        ((_, _, stats), t_guided), mb_guided = _peak_rss_mb(lambda: _timed(
            lambda: guided(model, caption, edit, caption, plain_T, sigmas, 5.0, 0.1)))
        rows.append(("cross-attention guided sampler / plain sampling (cfg 5)", t_sample, t_guided,
                     t_guided / t_sample))
        rows.append(("  peak RSS growth MB: guided / plain", mb_sample, mb_guided, mb_guided / max(mb_sample, 1e-9)))
        rows.append(("  reference maps held by the guided sampler, MB (one step)", 0.0,
                     stats["reference_map_bytes"] / 2**20, float("nan")))
        if with_quality:
            x0 = latent["samples"]
            cases = [("plain DDIM, cfg 1", model, plain_T, 1.0, empty),
                     ("plain DDIM, cfg 7.5", model, plain_T, 7.5, empty),
                     ("negative-prompt inversion, cfg 7.5", model, plain_T, 7.5, caption)]
            if with_null_text:
                cases.append(("null-text inversion, cfg 7.5", nti_model, nti_T, 7.5, empty))
            cases.append(("Direct Inversion, cfg 7.5", di_model, di_T, 7.5, empty))
            for name, m, x_T, cfg, negative in cases:
                rec = sample_back(m, x_T, cfg, negative)
                quality.append((name, float(((rec - x0) ** 2).mean()), _psnr(vae, rec, x0)))
    return rows, quality


def direction_seconds(comfy, layout: str, n: int = 1000) -> float:
    """AttnEdit_EditDirection on n source + n target sentences."""
    from tests.comfy_test_pack.tiny_models import build_clip

    pz = comfy.pack("nodes.pix2pix_zero")
    clip = build_clip(layout, 0)
    source = "\n".join(f"a photo of a cat number {i}" for i in range(n))
    target = "\n".join(f"a photo of a dog number {i}" for i in range(n))
    with torch.inference_mode():
        _, seconds = _timed(lambda: pz.EditDirection.execute(clip, source, target))
    return seconds


def run_flow(comfy, layout: str, size: int, steps: int):
    """Flow models: regularized vs plain Euler flow inversion, and the guided sampler (edit + reconstruction, one
    gradient pass a step) vs plain sampling of the same steps, at cfg 1 as Flux.1-dev runs; peak memory of both."""
    import nodes

    from benchmarks.p2p_speed import _models

    flow = comfy.pack("nodes.flow")
    clip_prompts = comfy.pack("nodes.clip_prompts")
    model, clip, channels, cfg = _models(layout)
    g = torch.Generator().manual_seed(5)
    latent = {"samples": torch.randn(1, channels, size // 8, size // 8, generator=g)}
    caption = clip_prompts.encode_rows(clip, ["a photo of a cat sitting on a mat"])
    edit = clip_prompts.encode_rows(clip, ["a photo of a dog sitting on a mat"])
    rows = []
    with torch.inference_mode():
        inversion = flow.FlowInversion
        inversion.execute(model, latent, caption, 2, "euler", 1.0)  # warm-up
        (x_T, sigmas, _), t_plain = _timed(lambda: inversion.execute(model, latent, caption, steps, "euler", 1.0).result)
        _, t_reg = _timed(lambda: inversion.execute(model, latent, caption, steps, "euler", 1.0, lambda_ac=20.0,
                                                    lambda_kl=20.0).result)
        rows.append(("regularized flow inversion / plain flow inversion (Euler)", t_plain, t_reg, t_reg / t_plain))

        def sample_back():
            return nodes.common_ksampler(model, 0, steps, cfg, "euler", "simple", edit, caption, x_T,
                                         disable_noise=True)[0]["samples"]

        guided = comfy.pack("attention.comfy_guided_sampler").guided_sample
        (_, t_sample), mb_sample = _peak_rss_mb(lambda: _timed(sample_back))
        ((_, _, stats), t_guided), mb_guided = _peak_rss_mb(lambda: _timed(
            lambda: guided(model, caption, edit, caption, x_T, sigmas, cfg, 0.1)))
        rows.append((f"cross-attention guided sampler / plain sampling (cfg {cfg:g})", t_sample, t_guided,
                     t_guided / t_sample))
        rows.append(("  peak RSS growth MB: guided / plain", mb_sample, mb_guided, mb_guided / max(mb_sample, 1e-9)))
        rows.append(("  reference maps held by the guided sampler, MB (one step)", 0.0,
                     stats["reference_map_bytes"] / 2**20, float("nan")))
    return rows
