"""What speech-to-text, LLM and text-to-speech providers implement for the text pipeline.

The pipeline (:mod:`omnivoice.pipeline`) assembles one of each into a realtime
:class:`~omnivoice.realtime.provider.Provider`. Plugins register them through the
``register_stt_providers``, ``register_llm_providers`` and ``register_tts_providers`` hooks.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Literal, TypeAlias

import attrs

from omnivoice.audio.format import AudioFormat
from omnivoice.realtime.provider import SpeechStarted, SpeechStopped
from omnivoice.realtime.types import FunctionDeclaration, Transcript, WordTiming
from omnivoice.registration import Capability

__all__ = [
    "EagerEndOfTurn",
    "Flush",
    "LanguageModel",
    "Message",
    "STTEvent",
    "SpeechAudio",
    "SpeechStream",
    "SpeechToText",
    "TextDelta",
    "TextToSpeech",
    "ToolCall",
    "TurnResumed",
    "WordTiming",
]


@attrs.frozen
class EagerEndOfTurn:
    """The recogniser expects the caller's turn to end here, with ``text`` as its words,
    but is not sure yet: a speculative end of turn, within a turn (after ``SpeechStarted``).

    Either ``TurnResumed`` follows (the caller went on), or the turn ends as usual (final
    transcripts, then ``SpeechStopped``), normally with the same words. The pipeline starts
    preparing its answer at once and says nothing of it before the turn really ends."""

    text: str


@attrs.frozen
class TurnResumed:
    """After an :class:`EagerEndOfTurn`: the caller went on speaking, the turn goes on."""


STTEvent: TypeAlias = Transcript | SpeechStarted | SpeechStopped | EagerEndOfTurn | TurnResumed
"""What a recognition stream yields: partial and final transcripts of the caller
(``is_input=True``), and the start and end of speech as the recogniser's endpointing sees
it (``SpeechStopped`` ends the caller's turn).

A partial transcript carries the segment's text so far and replaces the one before (a
piece that starts with a space is taken as new words, added to it); a final one carries
its segment's whole text, once (a long utterance may come as several final segments).
A recogniser without endpointing yields transcripts only: the pipeline then ends turns
with its own voice-activity detector. One that predicts the end of turns may say so early
(:class:`EagerEndOfTurn`, then perhaps :class:`TurnResumed`)."""


class SpeechToText(abc.ABC):
    """Streaming speech recognition."""

    name: str = "stt"
    accepts: tuple[AudioFormat, ...] = ()
    """Input formats, preferred first."""
    capabilities: Capability = Capability.USER_TRANSCRIPTS
    """``SPEECH_EVENTS`` if it reports the start and end of speech (its own endpointing),
    ``STREAMING`` if it gives partial transcripts."""

    @abc.abstractmethod
    def transcribe(
        self, audio_in: AsyncIterable[bytes], *, audio_format: AudioFormat
    ) -> AbstractAsyncContextManager[AsyncIterator[STTEvent]]:
        """Open a recognition stream over the caller's audio (in ``audio_format``, one of
        :attr:`accepts`). Raises a ``ConnectionFailedError`` on entry if it cannot open."""

    async def finalize(self, stream: AsyncIterator[STTEvent]) -> None:  # noqa: B027
        """The pipeline ended the caller's turn by itself (its own detector, the turn
        limit): ask the recognition ``stream`` (what :meth:`transcribe` yielded) to give
        the final transcript of what it has heard so far now, rather than wait for its own
        endpointing. Returns at once, and never raises for a stream that is ending. The
        default does nothing (a recogniser without such a request)."""

    async def aclose(self) -> None:  # noqa: B027 - most hold nothing between calls
        """Release what the provider holds between calls."""


@attrs.frozen
class ToolCall:
    """The model asks for a function call."""

    id: str
    name: str
    arguments: str
    """JSON text."""


@attrs.frozen
class Message:
    """One message of the conversation given to the model."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    """For ``assistant`` messages that called functions."""
    tool_call_id: str | None = None
    """For ``tool`` messages: the call this is the result of."""


@attrs.frozen
class TextDelta:
    """The next piece of the model's answer."""

    text: str


