"""The Prompt-to-Prompt editor: applies a P2PPlan inside ComfyUI's attention patches.

Per UNet call the positive chunk holds the N prompts (row 0 = source). Cross-attention of rows 1.. is
edited through the value-side identity in edits.py; self-attention of rows 1.. takes the source maps at
the low-resolution levels during self_replace; local blend accumulates the blend words' maps at the
"16×16" level (or the level the user picks) and blends the denoised prediction after CFG. Unconditional rows
are never touched.
"""
from __future__ import annotations

import dataclasses
import uuid

import torch

from .backends.base import AttentionEditor, CrossCall, JointCall, RunState, plain_attention
from .edits import (attention_probabilities, chunked_token_maps, cross_coefficients, inject_self_attention,
                    mix_cross_attention, row_kinds, schedule_step, self_window_active, token_maps)
from .joint_edits import mix_joint_attention
from .joint_maps import block_word_maps, run_map_orders
from .local_blend import JOINT_POOL, apply_blend, blend_mask, user_region, word_maps
from .p2p_plan import P2PPlan

# Official P2P injects self-attention and reads local-blend maps where a layer has at most 16² tokens
# (ptp_utils / prompt-to-prompt_stable.ipynb: `attn.shape[2] <= 16 ** 2`), which at SD1.x 512 px is latent/4,
# two halvings below the latent. Larger latents keep latent/4 (SDXL's 32² layers at 1024 px, its deepest
# level: equivalent layers, not an absolute size); smaller latents keep the official absolute bound, so a
# 16x16 latent (the demo model, SD1.x at 128 px) edits every level as the official code would.
INJECTION_LEVEL = 2
OFFICIAL_MAX_TOKENS = 16 ** 2


def edit_level(run: RunState, extra_options: dict) -> int:
    """Computed on the first attention call of a run (the latent size is fixed within a run)."""
    level = run.data.get("edit_level")
    if level is None:
        level = run.data["edit_level"] = _edit_level(run, extra_options)
    return level


def _edit_level(run: RunState, extra_options: dict) -> int:
    h, w = extra_options["activations_shape"][-2:]
    latent_tokens = h * w * 4 ** run.layer(extra_options).level
    level = 0
    while level < INJECTION_LEVEL and latent_tokens / 4 ** level > OFFICIAL_MAX_TOKENS:
        level += 1
    return min(level, run.max_level)


# How Reweight acts on joint attention (benchmarks/dit_reweight.py measures the three on the demo DiT):
# "values" the word's text values × factor for the image queries (the UNet rule); "logits" its text keys × factor
# (the logits scaled, the softmax renormalising); "values+text" as "values", and for the row's text queries too.
JOINT_REWEIGHT = "values"
ROWS_MARK = "attn_edit_rows"  # conditioning key: which P2P edit produced these rows
EDITOR_MARK = "attn_edit_editor"  # conditioning key: that edit itself (P2P Step Range patches another model with it)


