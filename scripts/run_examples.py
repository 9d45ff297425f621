"""Run the example workflows headless in real ComfyUI; write the images, grid.png and report.html.

    bash scripts/demo.sh                                   # the demo_* workflows on the shipped demo model
    bash scripts/demo.sh --checkpoint v1-5-pruned-emaonly.safetensors [--blip blip-image-captioning-base]
    bash scripts/demo.sh --tiny                            # SD workflows on tiny random models (mechanics)

By default the demo_* workflows run as shipped on the pack's own small trained model (AttnEdit_Demo-
ModelLoader, 128 px, 20 steps): real before/after edits in about a minute on a CPU. With --checkpoint the
SD1.5 workflows run as shipped (50 steps, 512 px) on that file from ComfyUI's models/checkpoints;
workflows that need a BLIP folder are skipped unless --blip names one in models/blip. With --tiny they run
on tiny random-weight models: the images are noise, but every node and sampler path runs.
"""
from __future__ import annotations

import argparse
import contextlib
import html
import io
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
    parser.add_argument("--tiny", action="store_true", help="SD workflows on tiny random-weight models")
    parser.add_argument("--only", nargs="*", help="workflow names to run (default: all of the chosen set)")
    parser.add_argument("--thumbnails", action="store_true",
                        help="also write each UI workflow's template-browser thumbnail from the demo runs")
    opts = parser.parse_args()

    import os

    out = Path(opts.out).resolve()
    os.environ.setdefault("ATTN_EDIT_TEST_TMP", str(out / ".comfy"))
    from scripts.workflows import DEMO_SPECS, SPECS, on_tiny_models
    from tests.comfy_harness import Comfy

    started = time.perf_counter()
    with _comfyui_output() as boot_log:
        try:
            comfy = Comfy(pytorch_attention=True)
        except BaseException:
            print(boot_log.getvalue(), file=sys.stderr)
            raise
    boot = time.perf_counter() - started
    import folder_paths

    folder_paths.set_output_directory(str(out))
    if opts.tiny:
        from tests.tiny_blip import make_tiny_blip

        make_tiny_blip(comfy.tmp / "models" / "blip" / "tiny")
    rows = []
    demo = not (opts.checkpoint or opts.tiny)
    chosen = opts.only or [n for n in SPECS if (n in DEMO_SPECS) == demo]
    for name in chosen:
        api = json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text())
        if opts.checkpoint:
            needs_blip = any(n["class_type"] == "AttnEdit_BLIPCaption" for n in api.values())
            if needs_blip and not opts.blip:
                rows.append((name, "skipped: needs --blip", 0.0, []))
                print(f"{name:34s} skipped (needs --blip)", flush=True)
                continue
            for node in api.values():
                if node["class_type"] == "CheckpointLoaderSimple":
                    node["inputs"]["ckpt_name"] = opts.checkpoint
                if node["class_type"] == "AttnEdit_BLIPCaption":
                    node["inputs"]["blip_model"] = opts.blip
        elif opts.tiny:
            api = on_tiny_models(api, size=256, steps=10)
        comfy.reset_cache()
        start = time.perf_counter()
        with _comfyui_output() as log:
            result = comfy.run(api, expect_success=False)
        seconds = time.perf_counter() - start
        images = sorted((img for o in result.get("outputs", {}).values() for img in o.get("images", [])),
                        key=_image_order)
        status = "ok" if result["ok"] else "failed: " + str(result["error"].get("exception_message", result["error"]))
        rows.append((name, status, seconds, images))
        print(f"{name:34s} {'ok' if result['ok'] else 'failed':6s} {seconds:6.1f} s", flush=True)
        if not result["ok"]:
            print(_failure(log.getvalue(), result["error"]), file=sys.stderr, flush=True)
    ran = [r for r in rows if not r[1].startswith("skipped")]
    print(f"{sum(r[1] == 'ok' for r in ran)}/{len(ran)} ok in {time.perf_counter() - started:.0f} s "
          f"(ComfyUI start {boot:.0f} s, workflows {sum(r[2] for r in ran):.0f} s)")
    if opts.thumbnails and demo:
        for path in write_thumbnails(out, rows):
            print("wrote", path.relative_to(REPO))
    model = (opts.checkpoint or ("tiny random-weight models (mechanics only, images are noise)" if opts.tiny
                                 else "the pack's demo model (AttnEdit_DemoModelLoader)"))
    grid = _grid(out, rows)
    report = out / "report.html"
    report.write_text(_html(rows, model, grid))
    print(f"grid:   {grid}")
    print(f"\nreport: {report}")
    return 0 if all(r[1] == "ok" or r[1].startswith("skipped") for r in rows) else 1


