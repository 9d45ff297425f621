"""ComfyUI CLIP adapter: prompts -> word/token positions (checked against ComfyUI's own tokenization)
and batched conditioning (one row per prompt)."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch

from ..attention.p2p_plan import InputError
from ..attention.tokens import (CLIP_LAYOUT, PromptTokens, TokenizerLayout, WordNotFound, find_word_positions,
                                split_chunks)

_EMBEDDING = re.compile(r"embedding:", re.IGNORECASE)


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


@dataclass(frozen=True)
class Segment:
    """One text encoder's tokens inside the text sequence the diffusion model attends to."""

    key: str  # key of clip.tokenize()'s output
    tokenizer: object  # ComfyUI SDTokenizer
    layout: TokenizerLayout
    offset: int  # first slot of this encoder's tokens in the model's text sequence


# Qwen-Image (ComfyUI 0.8 comfy/text_encoders/qwen_image.py): the prompt goes into a chat template and the
# encoder keeps the hidden states from the prompt on (QwenImageTEModel.encode_token_weights trims at the second
# <|im_start|> and its "user\n"), so the DiT attends to: prompt, <|im_end|>, "\n", <|im_start|>, "assistant", "\n".
IM_START, IM_END, QWEN_PAD = 151644, 151645, 151643
QWEN_USER, QWEN_NEWLINE = 872, 198


def _qwen_prompt_span(ids: list[int]) -> tuple[int, int]:
    """(first, end) of the prompt's tokens in a templated Qwen-Image token list, found as ComfyUI trims it."""
    starts = [i for i, t in enumerate(ids) if t == IM_START][:2]
    if len(starts) < 2:
        raise ValueError("the prompt's template is not Qwen-Image's (no user turn found)")
    first = starts[1]
    if ids[first + 1:first + 3] == [QWEN_USER, QWEN_NEWLINE]:
        first += 3
    end = ids.index(IM_END, first) if IM_END in ids[first:] else len(ids)
    return first, end


def _z_image_prompt_span(ids: list[int]) -> tuple[int, int]:
    """(first, end) of the prompt's tokens in Z-Image's chat template (ComfyUI 0.8 comfy/text_encoders/z_image.py:
    '<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n', not trimmed: the DiT attends to all of it)."""
    if IM_START not in ids:
        raise ValueError("the prompt's template is not Z-Image's (no user turn found)")
    first = ids.index(IM_START) + 1
    if ids[first:first + 2] == [QWEN_USER, QWEN_NEWLINE]:
        first += 2
    end = ids.index(IM_END, first) if IM_END in ids[first:] else len(ids)
    return first, end


# Flux.2's Mistral "tekken" tokens (ComfyUI 0.8 comfy/text_encoders/flux.py Flux2Tokenizer): BOS, then the template
# '[SYSTEM_PROMPT]...[/SYSTEM_PROMPT][INST]{}[/INST]', not trimmed; [INST] / [/INST] are special tokens 3 / 4.
MISTRAL_INST, MISTRAL_INST_END, MISTRAL_PAD = 3, 4, 11


def _mistral_prompt_span(ids: list[int]) -> tuple[int, int]:
    """(first, end) of the prompt's tokens in Flux.2's template."""
    if MISTRAL_INST not in ids:
        raise ValueError("the prompt's template is not Flux.2's (no [INST] found)")
    first = ids.index(MISTRAL_INST) + 1
    end = ids.index(MISTRAL_INST_END, first) if MISTRAL_INST_END in ids[first:] else len(ids)
    return first, end


# Z-Image (Qwen3) and Flux.2 (Mistral3): the prompt's span in templates the DiT sees whole
UNTRIMMED_TEMPLATES = {"Qwen3": _z_image_prompt_span, "Mistral3": _mistral_prompt_span}


def _t5_layout(tok) -> TokenizerLayout:
    return TokenizerLayout(None, int(tok.end_token), int(tok.min_length or 77), "T5")