class P2PEditor(AttentionEditor):
    shares_row_noise = True

    def __init__(self, plan: P2PPlan, joint_self_blocks: frozenset[int] | None = None,
                 user_mask: torch.Tensor | None = None):
        """joint_self_blocks: joint-attention blocks (by order) that take the source's image-key block during
        self_replace; None = every block. user_mask: [M, H, W] in 0-1, M = 1 or one per edited prompt: the region
        the edits may change."""
        self.plan = plan
        self.user_mask = user_mask
        self.node_name = plan.node_name
        self.joint_self_blocks = joint_self_blocks
        self.key = uuid.uuid4().hex  # the node marks its positive output with it (ROWS_MARK)

    def check_conds(self, conds: dict) -> None:
        marks = [c.get(ROWS_MARK) for group in conds.values() for c in group]
        if self.key not in marks:
            raise ValueError(
                f"{self.node_name}: the sampler's positive conditioning is not this node's 'positive' output, so "
                "its rows are not the source and edited prompts and the edit would do nothing. Connect this node's "
                "positive output (through FluxGuidance or other conditioning nodes if you like) to the sampler's "
                "positive input.")

    def start_run(self, run: RunState) -> None:
        run.data["summary"] = {"edited_cross_calls": 0, "injected_self_calls": 0, "blend_updates": 0,
                               "blend_applied": 0}

    def _check_layout(self, run: RunState) -> list[int]:
        step = run.step
        if step.rows_per_chunk != self.plan.n_prompts:
            raise ValueError(
                f"{self.node_name}: the sampler got a latent batch of {step.rows_per_chunk} but this edit has "
                f"{self.plan.n_prompts} prompts (source + edits). Connect this node's LATENT output to the "
                "sampler (one row per prompt, identical noise) and do not batch or repeat it.")
        return step.chunk_rows(0)

    def _coefficients(self, run: RunState, device):
        """(a, b, mappers, row kinds) for this step, computed once per step and device (not per layer)."""
        step = run.step
        cached = run.data.get("coefficients")
        if cached is None or cached[0] != (step.index, step.total, device):
            a, b = cross_coefficients(self.plan.rows, step.index, step.total)
            kinds = row_kinds(a, b)
            cached = ((step.index, step.total, device), a.to(device), b.to(device), self.plan.mappers.to(device),
                      kinds)
            run.data["coefficients"] = cached
        return cached[1:]

    def self_attention(self, q, k, v, heads, extra_options, run: RunState):
        step = run.step
        if (run.layer(extra_options).level >= edit_level(run, extra_options)
                and self_window_active(self.plan.self_start, self.plan.self_end, step.index, step.total)):
            starts = self._check_layout(run)
            if starts:
                q, k = inject_self_attention(q, k, starts, self.plan.n_prompts)
                run.data["summary"]["injected_self_calls"] += 1
        return plain_attention(q, k, v, heads, extra_options)

    def cross_attention(self, q, k, v, heads, extra_options, run: RunState):
        starts = self._check_layout(run)
        if not starts:
            return plain_attention(q, k, v, heads, extra_options)
        level = run.layer(extra_options).level
        if self.plan.blend_tokens is not None and level == self._blend_level(run, extra_options):
            self._accumulate_blend_maps(q, k, heads, extra_options, run, starts[0])
        a, b, mappers, kinds = self._coefficients(run, q.device)
        if all(kinds[1]):  # every edited row is outside its windows: plain attention
            return plain_attention(q, k, v, heads, extra_options)
        run.data["summary"]["edited_cross_calls"] += 1

        def attend(q_, k_, v_):
            return plain_attention(q_, k_, v_, heads, extra_options)

        return mix_cross_attention(q, k, v, attend, starts, mappers, a, b, kinds)

    def _check_text_len(self, text_len: int) -> None:
        if text_len != self.plan.text_len:
            raise ValueError(
                f"{self.node_name}: the model attends to {text_len} text tokens but the prompts were encoded to "
                f"{self.plan.text_len}. A negative prompt whose encoding is longer than the positive's makes "
                "ComfyUI repeat the positive, which changes the attention: shorten the negative prompt (or use "
                "the same text encoder for both).")

    def video_attention(self, call: CrossCall, run: RunState):
        """Wan: the text cross-attention is edited as a UNet's (mix_cross_attention: mappers, windows, reweight);
        during self_replace the edited rows' self-attention takes the source row's queries and keys, so its map
        is the source's, computed by ComfyUI's attention (SDPA) and never stored, over the row's own values."""
        starts = self._check_layout(run)
        if not starts:
            return call.plain()
        step = run.step
        if call.kind == "self":
            if not self_window_active(self.plan.self_start, self.plan.self_end, step.index, step.total):
                return call.plain()
            q, k = inject_self_attention(call.q, call.k, starts, self.plan.n_prompts)
            run.data["summary"]["injected_self_calls"] += 1
            return call.attend(q, k, call.v)
        self._check_text_len(call.k.shape[1])
        if self.plan.blend_tokens is not None and call.layer.order in run_map_orders(run):
            rows = list(range(starts[0], starts[0] + self.plan.n_prompts))
            words = word_maps(chunked_token_maps(call.q, call.k, call.heads, rows), self.plan.blend_tokens)
            self._add_blend_maps(words.reshape(len(rows), *call.grid), run)
        a, b, mappers, kinds = self._coefficients(run, call.q.device)
        if all(kinds[1]):
            return call.plain()
        run.data["summary"]["edited_cross_calls"] += 1
        return mix_cross_attention(call.q, call.k, call.v, call.attend, starts, mappers, a, b, kinds)

    def joint_attention(self, call: JointCall, run: RunState):
        starts = self._check_layout(run)
        if not starts:
            return call.plain()
        self._check_text_len(call.text.stop - call.text.start)
        step = run.step
        a, b, mappers, kinds = self._coefficients(run, call.q.device)
        inject = (self_window_active(self.plan.self_start, self.plan.self_end, step.index, step.total)
                  and (self.joint_self_blocks is None or call.layer.order in self.joint_self_blocks))
        if all(kinds[1]) and not inject:
            out = call.plain()
        else:
            summary = run.data["summary"]
            summary["edited_joint_calls"] = summary.get("edited_joint_calls", 0) + 1
            if inject:
                summary["injected_self_calls"] += 1
            a, key_scale, text_scale = self._joint_reweight(run, a)
            out = mix_joint_attention(call.q, call.k, call.v, call.text, call.attend, starts, mappers, a, b, kinds,
                                      inject, key_scale, text_scale)
        if self.plan.blend_tokens is not None and call.layer.order in run_map_orders(run):
            self._accumulate_joint_blend_maps(call, out, run, starts[0])
        return out

    def _joint_reweight(self, run: RunState, a: torch.Tensor):
        """(text-value weights, text-key scale or None, text-query value scale or None) for JOINT_REWEIGHT."""
        if JOINT_REWEIGHT == "values":
            return a, None, None
        step = run.step
        cached = run.data.get("unweighted")
        if cached is None or cached[0] != (step.index, step.total, a.device):
            plain_rows = [dataclasses.replace(row, reweight=torch.ones_like(row.reweight)) for row in self.plan.rows]
            unweighted, _ = cross_coefficients(plain_rows, step.index, step.total)
            factors = torch.stack([row.reweight for row in self.plan.rows])
            scale = torch.where(unweighted > 0, factors, torch.ones_like(factors)).to(a)
            cached = run.data["unweighted"] = ((step.index, step.total, a.device), unweighted.to(a), scale)
        _, unweighted, scale = cached
        if JOINT_REWEIGHT == "logits":
            return unweighted, scale, None
        return a, None, scale

    def _accumulate_joint_blend_maps(self, call: JointCall, out, run: RunState, start: int):
        """Local blend's maps on joint attention: joint_maps.py's definition, every step so far."""
        rows = list(range(start, start + self.plan.n_prompts))
        h, w = run.step.grid
        maps = block_word_maps(call, out, rows)  # [N, HW, T]
        self._add_blend_maps(word_maps(maps, self.plan.blend_tokens).reshape(len(rows), h, w), run)

    @staticmethod
    def _add_blend_maps(words: torch.Tensor, run: RunState) -> None:
        """Accumulates the blend words' maps [N, (F,) h, w] over the run's calls."""
        acc = run.data.get("blend_maps")
        run.data["blend_maps"] = words if acc is None or acc.shape != words.shape else acc + words
        run.data["summary"]["blend_updates"] += 1
        run.data["summary"]["blend_map_size"] = tuple(int(s) for s in words.shape[1:])

    def _blend_level(self, run: RunState, extra_options: dict) -> int:
        if self.plan.blend_level is None:
            return edit_level(run, extra_options)
        return min(self.plan.blend_level, run.max_level)

    def _accumulate_blend_maps(self, q, k, heads, extra_options, run: RunState, start: int):
        rows = list(range(start, start + self.plan.n_prompts))
        maps = token_maps(attention_probabilities(q, k, heads, rows), self.plan.text_len)  # [N, HW, T]
        h, w = extra_options["activations_shape"][-2:]
        self._add_blend_maps(word_maps(maps, self.plan.blend_tokens).reshape(len(rows), h, w), run)

    def post_cfg(self, denoised: torch.Tensor, args: dict, run: RunState) -> torch.Tensor:
        """Local blend on the denoised prediction (sampler-agnostic; see attention/local_blend.py): the user's mask
        at every step, the blend words' mask from blend_start on, their product when both are given."""
        step = run.step
        if step is None or denoised.shape[0] != self.plan.n_prompts:
            return denoised
        mask = self._user_region(denoised, run)
        acc = run.data.get("blend_maps")
        if acc is not None and step.index >= schedule_step(self.plan.blend_start, step.total):
            # UNet and Wan (raw cross-attention maps): the official 3×3; joint attention's output maps: JOINT_POOL
            pool = JOINT_POOL if len(run.step.grid) == 2 and run.step.grid != (0, 0) else 3
            words = blend_mask(acc, self.plan.blend_threshold, tuple(denoised.shape[-2:]), pool).to(denoised.device)
            if words.ndim < denoised.ndim:  # image maps on a latent with a frame axis (Qwen-Image): every frame
                words = words.reshape(words.shape[0], 1, *([1] * (denoised.ndim - 4)), *words.shape[-2:])
            run.data["summary"]["blend_applied"] += 1
            run.data["summary"]["blend_mask"] = words.detach().cpu()
            mask = words if mask is None else mask * words
        if mask is None:
            return denoised
        return apply_blend(denoised, mask)

    def _user_region(self, denoised: torch.Tensor, run: RunState) -> torch.Tensor | None:
        """The user's mask at the latent's size, one per edited row ([E, 1, (T,) H, W]); computed once per run."""
        if self.user_mask is None:
            return None
        cached = run.data.get("user_region")
        if cached is None or cached.shape[2:] != denoised.shape[2:] or cached.device != denoised.device:
            cached = user_region(self.user_mask, denoised.shape[0] - 1, tuple(denoised.shape[2:]))
            cached = run.data["user_region"] = cached.to(denoised)
            run.data["summary"]["user_mask_covers"] = float(cached.mean())
        return cached
