import pytest

from attention.tokens import (
    BOS,
    EOS,
    MAX_PROMPT_TOKENS,
    PromptTokens,
    Word,
    WordNotFound,
    find_word_positions,
    split_words,
)
from tests import clip_bpe


@pytest.fixture(scope="module")
def enc():
    clip_bpe.require()
    return clip_bpe.encode_piece


# --- split_words: CLIP pre-tokenizer units, no vocabulary needed -------------------------------


def test_split_words_punctuation_is_its_own_word():
    assert [w.text for w in split_words("a cat, sitting")] == ["a", "cat", ",", "sitting"]


def test_split_words_spans_case_and_whitespace():
    words = split_words("A  Cat\tsat!!")
    assert words == [Word("a", 0, 1), Word("cat", 3, 6), Word("sat", 7, 10), Word("!!", 10, 12)]


def test_split_words_contractions_and_digits():
    assert [w.text for w in split_words("the CAT'S 2024 don't")] == [
        "the", "cat", "'s", "2", "0", "2", "4", "don", "'t",
    ]


def test_split_words_empty():
    assert split_words("   ") == []


# --- PromptTokens with the real CLIP BPE ----------------------------------------------------------


def test_teddybear_is_two_tokens(enc):
    assert enc("teddybear") == [25758, 4298]
    pt = PromptTokens.build("a teddybear", enc)
    assert pt.full_ids == [BOS, 320, 25758, 4298, EOS]
    assert pt.positions == ((1,), (2, 3))
    assert pt.eos_position == 4


def test_positions_count_bos_and_follow_words(enc):
    pt = PromptTokens.build("A  cat, sitting!! on the mat", enc)
    assert pt.word_texts == ["a", "cat", ",", "sitting", "!!", "on", "the", "mat"]
    assert pt.positions == tuple((k,) for k in range(1, 9))
    assert list(pt.ids) == enc("A  cat, sitting!! on the mat")


def test_multi_token_words(enc):
    pt = PromptTokens.build("an axolotl in 日本", enc)
    assert [len(p) for p in pt.positions] == [1, len(enc("axolotl")), 1, len(enc("日本"))]
    flat = [k for p in pt.positions for k in p]
    assert flat == list(range(1, len(pt.ids) + 1))


def test_too_long_prompt_raises(enc):
    prompt = " ".join(["cat"] * (MAX_PROMPT_TOKENS + 1))
    with pytest.raises(ValueError, match=r"76 tokens.*75-token limit"):
        PromptTokens.build(prompt, enc)
    assert len(PromptTokens.build(" ".join(["cat"] * MAX_PROMPT_TOKENS), enc).ids) == 75


def test_comfyui_and_open_clip_vocab_agree():
    a, b = clip_bpe.load_tokenizer("comfyui"), clip_bpe.load_tokenizer("open_clip")
    if a is None or b is None:
        pytest.skip("needs both ComfyUI's sd1_tokenizer and the open_clip package to compare")
    for text in ["a teddybear, sitting", "Photo of a CAT's hat 2024!", "日本語 café naïve", "x_y-z"]:
        assert a.encode(text) == b.encode(text)


# --- fallback alignment with a toy tokenizer that merges across word boundaries -------------------


def _toy_tokenizer():
    """Digit runs are one token (unlike CLIP), so word-by-word encoding misses the merge."""
    import re

    table: dict[str, int] = {}

    def encode(text: str) -> list[int]:
        return [table.setdefault(t, len(table)) for t in re.findall(r"\d+|[a-z]+|[^\sa-z\d]+", text.lower())]

    def decode(token: int) -> str:
        return {v: k for k, v in table.items()}[token]

    return encode, decode


def test_fallback_aligns_decoded_pieces():
    encode, decode = _toy_tokenizer()
    pt = PromptTokens.build("year 2024, cat", encode, decode)
    assert pt.word_texts == ["year", "2", "0", "2", "4", ",", "cat"]
    assert pt.positions == ((1,), (2,), (2,), (2,), (2,), (3,), (4,))


def test_fallback_without_decoder_raises():
    encode, _ = _toy_tokenizer()
    with pytest.raises(ValueError, match="word by word"):
        PromptTokens.build("year 2024", encode)


def test_fallback_mismatch_raises():
    encode, _ = _toy_tokenizer()
    with pytest.raises(ValueError, match="do not spell"):
        PromptTokens.build("year 2024", encode, lambda t: "?")


# --- find_word_positions ----------------------------------------------------------------------


def test_phrase_lookup_ignores_punctuation_and_case(enc):
    pt = PromptTokens.build("a cat, sitting by a Cat's bowl", enc)
    assert find_word_positions(pt, "cat,") == [2, 7]
    assert find_word_positions(pt, "CAT") == [2, 7]
    assert find_word_positions(pt, ",") == [3]


def test_multi_word_phrase_all_occurrences(enc):
    pt = PromptTokens.build("a red car and a red, teddybear", enc)
    # a=1 red=2 car=3 and=4 a=5 red=6 ,=7 teddy=8 bear=9
    assert find_word_positions(pt, "red car") == [2, 3]
    assert find_word_positions(pt, "red teddybear") == [6, 8, 9]
    assert find_word_positions(pt, "a red") == [1, 2, 5, 6]


def test_word_not_found_lists_words(enc):
    pt = PromptTokens.build("a cat, sitting", enc)
    with pytest.raises(WordNotFound) as err:
        find_word_positions(pt, "dog")
    assert isinstance(err.value, ValueError)
    assert "'dog'" in str(err.value) and "a, cat, sitting" in str(err.value)
    with pytest.raises(WordNotFound):
        find_word_positions(pt, "   ")


def _t5_tokenizer():
    import os

    import pytest

    path = os.path.join(os.path.expanduser(os.environ.get("COMFYUI_PATH", "~/ComfyUI")), "comfy", "text_encoders",
                        "t5_tokenizer")
    if not os.path.isdir(path):
        pytest.skip(f"no T5 tokenizer at {path} (it ships with ComfyUI)")
    from transformers import T5TokenizerFast

    return T5TokenizerFast.from_pretrained(path)


def test_t5_sentencepiece_words_own_their_bare_word_start_marks():
    from attention.tokens import PromptTokens, TokenizerLayout, find_word_positions

    hf = _t5_tokenizer()
    layout = TokenizerLayout(None, 1, 256, "T5")
    pt = PromptTokens.build("a red cat, sitting", lambda t: hf(t, add_special_tokens=False)["input_ids"],
                            lambda t: hf.decode([t]), layout)
    assert hf.convert_ids_to_tokens(list(pt.ids)) == ["▁", "a", "▁red", "▁cat", ",", "▁sitting"]
    assert pt.positions == ((0, 1), (2,), (3,), (4,), (5,))  # no start token: slot 0 is the first piece
    assert find_word_positions(pt, "cat,") == [3] and find_word_positions(pt, "a") == [0, 1]
    assert pt.full_ids == [*pt.ids, 1] and pt.eos_position == 6
