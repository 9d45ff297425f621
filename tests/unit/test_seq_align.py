import pytest
import torch

from attention.seq_align import (
    WordCountMismatch,
    needleman_wunsch,
    refinement_mapper,
    replacement_mapper,
)
from attention.tokens import PromptTokens
from tests import clip_bpe


@pytest.fixture(scope="module")
def enc():
    clip_bpe.require()
    return clip_bpe.encode_piece


def _official_style_replace(src: PromptTokens, tgt: PromptTokens, max_len: int = 77) -> torch.Tensor:
    """The official word-swap loop (seq_aligner.py:161-183) re-stated on our word positions,
    including its `mapper[j, j]` after the last swap; used to show where we deviate."""
    swaps = [k for k, (a, b) in enumerate(zip(src.word_texts, tgt.word_texts)) if a != b]
    mapper = torch.zeros(max_len, max_len)
    i = j = cur = 0
    while i < max_len and j < max_len:
        if cur < len(swaps) and src.positions[swaps[cur]][0] == i:
            s, t = src.positions[swaps[cur]], tgt.positions[swaps[cur]]
            if len(s) == len(t):
                mapper[list(s), list(t)] = 1
            else:
                for col in t:
                    mapper[list(s), col] = 1 / len(t)
            cur += 1
            i, j = i + len(s), j + len(t)
        elif cur < len(swaps):
            mapper[i, j] = 1
            i, j = i + 1, j + 1
        else:
            mapper[j, j] = 1
            i, j = i + 1, j + 1
    return mapper


def _one_and_two_token_pair(enc) -> tuple[str, str]:
    """A deterministic word pair from the real vocabulary: 1 token -> 2 tokens."""
    assert len(enc("cat")) == 1
    for word in ["teddybear", "axolotl", "hedgehog", "capybara"]:
        if len(enc(word)) == 2:
            return "cat", word
    pytest.fail("no 2-token candidate word in the CLIP vocabulary")


# --- replacement mapper -----------------------------------------------------------------------


def test_replace_one_to_one_is_identity_but_swapped_column(enc):
    src = PromptTokens.build("a cat sitting on a bench", enc)
    tgt = PromptTokens.build("a dog sitting on a bench", enc)
    m = replacement_mapper(src, tgt)
    assert m.shape == (77, 77) and m.dtype == torch.float32
    assert torch.equal(m, torch.eye(77))  # cat (slot 2) -> dog (slot 2): still the diagonal
    assert torch.equal(m, _official_style_replace(src, tgt))


def test_replace_one_to_two_tokens_ratio_then_source_alignment(enc):
    word, longer = _one_and_two_token_pair(enc)  # cat -> teddybear = [teddy, bear]
    src = PromptTokens.build(f"a {word} sitting on a bench", enc)
    tgt = PromptTokens.build(f"a {longer} sitting on a bench", enc)
    # source slots: BOS0 a1 cat2 sitting3 on4 a5 bench6 EOS7
    # target slots: BOS0 a1 teddy2 bear3 sitting4 on5 a6 bench7 EOS8
    m = replacement_mapper(src, tgt)
    assert m[0, 0] == 1 and m[1, 1] == 1
    assert m[2, 2] == 0.5 and m[2, 3] == 0.5  # 1/len(target tokens) from the one source token
    for s, t in [(3, 4), (4, 5), (5, 6), (6, 7), (7, 8)]:  # sitting on a bench EOS
        assert m[s, t] == 1 and m[:, t].sum() == 1
    for s in range(8, 76):  # padding by source position
        assert m[s, s + 1] == 1
    assert (m.sum(0) > 0).all(), "every target column reads something"
    # The official loop writes mapper[j, j] after the swap: target "sitting" (slot 4) would read
    # source slot 4 ("on"), "on" would read "a", ..., EOS (8) would read padding slot 8.
    official = _official_style_replace(src, tgt)
    assert official[2, 2] == 0.5 and official[2, 3] == 0.5
    for t in range(4, 77):
        assert official[t, t] == 1 and official[:, t].sum() == 1
    assert not torch.equal(m, official)


def test_replace_two_to_one_tokens(enc):
    word, longer = _one_and_two_token_pair(enc)
    src = PromptTokens.build(f"a {longer} on a bench", enc)  # BOS a teddy bear on a bench EOS
    tgt = PromptTokens.build(f"a {word} on a bench", enc)  # BOS a cat on a bench EOS
    m = replacement_mapper(src, tgt)
    assert m[2, 2] == 1 and m[3, 2] == 1  # each source token gives 1/len([cat]) = 1
    for s, t in [(4, 3), (5, 4), (6, 5), (7, 6)]:
        assert m[s, t] == 1
    # the source runs out one slot early: the last target column reads the last source slot
    assert m[76, 75] == 1 and m[76, 76] == 1
    assert (m.sum(0) > 0).all()


