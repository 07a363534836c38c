"""The text pipeline's speech: one response's text to audio, and what the caller heard of it.

Two ways, by what the text-to-speech provider offers:

- :class:`SentenceSpeech` cuts the model's text into sentences and synthesises each one as
  soon as it is complete (``TextToSpeech.synthesize``), one at a time, in order;
- :class:`StreamingSpeech` streams the text into the call's synthesis stream as it is
  written (``INPUT_STREAMING``: ``SpeechStream.speak``), one stream per response, with a
  :class:`~omnivoice.pipeline.contracts.Flush` where the model pauses for a function
  call, and takes the word timings that come with the audio (``WORD_TIMINGS``).

Both hand each piece of audio to the session (a :data:`Say`) with the transcript piece it
begins, and both answer the same questions afterwards: what was said
(:meth:`Speech.spoken_text`) and what of it was heard, per round of the model
(:meth:`Speech.texts`). Internal to the pipeline (see ``docs/pipeline.md``).
"""

from __future__ import annotations

import abc
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeAlias

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from omnivoice.audio.converter import StreamConverter
from omnivoice.audio.format import AudioFormat
from omnivoice.concurrency import aclose_now
from omnivoice.pipeline.contracts import Flush, SpeechStream, TextToSpeech
from omnivoice.pipeline.sentences import SentenceSplitter
from omnivoice.realtime.conversation import heard_part, heard_words
from omnivoice.realtime.types import WordTiming

__all__ = ["Say", "SentenceSpeech", "SpeakingRate", "Speech", "StreamingSpeech", "closing"]

Say: TypeAlias = Callable[[str, bytes, tuple[WordTiming, ...]], Awaitable[None]]
"""Hands one piece of audio (in the session's output format) to the session, with the
transcript piece it begins (empty: none) and the words whose audio it completes."""

_SENTENCES = 8
"""Sentences written by the model and waiting for synthesis."""
_TEXT_PIECES = 64
"""Pieces of the model's text waiting for the synthesis stream."""
_MS_PER_CHAR = 70.0
"""The speaking rate assumed until the call's own speech has been measured."""


class SpeakingRate:
    """The call's speaking rate, measured on what was said so far: the length of speech
    not yet (or never) synthesised is estimated with it."""

    def __init__(self) -> None:
        self._chars = 0
        self._ms = 0.0

    def add(self, chars: int, ms: float) -> None:
        if chars > 0 and ms > 0:
            self._chars += chars
            self._ms += ms

    @property
    def ms_per_char(self) -> float:
        return self._ms / self._chars if self._chars else _MS_PER_CHAR


class Speech(abc.ABC):
    """One response's speech: the model's text goes in (:meth:`write`, :meth:`end_round`,
    :meth:`close`) while :meth:`run` synthesises it and hands the audio over."""

    def __init__(
        self,
        outbound: StreamConverter | None,
        output_format: AudioFormat,
        rate: SpeakingRate,
        clock: Callable[[], float],
    ) -> None:
        self._outbound = outbound
        self._output_format = output_format
        self._rate = rate
        self._clock = clock
        self.started_at: float | None = None
        """When the first text went to synthesis."""
        self.first_audio_at: float | None = None
        """When synthesis gave its first audio."""

    @abc.abstractmethod
    async def write(self, round_index: int, text: str) -> None:
        """The next piece of the model's text, in its round ``round_index``."""

    @abc.abstractmethod
    async def end_round(self, round_index: int) -> None:
        """The model's round is over (function calls or the end of the answer follow)."""

    @abc.abstractmethod
    def close(self) -> None:
        """No more text: :meth:`run` ends once what was written is said."""

    @abc.abstractmethod
    def discard(self) -> None:
        """The response is over: what is still queued is dropped (whether or not
        :meth:`run` ever started)."""

    @abc.abstractmethod
    async def run(self, say: Say) -> bytes:
        """Synthesise until the text ends, handing the audio to ``say``; return the
        converter's last audio (for the response's final chunk). A failure of the
        synthesis is raised."""

    @abc.abstractmethod
    def spoken_text(self) -> str:
        """What was said: the text of the audio handed over (all of it when complete)."""

    @abc.abstractmethod
    def texts(self, heard_ms: float | None) -> dict[int, list[str]]:
        """The text per round of the model, as the conversation keeps it: all of it
        (``heard_ms`` ``None``), or what was heard in the first ``heard_ms`` of the
        response's audio (``math.inf``: all that was said)."""

    def _started(self) -> None:
        if self.started_at is None:
            self.started_at = self._clock()

    def _audio(self, audio: bytes) -> bytes:
        """Audio from synthesis, converted to the session's output format."""
        if self.first_audio_at is None:
            self.first_audio_at = self._clock()
        return self._outbound.convert(audio) if self._outbound is not None else audio

    def _tail(self) -> bytes:
        return self._outbound.flush() if self._outbound is not None else b""

    def _ms(self, audio: bytes) -> float:
        return self._output_format.duration(len(audio)) * 1000


