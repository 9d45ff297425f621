"""Prompt-to-Prompt on joint (MM-DiT) attention, in plain torch.

A joint block attends over one sequence [text; image]. Its softmax map, seen from the image queries, has an
image-query × text-key block (what cross-attention is in a UNet: where each word acts) and an
image-query × image-key block (self-attention), normalised *together*. The UNet rules of edits.py
(P_i' = P_0 M_i A_i + P_i B_i on the text columns) therefore need a choice of what happens to the image
columns and to the normaliser. Ours, for an edited row i and its source row 0 (image queries only):

- inside the cross window, self-injection off for this block ("splice"): the text-key logits are the
  source's, the image-key logits the row's own, and one joint softmax normalises them together:
      P_i' = softmax([q_0 k_0ᵀ | q_i k_iᵀ_img] / √d),  text values M_i (A_i ⊙ V_i), image values V_i.
  This is P2P's rule with the joint softmax kept: a word's map and its share against the image keys come
  from the source, the row's own image block is only renormalised around it. Implemented with one fast
  attention call on a doubled head width: q' = √2 [q_0, q_i], text keys [k_0, 0], image keys [0, k_i]
  (so q'·k' is exactly the wanted logit at the backend's 1/√(2d) scale), values zero-padded to 2d.
- inside the cross window with self-injection on for this block: the whole map is the source's
  (text and image columns), P_i' = P_0 on [M_i (A_i ⊙ V_i^txt); V_i^img]: attending with the source's q
  and k, one ordinary attention call (the UNet's attn1 + attn2 injection in one).
- Refine's own-map share (B_i ≠ 0: unaligned words, tokens outside their window) is added as in the UNet,
  from the row's own joint map restricted to the text columns: + P_i [B_i ⊙ V_i^txt; 0].
- Text-query rows of an edited row, the source row and unconditional rows attend as the model would: the
  edited prompt's text tokens evolve with their own words, as an edited UNet prompt's embedding does.

Values on the text columns go through the mapper exactly as in edits.py ((P M) V = P (M V)).
"""
from __future__ import annotations

import torch

from .edits import map_values, scale_values


def _text_values(v_text: torch.Tensor) -> torch.Tensor:
    """[E, H, T, D] -> [E, T, H·D] (token axis in the middle, as edits.map_values expects)."""
    e, h, t, d = v_text.shape
    return v_text.permute(0, 2, 1, 3).reshape(e, t, h * d)