def test_replace_two_swaps_matches_official_before_last_swap(enc):
    word, longer = _one_and_two_token_pair(enc)
    src = PromptTokens.build(f"a {word} and a red ball", enc)
    tgt = PromptTokens.build(f"a {longer} and a blue ball", enc)
    m, official = replacement_mapper(src, tgt), _official_style_replace(src, tgt)
    # up to and including the last swap ("red" -> "blue", target slot 6) both agree
    assert torch.equal(m[:, :7], official[:, :7])
    assert m[5, 6] == 1 and m[6, 7] == 1  # red->blue, then ball by source position


def test_replace_case_only_difference_is_not_a_swap(enc):
    src = PromptTokens.build("a Cat", enc)
    tgt = PromptTokens.build("a cat", enc)
    assert torch.equal(replacement_mapper(src, tgt), torch.eye(77))


def test_word_count_mismatch_names_counts_and_words(enc):
    src = PromptTokens.build("a cat sitting", enc)
    tgt = PromptTokens.build("a fluffy cat sitting", enc)
    with pytest.raises(WordCountMismatch) as err:
        replacement_mapper(src, tgt)
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "3 words" in msg and "has 4" in msg and "'fluffy'" in msg and "Refine" in msg


def test_word_count_mismatch_counts_punctuation(enc):
    # difflib pairs "cat ," with "dog" as one replaced block
    with pytest.raises(WordCountMismatch, match=r"4 words.*has 3.*source \['cat', ','\] vs target \['dog'\]"):
        replacement_mapper(PromptTokens.build("a cat, sitting", enc), PromptTokens.build("a dog sitting", enc))


# --- Needleman-Wunsch and refinement mapper ---------------------------------------------------


def test_nw_insert_and_identity():
    assert needleman_wunsch("abc", "abc") == [0, 1, 2]
    assert needleman_wunsch("ac", "abc") == [0, -1, 1]
    assert needleman_wunsch("", "ab") == [-1, -1]
    assert needleman_wunsch("ab", "") == []


def test_nw_mismatch_is_delete_plus_insert():
    # mismatch (-1) < gap (0): 'x' is inserted and 'b' deleted rather than aligned
    assert needleman_wunsch("abc", "axc") == [0, -1, 2]
    # with a mismatch above the gap the changed token aligns diagonally
    assert needleman_wunsch("abc", "axc", gap=-2) == [0, 1, 2]


def test_nw_tie_break_prefers_left_then_up():
    # "ab" vs "ba": at cell (2,2) left (insert y's 'a') wins the tie with up, so y's 'b' aligns
    # with x's 'b' and y's 'a' is an insertion.
    assert needleman_wunsch("ab", "ba") == [1, -1]
    # "aa" vs "a": at cell (2,1) up (delete x's second 'a') ties with the diagonal and wins,
    # so y's 'a' aligns with x's first 'a'.
    assert needleman_wunsch("aa", "a") == [0]


def test_refine_added_word(enc):
    src = PromptTokens.build("a cat", enc)
    tgt = PromptTokens.build("a fluffy cat", enc)
    mapper, alphas = refinement_mapper(src, tgt)
    assert mapper.dtype == torch.int64 and alphas.dtype == torch.float32
    assert mapper.shape == alphas.shape == (77,)
    # target: BOS0 a1 fluffy2 cat3 EOS4 -> source BOS0 a1 cat2 EOS3; fluffy inserted
    assert mapper[:5].tolist() == [0, 1, 0, 2, 3]  # official keeps -1 for fluffy; alpha 0 either way
    assert alphas[:5].tolist() == [1, 1, 0, 1, 1]
    assert mapper[5:].tolist() == list(range(5, 77)) and (alphas[5:] == 1).all()


def test_refine_changed_word_takes_no_source_map(enc):
    mapper, alphas = refinement_mapper(PromptTokens.build("a cat", enc), PromptTokens.build("a dog", enc))
    assert alphas[:4].tolist() == [1, 1, 0, 1]
    assert mapper[:4].tolist() == [0, 1, 0, 3]


def test_refine_removed_word_and_multi_token_insert(enc):
    word, longer = _one_and_two_token_pair(enc)
    src = PromptTokens.build(f"a big {word} on grass", enc)
    tgt = PromptTokens.build(f"a {longer} {word} on grass", enc)
    mapper, alphas = refinement_mapper(src, tgt)
    # target: BOS a teddy bear cat on grass EOS; source: BOS a big cat on grass EOS
    assert alphas[:8].tolist() == [1, 1, 0, 0, 1, 1, 1, 1]
    assert mapper[:8].tolist() == [0, 1, 0, 0, 3, 4, 5, 6]
    assert mapper[8:].tolist() == list(range(8, 77))
