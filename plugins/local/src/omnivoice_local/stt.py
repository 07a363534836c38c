"""The ``local`` speech-to-text provider: PocketSphinx, offline, with its US English model.

The ``pocketsphinx`` wheel ships the model (acoustic model, CMU dictionary, a general
trigram language model), so nothing is downloaded. Each stream has its own endpointer (the
voice-activity detector of PocketSphinx, which says when speech starts and ends) and its
own decoder. Decoding runs in a worker thread, one caller chunk at a time: PocketSphinx
holds the GIL while it decodes, so small steps keep the event loop and other calls going.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Protocol

import anyio.to_thread

from omnivoice.audio.format import AudioFormat, Encoding
from omnivoice.errors import ConnectionFailedError, UnsupportedFormatError
from omnivoice.pipeline.contracts import SpeechToText, STTEvent
from omnivoice.realtime.provider import SpeechStarted, SpeechStopped
from omnivoice.realtime.types import Transcript
from omnivoice.registration import Capability
from omnivoice_local.wer import words

__all__ = ["LocalSTT"]

SAMPLE_RATE = 16000
"""The rate of the acoustic model that the wheel ships."""

_CMN_UPDATE_FRAMES = 10
"""Endpointer frames (30 ms each) between updates of the live cepstral mean."""
_MAX_REDECODE_BYTES = 30 * SAMPLE_RATE * 2
"""The longest utterance decoded a second time (30 s): a longer one keeps its live result."""

_END_QUIET = bytes(SAMPLE_RATE * 2 // 10)
"""100 ms of silence, to end an utterance cut off by the end of the audio."""

_GRAMMAR_NAME = "omnivoice"
_GRAMMAR_OPTIONS: Mapping[str, object] = {
    "lm": None,
    # Filler words (noise, breath) inserted between grammar words swallow speech that
    # matches the acoustic model poorly (a synthetic voice, a phone line) and make the
    # search miss the grammar's end; a closed phrase list needs no fillers.
    "fsgusefiller": False,
    # A grammar is a small search: wide beams cost little and keep the right phrase alive.
    "beam": 1e-120,
    "pbeam": 1e-120,
    "wbeam": 1e-100,
}


class _Hypothesis(Protocol):
    hypstr: str


class _Decoder(Protocol):
    """What this module uses of ``pocketsphinx.Decoder``."""

    def start_utt(self) -> None: ...
    def process_raw(self, data: bytes, no_search: bool = False, full_utt: bool = False) -> int: ...
    def end_utt(self) -> None: ...
    def get_cmn(self, update: bool = False) -> str: ...
    def reinit_feat(self) -> None: ...
    def hyp(self) -> _Hypothesis | None: ...
    def lookup_word(self, word: str) -> str | None: ...
    def add_word(self, word: str, phones: str, update: bool = True) -> int: ...
    def add_jsgf_string(self, name: str, jsgf_string: str) -> None: ...
    def activate_search(self, search_name: str | None = None) -> None: ...


class _Endpointer(Protocol):
    """What this module uses of ``pocketsphinx.Endpointer``."""

    frame_bytes: int
    frame_length: float
    in_speech: bool
    speech_start: float
    speech_end: float

    def process(self, frame: bytes) -> bytes | None: ...


class LocalSTT(SpeechToText):
    """Offline speech recognition with PocketSphinx: PCM16 mono at 16 kHz.

    Without options it recognises open US English with the general language model that
    the wheel ships: no network, but modest accuracy, and it needs most of a CPU core per
    call while the caller speaks. ``phrases`` turns it into a closed-set recogniser: each
    utterance is recognised as the closest of the phrases, or as the one phrase it begins
    if its end was lost (case and punctuation do not matter; each word must be in the
    dictionary, or given in ``pronunciations``). That is accurate and cheap for known
    prompts (a menu, a scripted caller), and it never recognises anything else.
    ``grammar`` is a JSGF grammar for more than a list (optional words, repetitions:
    ``public <number> = (one | two | three)+;``).

    ``pronunciations`` adds words to the dictionary: ``{"omnivoice": "AA M N IY V OY S"}``
    (ARPAbet phones of the CMU dictionary). ``endpoint_window_ms`` is the window of the
    endpointer: speech starts and ends after about 90% of it is speech or quiet.
    ``decoder_options`` go to ``pocketsphinx.Decoder`` as they are (another model with
    ``hmm``/``dict``/``lm``, beams, ``loglevel``...).

    Decoders are kept between calls (loading one takes a fraction of a second):
    :meth:`aclose` releases them.
    """

    name = "local"
    accepts = (AudioFormat(Encoding.PCM16, SAMPLE_RATE),)
    capabilities = Capability.USER_TRANSCRIPTS | Capability.SPEECH_EVENTS | Capability.STREAMING

    def __init__(
        self,
        *,
        phrases: Iterable[str] | None = None,
        grammar: str | None = None,
        pronunciations: Mapping[str, str] | None = None,
        endpoint_window_ms: int = 300,
        decoder_options: Mapping[str, object] | None = None,
    ) -> None:
        if phrases is not None and grammar is not None:
            raise ValueError("give phrases or a grammar, not both")
        self._phrases: tuple[str, ...] = ()
        self._vocabulary: tuple[str, ...] = ()
        if phrases is not None:
            alternatives = sorted({" ".join(words(phrase)) for phrase in phrases} - {""})
            if not alternatives:
                raise ValueError("phrases has no words")
            self._phrases = tuple(alternatives)
            self._vocabulary = tuple(sorted({w for phrase in alternatives for w in phrase.split()}))
            grammar = (
                f"#JSGF V1.0;\ngrammar {_GRAMMAR_NAME};\n"
                f"public <phrase> = {' | '.join(alternatives)};\n"
            )
        if endpoint_window_ms < 60:
            raise ValueError(f"endpoint_window_ms must be at least 60, got {endpoint_window_ms}")
        self.grammar = grammar
        """The JSGF grammar in use (built from ``phrases``), or None for open speech."""
        self.pronunciations = dict(pronunciations or {})
        self.endpoint_window_ms = endpoint_window_ms
        self.decoder_options = dict(decoder_options or {})
        self._idle: list[_Decoder] = []

    @asynccontextmanager
    async def transcribe(
        self, audio_in: AsyncIterable[bytes], *, audio_format: AudioFormat
    ) -> AsyncIterator[AsyncIterator[STTEvent]]:
        """Recognise ``audio_in`` (PCM16 16 kHz mono): ``SpeechStarted``, growing partial
        transcripts, then the final transcript and ``SpeechStopped`` of each utterance.

        Raises :class:`~omnivoice.errors.UnsupportedFormatError` for another format,
        :class:`~omnivoice.errors.ConnectionFailedError` if the model cannot load, and
        ``ValueError`` for a grammar it cannot use (a word not in the dictionary).
        """
        if audio_format not in self.accepts:
            raise UnsupportedFormatError(
                f"the local speech-to-text takes {self.accepts[0]} only, not {audio_format}"
            )
        decoder = self._idle.pop() if self._idle else None
        if decoder is None:
            decoder = await anyio.to_thread.run_sync(self._new_decoder)
        stream = _Stream(
            decoder,
            self.endpoint_window_ms,
            redecode=self.grammar is not None,
            phrases=self._phrases,
        )
        events = _events(stream, audio_in)
        try:
            yield events
        finally:
            await events.aclose()
            if stream.idle:  # a decoder left mid-utterance is not reused
                self._idle.append(decoder)

    async def aclose(self) -> None:
        """Release the decoders kept for the next calls."""
        self._idle.clear()

    def _new_decoder(self) -> _Decoder:
        """A decoder with this recogniser's model and grammar (blocking: about 0.2 s, or
        0.8 s with the general language model)."""
        from pocketsphinx import Decoder  # type: ignore[import-untyped]

        options: dict[str, object] = {"samprate": SAMPLE_RATE, "loglevel": "FATAL"}
        if self.grammar is not None:
            options.update(_GRAMMAR_OPTIONS)
        options.update(self.decoder_options)
        try:
            decoder: _Decoder = Decoder(**options)
        except KeyError as exc:
            raise ValueError(f"not an option of pocketsphinx.Decoder: {exc}") from exc
        except RuntimeError as exc:
            raise ConnectionFailedError(
                f"the local speech-to-text cannot load its model with {options}: {exc}"
            ) from exc
        for word, phones in self.pronunciations.items():
            try:
                decoder.add_word(word.lower(), phones.upper())
            except RuntimeError as exc:
                raise ValueError(f"cannot add the word {word!r} as {phones!r}: {exc}") from exc
        if self.grammar is not None:
            unknown = [word for word in self._vocabulary if decoder.lookup_word(word) is None]
            if unknown:
                raise ValueError(
                    f"not in the dictionary: {', '.join(unknown)}; spell numbers out, or "
                    "give their phones in pronunciations"
                )
            try:
                decoder.add_jsgf_string(_GRAMMAR_NAME, self.grammar)
            except ValueError as exc:
                raise ValueError(f"invalid JSGF grammar (or an unknown word): {exc}") from exc
            decoder.activate_search(_GRAMMAR_NAME)
        return decoder


def _new_endpointer(window_ms: int) -> _Endpointer:
    from pocketsphinx import Endpointer

    endpointer: _Endpointer = Endpointer(window=window_ms / 1000, sample_rate=SAMPLE_RATE)
    return endpointer


async def _events(
    stream: _Stream, audio_in: AsyncIterable[bytes]
) -> AsyncGenerator[STTEvent, None]:
    async for chunk in audio_in:
        for event in await anyio.to_thread.run_sync(stream.feed, chunk):
            yield event
    for event in await anyio.to_thread.run_sync(stream.finish):
        yield event


class _Stream:
    """One recognition stream. Only one thread at a time calls it.

    Each utterance is decoded as it comes, for the partial transcripts. PocketSphinx
    normalises that live decoding with a running cepstral mean that starts from a studio
    microphone's and adapts slowly, so on a phone line the first utterances come out badly.
    With ``redecode`` the final transcript comes from a second decoding of the whole
    utterance, normalised by its own mean: cheap with a grammar (a few percent of the
    audio's duration), too slow for the general language model, which keeps the live result.
    """

    def __init__(
        self, decoder: _Decoder, window_ms: int, *, redecode: bool, phrases: tuple[str, ...]
    ) -> None:
        self._decoder = decoder
        self._endpointer = _new_endpointer(window_ms)
        self._redecode = redecode
        self._phrases = phrases
        self._pending = bytearray()
        """Audio not yet given to the endpointer (less than one of its frames)."""
        window_frames = math.ceil(window_ms / 1000 / self._endpointer.frame_length)
        self._recent: deque[bytes] = deque(maxlen=window_frames + 2)
        """The last frames given to the endpointer, which it may still hold back."""
        self._utterance_start = 0
        """Where the utterance started in the stream, in bytes."""
        self._returned = 0
        """The bytes of the utterance the endpointer has returned."""
        self._speech = bytearray()
        """The utterance's audio, for the second decoding."""
        self._frames = 0
        self._in_utterance = False
        self._partial = ""
        self.idle = True
        """No utterance is open: the decoder can serve another stream."""

    def feed(self, chunk: bytes) -> list[STTEvent]:
        """Take the next chunk of audio; return what it completes."""
        events: list[STTEvent] = []
        self._pending += chunk
        size = self._endpointer.frame_bytes
        whole = len(self._pending) - len(self._pending) % size
        for start in range(0, whole, size):
            self._frames += 1
            self._frame(bytes(self._pending[start : start + size]), events)
        del self._pending[:whole]
        if self._in_utterance:
            self._update_partial(events)
        return events

    def finish(self) -> list[STTEvent]:
        """The audio is over: end the utterance in progress."""
        events: list[STTEvent] = []
        if self._in_utterance:
            # The endpointer holds back its last window of audio, and its end_stream()
            # gives back only part of it: take the rest from the frames kept.
            held = self._frames * self._endpointer.frame_bytes
            held -= self._utterance_start + self._returned
            tail = b"".join(self._recent)[-held:] if held > 0 else b""
            # The caller stopped mid-word (a hang-up): a moment of quiet lets the search
            # finish the word instead of dropping it.
            self._decode(tail + self._pending + _END_QUIET)
            self._end_utterance(events, trailing_ms=0)
        self._pending.clear()
        return events

    def _frame(self, frame: bytes, events: list[STTEvent]) -> None:
        self._recent.append(frame)
        speech = self._endpointer.process(frame)
        if speech is None:
            return
        if not self._in_utterance:
            self._decoder.start_utt()
            self._in_utterance, self.idle = True, False
            self._utterance_start = round(self._endpointer.speech_start * SAMPLE_RATE) * 2
            self._returned = 0
            events.append(SpeechStarted())
        self._returned += len(speech)
        self._decode(speech)
        if self._frames % _CMN_UPDATE_FRAMES == 0:
            # Move the live mean to the audio heard so far: later speech decodes better.
            self._decoder.get_cmn(True)
        if not self._endpointer.in_speech:
            # The endpointer decides after a window of quiet: the speech ended that long ago.
            now = self._frames * self._endpointer.frame_length
            trailing = max(0.0, now - self._endpointer.speech_end)
            self._end_utterance(events, trailing_ms=round(trailing * 1000))

    def _decode(self, speech: bytes) -> None:
        self._decoder.process_raw(speech)
        if self._redecode and len(self._speech) < _MAX_REDECODE_BYTES:
            self._speech += speech

    def _end_utterance(self, events: list[STTEvent], *, trailing_ms: int) -> None:
        self._decoder.end_utt()
        self._in_utterance, self.idle = False, True
        self._partial = ""
        text = _text(self._decoder)
        if self._speech:
            if len(self._speech) < _MAX_REDECODE_BYTES:  # else the live result stands
                # A whole utterance is normalised by its own mean only when the live mean
                # has no history: start the feature computation afresh.
                self._decoder.reinit_feat()
                self._decoder.start_utt()
                self._decoder.process_raw(bytes(self._speech), full_utt=True)
                self._decoder.end_utt()
                text = _text(self._decoder) or text
            self._speech.clear()
        if self._phrases:
            text = _whole_phrase(text, self._phrases)
        if text:
            events.append(Transcript(text, is_input=True, is_final=True))
        events.append(SpeechStopped(trailing_silence_ms=trailing_ms))

    def _update_partial(self, events: list[STTEvent]) -> None:
        """Report the utterance so far when it grows. A revised hypothesis is not reported
        (the final transcript will tell), so each partial extends the previous one."""
        text = _text(self._decoder)
        after = text[len(self._partial) : len(self._partial) + 1]
        if text and (not self._partial or (text.startswith(self._partial) and after == " ")):
            self._partial = text
            events.append(Transcript(text, is_input=True, is_final=False))


def _whole_phrase(text: str, phrases: tuple[str, ...]) -> str:
    """The phrase that ``text`` begins, if only one does. The search can stop inside a
    phrase when its last sounds are lost (a final "th" on a phone line, which carries
    nothing above 4 kHz); a closed list then means that phrase."""
    if not text or text in phrases:
        return text
    started = [phrase for phrase in phrases if phrase.startswith(text + " ")]
    return started[0] if len(started) == 1 else text


def _text(decoder: _Decoder) -> str:
    hypothesis = decoder.hyp()
    return hypothesis.hypstr.strip() if hypothesis is not None else ""