@contextlib.contextmanager
def _comfyui_output():
    """ComfyUI's own output while it starts or runs a workflow (log records, progress bars, the tracebacks of its
    optional imports) goes to a buffer, not the terminal; the demo prints it only for a workflow that fails."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        yield buffer


def _failure(log: str, error: dict) -> str:
    """A failed workflow's error in full: what ComfyUI printed while it ran, then the node's traceback."""
    if "traceback" in error:
        detail = (f"node {error.get('node_id')} ({error.get('node_type')}): {error.get('exception_type')}: "
                  f"{error.get('exception_message')}\n" + "".join(error["traceback"]))
    else:
        detail = json.dumps(error, indent=1, default=str)
    return f"{log.rstrip()}\n{detail}".strip()


# A checkpoint workflow's thumbnail is its demo twin's output (no real weights here to render it with).
DEMO_TWIN = {"p2p_word_swap": "demo_shape_swap", "p2p_refine": "demo_refine", "p2p_reweight": "demo_reweight",
             "p2p_local_blend": "demo_local_blend", "p2p_attention_maps": "demo_dit_attention_maps",
             "real_p2p_direct_inversion": "demo_real_direct_inversion", "real_p2p_null_text": "demo_real_null_text",
             "real_p2p_negative_prompt": "demo_real_direct_inversion",
             "real_p2p_regularized_ddim": "demo_real_null_text", "pix2pix_zero_real": "demo_pix2pix_zero",
             "pix2pix_zero_synthetic": "demo_pix2pix_zero", "flux_word_swap": "demo_dit_shape_swap",
             "flux_word_swap_checkpoint": "demo_dit_shape_swap", "flux_refine": "demo_dit_refine",
             "flux_reweight": "demo_dit_reweight", "flux_attention_maps": "demo_dit_attention_maps",
             "sd35_word_swap": "demo_dit_colour_swap", "qwen_image_word_swap": "demo_dit_colour_swap",
             "flux_flow_edit": "demo_dit_flow_edit", "sd35_flow_edit": "demo_dit_flow_edit",
             "flux_real_p2p_direct_inversion": "demo_dit_real_direct_inversion", "flux_word_mask": "demo_dit_word_mask",
             "flux_pix2pix_zero": "demo_dit_pix2pix_zero", "sd35_pix2pix_zero": "demo_dit_pix2pix_zero",
             "chroma_word_swap": "demo_dit_colour_swap", "z_image_word_swap": "demo_dit_colour_swap",
             "flux2_word_swap": "demo_dit_shape_swap",
             # no demo video model: the image edit of the same kind stands in
             "wan_video_word_swap": "demo_dit_shape_swap", "wan22_video_word_swap": "demo_dit_shape_swap",
             "wan_flow_edit": "demo_dit_flow_edit"}


def write_thumbnails(out: Path, rows, size: int = 256) -> list[Path]:
    """<title>.jpg beside each UI workflow: the first four images its demo run saved (input / source first,
    then the edits) on a 2x2 grid."""
    from PIL import Image

    from scripts.workflows import SPECS, ui_path

    images = {name: imgs for name, status, _, imgs in rows if status == "ok"}
    written = []
    for name in SPECS:
        source = images.get(name) or images.get(DEMO_TWIN.get(name, ""))
        if not source:
            continue
        sheet, cell = Image.new("RGB", (size, size), "white"), size // 2
        for k, img in enumerate(source[:4]):
            pic = Image.open(out / img.get("subfolder", "") / img["filename"]).convert("RGB")
            pic.thumbnail((cell, cell), Image.LANCZOS)
            sheet.paste(pic, ((k % 2) * cell + (cell - pic.width) // 2, (k // 2) * cell + (cell - pic.height) // 2))
        path = ui_path(name).with_suffix(".jpg")
        sheet.save(path, quality=88)
        written.append(path)
    return written


def _image_order(img: dict) -> tuple:
    """Inputs first, then reconstructions, then the sampler's batch (source row, then edits)."""
    name = img["filename"]
    return (0 if "input" in name else 1 if "_rec" in name else 2, name)


def _grid(out: Path, rows, tile: int = 160, label: int = 200) -> Path:
    """One row per workflow: its name, then every saved image (input / source first, then the edits)."""
    from PIL import Image, ImageDraw

    width = label + tile * max([len(r[3]) for r in rows] + [1])
    grid = Image.new("RGB", (width, tile * max(len(rows), 1)), "white")
    draw = ImageDraw.Draw(grid)
    for i, (name, status, _, images) in enumerate(rows):
        draw.text((8, i * tile + tile // 2 - 12), f"{name}\n{status[:24]}", fill="black")
        for j, img in enumerate(images):
            path = out / img.get("subfolder", "") / img["filename"]
            pic = Image.open(path).convert("RGB").resize((tile - 8, tile - 8), Image.NEAREST)
            grid.paste(pic, (label + j * tile + 4, i * tile + 4))
    path = out / "grid.png"
    grid.save(path)
    return path


def _html(rows, model, grid) -> str:
    parts = ["<html><head><meta charset='utf-8'><title>comfyui-attention-edit examples</title></head><body>",
             f"<h1>comfyui-attention-edit example workflows</h1><p>Model: {html.escape(model)}</p>",
             "<p>Each row: input image (real-image workflows), then the source / reconstruction, then the edits."
             f"</p><p><img src='{html.escape(grid.name)}'></p>"]
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
