"""Where a word acts on a joint-attention (MM-DiT) model: the one map definition the maps node, local blend and
the guided sampler share.

Definition: ConceptAttention's output maps (Helbling et al. 2025; joint_edits.output_maps): the dot product of
each image token's attention output with each text token's, softmaxed over the text tokens, averaged over the
last third of the model's joint blocks (by order: the demo DiT's blocks 4-5 of 6; Flux's single blocks 19-37;
SD3.5 Large's blocks 25-37; Qwen-Image's 40-59) and over the second half of the steps (the maps node; local blend
and the guided sampler use every step so far, since they act during the first half too).

Why, measured on the demo DiT (benchmarks/joint_maps.py, 16 trials, share of an object word's map mass inside
the drawn object over the share of the image it covers): raw image→text attention (the P2P map, q_img·k_txt)
averaged over every block and step 1.4× chance, over the last third 1.8×; output maps over every block 1.8×
(2.0× second half), over the double blocks 1.0×, over the last third 2.6× (3.6× second half). Softmaxing over
the prompt's own tokens only (no padding) is slightly worse (3.4×).
"""
from __future__ import annotations

import math

import torch

from .joint_edits import output_maps

MAP_BLOCK_SHARE = 1 / 3  # the later blocks, by order


def map_orders(layers) -> frozenset[int]:
    """Orders of the joint blocks whose maps count: the last third (at least one)."""
    orders = sorted(layer.order for layer in layers)
    n = max(1, math.ceil(len(orders) * MAP_BLOCK_SHARE))
    return frozenset(orders[-n:])


def late_step(index: int, total: int) -> bool:
    """The second half of a run's steps (the maps node's window)."""
    return index >= total // 2


def run_map_orders(run) -> frozenset[int]:
    """map_orders of a run's joint layers, computed once per run."""
    orders = run.data.get("map_orders")
    if orders is None:
        orders = run.data["map_orders"] = map_orders(run.layers)
    return orders


def block_word_maps(call, out: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """This block's maps of the given rows, [R, HW, T] in fp32 (rows sum to 1 over the text tokens)."""
    return output_maps(out, call.text, call.image, rows)
