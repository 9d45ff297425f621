"""Which reweight mechanism makes a word's weight act monotonically on joint (MM-DiT) attention: measured on the
demo DiT over the paper's range of factors, for a size word (the object's area) and a colour word (its colour's
saturation), Spearman correlation per prompt, averaged. The same prompts and seeds for every mechanism.

    source scripts/env.sh && PYTHONPATH=. "$PY" benchmarks/dit_reweight.py [--trials 8] [--mechanisms values,logits]

Mechanisms (attention/p2p_editor.py JOINT_REWEIGHT), for the image queries of the reweighted row inside its window:
- values: the word's text values times the factor (P2P's equalizer on the map columns, no renormalisation);
- logits: the word's text keys times the factor (its logits scaled; the softmax renormalises);
- values+text: values as above, and the word's values for the row's text queries too (the text stream reads the
  reweighted word).
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import quality as Q  # noqa: E402

MECHANISMS = ("values", "logits", "values+text")


def run(trials: int = 8, mechanisms=MECHANISMS, architecture: str = "dit") -> str:
    from tests.comfy_harness import Comfy

    comfy = Comfy(pytorch_attention=True)
    editor = comfy.pack("attention.p2p_editor")
    default = editor.JOINT_REWEIGHT
    lines = [f"Reweight on the demo {architecture.upper()} ({trials} prompts per word kind, factors "
             f"{', '.join(f'{f:g}' for f in Q.REWEIGHT_FACTORS)}):", "",
             "| mechanism | size word: Spearman (n) | area by factor ('small' negative) | colour word: Spearman (n) | "
             "saturation by factor |", "|---|---|---|---|---|"]
    with Q.architecture(architecture):
        for mechanism in mechanisms:
            editor.JOINT_REWEIGHT = mechanism
            try:
                size, colour = Q.p2p_reweight(comfy, trials, "size"), Q.p2p_reweight(comfy, trials, "colour")
            finally:
                editor.JOINT_REWEIGHT = default
            lines.append(f"| {mechanism}{' (default)' if mechanism == default else ''} | {size['spearman']:.2f} "
                         f"({size['n']}) | " + " / ".join(f"{v:.2f}" for v in size["measure"].values()) +
                         f" | {colour['spearman']:.2f} ({colour['n']}) | " +
                         " / ".join(f"{v:.2f}" for v in colour["measure"].values()) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--mechanisms", default=",".join(MECHANISMS))
    opts = ap.parse_args()
    print(run(opts.trials, opts.mechanisms.split(",")), flush=True)
