"""pix2pix-zero cross-attention guidance (Parmar et al. 2023, §3.2, eq. 3): the edited branch's
cross-attention maps are pulled towards the reference (reconstruction) branch's maps at the same step,

    x_t ← x_t − λ_xa ∇_{x_t} Σ_layers ‖M_t^edit − M_t^ref‖²

The loss sums over positions and tokens and averages over heads, per layer (edit_pipeline.py:145-150,
`((curr-ref)**2).sum((1,2)).mean(0)`), summed over every cross-attention layer. Maps are fp32 softmax.
Only the current step's reference maps are held (the official code stores every map of every step).

On joint attention (Flux, SD3/3.5, Qwen-Image) M_t is the pack's one joint map definition
(joint_maps.py: ConceptAttention's output maps of the later third of the blocks, fp32, softmax over the text
tokens), summed over those blocks in the same way; the raw image→text attention of a joint block is too
diffuse to say where a word acts. On Wan's separate cross-attention M_t is the video-query × text-key map of the
same later blocks, head-averaged (computed a chunk of queries at a time).
"""
from __future__ import annotations

import torch

from .backends.base import AttentionEditor, CrossCall, JointCall, RunState, plain_attention
from .edits import attention_probabilities, chunked_token_maps
from .joint_maps import block_word_maps, run_map_orders

RECORD, GRAD, MEASURE, OFF = "record", "grad", "measure", "off"


def map_distance(current: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """[heads, HW, T] maps -> Σ_{HW,T} (current - reference)², averaged over heads."""
    return ((current - reference) ** 2).sum((-2, -1)).mean(0)


def probabilities_and_output(q, k, v, heads: int):
    """Differentiable fp32 softmax maps [B, heads, HW, T] and the attention output [B, HW, inner]."""
    probs = attention_probabilities(q, k, heads)
    b, hw, inner = q.shape
    d = inner // heads
    vh = v.float().reshape(b, v.shape[1], heads, d).transpose(1, 2)
    out = (probs @ vh).transpose(1, 2).reshape(b, hw, inner).to(q.dtype)
    return probs, out


class GuidanceEditor(AttentionEditor):
    """Cross-attention hooks for the guided sampler. The sampler sets run.data["mode"] before each UNet call:
    record   store the positive row's maps of every layer (reference branch, no grad),
    grad     accumulate the differentiable distance to the stored maps into run.data["loss"],
    measure  accumulate the (detached) distance into run.data["distance"] (edited branch, no grad),
    off      plain attention.
    The same modes hold for joint attention, on the blocks joint_maps.run_map_orders picks."""

    node_name = "AttnEdit_CrossAttnGuidedSampler"

    def start_run(self, run: RunState) -> None:
        run.data.update(mode=OFF, reference={}, loss=None, distance=0.0)

    def cross_attention(self, q, k, v, heads, extra_options, run: RunState):
        mode = run.data["mode"]
        starts = run.step.chunk_rows(0)
        if mode == OFF or not starts:
            return plain_attention(q, k, v, heads, extra_options)
        block = extra_options["block"]
        key = (block[0], block[1], extra_options.get("block_index", 0))
        row = starts[0]
        if mode == GRAD:
            probs, out = probabilities_and_output(q, k, v, heads)
            reference = run.data["reference"].get(key)
            if reference is not None:
                term = map_distance(probs[row], reference)
                run.data["loss"] = term if run.data["loss"] is None else run.data["loss"] + term
            return out
        probs = attention_probabilities(q, k, heads, [row])[0]
        if mode == RECORD:
            run.data["reference"][key] = probs.detach()
        elif mode == MEASURE and key in run.data["reference"]:
            run.data["distance"] += float(map_distance(probs, run.data["reference"][key]))
        return plain_attention(q, k, v, heads, extra_options)

    def joint_attention(self, call: JointCall, run: RunState):
        mode = run.data["mode"]
        starts = run.step.chunk_rows(0)
        if mode == OFF or not starts or call.layer.order not in run_map_orders(run):
            return call.plain()
        out = call.plain()  # differentiable in grad mode: ComfyUI's attention function under autograd
        self._use_maps(call.layer, block_word_maps(call, out, [starts[0]]), run)  # [1, HW, T]
        return out

    @staticmethod
    def _use_maps(key, maps: torch.Tensor, run: RunState) -> None:
        """One block's maps in the run's mode: stored (record), added to the loss (grad) or measured."""
        mode = run.data["mode"]
        if mode == GRAD:
            reference = run.data["reference"].get(key)
            if reference is not None:
                term = map_distance(maps, reference)
                run.data["loss"] = term if run.data["loss"] is None else run.data["loss"] + term
        elif mode == RECORD:
            run.data["reference"][key] = maps.detach()
        elif mode == MEASURE and key in run.data["reference"]:
            run.data["distance"] += float(map_distance(maps, run.data["reference"][key]))

    def video_attention(self, call: CrossCall, run: RunState):
        mode = run.data["mode"]
        starts = run.step.chunk_rows(0)
        if mode == OFF or not starts or call.kind != "cross" or call.layer.order not in run_map_orders(run):
            return call.plain()
        maps = chunked_token_maps(call.q, call.k, call.heads, [starts[0]])  # [1, L, T], differentiable in grad mode
        self._use_maps(call.layer, maps, run)
        return call.plain()
