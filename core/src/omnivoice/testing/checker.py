"""Checkers of the provider contracts: each says which rule a stream broke, and where.

:class:`SessionChecker` follows a realtime session's events through the grammar written in
``docs/providers/contract.md``; :func:`check_stt_event`, :func:`check_llm_item` and
:func:`check_tts_audio` do the same for the text pipeline's providers. A broken rule
raises :class:`ContractViolation` (an ``AssertionError``, so a test fails with it) naming
the rule.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, NoReturn

import attrs

from omnivoice.audio.format import AudioFormat
from omnivoice.pipeline.contracts import (
    EagerEndOfTurn,
    SpeechAudio,
    TextDelta,
    ToolCall,
    TurnResumed,
)
from omnivoice.realtime.provider import (
    FunctionCall,
    ProviderError,
    ProviderEvent,
    ProviderSwitched,
    RealtimeSession,
    SpeechStarted,
    SpeechStopped,
    Usage,
)
from omnivoice.realtime.types import AudioChunk, HeardResponse, Transcript, WordTiming

__all__ = [
    "CheckedSession",
    "ContractViolation",
    "SessionChecker",
    "check_llm_item",
    "check_speech_audio",
    "check_stt_event",
    "check_tts_audio",
]


class ContractViolation(AssertionError):
    """An event broke a rule of a provider contract."""

    def __init__(self, rule: str, detail: str, index: int | None = None, event: object = None):
        self.rule = rule
        self.detail = detail
        self.index = index
        self.event = event
        where = "" if index is None else f" (event #{index}: {event!r:.200})"
        super().__init__(f"contract rule {rule!r} broken: {detail}{where}")


_EVENT_TYPES = (
    AudioChunk,
    Transcript,
    SpeechStarted,
    SpeechStopped,
    FunctionCall,
    Usage,
    ProviderError,
    ProviderSwitched,
)


@attrs.define
class _Response:
    number: int
    response_id: str | None
    audio_bytes: int = 0
    transcript_final: bool = False
    interrupted: bool = False
    word_start: float = 0.0
    """Where the last word timed so far begins."""


class SessionChecker:
    """Follows one realtime session's events through the contract's grammar.

    Feed it each event (:meth:`check`), tell it when the consumer interrupted
    (:meth:`interrupted`) and when the stream ended (:meth:`end`). ``output_format``, if
    known, lets it check that every chunk holds whole samples. The rules, by name:

    ``event-type``        only :data:`~omnivoice.realtime.ProviderEvent` types, well formed
    ``after-fatal``       nothing follows a fatal :class:`ProviderError`
    ``speech-alternates`` ``SpeechStarted`` and ``SpeechStopped`` alternate, started first
    ``whole-samples``     a response's audio, in all, is whole samples of the output format
                          (its chunks may split a sample, as a vendor's frames may)
    ``response-id``       one response's chunks carry one id (or none)
    ``word-timings``      a chunk's words are timed in order, ``0 <= start <= end``
    ``interrupt-ends``    after ``interrupt()``, the open response ends before another starts
    ``transcript-order``  an agent transcript's pieces come before its response's final text,
                          and a response has at most one final agent transcript
    ``switch-between``    ``ProviderSwitched`` only comes between responses
    ``call-ids``          each ``FunctionCall`` has a call id of its own
    ``response-ends``     a stream that ends (not by a fatal error) leaves no response open
    """

    def __init__(self, output_format: AudioFormat | None = None) -> None:
        self.output_format = output_format
        self.events = 0
        self.responses: list[_Response] = []
        """Every response seen, in order."""
        self.violations: list[ContractViolation] = []
        self._open: _Response | None = None
        self._last: _Response | None = None
        self._speaking = False
        self._fatal = False
        self._call_ids: set[str] = set()

    @property
    def response_open(self) -> bool:
        """A response has begun and its final chunk has not come."""
        return self._open is not None

    @property
    def completed(self) -> int:
        """Responses that ended with their final chunk."""
        return sum(1 for r in self.responses if r is not self._open)

    def heard(self, heard_ms: int = 0) -> list[HeardResponse]:
        """What a bridge would pass to ``interrupt`` now: the open response, heard for
        ``heard_ms`` (for a test that interrupts a session itself)."""
        response = self._open
        if response is None:
            return []
        produced = 0
        if self.output_format is not None:
            produced = round(self.output_format.duration(response.audio_bytes) * 1000)
        return [HeardResponse(response.response_id, heard_ms, produced)]

    def check(self, event: object) -> None:
        """The session yielded ``event``; raises :class:`ContractViolation` if it breaks
        a rule."""
        index = self.events
        self.events += 1
        if self._fatal:
            self._fail("after-fatal", "an event after a fatal ProviderError", index, event)
        if not isinstance(event, _EVENT_TYPES):
            self._fail(
                "event-type", f"{type(event).__name__} is not a provider event", index, event
            )
        if isinstance(event, AudioChunk):
            self._audio(event, index)
        elif isinstance(event, Transcript):
            self._transcript(event, index)
        elif isinstance(event, SpeechStarted):
            if self._speaking:
                self._fail("speech-alternates", "SpeechStarted while speaking", index, event)
            self._speaking = True
        elif isinstance(event, SpeechStopped):
            if not self._speaking:
                self._fail("speech-alternates", "SpeechStopped without SpeechStarted", index, event)
            if not _counts(event.trailing_silence_ms):
                self._fail("event-type", "trailing_silence_ms is not an int >= 0", index, event)
            self._speaking = False
        elif isinstance(event, FunctionCall):
            if not _typed(event.call_id, str) or not event.call_id:
                self._fail("event-type", "a FunctionCall needs a call id", index, event)
            if event.call_id in self._call_ids:
                self._fail("call-ids", f"call id {event.call_id!r} was used before", index, event)
            if not _typed(event.arguments, Mapping):
                self._fail("event-type", "FunctionCall.arguments is not a mapping", index, event)
            self._call_ids.add(event.call_id)
        elif isinstance(event, Usage):
            if not _counts(event.input_tokens, event.output_tokens):
                self._fail("event-type", "token counts must be ints >= 0", index, event)
        elif isinstance(event, ProviderError):
            if event.fatal:
                self._fatal = True
        elif isinstance(event, ProviderSwitched) and self._open is not None:
            self._fail(
                "switch-between", "ProviderSwitched in the middle of a response", index, event
            )

    def interrupted(self) -> None:
        """The consumer called ``interrupt()`` now."""
        if self._open is not None:
            self._open.interrupted = True

    def end(self, *, error: BaseException | None = None) -> None:
        """The stream ended (``error``: the iteration raised it instead)."""
        if error is not None:
            self._fail(
                "event-type",
                f"the iteration raised {type(error).__name__}: {error} (a failure during "
                "the call is a fatal ProviderError, then the end)",
            )
        if self._open is not None and not self._fatal:
            self._fail(
                "response-ends",
                f"the stream ended with response #{self._open.number} open (no final chunk)",
            )

    # --- rules -----------------------------------------------------------------------------

    def _audio(self, chunk: AudioChunk, index: int) -> None:
        if not _typed(chunk.audio, bytes) or not _typed(chunk.is_final, bool):
            self._fail("event-type", "AudioChunk.audio must be bytes", index, chunk)
        response = self._open
        if response is not None and chunk.response_id is not None:
            if response.response_id is None and response.audio_bytes == 0:
                response.response_id = chunk.response_id
            elif response.response_id != chunk.response_id:
                rule = "interrupt-ends" if response.interrupted else "response-id"
                self._fail(
                    rule,
                    f"a chunk of response {chunk.response_id!r} while response "
                    f"{response.response_id!r} is open",
                    index,
                    chunk,
                )
        if response is None:
            response = self._begin(chunk.response_id)
        response.audio_bytes += len(chunk.audio)
        if chunk.words:
            try:
                response.word_start = _check_words(chunk.words, response.word_start)
            except ContractViolation as violation:
                self._fail(violation.rule, violation.detail, index, chunk)
        if chunk.is_final:
            self._open = None
            fmt = self.output_format
            if fmt is not None and response.audio_bytes % fmt.bytes_per_sample:
                self._fail(
                    "whole-samples",
                    f"response #{response.number} has {response.audio_bytes} bytes of audio, "
                    f"not a whole number of {fmt} samples",
                    index,
                    chunk,
                )

    def _transcript(self, transcript: Transcript, index: int) -> None:
        if not _typed(transcript.text, str) or not _typed(transcript.is_input, bool):
            self._fail("event-type", "Transcript.text must be a str", index, transcript)
        if transcript.is_input:
            return
        response = self._open
        if response is None:
            last = self._last
            if transcript.is_final and last is not None and not last.transcript_final:
                last.transcript_final = True  # the text of a response whose audio has ended
                return
            response = self._begin(None)  # text before audio: the response begins
        if response.transcript_final:
            what = "a second final" if transcript.is_final else "a piece of"
            self._fail(
                "transcript-order",
                f"{what} agent transcript after response #{response.number}'s final text",
                index,
                transcript,
            )
        if transcript.is_final:
            response.transcript_final = True

    def _begin(self, response_id: str | None) -> _Response:
        response = _Response(len(self.responses) + 1, response_id)
        self.responses.append(response)
        self._open = self._last = response
        return response

    def _fail(
        self, rule: str, detail: str, index: int | None = None, event: object = None
    ) -> NoReturn:
        violation = ContractViolation(rule, detail, index, event)
        self.violations.append(violation)
        raise violation


def _typed(value: object, kind: type) -> bool:
    """``isinstance`` for values typed otherwise: a third party may send anything."""
    return isinstance(value, kind)


def _check_words(words: object, after: float) -> float:
    """Word timings (rule ``word-timings``): well formed, in order, none before ``after``
    (where the previous word began); returns where the last one begins."""
    if not isinstance(words, tuple):
        raise ContractViolation("word-timings", "words must be a tuple of WordTiming")
    for word in words:
        if not isinstance(word, WordTiming) or not isinstance(word.text, str):
            raise ContractViolation("word-timings", f"{word!r} is not a WordTiming")
        if not 0 <= word.start_ms <= word.end_ms:
            raise ContractViolation(
                "word-timings", f"{word.text!r} runs from {word.start_ms} to {word.end_ms} ms"
            )
        if word.start_ms < after:
            raise ContractViolation(
                "word-timings",
                f"{word.text!r} begins at {word.start_ms} ms, before the word timed before it "
                f"({after} ms)",
            )
        after = word.start_ms
    return after


def _counts(*values: object) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)


class CheckedSession:
    """A realtime session whose events go through a :class:`SessionChecker` as they are
    read; ``interrupt`` passes through and is noted. Drop-in for the session itself."""

    def __init__(self, session: RealtimeSession, checker: SessionChecker) -> None:
        self.session = session
        self.checker = checker

    def __aiter__(self) -> AsyncIterator[ProviderEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[ProviderEvent]:
        try:
            async for event in self.session:
                self.checker.check(event)
                yield event
        except ContractViolation:
            raise
        except Exception as exc:
            self.checker.end(error=exc)
            raise
        self.checker.end()

    async def interrupt(self, heard_ms: int, *, responses: Sequence[HeardResponse] = ()) -> None:
        self.checker.interrupted()
        await self.session.interrupt(heard_ms, responses=responses)


# --- the text pipeline's providers ------------------------------------------------------------


def check_stt_event(event: object, *, speaking: bool) -> bool:
    """One event of a recognition stream; returns whether the caller is speaking after it.

    Rules: ``event-type`` (a :class:`Transcript` of the caller, ``SpeechStarted``,
    ``SpeechStopped``, ``EagerEndOfTurn`` or ``TurnResumed``), ``speech-alternates`` and
    ``turn-speculation`` (an early end of turn and its resumption come within a turn).
    """
    if isinstance(event, EagerEndOfTurn | TurnResumed):
        if isinstance(event, EagerEndOfTurn) and not isinstance(event.text, str):
            raise ContractViolation("event-type", "EagerEndOfTurn.text must be a str", event=event)
        if not speaking:
            name = type(event).__name__
            raise ContractViolation("turn-speculation", f"{name} outside a turn", event=event)
        return speaking
    if isinstance(event, Transcript):
        if not isinstance(event.text, str):
            raise ContractViolation("event-type", "Transcript.text must be a str", event=event)
        if not event.is_input:
            raise ContractViolation(
                "event-type", "a recogniser's transcripts are the caller's", event=event
            )
        return speaking
    if isinstance(event, SpeechStarted):
        if speaking:
            raise ContractViolation("speech-alternates", "SpeechStarted while speaking")
        return True
    if isinstance(event, SpeechStopped):
        if not speaking:
            raise ContractViolation("speech-alternates", "SpeechStopped without SpeechStarted")
        return False
    raise ContractViolation(
        "event-type", f"{type(event).__name__} is not a speech-to-text event", event=event
    )


def check_llm_item(item: object, tools: Iterable[str]) -> None:
    """One item of a language model's stream. Rules: ``event-type`` (a :class:`TextDelta`
    or a :class:`ToolCall`), ``tool-call`` (a declared name, JSON object arguments)."""
    if isinstance(item, TextDelta):
        if not isinstance(item.text, str):
            raise ContractViolation("event-type", "TextDelta.text must be a str", event=item)
        return
    if not isinstance(item, ToolCall):
        raise ContractViolation(
            "event-type", f"{type(item).__name__} is not a TextDelta or a ToolCall", event=item
        )
    if item.name not in set(tools):
        raise ContractViolation("tool-call", f"{item.name!r} was not declared", event=item)
    if not isinstance(item.id, str) or not item.id:
        raise ContractViolation("tool-call", "a ToolCall needs an id", event=item)
    try:
        arguments: Any = json.loads(item.arguments) if item.arguments.strip() else {}
    except (ValueError, AttributeError):
        raise ContractViolation("tool-call", "arguments are not JSON text", event=item) from None
    if not isinstance(arguments, dict):
        raise ContractViolation("tool-call", "arguments are not a JSON object", event=item)


def check_tts_audio(audio: object, audio_format: AudioFormat, *, whole: bool = False) -> None:
    """Synthesised audio: one piece of it (rule ``event-type``: bytes), or all of it
    (``whole``; rule ``whole-samples``: whole samples of ``audio_format``)."""
    if not isinstance(audio, bytes):
        raise ContractViolation("event-type", f"{type(audio).__name__} is not bytes")
    if whole and len(audio) % audio_format.bytes_per_sample:
        raise ContractViolation(
            "whole-samples", f"{len(audio)} bytes is not a whole number of {audio_format} samples"
        )


def check_speech_audio(piece: object, audio_format: AudioFormat, *, after: float = 0.0) -> float:
    """One piece of a streamed synthesis (``SpeechStream.speak``): rule ``event-type`` (a
    :class:`~omnivoice.pipeline.contracts.SpeechAudio` of bytes) and ``word-timings``
    (its words timed in order, none before ``after``, where the previous piece's last word
    began). Returns where its last word begins (``after`` if it has none)."""
    if not isinstance(piece, SpeechAudio):
        raise ContractViolation(
            "event-type", f"{type(piece).__name__} is not a SpeechAudio", event=piece
        )
    check_tts_audio(piece.audio, audio_format)
    return _check_words(piece.words, after)
