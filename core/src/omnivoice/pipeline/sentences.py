"""Cutting a model's streamed answer into sentences, each as soon as it is complete.

The text pipeline sends each sentence to text-to-speech as soon as it ends, so the caller
hears the first one while the model is still writing the rest.
"""

from __future__ import annotations

import re

__all__ = ["SentenceSplitter"]

# Closing quotes and brackets after the punctuation belong to the sentence it ends.
_CLOSERS = "\"')]\u00bb\u201d\u2019\u300d\u300f"
_OPENERS = "\"'([\u00ab\u201c\u2018"
_FULL_WIDTH_ENDS = "\u3002\uff01\uff1f"  # CJK full stop, exclamation and question marks
# A sentence ends with its punctuation once the whitespace after it arrives; CJK marks
# need no space; a line break ends one too.
_END = re.compile(
    rf"[.!?\u2026]+[{re.escape(_CLOSERS)}]*(?=\s)"  # then a space
    rf"|[{_FULL_WIDTH_ENDS}]+[{re.escape(_CLOSERS)}]*"  # CJK: no space follows
    r"|\n"
)
# "Dr. Smith", "e.g. this": a full stop after these never ends a sentence.
_NEVER_ENDS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "rev", "gen", "col", "lt", "sgt", "capt", "sen", "rep"}
    | {"gov", "st", "mt", "ft", "vs", "e.g", "i.e", "cf", "approx", "appt", "dept", "fig"}
)
# "etc.", "Inc.", "Jr.": they end a sentence when the next word starts one.
_MAYBE_ENDS = frozenset(["etc", "inc", "ltd", "co", "corp", "jr", "sr"])
_CLAUSE = re.compile(r"[,;:\u2013\u2014](?=\s)")  # then the dashes


class SentenceSplitter:
    """Feed the model's text as it streams; get each sentence once it is complete.

    A sentence ends at ``.``, ``!``, ``?``, ``…`` (or the CJK marks) followed by a space,
    or at a line break. A full stop does not end one after a title or a Latin
    abbreviation ("Dr.", "e.g."), inside a number ("3.5"), or after a list number at the
    start ("1."); after an ellipsis, an initial, "etc." or a dotted abbreviation ("U.S."),
    the next word decides: a lower-case one continues the sentence. Text without any of
    these still goes out once it reaches ``max_chars``, cut after the last clause mark
    (``,`` ``;`` ``:`` dash) or else the last space, so text-to-speech never waits long.
    """

    def __init__(self, max_chars: int = 250) -> None:
        if max_chars < 1:
            raise ValueError(f"max_chars must be positive, got {max_chars}")
        self.max_chars = max_chars
        self._buffer = ""
        self._scan = 0
        """Where to look for the next end: what comes before is not one."""

    def feed(self, text: str) -> list[str]:
        """Add the next piece of text; return the sentences it completes, in order."""
        self._buffer += text
        sentences = []
        while (sentence := self._next()) is not None:
            sentences.append(sentence)
        return sentences

    def flush(self) -> list[str]:
        """The text is complete: return what is left as a last sentence (if any)."""
        rest = self._buffer.strip()
        self._buffer, self._scan = "", 0
        return [rest] if rest else []

    def _next(self) -> str | None:
        """The next complete sentence, or ``None`` until more text arrives."""
        while True:
            buffer = self._buffer
            cut_blank = False
            for match in _END.finditer(buffer, self._scan):
                ends = _ends_sentence(buffer, match)
                if ends is None:  # the next word decides, and it has not arrived
                    self._scan = match.start()
                    break
                if ends:
                    sentence = self._cut(match.end())
                    if sentence:
                        return sentence
                    cut_blank = True  # a blank line: look again in what is left
                    break
                self._scan = match.end()
            if cut_blank:
                continue
            if len(buffer.strip()) < self.max_chars:
                return None
            return self._cut(self._forced_end(buffer))

    def _forced_end(self, buffer: str) -> int:
        """Where to cut text that reached ``max_chars`` without a sentence end."""
        start = len(buffer) - len(buffer.lstrip())
        window = buffer[: start + self.max_chars]
        clauses = list(_CLAUSE.finditer(window))
        if clauses and clauses[-1].end() > start:
            return clauses[-1].end()
        space = max(window.rfind(" "), window.rfind("\n"), window.rfind("\t"))
        return space if space > start else len(window)

    def _cut(self, end: int) -> str:
        sentence = self._buffer[:end].strip()
        self._buffer = self._buffer[end:].lstrip()
        self._scan = 0
        return sentence


def _ends_sentence(buffer: str, match: re.Match[str]) -> bool | None:
    """Whether ``match`` ends a sentence; ``None`` when the next word must decide."""
    marks = match.group().rstrip(_CLOSERS)
    if marks == "\n":
        return True
    if any(mark in marks for mark in "!?" + _FULL_WIDTH_ENDS):
        return True
    if marks == ".":
        before = buffer[: match.start()]
        word = before.rsplit(None, 1)[-1] if before.strip() else ""
        bare = word.lstrip(_OPENERS).lower()
        if bare in _NEVER_ENDS:
            return False
        if bare.isdigit() and before.strip() == word:
            return False  # "1. First, ..." numbers a list item
        dotted = "." in bare or (len(bare) == 1 and bare.isalpha()) or bare in _MAYBE_ENDS
        if not dotted:
            return True
    # An ellipsis, an initial or an abbreviation: a lower-case next word continues.
    following = buffer[match.end() :].lstrip()
    if not following:
        return None
    return not following[0].islower()