def text_segments(clip) -> list[Segment]:
    """Which tokenizers' tokens the model's text sequence holds, where (ComfyUI 0.8 comfy/text_encoders):
    SD1/SD2/SDXL: CLIP chunks of 77 (SDXL's clip_l and clip_g side by side in features, same slots);
    Flux: T5-XXL only (CLIP-L gives just the pooled vector), padded to 256; SD3: the CLIP-L/G chunks, then
    T5-XXL padded to 77 (sd3_clip.py SD3ClipModel.encode_token_weights); Chroma: T5-XXL unpadded, ending in EOS
    (pixart_t5.py); Wan: UMT5-XXL padded to 512 (wan.py); Qwen-Image: Qwen2.5-VL, template trimmed; Z-Image: Qwen3,
    template kept. Offsets are set per
    prompt, as the number of CLIP chunks and a template's head depend on it."""
    tokenizer, model = clip.tokenizer, clip.cond_stage_model
    name = type(tokenizer).__name__
    if name == "FluxTokenizer" or (hasattr(tokenizer, "t5xxl") and not hasattr(tokenizer, "clip_g")
                                   and hasattr(tokenizer, "clip_l")):
        return [Segment("t5xxl", tokenizer.t5xxl, _t5_layout(tokenizer.t5xxl), 0)]
    if name == "SD3Tokenizer":
        segments = []
        if getattr(model, "clip_l", None) is not None or getattr(model, "clip_g", None) is not None:
            key = "l" if getattr(model, "clip_l", None) is not None else "g"
            segments.append(Segment(key, getattr(tokenizer, "clip_" + key), CLIP_LAYOUT, 0))
        if getattr(model, "t5xxl", None) is not None:  # after the CLIP chunks (offset set per prompt)
            segments.append(Segment("t5xxl", tokenizer.t5xxl, _t5_layout(tokenizer.t5xxl), 0))
        return segments
    if name in ("PixArtTokenizer", "WanT5Tokenizer"):  # SD1Tokenizer(clip_name=...): the T5 is its clip_<name>
        t5 = getattr(tokenizer, tokenizer.clip)
        return [Segment(tokenizer.clip_name, t5, _t5_layout(t5), 0)]
    if name == "QwenImageTokenizer":
        return [Segment("qwen25_7b", tokenizer.qwen25_7b, TokenizerLayout(None, IM_END, 0, "Qwen2.5-VL"), 0)]
    if name == "ZImageTokenizer":
        return [Segment("qwen3_4b", tokenizer.qwen3_4b, TokenizerLayout(None, IM_END, 0, "Qwen3"), 0)]
    if name == "Flux2Tokenizer":
        return [Segment("mistral3_24b", tokenizer.mistral3_24b, TokenizerLayout(None, MISTRAL_INST_END, 0, "Mistral3"),
                        0)]
    sd_tok = _sd_tokenizer(clip)
    if "CLIP" not in type(sd_tok.tokenizer).__name__:
        raise ValueError(
            f"this text encoder ({name}) is not supported: its words cannot be mapped onto the tokens the "
            "model attends to. Supported: SD1.x/SD2.x/SDXL CLIP, Flux (T5), Flux.2 (Mistral), SD3 (CLIP + T5), "
            "Chroma (T5), Wan (UMT5), Qwen-Image (Qwen2.5-VL) and Z-Image (Qwen3) text encoders.")
    key = next(k for k, v in clip.tokenize("a").items())
    return [Segment(key, sd_tok, CLIP_LAYOUT, 0)]


@dataclass(frozen=True)
class PromptEncoding:
    """A prompt's words and their token slots in the model's text sequence, a piece per chunk of each text
    encoder (one piece per encoder unless a CLIP prompt outgrows 75 tokens). Every piece lists all the words;
    `positions[w]` is empty in a piece that does not hold word w."""

    prompt: str
    segments: tuple[tuple[Segment, PromptTokens], ...]

    @property
    def primary(self) -> PromptTokens:
        return self.segments[0][1]

    @property
    def text_len(self) -> int:
        seg, pt = self.segments[-1]
        return seg.offset + pt.layout.length

    @property
    def chunk_counts(self) -> dict[str, int]:
        """Pieces per text encoder, e.g. {'l': 2} for a 100-token SD1 prompt."""
        counts: dict[str, int] = {}
        for seg, _ in self.segments:
            counts[seg.key] = counts.get(seg.key, 0) + 1
        return counts

    def word_slots(self, word_index: int) -> list[int]:
        """Slots of the prompt's word in the model's text sequence (every segment)."""
        return [seg.offset + p for seg, pt in self.segments for p in pt.positions[word_index]]

    def phrase_slots(self, phrase: str) -> list[int]:
        """Slots of every occurrence of a word or phrase (tokens.find_word_positions) in the model's text sequence,
        every segment; WordNotFound (naming the prompt's words) if no segment holds it."""
        slots = []
        for seg, pt in self.segments:
            try:
                slots += [seg.offset + p for p in find_word_positions(pt, phrase)]
            except WordNotFound:
                continue
        if not slots:
            find_word_positions(self.primary, phrase)  # raises, with the prompt's words
        return slots


def _chunk_ids(chunk, layout: TokenizerLayout) -> list[int]:
    ids = [int(t[0]) for t in chunk[layout.first_slot:]]
    return ids[: ids.index(layout.eos)] if layout.eos in ids else ids


