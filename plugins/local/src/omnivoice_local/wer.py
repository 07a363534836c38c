"""Word error rate: how far a recogniser's transcript is from what was said."""

from __future__ import annotations

import re

__all__ = ["word_error_rate", "words"]

_NOT_WORD = re.compile(r"[^\w']+")


def words(text: str) -> list[str]:
    """The words of ``text`` as recognisers write them: lower case, without punctuation
    (apostrophes stay: ``what's`` is one word)."""
    return [word.strip("'") for word in _NOT_WORD.split(text.lower()) if word.strip("'")]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Substitutions, deletions and insertions turning ``reference`` into ``hypothesis``,
    over the number of words of ``reference`` (the Levenshtein distance over
    :func:`words`: case and punctuation do not count).

    It may exceed 1 when the hypothesis has extra words. An empty reference gives 0 for an
    empty hypothesis and 1 otherwise.
    """
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    # One row of the edit-distance table at a time: row[j] is the distance between the
    # reference so far and the first j words of the hypothesis.
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, 1):
            diagonal, row[j] = (
                row[j],
                min(
                    row[j] + 1,  # deletion of ref_word
                    row[j - 1] + 1,  # insertion of hyp_word
                    diagonal + (ref_word != hyp_word),  # match or substitution
                ),
            )
    return row[-1] / len(ref)
