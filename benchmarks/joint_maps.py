"""Which attention-map definition localises on joint (MM-DiT) attention: measured on the demo DiT.

    source scripts/env.sh && PYTHONPATH=. "$PY" benchmarks/joint_maps.py [--trials 16]

One plain generation per trial records, at every joint block and step, the map of every prompt token under each
definition; the table then scores each definition over block and step ranges by map localisation: the share of
an object (shape) word's map mass inside the drawn object, over the share of the image the object covers (1.0 =
chance; the analyser finds the object in the generated image). Definitions:

- raw: the image queries' softmax over the text keys (q_img · k_txt), averaged over heads: the P2P map.
- output: ConceptAttention's (Helbling et al. 2025): the dot product of the image tokens' attention outputs
  (before the output projection) with the text tokens' outputs, softmaxed over the text tokens.
- output/words: the same, softmaxed over the prompt's own tokens only (no padding, no end token).
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from benchmarks import quality as Q  # noqa: E402

DEFINITIONS = ("raw", "output", "output/words")


def _recorder_class(comfy):
    patch = comfy.pack("attention.comfy_patch")
    joint_edits = comfy.pack("attention.joint_edits")

    class AllMaps(patch.AttentionEditor):
        """Every block's and step's maps of the positive row 0, for each definition: maps[(def, order, step)]."""

        def __init__(self, words: list[int]):
            self.words = words  # text positions of the prompt's own tokens

        def start_run(self, run):
            run.data["all_maps"] = {}

        def joint_attention(self, call, run):
            out = call.plain()
            starts = run.step.chunk_rows(0)
            if starts:
                row = [starts[0]]
                step = run.step.index
                key = (call.layer.order, step)
                maps = run.data["all_maps"]
                maps[("raw",) + key] = joint_edits.text_maps(call.q, call.k, call.text, call.image, row)[0]
                maps[("output",) + key] = joint_edits.output_maps(out, call.text, call.image, row)[0]
                maps[("output/words",) + key] = joint_edits.output_maps(out, call.text, call.image, row,
                                                                         self.words)[0]
            return out

        def finish_run(self, run):
            RESULT.clear()
            RESULT.update(run.data["all_maps"])

    return AllMaps


RESULT: dict = {}


def record(comfy, trials: int, seed: int = 700):
    """[(maps by (definition, block order, step), word slots by object, object coverages, n_blocks, n_steps)]."""
    import nodes as comfy_nodes
    import torch

    from demo_world.analyser import _coverage, analyse
    from demo_world.scene import Obj, Scene, caption

    patch, prompts = comfy.pack("attention.comfy_patch"), comfy.pack("nodes.clip_prompts")
    api = Q._loader()
    api["9"] = {"class_type": "AttnEditTest_Capture", "inputs": {
        "name": "models", "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "latent": ["3", 0]}}
    comfy.run(api)
    got = comfy.captured["models"]
    model, clip, vae, latent = got["model"], got["clip"], got["vae"], got["latent"]
    recorder_class = _recorder_class(comfy)
    rng = np.random.default_rng(seed)
    records = []
    for i in range(trials):
        scene = Q._scene(rng, n=1 + (i % 2))
        text = caption(Scene([Obj(o.shape, o.colour, o.size) for o in scene.objects], scene.background))
        encoding = prompts.prompt_encoding(clip, text, "benchmark", "prompt")
        words = [w.text for w in encoding.primary.words]
        own = sorted({s for j in range(len(words)) for s in encoding.word_slots(j)})
        with torch.inference_mode():
            (out,) = comfy_nodes.common_ksampler(patch.patch_model(model, recorder_class(own)), 7000 + i, Q.STEPS,
                                                 Q._setup.cfg, "euler", Q._setup.scheduler,
                                                 prompts.encode_rows(clip, [text]), prompts.encode_rows(clip, [""]),
                                                 latent)
            found = analyse(Q._uint8(vae.decode(out["samples"])[0])).objects
        maps = {k: v.float().cpu() for k, v in RESULT.items()}
        objects = []
        for o in found:
            if o.shape not in words or words.count(o.shape) > 1:
                continue
            objects.append((encoding.word_slots(words.index(o.shape)), o))
        records.append((maps, objects, _coverage))
    return records


def localisation(records, definition: str, blocks, steps, grid: tuple[int, int]) -> float:
    """Mean inside share / mean chance over every object of every trial, maps averaged over blocks × steps."""
    inside, chance = [], []
    h, w = grid
    for maps, objects, coverage in records:
        keys = [(definition, b, s) for b in blocks for s in steps if (definition, b, s) in maps]
        if not keys:
            continue
        avg = sum(maps[k] for k in keys) / len(keys)  # [HW, T]
        for slots, o in objects:
            m = avg[:, slots].sum(-1).reshape(h, w).numpy()
            m = m / m.sum()
            cover = coverage(o.shape, o.cx * w, o.cy * h, o.extent * w, h, w)
            inside.append(float((m * cover).sum()))
            chance.append(float(cover.mean()))
    return float(np.mean(inside) / np.mean(chance)) if inside else float("nan")


def run(trials: int = 16) -> str:
    from tests.comfy_harness import Comfy

    comfy = Comfy(pytorch_attention=True)
    with Q.architecture("dit"):
        records = record(comfy, trials)
    n_blocks = 1 + max(k[1] for k in records[0][0])
    n_steps = 1 + max(k[2] for k in records[0][0])
    hw = next(iter(records[0][0].values())).shape[0]
    side = int(round(hw ** 0.5))
    block_sets = {"every block": range(n_blocks), "double (0-1)": range(2), "single (2-5)": range(2, n_blocks),
                  "last two single": range(n_blocks - 2, n_blocks)}
    block_sets.update({f"block {b}": [b] for b in range(n_blocks)})
    step_sets = {"every step": range(n_steps), "second half": range(n_steps // 2, n_steps),
                 "first half": range(n_steps // 2)}
    objects = sum(len(r[1]) for r in records)
    lines = [f"Map localisation (inside share / chance), demo DiT, {trials} trials, {objects} objects:", "",
             "| definition | blocks | " + " | ".join(step_sets) + " |", "|---|---|" + "---|" * len(step_sets)]
    for definition in DEFINITIONS:
        for bname, blocks in block_sets.items():
            cells = [f"{localisation(records, definition, blocks, steps, (side, side)):.2f}×"
                     for steps in step_sets.values()]
            lines.append(f"| {definition} | {bname} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    print(run(ap.parse_args().trials))