def _template_pieces(segment: Segment, prompt: str, chunk, first: int, eos: int, name: str, node: str,
                     input_name: str) -> list[tuple[Segment, PromptTokens]]:
    """An untrimmed chat template the DiT sees whole: its head (before the prompt) a wordless piece, then the prompt
    and the template's tail as one piece."""
    pieces = _segment_pieces(replace(segment, offset=segment.offset + first, layout=TokenizerLayout(
        None, eos, len(chunk) - first, name + " prompt")), prompt, {segment.key: [chunk[first:]]}, node, input_name)
    return [_wordless(segment, pieces[0][1].words, first, name + " template"), *pieces]


def _segment_pieces(segment: Segment, prompt: str, comfy_tokens: dict, node: str,
                    input_name: str) -> list[tuple[Segment, PromptTokens]]:
    """The prompt's tokens in one encoder, a piece per chunk ComfyUI encodes (CLIP: 75 prompt tokens between
    BOS and EOS a chunk, chunks concatenated along the token axis: ComfyUI 0.8 comfy/sd1_clip.py
    SDTokenizer.tokenize_with_weights and SDClipModel.encode_token_weights). Every piece keeps all the prompt's
    words; a word outside the chunk has no slots in it, and a word ComfyUI breaks at a chunk boundary has
    slots in both."""
    hf = segment.tokenizer.tokenizer
    chunks = comfy_tokens[segment.key]
    layout = segment.layout
    if layout.name == "Qwen2.5-VL":  # the DiT sees the prompt and the template's tail, not its head
        ids = [int(t[0]) for t in chunks[0]]
        first, end = _qwen_prompt_span(ids)
        layout = TokenizerLayout(None, IM_END, len(ids) - first, layout.name)
        per_chunk = [ids[first:end]]
    elif layout.name in UNTRIMMED_TEMPLATES:  # the DiT sees the whole template: its head a piece of its own
        first, _ = UNTRIMMED_TEMPLATES[layout.name]([int(t[0]) for t in chunks[0]])
        return _template_pieces(segment, prompt, chunks[0], first, layout.eos, layout.name, node, input_name)
    elif layout.name.endswith(" prompt"):
        per_chunk = [_chunk_ids(chunks[0], layout)]
        layout = TokenizerLayout(None, layout.eos, len(chunks[0]), layout.name)
    else:
        per_chunk = [_chunk_ids(c, layout) for c in chunks]
        if layout.bos is None:  # T5: one sequence, as long as the prompt or padded to the tokenizer's minimum
            layout = TokenizerLayout(None, layout.eos, len(chunks[0]), layout.name)
    ids = [t for c in per_chunk for t in c]
    whole = TokenizerLayout(layout.bos, layout.eos, len(ids) + 2 + layout.first_slot, layout.name)
    if type(hf).__name__ == "SPieceTokenizer":  # ComfyUI's SentencePiece wrapper (Wan's UMT5): adds EOS itself
        def encode(text):
            return hf.tokenizer.encode(text, add_bos=False, add_eos=False)

        def decode(token):
            return hf.tokenizer.decode([token])
    else:
        def encode(text):
            return hf(text, add_special_tokens=False)["input_ids"]

        def decode(token):
            return hf.decode([token])
    try:
        pt = PromptTokens.build(prompt, encode, decode, whole)
    except ValueError as e:
        raise InputError(node, input_name, str(e)) from None
    if ids != list(pt.ids):
        raise InputError(node, input_name,
                         f"could not map the words of '{prompt}' onto ComfyUI's {layout.name} tokens "
                         f"({len(pt.ids)} vs {len(ids)} tokens); simplify unusual characters.")
    return [(replace(segment, offset=segment.offset + c * layout.length), piece)
            for c, piece in enumerate(split_chunks(pt, [len(c) for c in per_chunk], layout))]


