"""Run every example workflow headless in real ComfyUI and write the images plus an HTML report.

    bash scripts/demo.sh                                   # tiny random-weight models (mechanics only)
    bash scripts/demo.sh --checkpoint v1-5-pruned-emaonly.safetensors [--blip blip-image-captioning-base]

With --checkpoint the workflows run as shipped (50 steps, 512 px) on that file from ComfyUI's
models/checkpoints; workflows that need a BLIP folder are skipped unless --blip names one in models/blip.
Without it they run on tiny random-weight models built from ComfyUI's own classes: the images are noise,
but every node, patch and sampler path runs exactly as it would on a real model.
"""
from __future__ import annotations

import argparse
import html
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a checkpoint file name in ComfyUI's models/checkpoints")
    parser.add_argument("--blip", help="a BLIP folder name in models/blip (for the pix2pix-zero real-image workflow)")
    parser.add_argument("--out", default=str(REPO / "demo_output"), help="where images and report.html go")
    parser.add_argument("--only", nargs="*", help="workflow names to run (default: all)")
    opts = parser.parse_args()

    import os

    out = Path(opts.out).resolve()
    os.environ.setdefault("ATTN_EDIT_TEST_TMP", str(out / ".comfy"))
    from scripts.workflows import SPECS, on_tiny_models
    from tests.comfy_harness import Comfy

    comfy = Comfy()
    import folder_paths

    folder_paths.set_output_directory(str(out))
    if opts.checkpoint is None:
        from tests.tiny_blip import make_tiny_blip

        make_tiny_blip(comfy.tmp / "models" / "blip" / "tiny")
    rows = []
    for name in opts.only or sorted(SPECS):
        api = json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text())
        if opts.checkpoint:
            needs_blip = any(n["class_type"] == "AttnEdit_BLIPCaption" for n in api.values())
            if needs_blip and not opts.blip:
                rows.append((name, "skipped: needs --blip", 0.0, []))
                continue
            for node in api.values():
                if node["class_type"] == "CheckpointLoaderSimple":
                    node["inputs"]["ckpt_name"] = opts.checkpoint
                if node["class_type"] == "AttnEdit_BLIPCaption":
                    node["inputs"]["blip_model"] = opts.blip
        else:
            api = on_tiny_models(api, size=256, steps=10)
        comfy.reset_cache()
        start = time.perf_counter()
        result = comfy.run(api, expect_success=False)
        seconds = time.perf_counter() - start
        images = [img for o in result.get("outputs", {}).values() for img in o.get("images", [])]
        status = "ok" if result["ok"] else "failed: " + str(result["error"].get("exception_message", result["error"]))
        rows.append((name, status, seconds, images))
        print(f"{name:32s} {status[:70]:70s} {seconds:6.1f} s  {len(images)} image(s)", flush=True)
    report = out / "report.html"
    report.write_text(_html(rows, opts.checkpoint))
    print(f"\nreport: {report}")
    return 0 if all(r[1] == "ok" or r[1].startswith("skipped") for r in rows) else 1


def _html(rows, checkpoint) -> str:
    model = html.escape(checkpoint) if checkpoint else "tiny random-weight models (mechanics only, images are noise)"
    parts = ["<html><head><meta charset='utf-8'><title>comfyui-attention-edit examples</title></head><body>",
             f"<h1>comfyui-attention-edit example workflows</h1><p>Model: {model}</p>"]
    for name, status, seconds, images in rows:
        parts.append(f"<h2>{html.escape(name)}</h2><p>{html.escape(status)} ({seconds:.1f} s)</p><p>")
        for img in images:
            src = "/".join(p for p in (img.get("subfolder", ""), img["filename"]) if p)
            parts.append(f"<img src='{html.escape(src)}' style='max-width:512px;margin:4px'>")
        parts.append("</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
