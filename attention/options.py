"""Parsers for the P2P nodes' text inputs. Each raises ValueError quoting the bad fragment."""

from __future__ import annotations

import math
import re

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_RANGE = re.compile(rf"^({_NUMBER})\s*-\s*({_NUMBER})$")

WORD_VALUES_SYNTAX = "word: value, other words: value   e.g. 'fluffy: 2.0, red car: -1'"
WORD_SCHEDULE_SYNTAX = "word: end or word: start-end, fractions in [0, 1]   e.g. 'lion: 0.4, cat: 0.1-0.6'"
BLEND_WORDS_SYNTAX = "source words | target words, comma-separated on each side   e.g. 'cat | dog'"


def _entries(text: str) -> list[str]:
    return [e.strip() for e in text.split(",") if e.strip()]


def _split_entry(entry: str, syntax: str) -> tuple[str, str]:
    phrase, sep, value = entry.rpartition(":")
    phrase, value = " ".join(phrase.split()), value.strip()
    if not sep or not phrase or not value:
        raise ValueError(f"cannot read {entry!r}: expected {syntax}")
    return phrase, value


def _number(text: str, entry: str, syntax: str) -> float:
    if not re.fullmatch(_NUMBER, text):
        raise ValueError(f"cannot read the number {text!r} in {entry!r}: expected {syntax}")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number in {entry!r} is not finite: expected {syntax}")
    return value


# Reweight multiplies a word's attention (and so its share of the attention output): the paper uses -2..2, the
# official notebook up to 10. Far beyond, images degrade to noise (1e6 gives latents ~2000) and then to NaN.
MAX_WORD_VALUE = 100.0


def parse_word_values(text: str) -> list[tuple[str, float]]:
    """'fluffy: 2.0, red car: -1' -> [('fluffy', 2.0), ('red car', -1.0)]; '' -> []. |value| <= MAX_WORD_VALUE."""
    out = []
    for entry in _entries(text):
        phrase, value = _split_entry(entry, WORD_VALUES_SYNTAX)
        number = _number(value, entry, WORD_VALUES_SYNTAX)
        if abs(number) > MAX_WORD_VALUE:
            raise ValueError(f"the factor in {entry!r} is beyond ±{MAX_WORD_VALUE:g}, where the image degrades to "
                             f"noise or NaN; use a factor in -2..2 (the paper's range), at most ±10 for a strong "
                             f"effect")
        out.append((phrase, number))
    return out


def parse_word_schedule(text: str) -> list[tuple[str, float, float]]:
    """'lion: 0.4, cat: 0.1-0.6' -> [('lion', 0.0, 0.4), ('cat', 0.1, 0.6)].

    A single number f means (0, f), like a float bound in the official dict (ptp_utils.py:266-267).
    """
    out = []
    for entry in _entries(text):
        phrase, value = _split_entry(entry, WORD_SCHEDULE_SYNTAX)
        m = _RANGE.match(value)
        if m:
            start = _number(m.group(1), entry, WORD_SCHEDULE_SYNTAX)
            end = _number(m.group(2), entry, WORD_SCHEDULE_SYNTAX)
        else:
            start, end = 0.0, _number(value, entry, WORD_SCHEDULE_SYNTAX)
        if not (0.0 <= start <= end <= 1.0):
            raise ValueError(
                f"bad range in {entry!r}: need 0 <= start <= end <= 1; expected {WORD_SCHEDULE_SYNTAX}"
            )
        out.append((phrase, start, end))
    return out


def parse_blend_words(text: str) -> tuple[list[str], list[str]]:
    """'cat | dog' -> (['cat'], ['dog']); 'cat, fur' -> (['cat', 'fur'], ['cat', 'fur'])."""
    sides = text.split("|")
    if len(sides) > 2:
        raise ValueError(f"cannot read {text.strip()!r}: more than one '|'; expected {BLEND_WORDS_SYNTAX}")
    phrases = [[" ".join(e.split()) for e in _entries(side)] for side in sides]
    if len(phrases) == 1:
        return phrases[0], list(phrases[0])
    if not phrases[0] or not phrases[1]:
        raise ValueError(
            f"cannot read {text.strip()!r}: a side of '|' is empty; expected {BLEND_WORDS_SYNTAX}"
        )
    return phrases[0], phrases[1]


MASK_WORDS_SYNTAX = "words separated by '|', one mask each; words joined by ',' share one mask   e.g. 'cat | red, ball'"


def parse_mask_words(text: str) -> list[list[str]]:
    """'cat | red, ball' -> [['cat'], ['red', 'ball']]: one mask per '|'-separated entry, the sum of its words."""
    if not text.strip():
        return []
    groups = [[" ".join(e.split()) for e in _entries(side)] for side in text.split("|")]
    if any(not g for g in groups):
        raise ValueError(f"cannot read {text.strip()!r}: an entry between '|' is empty; expected {MASK_WORDS_SYNTAX}")
    return groups


def parse_prompt_lines(text: str) -> list[str]:
    """One prompt per non-empty line, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]
