"""ComfyUI CLIP adapter: prompts -> word/token positions (checked against ComfyUI's own tokenization)
and batched conditioning (one row per prompt)."""
from __future__ import annotations

import re

import torch

from ..attention.p2p_plan import InputError
from ..attention.tokens import EOS, PromptTokens

_WEIGHT_SYNTAX = re.compile(r"(?<!\\)[()]|embedding:", re.IGNORECASE)


def _sd_tokenizer(clip):
    """The first CLIP-BPE tokenizer (clip_l for SD1/SDXL, clip_h for SD2) inside ComfyUI's tokenizer."""
    from comfy.sd1_clip import SDTokenizer

    for name in ("clip_l", "clip_h", "clip_g"):
        tok = getattr(clip.tokenizer, name, None)
        if isinstance(tok, SDTokenizer):
            return tok
    for tok in vars(clip.tokenizer).values():
        if isinstance(tok, SDTokenizer):
            return tok
    raise ValueError(f"this CLIP ({type(clip.tokenizer).__name__}) has no CLIP-BPE tokenizer; "
                     "attention editing supports SD1.x, SD2.x and SDXL text encoders")


def prompt_tokens(clip, prompt: str, node: str, input_name: str) -> PromptTokens:
    """Word positions of `prompt`, after checking the prompt fits one 77-token chunk and that our word
    mapping reproduces exactly the ids ComfyUI will encode."""
    if not prompt.strip():
        raise InputError(node, input_name, "the prompt is empty.")
    if _WEIGHT_SYNTAX.search(prompt):
        raise InputError(node, input_name,
                         f"'{prompt}' uses ComfyUI weight syntax '(word:1.2)' or 'embedding:'. They change the "
                         "tokens that edits address, so they are not supported in edited prompts: use the "
                         "'reweight' input to strengthen or weaken a word, or escape literal brackets as \\( \\).")
    sd_tok = _sd_tokenizer(clip)
    hf = sd_tok.tokenizer
    comfy_chunks = next(iter(clip.tokenize(prompt).values()))
    if len(comfy_chunks) > 1:
        raise InputError(node, input_name,
                         f"the prompt needs {len(comfy_chunks)} chunks of 77 tokens; edits address token slots "
                         "of a single chunk, so keep each prompt within 75 tokens.")
    try:
        pt = PromptTokens.build(prompt, lambda text: hf(text)["input_ids"][1:-1],
                                lambda token: hf.decode([token]))
    except ValueError as e:
        raise InputError(node, input_name, str(e)) from None
    ids = [int(t[0]) for t in comfy_chunks[0][1:]]
    ids = ids[: ids.index(EOS)] if EOS in ids else ids
    if ids != list(pt.ids):
        raise InputError(node, input_name,
                         f"could not map the words of '{prompt}' onto ComfyUI's tokens "
                         f"({len(pt.ids)} vs {len(ids)} tokens); simplify unusual characters.")
    return pt


def encode_rows(clip, prompts: list[str]):
    """CONDITIONING with one batch row per prompt: [[cond [N,77,D], {"pooled_output": [N,...]}]]."""
    conds, pooled = [], []
    for p in prompts:
        c, pl = clip.encode_from_tokens(clip.tokenize(p), return_pooled=True)
        conds.append(c)
        pooled.append(pl)
    extras = {}
    if all(p is not None for p in pooled):
        extras["pooled_output"] = torch.cat(pooled)
    return [[torch.cat(conds), extras]]


def encoder_id(clip, width: int) -> str:
    """Names the text encoder family and width, e.g. 'SD1ClipModel-768' or 'SDXLClipModel-2048'."""
    return f"{type(clip.cond_stage_model).__name__}-{width}"


def encode_sentences(clip, sentences: list[str], with_pooled: bool, on_progress=None, batch: int = 64):
    """Full 77-token embeddings [n, 77, D] of each sentence (and [n, P] pooled vectors when asked), in
    batches of `batch` sentences per encoder call. Sentences longer than one chunk are cut to it."""
    conds, pooled = [], []
    for start in range(0, len(sentences), batch):
        part = sentences[start:start + batch]
        tokens = [clip.tokenize(s) for s in part]
        if with_pooled:
            # ComfyUI returns only the first section's pooled vector, so pooled models encode one by one
            for t in tokens:
                c, p = clip.encode_from_tokens({k: v[:1] for k, v in t.items()}, return_pooled=True)
                conds.append(c[:, :77])
                pooled.append(p)
        else:
            merged = {k: [t[k][0] for t in tokens] for k in tokens[0]}
            c = clip.encode_from_tokens(merged)
            conds.append(c.reshape(len(part), 77, c.shape[-1]))
        if on_progress is not None:
            on_progress(min(start + batch, len(sentences)))
    return torch.cat(conds), (torch.cat(pooled) if with_pooled else None)
