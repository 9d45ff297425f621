import pytest

from attention.options import (
    parse_blend_words,
    parse_prompt_lines,
    parse_word_schedule,
    parse_word_values,
)


def test_word_values():
    assert parse_word_values("fluffy: 2.0, red: -1") == [("fluffy", 2.0), ("red", -1.0)]
    assert parse_word_values("  red   car : 2 ,") == [("red car", 2.0)]
    assert parse_word_values("") == [] and parse_word_values("  ") == []
    assert parse_word_values("x: .5, y: 1e-1") == [("x", 0.5), ("y", 0.1)]


@pytest.mark.parametrize("text, fragment", [
    ("fluffy 2.0", "'fluffy 2.0'"),
    ("fluffy: two", "'two'"),
    (": 2", "': 2'"),
    ("fluffy:", "'fluffy:'"),
    ("fluffy: nan", "'nan'"),
])
def test_word_values_errors_quote_fragment_and_syntax(text, fragment):
    with pytest.raises(ValueError) as err:
        parse_word_values(text)
    assert fragment in str(err.value) and "fluffy: 2.0" in str(err.value)


def test_word_schedule():
    assert parse_word_schedule("lion: 0.4, cat: 0.1-0.6") == [("lion", 0.0, 0.4), ("cat", 0.1, 0.6)]
    assert parse_word_schedule("red car: 0 - 1") == [("red car", 0.0, 1.0)]
    assert parse_word_schedule("") == []


@pytest.mark.parametrize("text", ["lion: 1.5", "lion: -0.2", "lion: 0.6-0.1", "lion: 0.1-", "lion 0.4"])
def test_word_schedule_errors(text):
    with pytest.raises(ValueError) as err:
        parse_word_schedule(text)
    assert repr(text.split(",")[0].strip()) in str(err.value) or "lion" in str(err.value)
    assert "lion: 0.4, cat: 0.1-0.6" in str(err.value)


def test_blend_words():
    assert parse_blend_words("cat | dog") == (["cat"], ["dog"])
    assert parse_blend_words("cat, red  ball | dog,ball") == (["cat", "red ball"], ["dog", "ball"])
    assert parse_blend_words("cat") == (["cat"], ["cat"])
    assert parse_blend_words("") == ([], [])


@pytest.mark.parametrize("text", ["cat | dog | fox", "cat |", " | dog"])
def test_blend_words_errors(text):
    with pytest.raises(ValueError, match=r"cat \| dog"):
        parse_blend_words(text)


def test_prompt_lines():
    assert parse_prompt_lines("  a cat \n\n a dog\r\n   \n") == ["a cat", "a dog"]
    assert parse_prompt_lines("") == []


def test_word_values_beyond_the_finite_range_are_refused():
    assert parse_word_values("big: 100, small: -100") == [("big", 100.0), ("small", -100.0)]
    for text in ("big: 1e30", "big: 1e6", "small: -101"):
        with pytest.raises(ValueError, match="beyond ±100") as err:
            parse_word_values(text)
        assert text.split(":")[0] in str(err.value) and "-2..2" in str(err.value)


def test_mask_words_one_group_per_bar():
    from attention.options import parse_mask_words

    assert parse_mask_words("cat | red,  ball ") == [["cat"], ["red", "ball"]]
    assert parse_mask_words("  ") == []
    with pytest.raises(ValueError, match="empty"):
        parse_mask_words("cat | ")
