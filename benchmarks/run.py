"""Run the benchmarks and print their tables. Usage: bash benchmarks/run.sh [--quick | --quality [--trials N]]

--quick: the tiny model only (seconds). Default adds the full-width SD1.5 layout at 256x256 (minutes on a CPU).
--quality: edit quality on the shipped demo models (benchmarks/quality.py), N trials per row (default 24);
           --architecture unet|dit|both picks the table (default both).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def table(title: str, header: tuple, rows: list) -> str:
    lines = [f"\n## {title}", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--architecture", choices=["unet", "dit", "both"], default="both",
                        help="with --quality: the UNet demo model's table, the demo DiT's, or both")
    parser.add_argument("--flux-size", type=int, default=512, help="image size of the full-width Flux rows")
    parser.add_argument("--flux-only", action="store_true", help="only the full-width Flux rows")
    parser.add_argument("--new-families", action="store_true",
                        help="only the full-width Z-Image and Wan rows (P2P / plain and peak memory)")
    opts = parser.parse_args()
    if opts.quality:
        from benchmarks import quality as quality_table

        if opts.architecture in ("unet", "both"):
            print(quality_table.run(opts.trials), flush=True)
        if opts.architecture in ("dit", "both"):
            print(quality_table.run_dit(opts.trials), flush=True)
        return

    from benchmarks import p2p_speed
    from tests.comfy_harness import Comfy

    import torch

    host = Comfy()
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpu count {os.cpu_count()}")
    header = ("case", "plain s", "P2P s", "ratio")
    configs = [("tiny SD1.5 layout, 256x256, 8 euler steps, batch 2 prompts x cfg", "sd15", 256, 8, opts.repeats,
                None)]
    configs += [("tiny Flux layout, 256x256, 8 euler steps, batch 2 prompts (cfg 1)", "flux", 256, 8, opts.repeats, None),
                ("tiny SD3 layout, 256x256, 8 euler steps, batch 2 prompts x cfg", "sd3", 256, 8, opts.repeats, None)]
    if opts.flux_only:
        configs = []
    if not opts.quick:
        main_cases = {"replace (inside windows)", "replace + local blend", "after the windows (patches idle)"}
        if not opts.flux_only:
            configs.append(("full-width SD1.5 layout (random weights), 256x256, 3 euler steps", "sd15_full", 256, 3,
                            2, main_cases))
        configs.append((f"full-width Flux layout (hidden 3072, 24 heads, 2 double + 4 single blocks, random weights), "
                        f"{opts.flux_size}x{opts.flux_size}, 2 euler steps, cfg 1", "flux_full", opts.flux_size, 2, 1,
                        main_cases | {"refine (two attention calls per edit)"}))
    configs = [(*c, 0) for c in configs]
    if opts.new_families:
        configs = []
    if not opts.quick:
        configs.append(("full-width Z-Image layout (dim 3840, 30 heads of 128, 2 layers + 2 refiners, random "
                        "weights; tiny Qwen3), 512x512, 2 euler steps, cfg 1", "z_image_full", 512, 2, opts.repeats,
                        {"replace (inside windows)", "after the windows (patches idle)"}, 0))
        configs.append(("full-width Flux.2 layout (hidden 6144, 48 heads of 128, 1 double + 2 single blocks, random "
                        "weights; tiny Mistral), 256x256 (256 image tokens, 512 text slots), 2 euler steps, cfg 1",
                        "flux2_full", 256, 2, opts.repeats,
                        {"replace (inside windows)", "after the windows (patches idle)"}, 0))
        configs.append(("full-width Wan 2.1 1.3B layout (dim 1536, 12 heads, 3 blocks, random weights; tiny UMT5), "
                        "256x256 x 17 frames (5 latent frames), 2 euler steps, cfg 5", "wan_full", 256, 2, opts.repeats,
                        {"replace (inside windows)", "replace + local blend", "after the windows (patches idle)"}, 5))
    for title, layout, size, steps, repeats, cases, frames in configs:
        rows = p2p_speed.run(host, layout, size, steps, repeats, cases, memory=layout.endswith("_full"),
                             frames=frames)
        print(table(f"P2P KSampler vs plain KSampler on the same batch — {title}", header, rows), flush=True)
    if not opts.quick:
        from benchmarks import p2p_memory

        rows = []
        for title, layout, size, frames in [("full-width Wan 2.1 1.3B layout, 256x256 x 17 frames", "wan_full", 256, 5),
                                            ("full-width Z-Image layout, 512x512", "z_image_full", 512, 0)]:
            plain, edit = p2p_memory.run(layout, size, frames)
            rows.append((title, plain, edit, edit / plain))
        print(table("Peak RSS growth of a 2-step run, plain vs P2P (Replace, every step edited and injected), each in "
                    "a fresh process after a warm-up step (medians of 2)", ("layout", "plain MB", "P2P MB", "ratio"),
                    rows), flush=True)
    if opts.new_families:
        return
    from benchmarks import inversion_and_guidance as ig

    flow_runs = [("tiny Flux layout, 256x256, 8 steps", "flux", 256, 8)]
    if not opts.quick:
        flow_runs.append((f"full-width Flux layout (random weights), {opts.flux_size}x{opts.flux_size}, 2 steps",
                          "flux_full", opts.flux_size, 2))
    for title, layout, size, steps in flow_runs:
        print(table(f"Flow inversion and pix2pix-zero costs — {title}", ("case", "baseline s", "method s", "ratio"),
                    ig.run_flow(host, layout, size, steps)), flush=True)
    if opts.flux_only:
        return

    runs = [("tiny SD1.5 layout, 256x256, 20 steps", "sd15", 256, 20, True, True)]
    if not opts.quick:
        runs.append(("full-width SD1.5 layout (random weights), 256x256, 4 steps", "sd15_full", 256, 4, False, False))
    for title, layout, size, steps, nti, quality in runs:
        rows, recon = ig.run(host, layout, size, steps, nti, quality)
        print(table(f"Inversion and pix2pix-zero costs — {title}", ("case", "baseline s", "method s", "ratio"), rows),
              flush=True)
        if recon:
            print(table(f"Reconstruction of a 256x256 latent — {title}", ("method", "latent MSE", "decoded PSNR dB"),
                        recon), flush=True)
    seconds = [("tiny CLIP (3 layers, width 64)", ig.direction_seconds(host, "sd15"))]
    if not opts.quick:
        seconds.append(("CLIP-L size (12 layers, width 768, random weights)", ig.direction_seconds(host, "sd15_full")))
    print(table("AttnEdit_EditDirection on 1000 + 1000 sentences", ("text encoder", "seconds"), seconds), flush=True)


if __name__ == "__main__":
    main()