def prompt_encoding(clip, prompt: str, node: str, input_name: str) -> PromptEncoding:
    """Word positions of `prompt` in every text encoder the model attends to, each checked to reproduce
    exactly the ids ComfyUI will encode."""
    if not prompt.strip():
        raise InputError(node, input_name, "the prompt is empty.")
    if _EMBEDDING.search(prompt):
        raise InputError(node, input_name,
                         f"'{prompt}' uses 'embedding:'. A textual-inversion embedding inserts learned vectors, not "
                         "words, so edits cannot address or align its tokens: leave it out of edited prompts (use it "
                         "in the negative prompt, which edits do not touch).")
    try:
        segments = text_segments(clip)
    except ValueError as e:
        raise InputError(node, "clip", str(e)) from None
    comfy_tokens = clip.tokenize(prompt)
    # the LLM tokenizers (Qwen-Image, Z-Image, Flux.2) read no weight syntax (they pass disable_weights themselves)
    weighted = (segments[0].layout.name not in ("Qwen2.5-VL", *UNTRIMMED_TEMPLATES)
                and not getattr(segments[0].tokenizer, "disable_weights", False))
    words = plain_text(prompt, weighted)
    if not words.strip():
        raise InputError(node, input_name, "the prompt has no words once its weights are read.")
    pieces, offset = [], 0
    for seg in segments:  # SD3: the CLIP chunks, then T5 after the last of them
        pieces += _segment_pieces(replace(seg, offset=offset), words, comfy_tokens, node, input_name)
        offset = pieces[-1][0].offset + pieces[-1][1].layout.length
    return PromptEncoding(words, tuple(pieces))


def plain_text(prompt: str, weighted: bool = True) -> str:
    """The words ComfyUI's CLIPTextEncode tokenizes, without its weight syntax: '(red:1.2) cat' -> 'red cat',
    '\\(literal\\)' -> '(literal)' (ComfyUI 0.8 comfy/sd1_clip.py SDTokenizer.tokenize_with_weights:
    escape_important, token_weights, unescape_important). The weights apply when the prompt is encoded; the
    word -> token mapping sees the words."""
    from comfy.sd1_clip import escape_important, token_weights, unescape_important

    text = escape_important(prompt)
    parts = token_weights(text, 1.0) if weighted else [(text, 1.0)]
    return "".join(unescape_important(part) for part, _ in parts)


def same_chunks(node: str, encodings: list[PromptEncoding], names: list[str]) -> None:
    """Every row of an edit must encode to the same text length: refuse prompts that need different numbers
    of 75-token CLIP chunks, naming them."""
    counts = [e.chunk_counts for e in encodings]
    for name, count, e in zip(names[1:], counts[1:], encodings[1:]):
        if count != counts[0]:
            key = next(k for k in counts[0] if counts[0][k] != count.get(k))
            raise InputError(node, "target_prompts",
                             f"{name} needs {count.get(key, 0)} chunk(s) of 75 CLIP tokens but the source prompt "
                             f"needs {counts[0][key]}: the rows of an edit must be the same length, and ComfyUI "
                             f"encodes a long prompt in chunks of 75 tokens. Shorten or lengthen {name} so that "
                             "both fall in the same number of chunks.")


def common_length(encodings: list[PromptEncoding], multiple: int = 1) -> list[PromptEncoding]:
    """Encodings whose text length differs per prompt (Qwen-Image: no padding) brought to the longest one, as
    `encode_rows` pads their token lists: every row of an edit must have the same length. `multiple`: the model
    pads its text tokens to a multiple of it (Z-Image: 32, with a learned token), so the last piece grows to the
    length the model attends to."""
    out = []
    last = len(encodings[0].segments) - 1
    for i in range(len(encodings[0].segments)):
        longest = max(e.segments[i][1].layout.length for e in encodings)
        if i == last and multiple > 1:
            end = encodings[0].segments[i][0].offset + longest
            longest += -end % multiple
        for e in encodings:
            seg, pt = e.segments[i]
            if pt.layout.length != longest:
                pt = PromptTokens(pt.prompt, pt.ids, pt.words, pt.positions,
                                  TokenizerLayout(pt.layout.bos, pt.layout.eos, longest, pt.layout.name))
            out.append((e, i, seg, pt))
    rebuilt = []
    for e in encodings:
        rebuilt.append(PromptEncoding(e.prompt, tuple((seg, pt) for (f, i, seg, pt) in out if f is e)))
    return rebuilt


def _wordless(segment: Segment, words, length: int, name: str) -> tuple[Segment, PromptTokens]:
    """A piece of the text sequence that holds none of the prompt's words (a template's head, the model's padding):
    its slots map onto themselves in every edit."""
    layout = TokenizerLayout(None, -1, length, name)
    return replace(segment, layout=layout), PromptTokens("", (), words, ((),) * len(words), layout)


def fit_to_model(encodings: list[PromptEncoding], backend, model) -> list[PromptEncoding]:
    """The encodings at the length the model attends to: brought to the longest prompt (common_length), the last
    piece rounded up to the model's text multiple (Z-Image), and a wordless piece in front for the slots the model's
    conditioning puts before the text (Flux.2's left padding), both read from the model."""
    encodings = common_length(encodings, backend.text_multiple(model))
    before = backend.text_padding(model, encodings[0].text_len)
    if not before:
        return encodings
    out = []
    for e in encodings:
        first_segment = e.segments[0][0]
        pad = _wordless(replace(first_segment, offset=0), e.primary.words, before, "padding")
        shifted = tuple((replace(seg, offset=seg.offset + before), pt) for seg, pt in e.segments)
        out.append(PromptEncoding(e.prompt, (pad, *shifted)))
    return out


