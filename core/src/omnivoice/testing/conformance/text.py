"""The conformance suites of the text pipeline's providers: speech-to-text, LLM, TTS.

Each is a test class to subclass with one ``driver`` fixture (see
:mod:`omnivoice.testing.conformance.realtime` for the pattern); the drivers' defaults
suit most providers, and say what to override.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import ClassVar

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from omnivoice.audio.format import AudioFormat, Encoding
from omnivoice.concurrency import aclose_now
from omnivoice.errors import AuthFailedError, ConnectionFailedError, UnsupportedFormatError
from omnivoice.pipeline.contracts import (
    Flush,
    LanguageModel,
    Message,
    SpeechStream,
    SpeechToText,
    STTEvent,
    TextDelta,
    TextToSpeech,
    ToolCall,
)
from omnivoice.realtime.provider import SpeechStarted, SpeechStopped
from omnivoice.realtime.types import FunctionDeclaration, Transcript, WordTiming
from omnivoice.registration import Capability
from omnivoice.testing.audio import silence, tone
from omnivoice.testing.checker import (
    check_llm_item,
    check_speech_audio,
    check_stt_event,
    check_tts_audio,
)

__all__ = [
    "LLMDriver",
    "LanguageModelConformance",
    "STTDriver",
    "SpeechToTextConformance",
    "TTSDriver",
    "TextToSpeechConformance",
]

_FAILURES = (("auth", AuthFailedError), ("unreachable", ConnectionFailedError))


def _undeclared(offered: Sequence[AudioFormat]) -> AudioFormat:
    for rate in (11025, 32000, 8000, 16000, 24000, 48000):
        for encoding in Encoding:
            if AudioFormat(encoding, rate) not in offered:
                return AudioFormat(encoding, rate)
    raise AssertionError("every format is declared")  # pragma: no cover


def _skip_unless(declared: Capability, capability: Capability, who: str) -> None:
    if not declared & capability:
        pytest.skip(f"{who} does not declare {capability.names[0].upper()}")


# --- speech-to-text ---------------------------------------------------------------------------


class STTDriver:
    """How the suite drives one recogniser. Override :meth:`speech` to give real speech
    and the words in it (a recogniser of words hears none in the default tone)."""

    timeout: float = 15.0

    def __init__(self, stt: SpeechToText) -> None:
        self.stt = stt

    def speech(self, audio_format: AudioFormat) -> tuple[bytes, str | None]:
        """Audio with one utterance and a pause after it, and the words it holds
        (``None``: the suite checks no words)."""
        return tone(600, audio_format) + silence(1200, audio_format), None

    def failing(self, problem: str) -> SpeechToText | None:
        """A recogniser that cannot open (``"auth"`` or ``"unreachable"``), if any."""
        return None


async def _recognise(stt: SpeechToText, audio: bytes, fmt: AudioFormat) -> list[STTEvent]:
    tx, rx = anyio.create_memory_object_stream[bytes](16)
    events: list[STTEvent] = []
    speaking = False

    async def feed() -> None:
        with tx:
            step = fmt.bytes_per_frame(20)
            for start in range(0, len(audio), step):
                await tx.send(audio[start : start + step])

    with rx, tx:  # the caller's side owns its streams: closed however it all ends
        async with (
            stt.transcribe(rx, audio_format=fmt) as stream,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(feed)
            async for event in stream:
                speaking = check_stt_event(event, speaking=speaking)
                events.append(event)
    return events


@pytest.mark.anyio
class SpeechToTextConformance:
    """The contract of a speech-to-text provider. Subclass it and define ``driver``."""

    @pytest.fixture
    def driver(self) -> STTDriver:
        raise NotImplementedError("define a `driver` fixture that returns an STTDriver")

    async def test_it_declares_its_name_formats_and_capabilities(self, driver: STTDriver) -> None:
        stt = driver.stt
        assert isinstance(stt.name, str)
        assert stt.name
        assert isinstance(stt.accepts, tuple)
        assert stt.accepts
        assert all(isinstance(f, AudioFormat) for f in stt.accepts)
        assert isinstance(stt.capabilities, Capability)

    async def test_an_utterance_follows_the_grammar_and_the_stream_ends_with_the_audio(
        self, driver: STTDriver
    ) -> None:
        fmt = driver.stt.accepts[0]
        audio, words = driver.speech(fmt)
        with anyio.fail_after(driver.timeout):
            events = await _recognise(driver.stt, audio, fmt)
        finals = [e.text for e in events if isinstance(e, Transcript) and e.is_final]
        if driver.stt.capabilities & Capability.SPEECH_EVENTS:
            assert any(isinstance(e, SpeechStarted) for e in events), events
            assert any(isinstance(e, SpeechStopped) for e in events), events
        if words is not None:
            heard = " ".join(finals).lower().split()
            missing = [w for w in words.lower().split() if w.strip(".,?!") not in heard]
            assert not missing, f"not recognised: {missing}; finals: {finals}"

    async def test_every_declared_format_is_taken(self, driver: STTDriver) -> None:
        for fmt in driver.stt.accepts:
            with anyio.fail_after(driver.timeout):
                await _recognise(driver.stt, silence(200, fmt), fmt)

    async def test_an_undeclared_format_is_refused_on_entry(self, driver: STTDriver) -> None:
        tx, rx = anyio.create_memory_object_stream[bytes](1)
        with tx, rx, pytest.raises(UnsupportedFormatError):
            async with driver.stt.transcribe(rx, audio_format=_undeclared(driver.stt.accepts)):
                pass

    async def test_leaving_early_ends_the_stream(self, driver: STTDriver) -> None:
        fmt = driver.stt.accepts[0]
        tx, rx = anyio.create_memory_object_stream[bytes](16)
        with tx, rx, anyio.fail_after(driver.timeout):
            async with driver.stt.transcribe(rx, audio_format=fmt):
                await tx.send(tone(100, fmt))

    async def test_finalize_mid_utterance_keeps_the_grammar(self, driver: STTDriver) -> None:
        fmt = driver.stt.accepts[0]
        audio, _ = driver.speech(fmt)
        tx, rx = anyio.create_memory_object_stream[bytes](16)
        speaking = False
        half, step = len(audio) // 2, fmt.bytes_per_frame(20)
        with tx, rx, anyio.fail_after(driver.timeout):
            async with (
                driver.stt.transcribe(rx, audio_format=fmt) as stream,
                anyio.create_task_group() as tasks,
            ):

                async def feed() -> None:
                    with tx:
                        for start in range(0, half, step):
                            await tx.send(audio[start : min(start + step, half)])
                        await driver.stt.finalize(stream)  # the pipeline ended the turn itself
                        await driver.stt.finalize(stream)  # twice is no error either

                tasks.start_soon(feed)
                async for event in stream:  # read as it comes: nothing is held back
                    speaking = check_stt_event(event, speaking=speaking)

    async def test_a_failed_start_raises_a_typed_error(self, driver: STTDriver) -> None:
        tried = 0
        for problem, expected in _FAILURES:
            stt = driver.failing(problem)
            if stt is None:
                continue
            tried += 1
            with anyio.fail_after(driver.timeout), pytest.raises(expected):
                await _recognise(stt, b"", stt.accepts[0])
        if not tried:
            pytest.skip("the driver makes no failing recogniser (STTDriver.failing)")

    async def test_aclose_can_be_called_twice(self, driver: STTDriver) -> None:
        await driver.stt.aclose()
        await driver.stt.aclose()


# --- language models -----------------------------------------------------------------------


class LLMDriver:
    """How the suite drives one language model: the conversations it is given."""

    timeout: float = 15.0
    TOOL: ClassVar[FunctionDeclaration] = FunctionDeclaration(
        "lookup_order",
        "Find an order by its number",
        {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]},
    )

    def __init__(self, llm: LanguageModel) -> None:
        self.llm = llm

    def conversation(self) -> list[Message]:
        """A conversation the model answers with text."""
        return [
            Message("system", "You are a helpful phone agent. Answer in one sentence."),
            Message("user", "Hello, are you open today?"),
        ]

    def tool_conversation(self) -> list[Message]:
        """A conversation in which the model should call :attr:`TOOL`."""
        return [
            Message("system", "You are a shop's phone agent. Use lookup_order for orders."),
            Message("user", "Where is my order A-1?"),
        ]

    def failing(self, problem: str) -> LanguageModel | None:
        """A model that cannot answer (``"auth"`` or ``"unreachable"``), if any."""
        return None


async def _answer(
    llm: LanguageModel, messages: Sequence[Message], tools: Sequence[FunctionDeclaration] = ()
) -> list[TextDelta | ToolCall]:
    items: list[TextDelta | ToolCall] = []
    stream = llm.stream(messages, tools=tools)
    try:
        async for item in stream:
            check_llm_item(item, [t.name for t in tools])
            items.append(item)
    finally:
        await aclose_now(stream)
    return items


@pytest.mark.anyio
class LanguageModelConformance:
    """The contract of an LLM provider. Subclass it and define ``driver``."""

    @pytest.fixture
    def driver(self) -> LLMDriver:
        raise NotImplementedError("define a `driver` fixture that returns an LLMDriver")

    async def test_it_declares_its_name_and_capabilities(self, driver: LLMDriver) -> None:
        assert isinstance(driver.llm.name, str)
        assert driver.llm.name
        assert isinstance(driver.llm.capabilities, Capability)

    async def test_it_answers_with_text(self, driver: LLMDriver) -> None:
        with anyio.fail_after(driver.timeout):
            items = await _answer(driver.llm, driver.conversation())
        text = "".join(i.text for i in items if isinstance(i, TextDelta))
        assert text.strip(), items

    async def test_closing_the_stream_early_stops_it(self, driver: LLMDriver) -> None:
        with anyio.fail_after(driver.timeout):
            stream = driver.llm.stream(driver.conversation())
            first = await anext(aiter(stream))
            check_llm_item(first, [])
            await aclose_now(stream)

    async def test_it_asks_for_a_declared_tool(self, driver: LLMDriver) -> None:
        _skip_unless(driver.llm.capabilities, Capability.FUNCTION_CALLING, driver.llm.name)
        with anyio.fail_after(driver.timeout):
            items = await _answer(driver.llm, driver.tool_conversation(), [driver.TOOL])
        calls = [i for i in items if isinstance(i, ToolCall)]
        assert calls, f"no call of {driver.TOOL.name}: {items}"
        assert {c.name for c in calls} == {driver.TOOL.name}

    async def test_it_goes_on_after_a_tool_result(self, driver: LLMDriver) -> None:
        _skip_unless(driver.llm.capabilities, Capability.FUNCTION_CALLING, driver.llm.name)
        with anyio.fail_after(driver.timeout):
            items = await _answer(driver.llm, driver.tool_conversation(), [driver.TOOL])
            calls = tuple(i for i in items if isinstance(i, ToolCall))
            assert calls
            said = "".join(i.text for i in items if isinstance(i, TextDelta))
            follow_up = [
                *driver.tool_conversation(),
                Message("assistant", said, tool_calls=calls),
                *(Message("tool", '{"status": "shipped"}', tool_call_id=c.id) for c in calls),
            ]
            answer = await _answer(driver.llm, follow_up, [driver.TOOL])
        assert "".join(i.text for i in answer if isinstance(i, TextDelta)).strip(), answer

    async def test_a_failed_start_raises_a_typed_error(self, driver: LLMDriver) -> None:
        tried = 0
        for problem, expected in _FAILURES:
            llm = driver.failing(problem)
            if llm is None:
                continue
            tried += 1
            with anyio.fail_after(driver.timeout), pytest.raises(expected):
                await _answer(llm, driver.conversation())
        if not tried:
            pytest.skip("the driver makes no failing model (LLMDriver.failing)")

    async def test_aclose_can_be_called_twice(self, driver: LLMDriver) -> None:
        await driver.llm.aclose()
        await driver.llm.aclose()


# --- text-to-speech ---------------------------------------------------------------------------


class TTSDriver:
    """How the suite drives one synthesiser: what it is asked to say (and, for one that
    takes streamed text, in which pieces: :meth:`pieces`)."""

    timeout: float = 15.0
    text: str = "Hello, thank you for calling. How can I help?"
    next_text: str = "Our shop opens at nine."
    """A second response, spoken on the same stream after the first."""

    def __init__(self, tts: TextToSpeech) -> None:
        self.tts = tts

    def pieces(self, text: str) -> list[str]:
        """``text`` as a model streams it: word by word, the first word split in two."""
        words = text.split(" ")
        pieces = [word + " " for word in words[:-1]] + [words[-1]]
        first = pieces[0]
        return [first[:2], first[2:], *pieces[1:]] if len(first) > 3 else pieces

    def failing(self, problem: str) -> TextToSpeech | None:
        """A synthesiser that cannot speak (``"auth"`` or ``"unreachable"``), if any."""
        return None


async def _speak(tts: TextToSpeech, text: str, fmt: AudioFormat) -> bytes:
    audio = bytearray()
    stream: AsyncIterator[bytes] = tts.synthesize(text, audio_format=fmt)
    try:
        async for piece in stream:
            check_tts_audio(piece, fmt)
            audio += piece
    finally:
        await aclose_now(stream)
    check_tts_audio(bytes(audio), fmt, whole=True)
    return bytes(audio)


# --- text-to-speech that takes streamed text ---------------------------------------------------


def _text_stream(
    pieces: Sequence[str | Flush], *, end: bool = True
) -> tuple[MemoryObjectSendStream[str | Flush], MemoryObjectReceiveStream[str | Flush]]:
    """A response's text, queued (and ended, unless ``end`` is false)."""
    tx, rx = anyio.create_memory_object_stream[str | Flush](len(pieces) + 1)
    for piece in pieces:
        tx.send_nowait(piece)
    if end:
        tx.close()
    return tx, rx


