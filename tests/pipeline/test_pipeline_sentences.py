"""SentenceSplitter: a streamed answer cut into sentences as soon as each is complete."""

from __future__ import annotations

import pytest

from omnivoice.pipeline import SentenceSplitter


def split(text: str, step: int = 1, max_chars: int = 250) -> list[str]:
    """Feed ``text`` ``step`` characters at a time; every sentence, the flushed rest last."""
    splitter = SentenceSplitter(max_chars)
    sentences = []
    for start in range(0, len(text), step):
        sentences += splitter.feed(text[start : start + step])
    return sentences + splitter.flush()


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Hello there. How are you? Fine!", ["Hello there.", "How are you?", "Fine!"]),
        ("Dr. Smith will see you. Bye.", ["Dr. Smith will see you.", "Bye."]),
        ("Bring a snack, e.g. an apple. OK?", ["Bring a snack, e.g. an apple.", "OK?"]),
        ("It costs 3.50 euros. Pay now.", ["It costs 3.50 euros.", "Pay now."]),
        ("Wait... what? Well... Maybe.", ["Wait... what?", "Well...", "Maybe."]),
        (
            "Apples, pears, etc. are fruit. Etc. Yes.",
            ["Apples, pears, etc. are fruit.", "Etc.", "Yes."],
        ),
        ("We ship to the U.S. and Canada.", ["We ship to the U.S. and Canada."]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("1. Pick a size\n2. Pay\n\nDone.", ["1. Pick a size", "2. Pay", "Done."]),
        # CJK full stops and question marks end a sentence without a space after them.
        ("\u4f60\u597d\u3002\u597d\uff1f\u597d", ["\u4f60\u597d\u3002", "\u597d\uff1f", "\u597d"]),
        ("Really?! Yes.", ["Really?!", "Yes."]),
        ("No trailing punctuation", ["No trailing punctuation"]),
        ("   ", []),
    ],
)
def test_sentences(text: str, sentences: list[str]) -> None:
    assert split(text) == sentences
    assert split(text, step=len(text) or 1) == sentences  # one delta or many: the same


def test_a_sentence_is_given_as_soon_as_the_space_after_it_arrives() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Sure") == []
    assert splitter.feed(".") == []  # "Sure.5"? "Sure.com"? not yet known
    assert splitter.feed(" I") == ["Sure."]
    assert splitter.feed(" can help") == []
    assert splitter.flush() == ["I can help"]
    assert splitter.flush() == []


def test_an_ellipsis_waits_for_the_next_word() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Let me think... ") == []
    assert splitter.feed("okay") == []  # lower case: the same sentence goes on
    assert splitter.feed(". Next") == ["Let me think... okay."]


def test_a_long_clause_without_a_full_stop_still_goes_out() -> None:
    text = "first part of a long clause, " + "and then more words " * 20
    sentences = split(text, step=3, max_chars=60)
    assert sentences[0] == "first part of a long clause,"
    assert all(len(sentence) <= 60 for sentence in sentences)
    assert " ".join(sentences).split() == text.split()  # no word lost or cut


def test_a_word_longer_than_the_limit_is_cut() -> None:
    assert split("x" * 25, max_chars=10) == ["x" * 10, "x" * 10, "x" * 5]


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        SentenceSplitter(0)
