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
from omnivoice.errors import OmnivoiceError
from omnivoice.pipeline import (
    LanguageModel,
    Message,
    SpeechToText,
    STTEvent,
    TextDelta,
    TextToSpeech,
    ToolCall,
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
