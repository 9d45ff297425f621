"""build_plan: per-prompt word keys (word_schedule, reweight) with several edited prompts."""
import logging

import pytest
import torch

from attention.p2p_plan import InputError, build_plan
from attention.tokens import PromptTokens, find_word_positions
from tests import clip_bpe

NODE = "AttnEdit_P2PReplace"
SOURCE = "a cat sitting on a mat"
TARGETS = ["a lion sitting on a mat", "a dog sitting on a mat", "a lion sitting on a rug"]


@pytest.fixture(scope="module")
def tok():
    clip_bpe.require()
    return lambda prompt: PromptTokens.build(prompt, clip_bpe.encode_piece)


def plan_of(tok, mode="replace", source=SOURCE, targets=TARGETS, **options):
    return build_plan(NODE, mode, tok(source), [tok(t) for t in targets], 0.8, 0.4, **options)


def slots(tok, prompt, word):
    return find_word_positions(tok(prompt), word)


def test_schedule_key_applies_to_the_prompts_that_contain_it(tok):
    plan = plan_of(tok, word_schedule="lion: 0.4")
    lion = slots(tok, TARGETS[0], "lion")
    for i in (0, 2):  # edited prompts 1 and 3 say 'lion'
        assert plan.rows[i].window_end[lion].tolist() == [0.4] * len(lion)
    # edited prompt 2 ('dog') keeps the default window everywhere
    assert plan.rows[1].window_end.tolist() == [0.8] * 77
    assert (plan.rows[0].window_end == 0.8).sum() == 77 - len(lion)


def test_reweight_key_applies_to_the_prompts_that_contain_it(tok):
    plan = plan_of(tok, reweight="rug: 2, dog: -1")
    rug, dog = slots(tok, TARGETS[2], "rug"), slots(tok, TARGETS[1], "dog")
    assert plan.rows[0].reweight.tolist() == [1.0] * 77
    assert plan.rows[1].reweight[dog].tolist() == [-1.0] * len(dog)
    assert (plan.rows[1].reweight != 1).sum() == len(dog)
    assert plan.rows[2].reweight[rug].tolist() == [2.0] * len(rug)
    assert (plan.rows[2].reweight != 1).sum() == len(rug)


def test_a_source_word_reaches_every_prompt_that_takes_its_attention(tok):
    """'cat' is in no edited prompt but each swaps it for its own word: the key lands on that word."""
    plan = plan_of(tok, word_schedule="cat: 0.1-0.3")
    for row, target, word in zip(plan.rows, TARGETS, ("lion", "dog", "lion")):
        where = slots(tok, target, word)
        assert row.window_start[where].tolist() == [0.1] * len(where)
        assert row.window_end[where].tolist() == [0.3] * len(where)


@pytest.mark.parametrize("input_name", ["word_schedule", "reweight"])
def test_a_word_in_no_prompt_is_refused_naming_every_line(tok, input_name):
    with pytest.raises(InputError) as err:
        plan_of(tok, **{input_name: "horse: 0.5"})
    message = str(err.value)
    assert message.startswith(f"{NODE}: input '{input_name}': 'horse' is in no prompt"), message
    for line in ("Source words: a, cat", "edited prompt 1: a, lion", "edited prompt 2: a, dog",
                 "edited prompt 3: a, lion, sitting, on, a, rug"):
        assert line in message, message


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_a_source_word_no_prompt_takes_is_kept_with_a_warning(tok):
    """Refine: 'cat' is dropped by every edited prompt; the key changes nothing, and the log says so."""
    records, logger = _Records(), logging.getLogger("comfyui-attention-edit")
    logger.addHandler(records)
    try:
        plan = plan_of(tok, mode="refine", source="a black cat", targets=["a black dog"], reweight="cat: 3")
    finally:
        logger.removeHandler(records)
    assert plan.rows[0].reweight.tolist() == [1.0] * 77
    assert any("'cat'" in m and "changes nothing" in m for m in records.messages), records.messages


def test_a_replace_mismatch_names_the_edited_prompt(tok):
    with pytest.raises(InputError) as err:
        plan_of(tok, targets=["a lion sitting on a mat", "a big dog sitting on a mat"])
    assert "input 'target_prompts': edited prompt 2:" in str(err.value)


def test_one_target_behaves_as_before(tok):
    plan = plan_of(tok, targets=TARGETS[:1], word_schedule="lion: 0.25", reweight="mat: 1.5")
    lion, mat = slots(tok, TARGETS[0], "lion"), slots(tok, TARGETS[0], "mat")
    assert plan.rows[0].window_end[lion].tolist() == [0.25] * len(lion)
    assert plan.rows[0].reweight[mat].tolist() == [1.5] * len(mat)
    assert plan.rows[0].window_end.dtype == torch.float64
