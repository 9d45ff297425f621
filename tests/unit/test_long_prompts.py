"""Prompts longer than one 75-token CLIP chunk: word slots per chunk and the plan over the chunks side by side."""
import pytest
import torch

from attention.p2p_plan import InputError, build_sequence_plan
from attention.tokens import CLIP_LAYOUT, PromptTokens, TokenizerLayout, find_word_positions, split_chunks
from tests import clip_bpe

NODE = "AttnEdit_P2PReplace"
HEAD = "a photo of a cat sitting on a mat"
FILLER = ", highly detailed, sharp focus, soft light, golden hour, film grain, wide angle, volumetric fog"
TAIL = ", a red ball next to a small tree"
SOURCE = HEAD + FILLER * 4 + TAIL  # about 110 tokens: two chunks


@pytest.fixture(scope="module")
def chunks():
    """The prompt's chunks as ComfyUI cuts a plain prompt: 75 tokens, then the rest."""
    clip_bpe.require()
    whole_layout = TokenizerLayout(CLIP_LAYOUT.bos, CLIP_LAYOUT.eos, 10_000)

    def cut(prompt):
        pt = PromptTokens.build(prompt, clip_bpe.encode_piece, layout=whole_layout)
        n = len(pt.ids)
        return pt, split_chunks(pt, [min(n, 75)] + ([n - 75] if n > 75 else []), CLIP_LAYOUT)
    return cut


def test_chunks_hold_every_token_once_in_its_slot(chunks):
    whole, parts = chunks(SOURCE)
    assert len(whole.ids) > 75 and len(parts) == 2
    assert parts[0].ids + parts[1].ids == whole.ids
    flat = {}  # flat token index -> (chunk, slot)
    for c, part in enumerate(parts):
        for pos in part.positions:
            for slot in pos:
                assert 1 <= slot <= len(part.ids)  # between the chunk's BOS and EOS
                flat[c * 75 + slot - 1] = (c, slot)
    assert sorted(flat) == list(range(len(whole.ids)))
    for w, pos in enumerate(whole.positions):  # each word's tokens, wherever the chunk boundary falls
        got = sorted(c * 75 + s - 1 for c, part in enumerate(parts) for s in part.positions[w])
        assert got == [p - 1 for p in pos]
    assert find_word_positions(parts[1], "ball") and not parts[0].positions[len(whole.words) - 6]


def test_replace_in_the_second_chunk_edits_only_there(chunks):
    (_, src), (_, tgt) = chunks(SOURCE), chunks(SOURCE.replace("red ball", "blue ball"))
    plan = build_sequence_plan(NODE, "replace", [(src[0], [tgt[0]]), (src[1], [tgt[1]])], 0.8, 0.4,
                               word_schedule="blue: 0.3", blend_words="ball")
    assert plan.text_len == 154 and plan.mappers.shape == (1, 154, 154)
    assert torch.equal(plan.mappers[0, :77, :77], torch.eye(77))  # the first chunk is the same in both
    assert plan.mappers[0, :77, 77:].abs().sum() == 0 and plan.mappers[0, 77:, :77].abs().sum() == 0
    blue = [77 + s for s in find_word_positions(tgt[1], "blue")]
    red = [77 + s for s in find_word_positions(src[1], "red")]
    assert plan.mappers[0][red][:, blue].sum() > 0
    assert plan.rows[0].window_end[blue].tolist() == [0.3] * len(blue)  # a word key found in the second chunk
    assert (plan.rows[0].window_end == 0.3).sum() == len(blue)
    ball = [77 + s for s in find_word_positions(src[1], "ball")]
    assert plan.blend_tokens[0, ball].tolist() == [1.0] * len(ball) and plan.blend_tokens.sum() == 2 * len(ball)


def test_identical_long_prompts_map_every_slot_to_itself(chunks):
    _, src = chunks(SOURCE)
    for mode in ("replace", "refine", "reweight"):
        plan = build_sequence_plan(NODE, mode, [(p, [p]) for p in src], 0.8, 0.4)
        assert torch.equal(plan.mappers[0], torch.eye(154)), mode


def test_refine_across_chunks_builds_and_keeps_the_first_chunk(chunks):
    (_, src), (_, tgt) = chunks(SOURCE), chunks(SOURCE + ", at night")
    plan = build_sequence_plan(NODE, "refine", [(src[0], [tgt[0]]), (src[1], [tgt[1]])], 0.8, 0.4)
    assert torch.equal(plan.mappers[0, :77, :77], torch.eye(77))
    assert plan.rows[0].align[77 + len(src[1].ids) + 1:77 + len(tgt[1].ids) + 1].sum() == 0  # ', at night' is new


def test_a_swap_that_moves_words_across_the_boundary_is_refused(chunks):
    longer = SOURCE.replace("cat", "hippopotamus")  # more tokens: the words at the boundary move to chunk 2
    (_, src), (_, tgt) = chunks(SOURCE), chunks(longer)
    assert len(tgt[0].ids) == 75 and tgt[1].ids != src[1].ids
    with pytest.raises(InputError, match="chunk boundary"):
        build_sequence_plan(NODE, "replace", [(src[0], [tgt[0]]), (src[1], [tgt[1]])], 0.8, 0.4)


def test_a_word_in_no_chunk_is_refused_and_one_in_any_chunk_accepted(chunks):
    _, src = chunks(SOURCE)
    pieces = [(p, [p]) for p in src]
    with pytest.raises(InputError, match="'zebra' is in no prompt"):
        build_sequence_plan(NODE, "reweight", pieces, 0.8, 0.4, reweight="zebra: 2")
    plan = build_sequence_plan(NODE, "reweight", pieces, 0.8, 0.4, reweight="cat: 2, tree: 0.5")
    cat, tree = find_word_positions(src[0], "cat"), [77 + s for s in find_word_positions(src[1], "tree")]
    assert plan.rows[0].reweight[cat].tolist() == [2.0] * len(cat)
    assert plan.rows[0].reweight[tree].tolist() == [0.5] * len(tree)
    with pytest.raises(InputError, match="blend_words"):
        build_sequence_plan(NODE, "replace", pieces, 0.8, 0.4, blend_words="zebra")
