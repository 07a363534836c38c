"""In-process speech-to-text, LLM and text-to-speech providers that a test scripts.

Streams are plain iterator classes (nothing left for a garbage collector to finalise);
each records whether it was read to its end or closed early (a barge-in). A stream's
script may hold, besides what it yields:

- a :class:`Gate`: the stream stops there until the test opens it;
- an exception: raised when reached;
- a function: called when reached (to move a fake clock, for instance).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel
import attrs
import numpy as np
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from omnivoice import hookimpl
from omnivoice.audio import AudioFormat, Encoding, g711
from omnivoice.errors import OmnivoiceError, UnsupportedFormatError
from omnivoice.pipeline import (
    Flush,
    LanguageModel,
    Message,
    SpeechAudio,
    SpeechStream,
    SpeechToText,
    STTEvent,
    TextDelta,
    TextToSpeech,
    ToolCall,
    WordTiming,
)
from omnivoice.realtime import FunctionDeclaration, ProcessConfig
from omnivoice.realtime.provider import Provider
from omnivoice.registration import Capability, Register
from omnivoice.testing import SessionProbe, open_probe

PCM16K = AudioFormat(Encoding.PCM16, 16000)
PCM24K = AudioFormat(Encoding.PCM16, 24000)

T = TypeVar("T")


class Gate:
    """A point where a fake stream waits until the test opens it."""

    def __init__(self) -> None:
        self.reached = anyio.Event()
        self._opened = anyio.Event()

    def open(self) -> None:
        self._opened.set()

    async def pass_through(self) -> None:
        self.reached.set()
        await self._opened.wait()


class ScriptedStream(Generic[T]):
    """An async iterator over a script (see the module's docstring)."""

    def __init__(self, script: Iterable[object]) -> None:
        self._script = deque(script)
        self.finished = False
        """Read to its end."""
        self.closed_early = False
        """Closed before its end (the reader stopped: cancelled, interrupted)."""

    def __aiter__(self) -> ScriptedStream[T]:
        return self

    async def __anext__(self) -> T:
        while self._script:
            item = self._script.popleft()
            if isinstance(item, Gate):
                await item.pass_through()
            elif isinstance(item, BaseException):
                raise item
            elif callable(item):
                item()
            else:
                await anyio.lowlevel.checkpoint()
                return item  # type: ignore[return-value]
        self.finished = True
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if not self.finished:
            self.closed_early = True
        self._script.clear()


# --- speech-to-text -----------------------------------------------------------------------


class FakeRecognition:
    """One recognition stream: records the audio it gets, yields what the test emits."""

    def __init__(self, audio_format: AudioFormat, end_with_audio: bool) -> None:
        self.audio_format = audio_format
        self.end_with_audio = end_with_audio
        self.received = bytearray()
        self.audio_ended = anyio.Event()
        self._changed = anyio.Event()
        self._tx: MemoryObjectSendStream[object]
        self._rx: MemoryObjectReceiveStream[object]
        self._tx, self._rx = anyio.create_memory_object_stream[object](1000)

    def emit(self, *events: STTEvent | BaseException | Callable[[], object]) -> None:
        """Queue events; an exception is raised by the stream when reached."""
        for event in events:
            self._tx.send_nowait(event)

    def end(self) -> None:
        """The recogniser ends the stream after what was emitted."""
        self._tx.close()

    async def wait_for_audio(self, n_bytes: int) -> bytes:
        while len(self.received) < n_bytes:
            self._changed = anyio.Event()
            await self._changed.wait()
        return bytes(self.received)

    def __aiter__(self) -> FakeRecognition:
        return self

    async def __anext__(self) -> STTEvent:
        while True:
            try:
                event = await self._rx.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                raise StopAsyncIteration from None
            if isinstance(event, BaseException):
                raise event
            if callable(event):
                event()
                continue
            return event  # type: ignore[return-value]

    async def consume(self, audio_in: AsyncIterable[bytes]) -> None:
        async for chunk in audio_in:
            self.received += chunk
            self._changed.set()
        self.audio_ended.set()
        if self.end_with_audio:
            self._tx.close()

    def close(self) -> None:
        self._tx.close()
        self._rx.close()


class FakeSTT(SpeechToText):
    """A recogniser whose streams (:class:`FakeRecognition`) the test drives."""

    capabilities = Capability.USER_TRANSCRIPTS | Capability.SPEECH_EVENTS | Capability.STREAMING

    def __init__(
        self,
        name: str = "fake-stt",
        *,
        accepts: Iterable[AudioFormat] = (PCM16K,),
        end_with_audio: bool = True,
        connect_error: OmnivoiceError | None = None,
        **options: Any,
    ) -> None:
        self.name = name
        self.accepts = tuple(accepts)
        self.end_with_audio = end_with_audio
        self.connect_error = connect_error
        self.options = options
        self.streams: list[FakeRecognition] = []
        self.finalized: list[object] = []
        """The streams the pipeline asked to finalize, once per request."""
        self.closed = False

    async def finalize(self, stream: AsyncIterator[STTEvent]) -> None:
        self.finalized.append(stream)

    @property
    def stream(self) -> FakeRecognition:
        (stream,) = self.streams
        return stream

    def transcribe(
        self, audio_in: AsyncIterable[bytes], *, audio_format: AudioFormat
    ) -> Any:  # an async context manager of the stream
        return self._transcribe(audio_in, audio_format)

    @asynccontextmanager
    async def _transcribe(
        self, audio_in: AsyncIterable[bytes], audio_format: AudioFormat
    ) -> AsyncIterator[FakeRecognition]:
        if self.connect_error is not None:
            raise self.connect_error
        stream = FakeRecognition(audio_format, self.end_with_audio)
        self.streams.append(stream)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(stream.consume, audio_in)
                yield stream
                tasks.cancel_scope.cancel()
        finally:
            stream.close()

    async def aclose(self) -> None:
        self.closed = True


# --- the language model -------------------------------------------------------------------


@attrs.frozen
class LLMRequest:
    messages: list[Message]
    tools: tuple[FunctionDeclaration, ...]
    temperature: float | None


def words(text: str) -> list[TextDelta]:
    """``text`` as a model streams it: word by word, spaces kept."""
    pieces = text.split(" ")
    return [TextDelta(piece + " ") for piece in pieces[:-1]] + [TextDelta(pieces[-1])]


Reply = Sequence[object] | str


class FakeLLM(LanguageModel):
    """Answers each request with the next scripted reply, then with ``then(messages)``.

    A reply is a script of :class:`TextDelta` and :class:`ToolCall` (and gates, errors,
    functions), or a string streamed word by word.
    """

    capabilities = Capability.FUNCTION_CALLING | Capability.STREAMING

    def __init__(
        self,
        *replies: Reply,
        then: Callable[[Sequence[Message]], Reply] | None = None,
        name: str = "fake-llm",
        **options: Any,
    ) -> None:
        self.name = name
        self.options = options
        self._replies: deque[Reply] = deque(replies)
        self._then = then
        self.requests: list[LLMRequest] = []
        self.streams: list[ScriptedStream[TextDelta | ToolCall]] = []
        self._requested = anyio.Event()
        self.closed = False

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[FunctionDeclaration] = (),
        temperature: float | None = None,
    ) -> ScriptedStream[TextDelta | ToolCall]:
        self.requests.append(LLMRequest(list(messages), tuple(tools), temperature))
        self._requested.set()
        self._requested = anyio.Event()
        if self._replies:
            reply = self._replies.popleft()
        else:
            reply = self._then(messages) if self._then is not None else ""
        stream = ScriptedStream[TextDelta | ToolCall](
            words(reply) if isinstance(reply, str) else reply
        )
        self.streams.append(stream)
        return stream

    async def wait_for_requests(self, n: int) -> list[LLMRequest]:
        while len(self.requests) < n:
            await self._requested.wait()
        return self.requests

    async def aclose(self) -> None:
        self.closed = True


