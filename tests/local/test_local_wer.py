"""The word error rate helper of omnivoice-local."""

from __future__ import annotations

import pytest

from omnivoice_local.wer import word_error_rate, words


def test_words_ignore_case_and_punctuation_but_keep_apostrophes() -> None:
    assert words("Hello, who am I speaking with?") == [
        "hello",
        "who",
        "am",
        "i",
        "speaking",
        "with",
    ]
    assert words("What's the time -- 'now'?") == ["what's", "the", "time", "now"]
    assert words("  ...  ") == []


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        ("what time is it", "what time is it", 0.0),
        ("What time is it?", "what time is it", 0.0),  # case and punctuation do not count
        ("what time is it", "what time it", 0.25),  # one deletion
        ("what time is it", "what time is it now", 0.25),  # one insertion
        ("what time is it", "what dime is it", 0.25),  # one substitution
        ("what time is it", "", 1.0),  # everything deleted
        ("hi", "oh hi there you", 3.0),  # insertions can exceed 1
        ("a b c d", "b c d a", 0.5),  # a rotation: one deletion, one insertion
        ("", "", 0.0),
        ("", "noise", 1.0),
    ],
)
def test_word_error_rate(reference: str, hypothesis: str, expected: float) -> None:
    assert word_error_rate(reference, hypothesis) == pytest.approx(expected)


def test_word_error_rate_is_the_minimum_edit_count() -> None:
    # "kitten" -> "sitting" over words: two substitutions and one insertion.
    reference = "k i t t e n"
    hypothesis = "s i t t i n g"
    assert word_error_rate(reference, hypothesis) == pytest.approx(3 / 6)
