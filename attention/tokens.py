"""Prompt words and the CLIP token positions they occupy.

Prompt-to-Prompt addresses attention columns by token position in the 77-slot sequence
(slot 0 = BOS, then the prompt's BPE tokens, then EOS and padding). The official code finds a
word's tokens by `text.split(" ")` and exact string match (ptp_utils.py:243-261,
seq_aligner.py:131-149), so "cat," never matches "cat" and a double space shifts every index.
Here words are the units CLIP's own pre-tokenizer sees (letter runs, single digits, punctuation
runs, 's/'t/... contractions), and each word's positions come from encoding it on its own.

No ComfyUI here: callers pass `encode_piece(text) -> ids`, the BPE ids of a text without
BOS/EOS (for ComfyUI's CLIP: `tokenizer(text)["input_ids"][1:-1]`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Callable, Optional

try:
    import regex as _re  # ships with transformers; knows \p{L} / \p{N}

    _WORD_PATTERN = _re.compile(
        r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+",
        _re.IGNORECASE,
    )
except ImportError:  # pragma: no cover - stdlib approximation of the same classes
    import re as _re

    _WORD_PATTERN = _re.compile(
        r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+",
        _re.IGNORECASE,
    )

BOS = 49406
EOS = 49407
MAX_LEN = 77
MAX_PROMPT_TOKENS = MAX_LEN - 2

EncodePiece = Callable[[str], list[int]]
DecodeToken = Callable[[int], str]


class WordNotFound(ValueError):
    """A word or phrase asked for is not in the prompt."""


@dataclass(frozen=True)
class Word:
    text: str  # lowercased, as CLIP sees it
    start: int  # char span in clean_text(prompt) (== the prompt for ordinary NFC text)
    end: int

    @property
    def is_punctuation(self) -> bool:
        return not any(ch.isalnum() for ch in self.text)


def clean_text(prompt: str) -> str:
    """The text word spans refer to: NFC-normalized, as CLIP's tokenizer normalizes it."""
    return unicodedata.normalize("NFC", prompt)


def split_words(prompt: str) -> list[Word]:
    """Split like CLIP's pre-tokenizer: "a cat, sitting" -> a / cat / , / sitting.

    Whitespace only separates (runs of it count once); case is folded.
    """
    text = clean_text(prompt)
    return [Word(m.group().lower(), m.start(), m.end()) for m in _WORD_PATTERN.finditer(text)]


@dataclass(frozen=True)
class TokenizerLayout:
    """Where a tokenizer puts a prompt's tokens in the sequence the model attends to.

    CLIP BPE: BOS in slot 0, the prompt, EOS, padding to 77 (one chunk). T5 SentencePiece (Flux, SD3): no
    start token, the prompt, EOS, padding to at least 256 (Flux) or 77 (SD3). `max_prompt_tokens` is the
    longest prompt that keeps every row of a batch the same length."""

    bos: int | None
    eos: int
    length: int
    name: str = "CLIP"

    @property
    def first_slot(self) -> int:
        return 0 if self.bos is None else 1

    @property
    def max_prompt_tokens(self) -> int:
        return self.length - self.first_slot - 1


CLIP_LAYOUT = TokenizerLayout(BOS, EOS, MAX_LEN)


@dataclass(frozen=True)
class PromptTokens:
    prompt: str
    ids: tuple[int, ...]  # token ids of the prompt, no start/end token
    words: tuple[Word, ...]
    positions: tuple[tuple[int, ...], ...]  # per word: its slots in the encoder's token sequence
    layout: TokenizerLayout = CLIP_LAYOUT

    @property
    def full_ids(self) -> list[int]:
        """[BOS +] ids + EOS, i.e. what `tokenizer.encode(prompt)` gives (seq_aligner.py:108)."""
        start = [] if self.layout.bos is None else [self.layout.bos]
        return [*start, *self.ids, self.layout.eos]

    @property
    def eos_position(self) -> int:
        return len(self.ids) + self.layout.first_slot

    @property
    def word_texts(self) -> list[str]:
        return [w.text for w in self.words]

    @classmethod
    def build(
        cls,
        prompt: str,
        encode_piece: EncodePiece,
        decode_token: Optional[DecodeToken] = None,
        layout: TokenizerLayout = CLIP_LAYOUT,
    ) -> "PromptTokens":
        """Tokenize `prompt` and locate each word's tokens.

        Words are encoded one by one; their concatenation must reproduce `encode_piece(prompt)`.
        If it does not (a tokenizer whose pre-tokenizer merges across our word boundaries), the
        decoded token pieces are aligned to the words by characters; that needs `decode_token`.
        """
        ids = tuple(int(t) for t in encode_piece(prompt))
        if len(ids) > layout.max_prompt_tokens:
            raise ValueError(
                f"prompt needs {len(ids)} tokens, more than the {layout.max_prompt_tokens}-token limit of "
                f"one {layout.name} sequence ({layout.length} with start/end tokens); shorten it: {_short(prompt)}"
            )
        words = split_words(prompt)
        pieces = [[int(t) for t in encode_piece(clean_text(prompt)[w.start:w.end])] for w in words]
        if [t for p in pieces for t in p] == list(ids):
            positions, pos = [], layout.first_slot
            for p in pieces:
                positions.append(tuple(range(pos, pos + len(p))))
                pos += len(p)
        else:
            positions = _align_decoded(prompt, words, ids, decode_token, layout.first_slot)
        return cls(prompt, ids, tuple(words), tuple(positions), layout)