# --- text-to-speech -----------------------------------------------------------------------


def tone(ms: float, fmt: AudioFormat, hz: float = 440.0) -> bytes:
    """``ms`` of a sine in ``fmt`` (something to convert that is not silence)."""
    t = np.arange(round(fmt.sample_rate * ms / 1000)) / fmt.sample_rate
    pcm = (8000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()
    return pcm if fmt.encoding is Encoding.PCM16 else g711.encode(pcm, fmt.encoding)


@attrs.frozen
class TTSRequest:
    text: str
    audio_format: AudioFormat
    voice: str | None


class FakeTTS(TextToSpeech):
    """Speaks ``ms_per_char`` of a tone per character, in ``chunk_ms`` chunks.

    ``gates`` stop the synthesis of a sentence after its first chunk; ``fail_on`` makes
    the synthesis of a sentence fail after its first chunk; ``on_start(text)`` runs when a
    synthesis is asked for.
    """

    def __init__(
        self,
        name: str = "fake-tts",
        *,
        produces: Iterable[AudioFormat] = (PCM24K,),
        ms_per_char: int = 10,
        chunk_ms: int = 20,
        gates: dict[str, Gate] | None = None,
        fail_on: str | None = None,
        on_start: Callable[[str], None] | None = None,
        **options: Any,
    ) -> None:
        self.name = name
        self.produces = tuple(produces)
        self.ms_per_char = ms_per_char
        self.chunk_ms = chunk_ms
        self.gates = gates or {}
        self.fail_on = fail_on
        self.on_start = on_start
        self.options = options
        self.requests: list[TTSRequest] = []
        self.streams: list[ScriptedStream[bytes]] = []
        self.closed = False

    @property
    def texts(self) -> list[str]:
        return [request.text for request in self.requests]

    def duration_ms(self, text: str) -> int:
        return len(text) * self.ms_per_char

    def synthesize(
        self, text: str, *, audio_format: AudioFormat, voice: str | None = None
    ) -> ScriptedStream[bytes]:
        self.requests.append(TTSRequest(text, audio_format, voice))
        if self.on_start is not None:
            self.on_start(text)
        audio = tone(self.duration_ms(text), audio_format)
        step = audio_format.bytes_per_frame(self.chunk_ms)
        script: list[object] = [audio[i : i + step] for i in range(0, len(audio), step)]
        if text in self.gates:
            script.insert(1, self.gates[text])
        if text == self.fail_on:
            script.insert(1, OmnivoiceError(f"{self.name} could not say {text!r}"))
        stream = ScriptedStream[bytes](script)
        self.streams.append(stream)
        return stream

    async def aclose(self) -> None:
        self.closed = True


class FakeSpoken:
    """One response of a :class:`FakeSpeechStream`: each word is spoken as soon as it is
    complete (a space after it, a :class:`Flush` or the end of the text), as
    ``ms_per_char`` of tone per character and a space's worth of pause, and timed."""

    def __init__(self, tts: FakeStreamingTTS, text: AsyncIterable[str | Flush], fmt: AudioFormat):
        self._tts = tts
        self._text = aiter(text)
        self._format = fmt
        self._partial = ""
        self._ready: deque[str] = deque()
        self._ended = False
        self._at_ms = 0.0
        self.received: list[str | Flush] = []
        """The text pieces and flushes it was given, in order."""
        self.words: list[WordTiming] = []
        self.finished = False
        self.closed_early = False

    def __aiter__(self) -> FakeSpoken:
        return self

    async def __anext__(self) -> SpeechAudio:
        while not self._ready:
            if self._ended:
                self.finished = True
                raise StopAsyncIteration
            try:
                item = await anext(self._text)
            except StopAsyncIteration:
                self._ended = True
                self._complete(self._partial)
                self._partial = ""
                continue
            self.received.append(item)
            if isinstance(item, Flush):
                self._complete(self._partial)
                self._partial = ""
            else:
                *words, self._partial = (self._partial + item).split(" ")
                for word in words:
                    self._complete(word)
        word = self._ready.popleft()
        if word in self._tts.word_gates:
            await self._tts.word_gates[word].pass_through()
        spoken_ms = len(word) * self._tts.ms_per_char
        timing = WordTiming(word, self._at_ms, self._at_ms + spoken_ms)
        self._at_ms += spoken_ms + self._tts.ms_per_char
        self.words.append(timing)
        await anyio.lowlevel.checkpoint()
        return SpeechAudio(tone(spoken_ms + self._tts.ms_per_char, self._format), (timing,))

    def _complete(self, word: str) -> None:
        if word.strip():
            self._ready.append(word.strip())


class FakeSpeechStream(SpeechStream):
    """One call's stream of a :class:`FakeStreamingTTS`."""

    def __init__(self, tts: FakeStreamingTTS, audio_format: AudioFormat, voice: str | None):
        self.tts = tts
        self.audio_format = audio_format
        self.voice = voice
        self.responses: list[FakeSpoken] = []
        self.attempts = 0
        """Responses asked for (including those that failed)."""
        self.closed = False

    @asynccontextmanager
    async def _speak(self, text: AsyncIterable[str | Flush]) -> AsyncIterator[FakeSpoken]:
        self.attempts += 1
        if self.tts.fail_on_response == self.attempts - 1:
            raise OmnivoiceError(f"{self.tts.name} could not speak response {self.attempts - 1}")
        spoken = FakeSpoken(self.tts, text, self.audio_format)
        self.responses.append(spoken)
        try:
            yield spoken
        finally:
            if not spoken.finished:
                spoken.closed_early = True

    def speak(self, text: AsyncIterable[str | Flush]) -> AbstractAsyncContextManager[FakeSpoken]:
        return self._speak(text)


class FakeStreamingTTS(FakeTTS):
    """A :class:`FakeTTS` that also takes streamed text (``INPUT_STREAMING``) and times
    each word (``WORD_TIMINGS``): its streams are :class:`FakeSpeechStream`.

    ``word_gates`` stop a response before it speaks that word; ``fail_on_response``
    makes the response of that index (0 first, per stream) fail on entry;
    ``connect_error`` is raised by :meth:`open_stream`.
    """

    capabilities = Capability.STREAMING | Capability.INPUT_STREAMING | Capability.WORD_TIMINGS

    def __init__(
        self,
        name: str = "fake-streaming-tts",
        *,
        word_gates: dict[str, Gate] | None = None,
        fail_on_response: int | None = None,
        connect_error: OmnivoiceError | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.word_gates = word_gates or {}
        self.fail_on_response = fail_on_response
        self.connect_error = connect_error
        self.calls: list[FakeSpeechStream] = []

    def synthesize(
        self, text: str, *, audio_format: AudioFormat, voice: str | None = None
    ) -> ScriptedStream[bytes]:
        if audio_format not in self.produces:
            return ScriptedStream[bytes]([UnsupportedFormatError(f"not {audio_format}")])
        if self.connect_error is not None:
            return ScriptedStream[bytes]([self.connect_error])
        return super().synthesize(text, audio_format=audio_format, voice=voice)

    @property
    def call(self) -> FakeSpeechStream:
        (call,) = self.calls
        return call

    @asynccontextmanager
    async def _open(
        self, audio_format: AudioFormat, voice: str | None
    ) -> AsyncIterator[FakeSpeechStream]:
        if audio_format not in self.produces:
            raise UnsupportedFormatError(f"{self.name} does not produce {audio_format}")
        if self.connect_error is not None:
            raise self.connect_error
        stream = FakeSpeechStream(self, audio_format, voice)
        self.calls.append(stream)
        try:
            yield stream
        finally:
            stream.closed = True

    def open_stream(
        self, *, audio_format: AudioFormat, voice: str | None = None
    ) -> AbstractAsyncContextManager[FakeSpeechStream]:
        return self._open(audio_format, voice)


# --- driving a session ----------------------------------------------------------------------


def pipeline_call(
    provider: Provider,
    config: ProcessConfig | None = None,
    *,
    input_format: AudioFormat = PCM16K,
    output_format: AudioFormat = PCM24K,
) -> AbstractAsyncContextManager[SessionProbe]:
    """Open a session of ``provider`` (16 kHz in, 24 kHz out by default) and collect its
    events, checked against the contract, while the block runs."""
    return open_probe(provider, config, input_format=input_format, output_format=output_format)


class FakePipelinePlugin:
    """Registers the fakes as ``fake-stt``, ``fake-llm`` and ``fake-tts``."""

    @hookimpl
    def register_stt_providers(self, register: Register) -> None:
        register("fake-stt", FakeSTT, accepts=[PCM16K])

    @hookimpl
    def register_llm_providers(self, register: Register) -> None:
        register("fake-llm", FakeLLM)
        register("not-an-llm", FakeTTS)

    @hookimpl
    def register_tts_providers(self, register: Register) -> None:
        register("fake-tts", FakeTTS, produces=[PCM24K])
        register("fake-streaming-tts", FakeStreamingTTS, produces=[PCM24K])
