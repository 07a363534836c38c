"""The conversation as a session remembers it: what was said, and what was heard of it.

:class:`ConversationLog` keeps a call's utterances, bounded, so that a session taking over
the call (a fallback provider, a renewed or resumed vendor session) can be given the
conversation so far as ``ProcessConfig.history``: only the words the caller heard of an
interrupted reply, the newest utterances within a character budget. :func:`heard_words`
is the rule for "what was heard" with the provider's word timings, :func:`heard_part`
without them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import attrs

from omnivoice.realtime.types import ConversationItem, HeardResponse, Transcript, WordTiming

__all__ = ["ConversationLog", "Utterance", "heard_part", "heard_words"]

Role = Literal["user", "agent"]


def heard_part(text: str, heard_ms: int, total_ms: int) -> str:
    """The words of ``text`` spoken in the first ``heard_ms`` of ``total_ms`` of audio.

    Without word timings from the provider, speech is taken to run at an even pace over
    the response's audio; a word counts as heard once its midpoint has played.
    """
    words = text.split()
    if not words or total_ms <= 0 or heard_ms <= 0:
        return ""
    if heard_ms >= total_ms:
        return text
    weights = [len(word) + 1 for word in words]
    budget = sum(weights) * heard_ms / total_ms
    heard: list[str] = []
    spent = 0.0
    for word, weight in zip(words, weights, strict=True):
        if spent + weight / 2 > budget:
            break
        heard.append(word)
        spent += weight
    return " ".join(heard)


def heard_words(words: Iterable[WordTiming], heard_ms: float) -> list[WordTiming]:
    """The words, in order, the caller heard in the first ``heard_ms`` of a response.

    A word counts as heard once its midpoint has played (the rule of :func:`heard_part`,
    with the provider's timings instead of an even pace); the heard words run up to the
    first one that was not.
    """
    heard: list[WordTiming] = []
    for word in words:
        if (word.start_ms + word.end_ms) / 2 > heard_ms:
            break
        heard.append(word)
    return heard


@attrs.define(eq=False)
class Utterance:
    """One utterance of the caller or the agent; its text may grow as it is transcribed."""

    role: Role
    text: str = ""
    heard: tuple[int, int] | None = None
    """For an agent reply cut short: (ms the caller heard, ms of audio it had)."""
    open: bool = False
    """An agent reply still being said (its final transcript has not come)."""
    final_due: bool = False
    """An agent reply cut short before its final transcript came: that may still come."""

    def compact(self) -> str:
        """What counts of it: the heard words of a reply cut short, else all of it."""
        text = self.text.strip()
        if self.heard is None:
            return text
        return heard_part(text, *self.heard)


class ConversationLog:
    """A call's utterances, oldest first, at most ``max_items`` of them.

    Sessions feed it their transcripts (:meth:`add`), or keep utterances by their own ids
    (:meth:`utterance`, for a vendor whose items arrive out of order); :meth:`cut_short`
    records a barge-in; :meth:`history` gives the newest of it within ``max_chars``.
    ``history`` seeds it with the conversation a session was given.
    """

    def __init__(
        self,
        history: Iterable[ConversationItem] = (),
        *,
        max_items: int = 1000,
        max_chars: int = 16000,
    ) -> None:
        if max_items < 1 or max_chars < 0:
            raise ValueError("need max_items >= 1 and max_chars >= 0")
        self.max_items = max_items
        self.max_chars = max_chars
        self._utterances: list[Utterance] = [
            Utterance(item.role, item.text) for item in history if item.text.strip()
        ]
        self._keys: dict[str, Utterance] = {}
        self._trim()

    def __len__(self) -> int:
        return len(self._utterances)

    @property
    def utterances(self) -> tuple[Utterance, ...]:
        return tuple(self._utterances)

    def utterance(self, role: Role, key: str) -> Utterance:
        """The utterance known as ``key`` (a vendor's item id); a new one, at the end, the
        first time."""
        utterance = self._keys.get(key)
        if utterance is None:
            utterance = self._keys[key] = Utterance(role)
            self._append(utterance)
        return utterance

    def get(self, key: str) -> Utterance | None:
        """The utterance known as ``key``, if it is still in the log."""
        return self._keys.get(key)

    def add(self, transcript: Transcript) -> None:
        """Keep a transcript a session yielded: the caller's final ones, the agent's pieces
        and its final text (which replaces the pieces)."""
        if transcript.is_input:
            if transcript.is_final and transcript.text.strip():
                self._add_user(transcript.text)
            return
        reply = self._open_reply()
        if transcript.is_final:
            reply = reply or self._cut_reply()
            if reply is None:
                reply = Utterance("agent")
                self._append(reply)
            reply.text, reply.open, reply.final_due = transcript.text, False, False
        elif transcript.text:
            if reply is None:
                reply = Utterance("agent", open=True)
                self._append(reply)
            # Bounded: a provider might never send the final transcript.
            reply.text = (reply.text + transcript.text)[-self.max_chars :]

    def end_reply(self) -> None:
        """The agent's reply in progress ends here (its session was lost): what was said
        of it stays."""
        reply = self._open_reply()
        if reply is not None:
            reply.open = False

    def cut_short(self, heard_ms: int, produced_ms: int, *, key: str | None = None) -> None:
        """The caller interrupted the agent's latest reply (or the one known as ``key``)
        having heard ``heard_ms`` of its ``produced_ms``: only that part counts from now
        on, even if more of its text arrives later."""
        reply = self._keys.get(key) if key is not None else self._latest_reply()
        if reply is not None:
            _cut(reply, heard_ms, produced_ms)

    def interrupted(self, responses: Sequence[HeardResponse]) -> None:
        """A barge-in cut ``responses`` short (oldest first, as the bridge reports them):
        the agent's replies since the caller's last words, matched newest to newest, keep
        only what was heard."""
        replies: list[Utterance] = []
        for utterance in reversed(self._utterances):
            if utterance.role == "user":
                break
            replies.append(utterance)
        for reply, response in zip(replies, reversed(responses), strict=False):
            _cut(reply, response.heard_ms, response.produced_ms)

    def history(self, max_chars: int | None = None) -> tuple[ConversationItem, ...]:
        """The newest utterances within ``max_chars`` characters (default: the log's
        budget), oldest first, as heard. When even the newest one is longer, its end is
        kept: the last words matter most."""
        budget = self.max_chars if max_chars is None else max_chars
        chosen: list[ConversationItem] = []
        used = 0
        for utterance in reversed(self._utterances):
            text = utterance.compact()
            if not text:
                continue
            if used + len(text) > budget:
                if not chosen and budget:
                    chosen.append(ConversationItem(utterance.role, text[-budget:]))
                break
            chosen.append(ConversationItem(utterance.role, text))
            used += len(text)
        return tuple(reversed(chosen))

    # --- helpers ----------------------------------------------------------------------

    def _add_user(self, text: str) -> None:
        utterance = Utterance("user", text.strip())
        reply = self._open_reply()
        if reply is not None and self._utterances and self._utterances[-1] is reply:
            # The caller spoke before the reply began; transcription came in late.
            self._utterances.insert(len(self._utterances) - 1, utterance)
            self._trim()
        else:
            self._append(utterance)

    def _open_reply(self) -> Utterance | None:
        for utterance in reversed(self._utterances):
            if utterance.role == "agent" and utterance.open:
                return utterance
            if utterance.role == "agent":
                return None
        return None

    def _cut_reply(self) -> Utterance | None:
        """The latest reply, if it was cut short before its final text came."""
        reply = self._latest_reply()
        return reply if reply is not None and reply.final_due else None

    def _latest_reply(self) -> Utterance | None:
        for utterance in reversed(self._utterances):
            if utterance.role == "agent":
                return utterance
        return None

    def _append(self, utterance: Utterance) -> None:
        self._utterances.append(utterance)
        self._trim()

    def _trim(self) -> None:
        excess = len(self._utterances) - self.max_items
        if excess <= 0:
            return
        dropped = {id(u) for u in self._utterances[:excess]}
        del self._utterances[:excess]
        if self._keys:
            self._keys = {k: u for k, u in self._keys.items() if id(u) not in dropped}


def _cut(reply: Utterance, heard_ms: int, produced_ms: int) -> None:
    reply.heard = (max(0, heard_ms), max(0, produced_ms))
    reply.final_due = reply.open
    reply.open = False
