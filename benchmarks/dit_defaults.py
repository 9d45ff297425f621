"""How P2P's joint-attention choices measure on the demo DiT: which blocks take the source's whole map while
self_replace is active, and the injection windows. Prints one table row per alternative (the same trials for each).

    source scripts/env.sh && PYTHONPATH=. "$PY" benchmarks/dit_defaults.py [--trials 16]
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import quality as Q  # noqa: E402

# P2PEditor's joint_self_blocks, by block order (the demo DiT: double blocks 0-1, single blocks 2-5)
BLOCKS = {"every block (default)": None, "double blocks only": frozenset({0, 1}),
          "single blocks only": frozenset({2, 3, 4, 5}), "no block (text columns only)": frozenset()}
WINDOWS = {"cross 0.8 / self 0.4 (default)": (0.8, 0.4), "cross 0.8 / self 0.2": (0.8, 0.2),
           "cross 0.8 / self 0.6": (0.8, 0.6), "cross 1.0 / self 0.4": (1.0, 0.4), "cross 0.4 / self 0.4": (0.4, 0.4)}


def _with_blocks(comfy, blocks):
    editor = comfy.pack("attention.p2p_editor").P2PEditor
    original = editor.__init__

    def init(self, plan, joint_self_blocks=None, **kwargs):
        original(self, plan, blocks, **kwargs)

    editor.__init__ = init
    return lambda: setattr(editor, "__init__", original)


def run(trials: int = 16) -> str:
    from tests.comfy_harness import Comfy

    comfy = Comfy(pytorch_attention=True)
    lines = ["| alternative | edit | success | centre shift | silhouette IoU | background change |", "|---|---|---|---|---|---|"]
    naive_done = set()

    def rows(name):
        for attr in ("colour", "shape"):
            p2p, naive = Q.p2p_swap(comfy, trials, attr, naive_baseline=attr not in naive_done)
            lines.append(f"| {name} | {attr} | {p2p.mean('success'):.0%} | {p2p.mean('shift'):.3f} | "
                         f"{p2p.mean('silhouette_iou'):.2f} | {p2p.mean('background_change'):.1f} |")
            if attr not in naive_done:
                naive_done.add(attr)
                lines.append(f"| naive baseline | {attr} | {naive.mean('success'):.0%} | {naive.mean('shift'):.3f} | "
                             f"{naive.mean('silhouette_iou'):.2f} | {naive.mean('background_change'):.1f} |")
            print(lines[-1], flush=True)

    with Q.architecture("dit"):
        for name, blocks in BLOCKS.items():
            restore = _with_blocks(comfy, blocks)
            try:
                rows(name)
            finally:
                restore()
        defaults = dict(Q.P2P)
        for name, (cross, self_) in list(WINDOWS.items())[1:]:
            Q.P2P.update(cross_replace=cross, self_replace=self_)
            try:
                rows(name)
            finally:
                Q.P2P.clear()
                Q.P2P.update(defaults)
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    print(run(ap.parse_args().trials))
