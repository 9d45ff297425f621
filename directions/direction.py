"""pix2pix-zero edit directions in text-embedding space.

A direction is mean(target sentence embeddings) - mean(source sentence embeddings) over the full
77-token sequence (official: src/utils/edit_directions.py:22-27, embeddings from
src/make_edit_direction.py:14-28), added to the conditional embedding at sampling time
(src/utils/edit_pipeline.py:121-123). For SDXL the pooled vector gets its own direction, since it
conditions the UNet too.

Other text encoders (T5 for Flux, CLIP-L/G + T5 for SD3.5, Qwen2.5-VL for Qwen-Image, the demo DiT's T5)
give sequences of other lengths. Sentences are lined up in one of two ways (`alignment`):
- "position": every sentence encodes to the same length L (the encoder pads: CLIP's 77, Flux's T5 to 77, SD3's
  77 + 77), and the direction is the per-position mean difference over the padded sequence, [L, D], as the
  paper does for CLIP. A conditioning of length L gets it position by position; CLIP's 77-token chunks of a
  long prompt each get it.
- "mean": the encoder does not pad (Qwen-Image's sentences differ in length), so per-position means would
  average unrelated tokens. The direction is the difference of the sentences' mean token embeddings, [1, D],
  added to every token of the conditioning.

Files are safetensors with metadata naming the text encoder and its width, so a direction made
with one CLIP is refused on another.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterable, Optional

import torch

FORMAT = "attn-edit-direction/1"
POSITION, MEAN = "position", "mean"  # alignment of sentences of one encoder (module docstring)
_FORMAT_PREFIX = "attn-edit-direction/"
CHUNK = 77


class DirectionMismatch(ValueError):
    """The direction was made with a different text encoder than the conditioning it meets."""


class DirectionFileError(ValueError):
    """A file that is not (or no longer) a readable attn-edit direction."""


class DirectionNotFinite(ValueError):
    """The direction holds NaN or Inf: adding it would make every image NaN."""


def _finite_or_none(direction: "EditDirection") -> Optional[str]:
    """None when every value is finite, else which part is not."""
    if not torch.isfinite(direction.embeddings).all():
        return "embeddings"
    if direction.pooled is not None and not torch.isfinite(direction.pooled).all():
        return "pooled embedding"
    return None


@dataclass
class EditDirection:
    embeddings: torch.Tensor  # [L, D] (alignment "position": CLIP's L = 77) or [1, D] ("mean"), fp32, CPU
    pooled: Optional[torch.Tensor]  # [P] or None
    encoder: str  # e.g. "sd1-clip_l-768", "sdxl-clip_l+clip_g-2048"
    width: int  # D
    source: str
    target: str
    source_count: int
    target_count: int
    # The encoder's output at the start token [D]: a causal CLIP's first output sees only the start token, so it is
    # the same for every prompt of one encoder and differs between encoders of one class and width (another
    # fine-tune, another checkpoint's CLIP). None for files saved before it was recorded.
    fingerprint: Optional[torch.Tensor] = None
    alignment: str = POSITION


def mean_embedding(batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """Mean over dim 0 of a stream of [n, ...] batches ([n,77,D] sequences or [n,P] pooled).

    Accumulates in fp32 so fp16 encoder outputs over thousands of sentences lose nothing.
    """
    total: Optional[torch.Tensor] = None
    count = 0
    for batch in batches:
        if batch.dim() < 2 or batch.shape[0] == 0:
            raise ValueError(f"mean_embedding expects non-empty [n, ...] batches, got shape {tuple(batch.shape)}")
        part = batch.detach().to(torch.float32).sum(0)
        if total is None:
            total = part
        elif part.shape != total.shape:
            raise ValueError(f"batch of shape {tuple(batch.shape)} does not match earlier batches {tuple(total.shape)}")
        else:
            total = total + part.to(total.device)
        count += batch.shape[0]
    if total is None:
        raise ValueError("mean_embedding got no embeddings (no sentences?)")
    return total / count


def compute_direction(source_mean: torch.Tensor, target_mean: torch.Tensor,
                      source_pooled_mean: Optional[torch.Tensor], target_pooled_mean: Optional[torch.Tensor],
                      encoder: str, width: int, source: str, target: str,
                      n_src: int, n_tgt: int, alignment: str = POSITION,
                      fingerprint: bool = True) -> EditDirection:
    """fingerprint: keep the source's first position as the encoder's fingerprint (a causal CLIP's start token,
    the same for every prompt); False for encoders whose first output depends on the prompt."""
    if source_mean.shape != target_mean.shape or source_mean.dim() != 2:
        raise ValueError(f"source and target means must both be [L, D]; got {tuple(source_mean.shape)} "
                         f"and {tuple(target_mean.shape)}")
    if source_mean.shape[1] != width or alignment not in (POSITION, MEAN) or \
            (alignment == MEAN and source_mean.shape[0] != 1):
        raise ValueError(f"means have shape {tuple(source_mean.shape)}, expected [L, {width}] ([1, {width}] for "
                         f"alignment 'mean'), alignment {alignment!r}")
    if (source_pooled_mean is None) != (target_pooled_mean is None):
        raise ValueError("give pooled means for both source and target, or for neither")
    pooled = None
    if source_pooled_mean is not None:
        if source_pooled_mean.shape != target_pooled_mean.shape or source_pooled_mean.dim() != 1:
            raise ValueError(f"pooled means must both be [P]; got {tuple(source_pooled_mean.shape)} "
                             f"and {tuple(target_pooled_mean.shape)}")
        pooled = (target_pooled_mean.float().cpu() - source_pooled_mean.float().cpu()).contiguous()
    embeddings = (target_mean.float().cpu() - source_mean.float().cpu()).contiguous()
    return EditDirection(embeddings=embeddings, pooled=pooled, encoder=encoder, width=int(width),
                         source=source, target=target, source_count=int(n_src), target_count=int(n_tgt),
                         fingerprint=source_mean[0].float().cpu().clone() if fingerprint else None,
                         alignment=alignment)


# Start-token outputs of one encoder agree to fp16 rounding (and a weighted prompt leaves the start token at weight
# 1); two encoders of one class differ by far more than this share of the vector's largest magnitude.
FINGERPRINT_RTOL = 0.02


def _fingerprint_mismatch(direction: EditDirection, cond: torch.Tensor) -> Optional[float]:
    """Largest relative gap between the conditioning's start-token outputs and the direction's fingerprint, when
    it exceeds FINGERPRINT_RTOL; None when they match or the direction has no fingerprint."""
    if direction.fingerprint is None:
        return None
    fp = direction.fingerprint.to(cond.device, torch.float32)
    starts = cond[:, ::CHUNK].float()  # the start token of every chunk
    gap = float((starts - fp).abs().max() / fp.abs().max().clamp_min(1e-6))
    return gap if gap > FINGERPRINT_RTOL else None


def _mismatch(direction: EditDirection, encoder: Optional[str], width: int, what: str) -> DirectionMismatch:
    here = f"'{encoder}' (width {width})" if encoder else f"width {width}"
    return DirectionMismatch(
        f"Edit direction '{direction.source}' -> '{direction.target}' was computed with text encoder "
        f"'{direction.encoder}' (width {direction.width}), but this {what} comes from {here}. "
        f"Recompute the direction with AttnEdit_EditDirection using this workflow's CLIP, "
        f"or load a direction saved for {encoder or 'this model'}.")


def apply_direction(cond: torch.Tensor, pooled: Optional[torch.Tensor], direction: EditDirection,
                    strength: float, encoder: Optional[str] = None
                    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """cond + strength * direction: position by position on a conditioning of the direction's length (or on every
    77-token chunk of a CLIP conditioning [B, 77k, D]), on every token for alignment "mean"; same for pooled.

    `encoder`, when the caller knows the conditioning's encoder id, must equal the direction's.
    A pooled vector is edited only when both it and the direction's pooled part are present.
    """
    if not math.isfinite(strength):
        raise ValueError(f"strength must be a finite number, got {strength}")
    bad = _finite_or_none(direction)
    if bad:
        raise DirectionNotFinite(f"the edit direction's {bad} hold NaN or Inf values, which would make every image "
                                 f"NaN; recompute it with AttnEdit_EditDirection (from '{direction.source}' to "
                                 f"'{direction.target}')")
    if cond.dim() != 3:
        raise ValueError(f"conditioning must be [B, T, D], got shape {tuple(cond.shape)}")
    b, t, d = cond.shape
    if d != direction.width or (encoder is not None and encoder != direction.encoder):
        raise _mismatch(direction, encoder, d, "conditioning")
    length = direction.embeddings.shape[0]
    if direction.alignment == POSITION and t != length:
        if length != CHUNK:
            raise DirectionMismatch(
                f"Edit direction '{direction.source}' -> '{direction.target}' was computed with text encoder "
                f"'{direction.encoder}', which pads sentences to {length} tokens, but this conditioning has {t}: "
                f"it comes from another text encoder (recompute the direction with AttnEdit_EditDirection using "
                f"this workflow's CLIP), or its prompt is longer than {length} tokens (shorten it).")
        if t % CHUNK:
            raise ValueError(f"conditioning has {t} tokens, not a multiple of {CHUNK}; cannot line up the "
                             "direction")
    gap = _fingerprint_mismatch(direction, cond)
    if gap is not None:
        raise DirectionMismatch(
            f"Edit direction '{direction.source}' -> '{direction.target}' was computed with another text encoder "
            f"than this conditioning's, of the same kind ('{direction.encoder}', width {d}) but other weights: their "
            f"outputs at the start token differ by {gap:.0%}. Recompute the direction with AttnEdit_EditDirection "
            "using this workflow's CLIP.")
    delta = direction.embeddings.to(device=cond.device, dtype=torch.float32)
    delta = delta.expand(t, d) if direction.alignment == MEAN else delta.repeat(t // length, 1)
    new_cond = (cond.float() + strength * delta).to(cond.dtype)

    new_pooled = pooled
    if pooled is not None and direction.pooled is not None:
        if pooled.shape[-1] != direction.pooled.shape[-1]:
            raise _mismatch(direction, encoder, d, f"pooled output (size {pooled.shape[-1]} vs "
                                                   f"{direction.pooled.shape[-1]})")
        p_delta = direction.pooled.to(device=pooled.device, dtype=torch.float32)
        new_pooled = (pooled.float() + strength * p_delta).to(pooled.dtype)
    return new_cond, new_pooled


def save_direction(path: str | os.PathLike, direction: EditDirection) -> None:
    from safetensors.torch import save_file

    tensors = {"embeddings": direction.embeddings.detach().float().cpu().contiguous()}
    if direction.pooled is not None:
        tensors["pooled"] = direction.pooled.detach().float().cpu().contiguous()
    if direction.fingerprint is not None:
        tensors["fingerprint"] = direction.fingerprint.detach().float().cpu().contiguous()
    metadata = {
        "format": FORMAT, "encoder": direction.encoder, "width": str(direction.width),
        "source": direction.source, "target": direction.target,
        "source_count": str(direction.source_count), "target_count": str(direction.target_count),
        "alignment": direction.alignment,
    }
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    save_file(tensors, os.fspath(path), metadata=metadata)


def load_direction(path: str | os.PathLike) -> EditDirection:
    from safetensors import safe_open

    path = os.fspath(path)
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            keys = set(f.keys())
            tensors = {k: f.get_tensor(k) for k in keys & {"embeddings", "pooled", "fingerprint"}}
    except FileNotFoundError:
        raise
    except Exception as e:  # not a safetensors file at all
        raise DirectionFileError(f"'{path}' is not a readable safetensors file: {e}") from e

    fmt = metadata.get("format", "")
    if not fmt.startswith(_FORMAT_PREFIX):
        raise DirectionFileError(
            f"'{path}' is not an attn-edit edit direction (its metadata has no format "
            f"'{FORMAT}'). Save directions with AttnEdit_SaveEditDirection; other embedding files "
            f"(textual inversions, LoRAs) cannot be used here.")
    if fmt != FORMAT:
        raise DirectionFileError(f"'{path}' has direction format '{fmt}', this version of the pack "
                                 f"reads '{FORMAT}'. Update the pack or recompute the direction.")
    try:
        embeddings = tensors["embeddings"]
        width = int(metadata["width"])
        direction = EditDirection(
            embeddings=embeddings.float(), pooled=tensors["pooled"].float() if "pooled" in tensors else None,
            encoder=metadata["encoder"], width=width, source=metadata.get("source", ""),
            target=metadata.get("target", ""), source_count=int(metadata.get("source_count", 0)),
            target_count=int(metadata.get("target_count", 0)),
            fingerprint=tensors["fingerprint"].float() if "fingerprint" in tensors else None,
            alignment=metadata.get("alignment", POSITION))
    except (KeyError, ValueError) as e:
        raise DirectionFileError(f"'{path}' is a damaged edit direction (missing or bad {e})") from e
    if embeddings.dim() != 2 or embeddings.shape[1] != width or direction.alignment not in (POSITION, MEAN) or \
            (direction.alignment == MEAN and embeddings.shape[0] != 1):
        raise DirectionFileError(f"'{path}' holds embeddings of shape {tuple(embeddings.shape)} with alignment "
                                 f"'{direction.alignment}', expected [L, {width}] ([1, {width}] for 'mean')")
    bad = _finite_or_none(direction)
    if bad:
        raise DirectionFileError(f"'{path}' is damaged: its {bad} hold NaN or Inf values. Recompute the direction "
                                 f"with AttnEdit_EditDirection and save it again.")
    return direction