def _heads_back(v: torch.Tensor, heads: int) -> torch.Tensor:
    e, t, hd = v.shape
    return v.reshape(e, t, heads, hd // heads).permute(0, 2, 1, 3)


def splice_attention(attend, q_src, k_src, q_own, k_own, v, text: slice):
    """softmax over [q_src·k_src on text keys | q_own·k_own on the other keys] applied to v, for queries
    q_src/q_own [E, H, Lq, D] and keys/values [E, H, L, D]; returns [E, Lq, H·D] (see the module docstring)."""
    e, h, lq, d = q_src.shape
    scale = 2.0 ** 0.5
    q2 = torch.cat([q_src, q_own], dim=-1) * scale
    k2 = torch.zeros(*k_own.shape[:-1], 2 * d, dtype=k_own.dtype, device=k_own.device)
    k2[:, :, text, :d] = k_src[:, :, text]
    other = torch.ones(k_own.shape[2], dtype=torch.bool, device=k_own.device)
    other[text] = False
    k2[:, :, other, d:] = k_own[:, :, other]
    v2 = torch.cat([v, torch.zeros_like(v)], dim=-1)
    out = attend(q2, k2, v2)  # [E, Lq, H·2D]
    return out.reshape(e, lq, h, 2 * d)[..., :d].reshape(e, lq, h * d)


def mix_joint_attention(q, k, v, text: slice, attend, chunk_starts: list[int], mappers, a, b,
                        kinds: tuple[list[bool], list[bool]], inject_image: bool, key_scale=None,
                        text_value_scale=None):
    """Joint-attention output [B, L, H·D] with every positive chunk's rows 1.. edited from its row 0.

    q/k/v [B, H, L, D]; text: the text token span (text first); mappers [E, T, T]; a, b [E, T] (edits.py
    cross_coefficients); kinds = row_kinds(a, b); inject_image: the source's image-key block too."""
    n_edits = mappers.shape[0]
    source_only, untouched = kinds
    edited = [(start, e) for start in chunk_starts for e in range(n_edits) if inject_image or not untouched[e]]
    if not edited:
        return attend(q, k, v)
    heads = q.shape[1]
    rows = torch.tensor([start + 1 + e for start, e in edited])
    sources = torch.tensor([start for start, _ in edited])
    index = torch.tensor([e for _, e in edited])
    image_q = torch.ones(q.shape[2], dtype=torch.bool)
    image_q[text] = False
    image_idx = image_q.nonzero().flatten()

    v_rows = v[rows]
    v_text = _text_values(v_rows[:, :, text])
    v_mapped = v_rows.clone()
    v_mapped[:, :, text] = _heads_back(map_values(mappers[index], a[index], v_text), heads)
    q_src, q_own = q[sources][:, :, image_idx], q[rows][:, :, image_idx]
    k_src = k[sources]
    if key_scale is not None:
        k_src = k_src.clone()
        k_src[:, :, text] = k_src[:, :, text] * key_scale[index].to(k_src)[:, None, :, None]
    if inject_image:
        edited_out = attend(q_src, k_src, v_mapped)
    else:
        edited_out = splice_attention(attend, q_src, k_src, q_own, k[rows], v_mapped, text)
    own_rows = [i for i, (_, e) in enumerate(edited) if not source_only[e]]
    if own_rows:
        sel = torch.tensor(own_rows)
        v_own = torch.zeros_like(v_rows[sel])
        v_own[:, :, text] = _heads_back(scale_values(b[index[sel]], v_text[sel]), heads)
        edited_out[sel] += attend(q_own[sel], k[rows[sel]], v_own)

    # everything else attends as the model would: other rows whole, edited rows' text queries
    edited_rows = {start + 1 + e for start, e in edited}
    plain_rows = torch.tensor([r for r in range(q.shape[0]) if r not in edited_rows], dtype=torch.long)
    v_for_text = v[rows]
    if text_value_scale is not None:
        v_for_text = v_for_text.clone()
        v_for_text[:, :, text] = v_for_text[:, :, text] * text_value_scale[index].to(v)[:, None, :, None]
    text_out = attend(q[rows][:, :, text], k[rows], v_for_text)
    out = torch.empty(q.shape[0], q.shape[2], edited_out.shape[-1], dtype=edited_out.dtype, device=edited_out.device)
    if len(plain_rows):
        out[plain_rows] = attend(q[plain_rows], k[plain_rows], v[plain_rows])
    out[rows[:, None], image_idx[None, :]] = edited_out
    out[rows, text] = text_out
    return out


def text_maps(q, k, text: slice, image: slice, rows: list[int]) -> torch.Tensor:
    """Image-query × text-key maps of the given rows, softmax over the text keys in fp32 and averaged over
    heads: [R, HW, T]. Only the text columns are computed (HW × T per head, never HW × HW)."""
    qi = q[rows][:, :, image].float()
    kt = k[rows][:, :, text].float()
    probs = torch.softmax(qi @ kt.transpose(-1, -2) * qi.shape[-1] ** -0.5, dim=-1)
    return probs.mean(1)


def output_maps(out, text: slice, image: slice, rows: list[int], tokens: list[int] | None = None) -> torch.Tensor:
    """ConceptAttention's maps (Helbling et al. 2025, concept_attention/flux/dit_block.py): the dot product of each
    image token's attention output (before the output projection) with each text token's, softmaxed over the
    text tokens (or over `tokens`, positions within the text span; others get 0), in fp32: [R, HW, T].
    out [B, L, C] is the joint attention's output."""
    o = out[rows].float()
    oi, ot = o[:, image], o[:, text]
    scores = oi @ ot.transpose(-1, -2)
    if tokens is None:
        return torch.softmax(scores, dim=-1)
    maps = torch.zeros_like(scores)
    maps[..., tokens] = torch.softmax(scores[..., tokens], dim=-1)
    return maps