# --- a sentence at a time ---------------------------------------------------------------------


@attrs.define(eq=False)
class _Sentence:
    text: str
    round: int
    """The model's round (of function calls) that wrote it."""
    audio_ms: float = 0.0
    """Its audio handed to the session's reader so far."""
    spoken: bool = False
    """Some of its audio was handed over."""
    complete: bool = False
    """All of its audio was handed over."""


class SentenceSpeech(Speech):
    """Each sentence synthesised on its own with ``tts.synthesize``, as soon as the model
    has written it; at most ``max_chars`` at once."""

    def __init__(
        self,
        tts: TextToSpeech,
        tts_format: AudioFormat,
        voice: str | None,
        max_chars: int,
        outbound: StreamConverter | None,
        output_format: AudioFormat,
        rate: SpeakingRate,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(outbound, output_format, rate, clock)
        self._tts = tts
        self._tts_format = tts_format
        self._voice = voice
        self._max_chars = max_chars
        self._splitter = SentenceSplitter(max_chars)
        self._sentences: list[_Sentence] = []
        self._tx: MemoryObjectSendStream[_Sentence]
        self._rx: MemoryObjectReceiveStream[_Sentence]
        self._tx, self._rx = anyio.create_memory_object_stream[_Sentence](_SENTENCES)

    async def write(self, round_index: int, text: str) -> None:
        for sentence in self._splitter.feed(text):
            await self._put(round_index, sentence)

    async def end_round(self, round_index: int) -> None:
        for sentence in self._splitter.flush():
            await self._put(round_index, sentence)
        self._splitter = SentenceSplitter(self._max_chars)

    def close(self) -> None:
        self._tx.close()

    def discard(self) -> None:
        self._tx.close()
        self._rx.close()

    async def _put(self, round_index: int, text: str) -> None:
        sentence = _Sentence(text, round_index)
        self._sentences.append(sentence)
        await self._tx.send(sentence)

    async def run(self, say: Say) -> bytes:
        with self._rx:
            async for sentence in self._rx:
                self._started()
                stream = self._tts.synthesize(
                    sentence.text, audio_format=self._tts_format, voice=self._voice
                )
                async with closing(stream):
                    async for audio in stream:
                        data = self._audio(audio)
                        if data:
                            # The sentence's text goes first, as a piece of the transcript.
                            text = "" if sentence.spoken else sentence.text
                            sentence.spoken = True
                            await say(text, data, ())
                            sentence.audio_ms += self._ms(data)
                sentence.complete = True
                self._rate.add(len(sentence.text), sentence.audio_ms)
        return self._tail()

    def spoken_text(self) -> str:
        return " ".join(s.text for s in self._sentences if s.spoken)

    def texts(self, heard_ms: float | None) -> dict[int, list[str]]:
        texts: dict[int, list[str]] = {}
        if heard_ms is None:
            for sentence in self._sentences:
                texts.setdefault(sentence.round, []).append(sentence.text)
            return texts
        # The words heard: whole sentences, then the heard part of the one cut off.
        budget = heard_ms
        for sentence in self._sentences:
            if not sentence.spoken or budget <= 0:
                break
            total = sentence.audio_ms
            if not sentence.complete:  # its length is not known: estimate it from the text
                total = max(total, len(sentence.text) * self._rate.ms_per_char)
            if budget >= total:
                heard = sentence.text
            else:
                heard = heard_part(sentence.text, round(budget), round(total))
            budget -= total
            if heard:
                texts.setdefault(sentence.round, []).append(heard)
        return texts


# --- streamed text ----------------------------------------------------------------------------


class StreamingSpeech(Speech):
    """The response's text streamed into the call's :class:`SpeechStream` as the model
    writes it. With word timings (``timed``), the transcript pieces are the words as their
    audio comes and what was heard is exact; without, each piece is the text written
    since the last one, and what was heard is estimated over the response's audio."""

    def __init__(
        self,
        stream: SpeechStream,
        timed: bool,
        outbound: StreamConverter | None,
        output_format: AudioFormat,
        rate: SpeakingRate,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(outbound, output_format, rate, clock)
        self._stream = stream
        self._timed = timed
        self._rounds: dict[int, str] = {}
        """What the model wrote, per round."""
        self._words: list[WordTiming] = []
        """The words timed so far."""
        self._told = 0
        """Characters of the text already given as transcript pieces (untimed)."""
        self._audio_ms = 0.0
        self._complete = False
        self._tx: MemoryObjectSendStream[str | Flush]
        self._rx: MemoryObjectReceiveStream[str | Flush]
        self._tx, self._rx = anyio.create_memory_object_stream[str | Flush](_TEXT_PIECES)

    async def write(self, round_index: int, text: str) -> None:
        if not text:
            return
        self._started()
        self._rounds[round_index] = self._rounds.get(round_index, "") + text
        await self._tx.send(text)

    async def end_round(self, round_index: int) -> None:
        await self._tx.send(Flush())

    def close(self) -> None:
        self._tx.close()

    def discard(self) -> None:
        self._tx.close()
        self._rx.close()

    async def run(self, say: Say) -> bytes:
        with self._rx:
            async with self._stream.speak(self._rx) as pieces:
                async for piece in pieces:
                    data = self._audio(piece.audio)
                    words = tuple(piece.words)
                    if not data and not words:
                        continue
                    self._words.extend(words)
                    await say(self._piece_text(words), data, words)
                    self._audio_ms += self._ms(data)
        self._complete = True
        self._rate.add(len(self._written()), self._audio_ms)
        return self._tail()

    def _written(self) -> str:
        return "".join(self._rounds[index] for index in sorted(self._rounds))

    def _piece_text(self, words: tuple[WordTiming, ...]) -> str:
        if self._timed:
            return " ".join(word.text for word in words)
        written = self._written()
        piece, self._told = written[self._told :], len(written)
        return " ".join(piece.split())

    def spoken_text(self) -> str:
        if self._timed and not self._complete:
            return " ".join(word.text for word in self._words)
        if not self._complete and not self._audio_ms:
            return ""
        return " ".join(self._written().split())

    def texts(self, heard_ms: float | None) -> dict[int, list[str]]:
        rounds = {index: text.split() for index, text in sorted(self._rounds.items())}
        if heard_ms is None:
            return {index: [" ".join(words)] for index, words in rounds.items() if words}
        heard = min(heard_ms, self._audio_ms)  # nobody heard what was not said
        if self._timed:
            count = len(heard_words(self._words, heard))
        else:
            text = " ".join(self._written().split())
            total = self._audio_ms
            if not self._complete:  # its length is not known: estimate it from the text
                total = max(total, len(text) * self._rate.ms_per_char)
            count = len(heard_part(text, math.floor(heard), round(total)).split())
        # The model's own words, as many as were heard, round by round.
        texts: dict[int, list[str]] = {}
        for index, words in rounds.items():
            if count <= 0:
                break
            taken = words[:count]
            count -= len(taken)
            if taken:
                texts[index] = [" ".join(taken)]
        return texts


@asynccontextmanager
async def closing(iterator: object) -> AsyncIterator[None]:
    """Close a provider's stream however its iteration ends (an async generator left
    early would otherwise be finalised later, outside any task)."""
    try:
        yield
    finally:
        await aclose_now(iterator)