def split_chunks(pt: PromptTokens, lengths: list[int], layout: TokenizerLayout) -> list[PromptTokens]:
    """A prompt's tokens cut into the chunks its encoder reads one by one (ComfyUI: 75 CLIP tokens between BOS
    and EOS a chunk, a weighted group that does not fit moved whole to the next one), `lengths` tokens each,
    every chunk with slots laid out by `layout`. Each chunk keeps all the prompt's words, so word indices stay
    those of the prompt; a word outside a chunk has no slots in it, one broken at a boundary has slots in both."""
    if sum(lengths) != len(pt.ids):
        raise ValueError(f"chunks of {lengths} tokens do not cover the prompt's {len(pt.ids)}")
    chunks, begin = [], 0
    for n in lengths:
        end = begin + n
        if n > layout.max_prompt_tokens:
            raise ValueError(f"a chunk of {n} tokens does not fit the {layout.length}-slot {layout.name} layout")
        shift = layout.first_slot - begin - pt.layout.first_slot
        positions = tuple(tuple(p + shift for p in pos if begin <= p - pt.layout.first_slot < end)
                          for pos in pt.positions)
        chunks.append(PromptTokens(pt.prompt, pt.ids[begin:end], pt.words, positions, layout))
        begin = end
    return chunks


def _align_decoded(
    prompt: str, words: list[Word], ids: tuple[int, ...], decode_token: Optional[DecodeToken], first_slot: int = 1
) -> list[tuple[int, ...]]:
    """Greedy char alignment: a word gets every token whose decoded text overlaps it. A token that decodes to
    nothing (SentencePiece's lone word-start marker: T5 encodes "a" as '▁' + 'a') belongs to the word after it."""
    if decode_token is None:
        raise ValueError(
            f"could not map words to tokens: encoding the prompt word by word does not give the "
            f"prompt's tokens, and no decoder was given to align them: {_short(prompt)}"
        )
    pieces = ["".join(decode_token(t).replace("</w>", "").split()).lower() for t in ids]
    if "".join(pieces) != "".join(w.text for w in words):
        raise ValueError(
            f"could not map words to tokens: the decoded tokens {pieces!r} do not spell the "
            f"prompt's words {[w.text for w in words]!r}"
        )
    token_spans, c = [], 0
    for p in pieces:
        token_spans.append((c, c + len(p)))
        c += len(p)
    positions, c = [], 0
    for w in words:
        a, b = c, c + len(w.text)
        c = b
        positions.append(tuple(k + first_slot for k, (s, e) in enumerate(token_spans)
                               if (s < b and e > a) or (s == e == a)))
    return positions


def _normalize_phrase(phrase: str) -> list[str]:
    words = split_words(phrase)
    content = [w.text for w in words if not w.is_punctuation]
    return content or [w.text for w in words]


def find_word_positions(pt: PromptTokens, phrase: str) -> list[int]:
    """Token slots of every occurrence of a word or multi-word phrase.

    Case-insensitive; punctuation in the phrase and between the prompt's words is ignored
    ("cat," finds "cat", "red car" finds "red, car"), unless the phrase is only punctuation.
    """
    wanted = _normalize_phrase(phrase)
    if not wanted:
        raise WordNotFound(f"empty word; the prompt's words are: {_word_list(pt)}")
    only_punct = all(not any(ch.isalnum() for ch in w) for w in wanted)
    keep = [k for k, w in enumerate(pt.words) if only_punct or not w.is_punctuation]
    texts = [pt.words[k].text for k in keep]
    found: set[int] = set()
    n = len(wanted)
    for s in range(len(texts) - n + 1):
        if texts[s:s + n] == wanted:
            for k in keep[s:s + n]:
                found.update(pt.positions[k])
    if not found:
        raise WordNotFound(
            f"{phrase.strip()!r} is not in the prompt {_short(pt.prompt)}; "
            f"its words are: {_word_list(pt)}"
        )
    return sorted(found)


def _word_list(pt: PromptTokens) -> str:
    return ", ".join(w.text for w in pt.words if not w.is_punctuation) or "(none)"


def _short(prompt: str, limit: int = 80) -> str:
    return repr(prompt if len(prompt) <= limit else prompt[:limit] + "...")