def prompt_tokens(clip, prompt: str, node: str, input_name: str) -> PromptTokens:
    """The prompt's tokens in the (first) text encoder the model attends to."""
    return prompt_encoding(clip, prompt, node, input_name).primary


def _padded_tokens(clip, prompts: list[str]) -> list[dict]:
    """Token lists of the prompts; where an encoder gives one sequence as long as the prompt (Qwen-Image; T5
    past its minimum length), the shorter ones get pad tokens at the end so that every row encodes to the same
    length. Qwen2.5-VL is causal, so the prompt's own hidden states are unchanged; the DiT sees a few more
    padding tokens, as Flux sees T5's padding. T5 pads the same way up to its minimum length anyway (Chroma's T5
    has no minimum: its prompts are padded here). Z-Image's Qwen3 is causal too."""
    tokens = [clip.tokenize(p) for p in prompts]
    for key, pad_id in (("qwen25_7b", QWEN_PAD), ("qwen3_4b", QWEN_PAD), ("mistral3_24b", MISTRAL_PAD),
                        ("t5xxl", None)):
        if key not in tokens[0] or any(len(t[key]) != 1 for t in tokens):
            continue
        if pad_id is None:
            pad_id = getattr(getattr(clip.tokenizer, key, None), "pad_token", 0)
        longest = max(len(t[key][0]) for t in tokens)
        for t in tokens:
            chunk = t[key][0]
            pad = tuple([pad_id, 1.0] + list(chunk[-1][2:]))
            chunk.extend([pad] * (longest - len(chunk)))
    return tokens


def encode_rows(clip, prompts: list[str]):
    """CONDITIONING with one batch row per prompt: [[cond [N,T,D], {"pooled_output": [N,...]}]]."""
    conds, pooled = [], []
    for tokens in _padded_tokens(clip, prompts):
        c, pl = clip.encode_from_tokens(tokens, return_pooled=True)
        conds.append(c)
        pooled.append(pl)
    # as CLIPTextEncode: the key is there even for encoders without a pooled vector (Chroma's Flux-derived model
    # reads it)
    return [[torch.cat(conds), {"pooled_output": torch.cat(pooled) if all(p is not None for p in pooled) else None}]]


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


CLIP_ONLY_ENCODERS = ("SD1ClipModel", "SD2ClipModel", "SDXLClipModel", "SDXLRefinerClipModel")


def is_clip_only(clip) -> bool:
    """SD1.x / SD2.x / SDXL text encoders: 77-token CLIP chunks, batched by encode_sentences."""
    return type(clip.cond_stage_model).__name__ in CLIP_ONLY_ENCODERS


@dataclass
class SentenceMeans:
    """Means over a sentence set of one encoder: per position (None when the sentences' lengths differ), of each
    sentence's mean token, and of the pooled vectors (None when the encoder gives none)."""

    count: int
    per_position: torch.Tensor | None  # [L, D]
    token_mean: torch.Tensor  # [1, D]
    pooled: torch.Tensor | None  # [P]


def sentence_means(clip, sentences: list[str], on_progress=None) -> SentenceMeans:
    """Encodes the sentences one by one (any encoder: T5, CLIP-L/G + T5, Qwen2.5-VL) and keeps running fp32 sums
    only, so a thousand sentences of a 4096-wide encoder cost one sequence of memory."""
    position = token = pooled_sum = None
    same_length = True
    for i, sentence in enumerate(sentences):
        cond, pooled = clip.encode_from_tokens(clip.tokenize(sentence), return_pooled=True)
        c = cond[0].detach().float().cpu()
        token = c.mean(0, keepdim=True) if token is None else token + c.mean(0, keepdim=True)
        if position is None and same_length:
            position = c.clone()
        elif same_length and position.shape == c.shape:
            position += c
        else:
            same_length, position = False, None
        if isinstance(pooled, torch.Tensor):
            p = pooled.detach().float().cpu().reshape(-1)
            pooled_sum = p if pooled_sum is None else pooled_sum + p
        if on_progress is not None:
            on_progress(i + 1)
    n = len(sentences)
    return SentenceMeans(n, position / n if position is not None else None, token / n,
                         pooled_sum / n if pooled_sum is not None else None)