async def _speak_streamed(
    stream: SpeechStream, pieces: Sequence[str | Flush], fmt: AudioFormat
) -> tuple[bytes, list[WordTiming]]:
    """One response spoken from ``pieces``: its audio (checked) and its words."""
    tx, rx = _text_stream(pieces)
    audio = bytearray()
    words: list[WordTiming] = []
    after = 0.0
    with tx, rx:
        async with stream.speak(rx) as spoken:
            async for piece in spoken:
                after = check_speech_audio(piece, fmt, after=after)
                audio += piece.audio
                words.extend(piece.words)
    check_tts_audio(bytes(audio), fmt, whole=True)
    return bytes(audio), words


def _check_words(words: Sequence[WordTiming], text: str, audio_ms: float) -> None:
    """The words timed are those of ``text``, in order, within its audio."""
    assert "".join(w.text for w in words) == "".join(text.split()), [w.text for w in words]
    assert all(w.end_ms <= audio_ms + 1 for w in words), (words[-1:], audio_ms)


@pytest.mark.anyio
class TextToSpeechConformance:
    """The contract of a TTS provider. Subclass it and define ``driver``; the tests of
    streamed text run for a provider that declares ``INPUT_STREAMING``."""

    @pytest.fixture
    def driver(self) -> TTSDriver:
        raise NotImplementedError("define a `driver` fixture that returns a TTSDriver")

    async def test_it_declares_its_name_formats_and_capabilities(self, driver: TTSDriver) -> None:
        tts = driver.tts
        assert isinstance(tts.name, str)
        assert tts.name
        assert isinstance(tts.produces, tuple)
        assert tts.produces
        assert all(isinstance(f, AudioFormat) for f in tts.produces)
        assert isinstance(tts.capabilities, Capability)

    async def test_it_speaks_in_every_declared_format(self, driver: TTSDriver) -> None:
        for fmt in driver.tts.produces:
            with anyio.fail_after(driver.timeout):
                audio = await _speak(driver.tts, driver.text, fmt)
            # A sentence of speech lasts far longer than a tenth of a second.
            assert fmt.duration(len(audio)) > 0.1, fmt

    async def test_an_undeclared_format_is_refused(self, driver: TTSDriver) -> None:
        with anyio.fail_after(driver.timeout), pytest.raises(UnsupportedFormatError):
            await _speak(driver.tts, driver.text, _undeclared(driver.tts.produces))

    async def test_closing_the_stream_early_stops_it(self, driver: TTSDriver) -> None:
        fmt = driver.tts.produces[0]
        with anyio.fail_after(driver.timeout):
            stream = driver.tts.synthesize(driver.text, audio_format=fmt)
            check_tts_audio(await anext(aiter(stream)), fmt)
            await aclose_now(stream)

    async def test_nothing_to_say_is_no_error(self, driver: TTSDriver) -> None:
        with anyio.fail_after(driver.timeout):
            await _speak(driver.tts, "", driver.tts.produces[0])

    async def test_a_failed_start_raises_a_typed_error(self, driver: TTSDriver) -> None:
        tried = 0
        for problem, expected in _FAILURES:
            tts = driver.failing(problem)
            if tts is None:
                continue
            tried += 1
            with anyio.fail_after(driver.timeout), pytest.raises(expected):
                await _speak(tts, driver.text, tts.produces[0])
        if not tried:
            pytest.skip("the driver makes no failing synthesiser (TTSDriver.failing)")

    async def test_aclose_can_be_called_twice(self, driver: TTSDriver) -> None:
        await driver.tts.aclose()
        await driver.tts.aclose()

    # --- streamed text (INPUT_STREAMING) ---

    @pytest.fixture
    def streaming(self, driver: TTSDriver) -> TTSDriver:
        _skip_unless(driver.tts.capabilities, Capability.INPUT_STREAMING, driver.tts.name)
        return driver

    async def test_streamed_text_is_spoken_in_every_declared_format(
        self, streaming: TTSDriver
    ) -> None:
        tts = streaming.tts
        for fmt in tts.produces:
            with anyio.fail_after(streaming.timeout):
                async with tts.open_stream(audio_format=fmt) as stream:
                    audio, words = await _speak_streamed(
                        stream, streaming.pieces(streaming.text), fmt
                    )
            duration_ms = fmt.duration(len(audio)) * 1000
            assert duration_ms > 100, fmt
            if tts.capabilities & Capability.WORD_TIMINGS:
                _check_words(words, streaming.text, duration_ms)

    async def test_audio_comes_before_the_text_is_complete(self, streaming: TTSDriver) -> None:
        fmt = streaming.tts.produces[0]
        first, _, rest = streaming.text.partition(". ")
        tx, rx = _text_stream([*streaming.pieces(first + ". "), Flush()], end=False)
        heard = anyio.Event()

        async def write_the_rest() -> None:
            with tx:
                await heard.wait()  # the first sentence is heard; the model goes on
                for text in streaming.pieces(rest):
                    await tx.send(text)

        with anyio.fail_after(streaming.timeout), rx:
            async with (
                streaming.tts.open_stream(audio_format=fmt) as stream,
                stream.speak(rx) as spoken,
                anyio.create_task_group() as tasks,
            ):
                tasks.start_soon(write_the_rest)
                async for piece in spoken:
                    check_speech_audio(piece, fmt)
                    if piece.audio:
                        heard.set()
        assert heard.is_set()

    async def test_one_stream_speaks_one_response_after_another(self, streaming: TTSDriver) -> None:
        fmt = streaming.tts.produces[0]
        with anyio.fail_after(streaming.timeout):
            async with streaming.tts.open_stream(audio_format=fmt) as stream:
                first, _ = await _speak_streamed(stream, streaming.pieces(streaming.text), fmt)
                second, words = await _speak_streamed(
                    stream, streaming.pieces(streaming.next_text), fmt
                )
        assert first
        assert second
        if streaming.tts.capabilities & Capability.WORD_TIMINGS:
            # Timed from the start of its own response.
            _check_words(words, streaming.next_text, fmt.duration(len(second)) * 1000)

    async def test_leaving_a_response_early_stops_it(self, streaming: TTSDriver) -> None:
        fmt = streaming.tts.produces[0]
        tx, rx = _text_stream(streaming.pieces(streaming.text), end=False)
        with anyio.fail_after(streaming.timeout), tx, rx:
            async with streaming.tts.open_stream(audio_format=fmt) as stream:
                await tx.send(Flush())
                async with stream.speak(rx) as spoken:
                    async for piece in spoken:
                        check_speech_audio(piece, fmt)
                        if piece.audio:
                            break  # the caller barged in; the text never ended
                # The next response hears nothing of the one left.
                audio, words = await _speak_streamed(
                    stream, streaming.pieces(streaming.next_text), fmt
                )
        assert audio
        if streaming.tts.capabilities & Capability.WORD_TIMINGS:
            _check_words(words, streaming.next_text, fmt.duration(len(audio)) * 1000)

    async def test_a_response_with_nothing_to_say_is_no_error(self, streaming: TTSDriver) -> None:
        fmt = streaming.tts.produces[0]
        with anyio.fail_after(streaming.timeout):
            async with streaming.tts.open_stream(audio_format=fmt) as stream:
                _, words = await _speak_streamed(stream, [], fmt)
        assert words == []

    async def test_open_stream_refuses_an_undeclared_format(self, streaming: TTSDriver) -> None:
        fmt = _undeclared(streaming.tts.produces)
        with anyio.fail_after(streaming.timeout), pytest.raises(UnsupportedFormatError):
            async with streaming.tts.open_stream(audio_format=fmt):
                pass

    async def test_a_failed_stream_raises_a_typed_error(self, streaming: TTSDriver) -> None:
        tried = 0
        for problem, expected in _FAILURES:
            tts = streaming.failing(problem)
            if tts is None:
                continue
            tried += 1
            fmt = tts.produces[0]
            # On entry, or from the first response if the vendor says so only then.
            with anyio.fail_after(streaming.timeout), pytest.raises(expected):
                async with tts.open_stream(audio_format=fmt) as stream:
                    await _speak_streamed(stream, streaming.pieces(streaming.text), fmt)
        if not tried:
            pytest.skip("the driver makes no failing synthesiser (TTSDriver.failing)")
