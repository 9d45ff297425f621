"""The real CLIP BPE vocabulary for unit tests, without ComfyUI.

Sources, in order: `comfy/sd1_tokenizer/{vocab.json,merges.txt}` under $COMFYUI_PATH or
~/ComfyUI; else the `open_clip` package's bundled `bpe_simple_vocab_16e6.txt.gz`, turned into
vocab.json + merges.txt the way CLIP's SimpleTokenizer builds its vocabulary. Tests call
`require()` to skip, with the reason, when neither is there.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Optional

N_MERGES = 49152 - 256 - 2  # merges are lines 1..48894 of the .gz


def comfyui_tokenizer_dir() -> Optional[Path]:
    roots = [os.environ.get("COMFYUI_PATH"), os.path.expanduser("~/ComfyUI")]
    for root in filter(None, roots):
        d = Path(root) / "comfy" / "sd1_tokenizer"
        if (d / "vocab.json").is_file() and (d / "merges.txt").is_file():
            return d
    return None


def open_clip_bpe_gz() -> Optional[Path]:
    """The .gz inside the installed open_clip package, found without importing it."""
    try:
        spec = importlib.util.find_spec("open_clip")
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        f = Path(loc) / "bpe_simple_vocab_16e6.txt.gz"
        if f.is_file():
            return f
    return None


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable unicode char table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def build_files_from_bpe_gz(gz: Path, out_dir: Path) -> Path:
    with gzip.open(gz, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = lines[1 : N_MERGES + 1]
    vocab = list(_bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}), encoding="utf-8")
    (out_dir / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]) + "\n", encoding="utf-8")
    return out_dir


@functools.lru_cache(maxsize=None)
def load_tokenizer(source: str = "auto"):
    """A transformers CLIPTokenizer from `source` ('auto', 'comfyui' or 'open_clip'), or None."""
    try:
        from transformers import CLIPTokenizer
    except ImportError:
        return None
    d = comfyui_tokenizer_dir() if source in ("auto", "comfyui") else None
    if d is None and source in ("auto", "open_clip"):
        gz = open_clip_bpe_gz()
        if gz is not None:
            d = build_files_from_bpe_gz(gz, Path(tempfile.mkdtemp(prefix="clip_bpe_")))
    if d is None:
        return None
    return CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))


def skip_reason() -> Optional[str]:
    if importlib.util.find_spec("transformers") is None:
        return "transformers is not installed (needed for the CLIP BPE tokenizer)"
    if load_tokenizer() is None:
        return (
            "no CLIP BPE vocabulary: neither $COMFYUI_PATH or ~/ComfyUI comfy/sd1_tokenizer/ "
            "nor the open_clip package (open_clip_torch) is available"
        )
    return None


def require() -> None:
    import pytest

    reason = skip_reason()
    if reason:
        pytest.skip(reason)


@functools.lru_cache(maxsize=4096)
def _encode(text: str) -> tuple[int, ...]:
    return tuple(load_tokenizer().encode(text, add_special_tokens=False))


def encode_piece(text: str) -> list[int]:
    """BPE ids of `text` without BOS/EOS."""
    return list(_encode(text))


def decode_token(token_id: int) -> str:
    return load_tokenizer().decode([token_id])