class LanguageModel(abc.ABC):
    """A chat model that streams its answer."""

    name: str = "llm"
    capabilities: Capability = Capability.NONE
    """``FUNCTION_CALLING`` if it asks for tool calls; ``STREAMING`` if it streams text."""

    @abc.abstractmethod
    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[FunctionDeclaration] = (),
        temperature: float | None = None,
    ) -> AsyncIterator[TextDelta | ToolCall]:
        """Answer the conversation: text as it is generated, then any tool calls.

        Cancelling the iteration (barge-in) must stop the generation: the pipeline stops
        reading and closes the iterator (its ``aclose()``, if it has one) at once."""

    async def aclose(self) -> None:  # noqa: B027 - most hold nothing between calls
        """Release what the provider holds between calls."""


def _words(values: Iterable[WordTiming]) -> tuple[WordTiming, ...]:
    return tuple(values)


@attrs.frozen
class Flush:
    """In the text given to :meth:`SpeechStream.speak`: speak everything sent so far now,
    without waiting for more (the model has paused, for a function call)."""


@attrs.frozen
class SpeechAudio:
    """A piece of a streamed synthesis: audio, and the words it completes."""

    audio: bytes
    words: tuple[WordTiming, ...] = attrs.field(default=(), converter=_words)
    """The words whose audio is complete with this piece, in order, timed from the start
    of the response's audio (``WORD_TIMINGS``; empty otherwise)."""


class SpeechStream(abc.ABC):
    """One call's synthesis connection, for a text-to-speech that takes streamed text
    (``INPUT_STREAMING``): each agent response is spoken by one :meth:`speak`."""

    @abc.abstractmethod
    def speak(
        self, text: AsyncIterable[str | Flush]
    ) -> AbstractAsyncContextManager[AsyncIterator[SpeechAudio]]:
        """Speak one response, given its text as it is written: pieces of any size
        (a word may be split between two), :class:`Flush` where the writer pauses, and the
        end of ``text`` when the response is complete.

        The iterator yields audio as soon as it is made, and ends once everything was
        spoken. Leaving the block early (barge-in) stops the response at once: nothing
        more of it is synthesised or yielded, and the stream can speak the next one."""


class TextToSpeech(abc.ABC):
    """Speech synthesis that streams its audio."""

    name: str = "tts"
    produces: tuple[AudioFormat, ...] = ()
    """Output formats, preferred first."""
    capabilities: Capability = Capability.NONE
    """``STREAMING`` if it yields audio as it is made (not all at the end);
    ``INPUT_STREAMING`` if it takes each response's text as it is written
    (:meth:`open_stream`); ``WORD_TIMINGS`` if that stream times each word."""

    @abc.abstractmethod
    def synthesize(
        self, text: str, *, audio_format: AudioFormat, voice: str | None = None
    ) -> AsyncIterator[bytes]:
        """Speak ``text`` (one sentence or more) in ``audio_format`` (one of
        :attr:`produces`), yielding audio as it is made. Cancelling the iteration
        (barge-in) must stop the synthesis: the pipeline stops reading and closes the
        iterator (its ``aclose()``, if it has one) at once."""

    def open_stream(
        self, *, audio_format: AudioFormat, voice: str | None = None
    ) -> AbstractAsyncContextManager[SpeechStream]:
        """Open one call's :class:`SpeechStream` (``INPUT_STREAMING`` only), in
        ``audio_format`` (one of :attr:`produces`, else ``UnsupportedFormatError`` on
        entry). Entering connects, so that the first response does not wait for it; errors
        are raised on entry as by a realtime session's (``AuthFailedError``...), or, if the
        vendor reports them only later, by the first :meth:`SpeechStream.speak`."""
        raise NotImplementedError(f"{self.name} does not take streamed text (INPUT_STREAMING)")

    async def aclose(self) -> None:  # noqa: B027 - most hold nothing between calls
        """Release what the provider holds between calls."""
