"""Peak memory of P2P vs plain sampling, each run in a fresh process (a process that already ran the other keeps its
allocator's pages, which skews a side-by-side reading in one process).

Each child builds the layout, runs one warm-up step, then measures the peak resident-memory growth over a 2-step
KSampler run (psutil sampled every 10 ms) of the plain model or the P2P model (Replace, cross_replace and
self_replace 1: every step edits and injects). The parent alternates plain and P2P children and reports medians.

    python benchmarks/p2p_memory.py wan_full --size 256 --frames 5
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(layout: str, mode: str, size: int, frames: int, steps: int) -> dict:
    import torch

    from tests.comfy_harness import Comfy

    host = Comfy()
    import comfy.utils
    import nodes

    from benchmarks.inversion_and_guidance import _peak_rss_mb
    from benchmarks.p2p_speed import _models

    comfy.utils.PROGRESS_BAR_ENABLED = False
    p2p, prompts = host.pack("nodes.p2p"), host.pack("nodes.clip_prompts")
    model, clip, channels, cfg = _models(layout)
    scale = 16 if channels == 128 else 8  # Flux.2's latents are /16
    latent = {"samples": torch.zeros(1, channels, *([frames] if frames else []), size // scale, size // scale)}
    negative = prompts.encode_rows(clip, ["blurry"])
    with torch.inference_mode():
        out = p2p.run_p2p("bench", "replace", model, clip, latent, "a cat sitting on a mat", ["a dog sitting on a mat"],
                          1.0, 1.0, "", "", "", 0.3, 0.0)
        patched, positive, batched = out.result
        chosen = patched if mode == "p2p" else model

        def sample(n):
            return nodes.common_ksampler(chosen, 1, n, cfg, "euler", "simple", positive, negative, batched)

        sample(1)  # warm-up: first-touch allocations of weights and buffers
        _, growth = _peak_rss_mb(lambda: sample(steps))
    return {"mode": mode, "growth_mb": growth}


def run(layout: str, size: int, frames: int = 0, repeats: int = 2, steps: int = 2) -> tuple[float, float]:
    """(median plain growth MB, median P2P growth MB)."""
    got = {"plain": [], "p2p": []}
    for _ in range(repeats):
        for mode in ("plain", "p2p"):
            cmd = [sys.executable, str(Path(__file__)), layout, "--child", mode, "--size", str(size), "--frames",
                   str(frames), "--steps", str(steps)]
            out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True,
                                 env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]
            got[mode].append(json.loads(line)["growth_mb"])
    return statistics.median(got["plain"]), statistics.median(got["p2p"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("layout")
    parser.add_argument("--child", choices=["plain", "p2p"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    opts = parser.parse_args()
    if opts.child:
        print(json.dumps(child(opts.layout, opts.child, opts.size, opts.frames, opts.steps)), flush=True)
        return
    plain, edit = run(opts.layout, opts.size, opts.frames, opts.repeats, opts.steps)
    print(f"{opts.layout}: peak RSS growth plain {plain:.0f} MB, P2P {edit:.0f} MB, ratio {edit / plain:.2f}")


if __name__ == "__main__":
    main()
