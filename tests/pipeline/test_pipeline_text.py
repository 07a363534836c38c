"""TextPipeline sessions with fake speech-to-text, LLM and text-to-speech providers."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import anyio
import numpy as np
import pytest
from support.fake_pipeline import (
    PCM16K,
    PCM24K,
    FakeLLM,
    FakeSTT,
    FakeTTS,
    Gate,
    pipeline_call,
    words,
)

from omnivoice.audio import TWILIO, AudioFormat, Encoding
from omnivoice.errors import ConnectionFailedError, UnsupportedFormatError
from omnivoice.pipeline import Message, TextDelta, TextPipeline, ToolCall
from omnivoice.realtime import (
    AudioChunk,
    ConversationItem,
    FunctionDeclaration,
    ProcessConfig,
    Transcript,
)
from omnivoice.realtime.provider import (
    FunctionCall,
    ProviderError,
    SpeechStarted,
    SpeechStopped,
    Usage,
)
from omnivoice.testing import FakeClock, SessionProbe

pytestmark = pytest.mark.anyio


def pipeline(
    llm: FakeLLM, tts: FakeTTS | None = None, stt: FakeSTT | None = None, **options: Any
) -> TextPipeline:
    options.setdefault("vad", False)
    return TextPipeline(stt or FakeSTT(), llm, tts or FakeTTS(), **options)


def say(call: SessionProbe, stt: FakeSTT, text: str, trailing_silence_ms: int = 0) -> None:
    """The caller says ``text``, as the recogniser reports it."""
    stt.stream.emit(
        SpeechStarted(),
        Transcript(text, is_input=True, is_final=True),
        SpeechStopped(trailing_silence_ms=trailing_silence_ms),
    )


def agent_text(call: SessionProbe) -> list[tuple[str, bool]]:
    return [(t.text, t.is_final) for t in call.of_type(Transcript) if not t.is_input]


def audio_ms(chunks: list[AudioChunk], fmt: AudioFormat = PCM24K) -> float:
    return fmt.duration(sum(len(c.audio) for c in chunks)) * 1000


def user_and_agent(request_messages: list[Message]) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in request_messages if m.role in ("user", "assistant")]


# --- streaming ------------------------------------------------------------------------------


async def test_the_first_sentence_is_spoken_while_the_model_is_still_writing() -> None:
    gate = Gate()
    llm = FakeLLM([*words("Hello there. "), gate, *words("How can I help?")])
    stt, tts = FakeSTT(), FakeTTS()
    async with pipeline_call(pipeline(llm, tts, stt)) as call:
        say(call, stt, "hi", trailing_silence_ms=300)
        first = await call.wait_for(AudioChunk)
        assert gate.reached.is_set()  # the model is held after its first sentence
        assert not llm.streams[0].finished
        assert tts.texts == ["Hello there."]
        assert not first.is_final
        gate.open()
        await call.wait_for(lambda e: isinstance(e, AudioChunk) and e.is_final)
        usage = await call.wait_for(Usage)

    assert tts.texts == ["Hello there.", "How can I help?"]
    assert [type(e) for e in call.events[:3]] == [SpeechStarted, Transcript, SpeechStopped]
    stopped = call.events[2]
    assert isinstance(stopped, SpeechStopped)
    assert stopped.trailing_silence_ms == 300
    assert agent_text(call) == [
        ("Hello there.", False),
        (" How can I help?", False),
        ("Hello there. How can I help?", True),
    ]
    # Each sentence's text just before its audio; the response's text, then its end.
    kinds = [type(e).__name__ for e in call.events[3:]]
    assert kinds[0:2] == ["Transcript", "AudioChunk"]
    assert kinds[-3:] == ["Transcript", "AudioChunk", "Usage"]
    chunks = call.of_type(AudioChunk)
    assert [c.is_final for c in chunks].count(True) == 1
    assert audio_ms(chunks) == tts.duration_ms("Hello there.") + tts.duration_ms("How can I help?")
    assert usage.details["pipeline"]["interrupted"] is False
    assert llm.requests[0].messages == [Message("user", "hi")]


async def test_instructions_history_voice_and_temperature_reach_the_providers() -> None:
    llm, tts, stt = FakeLLM("Of course."), FakeTTS(), FakeSTT()
    config = ProcessConfig(
        instructions="Be brief.",
        voice="ana",
        temperature=0.2,
        history=[ConversationItem("user", "Hi"), ConversationItem("agent", "Hello!")],
    )
    async with pipeline_call(pipeline(llm, tts, stt), config) as call:
        say(call, stt, "Book a table")
        await call.wait_for(Usage)
    (request,) = llm.requests
    assert request.messages == [
        Message("system", "Be brief."),
        Message("user", "Hi"),
        Message("assistant", "Hello!"),
        Message("user", "Book a table"),
    ]
    assert request.temperature == 0.2
    assert request.tools == ()
    assert [(r.voice, r.audio_format) for r in tts.requests] == [("ana", PCM24K)]


async def test_the_conversation_grows_turn_by_turn() -> None:
    llm, stt = FakeLLM("First answer.", "Second answer."), FakeSTT()
    async with pipeline_call(pipeline(llm, stt=stt)) as call:
        say(call, stt, "one")
        await call.wait_for(Usage)
        say(call, stt, "two")
        await call.wait_for(Usage, after=len(call.events))
        await llm.wait_for_requests(2)
    assert user_and_agent(llm.requests[1].messages) == [
        ("user", "one"),
        ("assistant", "First answer."),
        ("user", "two"),
    ]


async def test_formats_the_providers_lack_are_converted_both_ways() -> None:
    llm, tts, stt = FakeLLM("Hi there."), FakeTTS(produces=[PCM24K]), FakeSTT(accepts=[PCM16K])
    provider = pipeline(llm, tts, stt)
    assert (provider.accepts, provider.produces) == ((PCM16K,), (PCM24K,))
    async with pipeline_call(provider, input_format=TWILIO, output_format=TWILIO) as call:
        await call.send(bytes(range(256))[:160] * 10)  # 200 ms of mu-law
        with anyio.fail_after(5):
            received = await stt.stream.wait_for_audio(6400)
        assert len(received) == 6400  # 200 ms of PCM16 at 16 kHz
        assert stt.stream.audio_format == PCM16K
        say(call, stt, "hello")
        await call.wait_for(Usage)
    assert tts.requests[0].audio_format == PCM24K
    *chunks, last = call.of_type(AudioChunk)
    assert sum(len(c.audio) for c in chunks) == 8 * tts.duration_ms("Hi there.")  # mu-law 8 kHz
    assert last.is_final
    assert len(last.audio) == 16  # the converter's last 2 ms


async def test_a_conversion_no_codec_supports_fails_on_entry() -> None:
    odd = AudioFormat(Encoding.MULAW, 11025)
    with pytest.raises(UnsupportedFormatError):
        async with pipeline_call(pipeline(FakeLLM()), input_format=odd):
            pass


# --- barge-in -------------------------------------------------------------------------------


async def test_barge_in_stops_the_model_and_the_synthesis_and_keeps_what_was_heard() -> None:
    stalled, held = Gate(), Gate()
    llm = FakeLLM(
        [*words("One two three four. Five six seven eight. "), held, TextDelta("Nine.")],
        "Sorry, go on.",
    )
    tts, stt = FakeTTS(gates={"Five six seven eight.": stalled}), FakeSTT()
    async with pipeline_call(pipeline(llm, tts, stt)) as call:
        say(call, stt, "Count for me")
        with anyio.fail_after(5):
            await stalled.reached.wait()  # the second sentence is being spoken
            await held.reached.wait()  # and the model is still writing
        stt.stream.emit(SpeechStarted())
        started = await call.wait_for(SpeechStarted, after=3)
        mark = call.events.index(started)
        # The bridge clears the line and says what was heard: the first sentence (190 ms)
        # and half of the second one.
        await call.session.interrupt(190 + 105)
        final = await call.wait_for(lambda e: isinstance(e, AudioChunk) and e.is_final)
        assert isinstance(final, AudioChunk)
        assert final.audio == b""
        assert llm.streams[0].closed_early
        assert tts.streams[1].closed_early
        usage = await call.wait_for(Usage, after=mark)
        assert usage.details["pipeline"]["interrupted"] is True
        stt.stream.emit(Transcript("wait", is_input=True, is_final=True), SpeechStopped())
        await llm.wait_for_requests(2)
        await call.wait_for(Usage, after=call.events.index(usage) + 1)

    assert tts.texts == ["One two three four.", "Five six seven eight.", "Sorry, go on."]
    # The bridge gets the text that was spoken, whole, to place its own heard mark in it.
    assert ("One two three four. Five six seven eight.", True) in agent_text(call)
    assert user_and_agent(llm.requests[1].messages) == [
        ("user", "Count for me"),
        ("assistant", "One two three four. Five six"),
        ("user", "wait"),
    ]


async def test_barge_in_after_the_whole_answer_was_sent_still_cuts_the_conversation() -> None:
    llm = FakeLLM("Alpha beta gamma delta.", "Okay.")
    stt = FakeSTT()
    async with pipeline_call(pipeline(llm, stt=stt)) as call:
        say(call, stt, "Go")
        await call.wait_for(Usage)  # all sent; the carrier is still playing it
        stt.stream.emit(SpeechStarted())
        await call.wait_for(SpeechStarted, after=3)
        await call.session.interrupt(110)  # of 230 ms
        stt.stream.emit(Transcript("stop", is_input=True, is_final=True), SpeechStopped())
        await llm.wait_for_requests(2)
    assert user_and_agent(llm.requests[1].messages) == [
        ("user", "Go"),
        ("assistant", "Alpha beta"),
        ("user", "stop"),
    ]


async def test_speech_before_the_answer_is_heard_withdraws_it_and_joins_the_turns() -> None:
    thinking = Gate()
    llm = FakeLLM([thinking, *words("A pizza?")], "One pizza, coming.")
    tts, stt = FakeTTS(), FakeSTT()
    async with pipeline_call(pipeline(llm, tts, stt)) as call:
        say(call, stt, "I would like")
        with anyio.fail_after(5):
            await thinking.reached.wait()
        say(call, stt, "a pizza")  # the caller had not finished
        await call.wait_for(Usage)
        await llm.wait_for_requests(2)
    assert llm.streams[0].closed_early
    assert user_and_agent(llm.requests[1].messages) == [("user", "I would like a pizza")]
    assert tts.texts == ["One pizza, coming."]
    assert len(call.of_type(Usage)) == 1  # the withdrawn answer never existed for the bridge
    assert [type(e) for e in call.events[:6]] == [
        SpeechStarted,
        Transcript,
        SpeechStopped,
        SpeechStarted,
        Transcript,
        SpeechStopped,
    ]


# --- turn-taking ----------------------------------------------------------------------------


def tone(seconds: float) -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000
    return (6000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(int(16000 * seconds) * 2)


async def test_without_the_recognisers_end_of_speech_the_detector_ends_the_turn() -> None:
    llm, stt = FakeLLM("Hello!"), FakeSTT()
    provider = pipeline(llm, stt=stt, vad=True, end_silence_ms=300, final_timeout_s=30)
    async with pipeline_call(provider) as call:
        await call.send(silence(0.2) + tone(0.5))
        await call.wait_for(SpeechStarted)
        stt.stream.emit(Transcript("hel", is_input=True))  # a partial: words are coming
        await call.send(silence(0.5))
        stopped = await call.wait_for(SpeechStopped)
        assert stopped.trailing_silence_ms == 300
        assert llm.requests == []  # the final transcript is awaited
        stt.stream.emit(Transcript("hello", is_input=True, is_final=True))
        await call.wait_for(Usage)
    assert llm.requests[0].messages == [Message("user", "hello")]


async def test_a_turn_that_never_ends_is_ended_after_max_turn_s() -> None:
    llm, stt = FakeLLM("Let me stop you there."), FakeSTT()
    provider = pipeline(llm, stt=stt, max_turn_s=0.05, final_timeout_s=0.05)
    async with pipeline_call(provider) as call:
        stt.stream.emit(
            SpeechStarted(),
            Transcript("la", is_input=True),
            Transcript("la lo", is_input=True),  # the segment so far, revised
            Transcript("la la", is_input=True),
            Transcript(" la", is_input=True),  # new words only
        )
        stopped = await call.wait_for(SpeechStopped)
        assert stopped.trailing_silence_ms == 0
        # No final transcript comes either: the partial one stands in.
        usage = await call.wait_for(Usage)
    assert llm.requests[0].messages == [Message("user", "la la la")]
    assert usage.details["pipeline"]["stt_final_ms"] is None


class _LogEvent(logging.Handler):
    """Sets an event when a record with ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


async def test_speech_without_words_gets_no_answer() -> None:
    llm, stt = FakeLLM("The answer."), FakeSTT()
    dropped = _LogEvent("speech without words")
    logger = logging.getLogger("omnivoice.pipeline.text")
    logger.addHandler(dropped)
    logger.setLevel(logging.INFO)
    try:
        async with pipeline_call(pipeline(llm, stt=stt, final_timeout_s=0.01)) as call:
            stt.stream.emit(SpeechStarted(), SpeechStopped())
            with anyio.fail_after(5):
                await dropped.seen.wait()  # no transcript came in time: noise
            say(call, stt, "a question")  # answered alone: the noise left nothing behind
            await call.wait_for(Usage)
    finally:
        logger.removeHandler(dropped)
        logger.setLevel(logging.NOTSET)
    assert [r.messages for r in llm.requests] == [[Message("user", "a question")]]
    assert len(call.of_type(Usage)) == 1


async def test_a_final_transcript_outside_any_turn_is_answered() -> None:
    llm, stt = FakeLLM("Yes?"), FakeSTT()
    async with pipeline_call(pipeline(llm, stt=stt)) as call:
        stt.stream.emit(Transcript("are you there", is_input=True, is_final=True))
        await call.wait_for(Usage)
    assert llm.requests[0].messages == [Message("user", "are you there")]


async def test_the_session_ends_with_the_callers_audio_after_the_last_answer() -> None:
    llm, stt = FakeLLM("Goodbye!"), FakeSTT()
    async with pipeline_call(pipeline(llm, stt=stt, vad=True)) as call:
        await call.send(tone(0.3))
        await call.wait_for(SpeechStarted)
        stt.stream.emit(Transcript("bye", is_input=True, is_final=True))
        call.hang_up()
        events = await call.wait_ended()
    assert isinstance(events[-1], Usage)
    assert any(isinstance(e, AudioChunk) and e.is_final for e in events)
    assert llm.requests[0].messages == [Message("user", "bye")]


# --- function calls -------------------------------------------------------------------------

LOOKUP = FunctionDeclaration(
    "lookup_order",
    "Find an order",
    {"type": "object", "properties": {"order_id": {"type": "string"}}},
)


async def test_a_function_call_round_trip() -> None:
    calls: list[tuple[str, str, Mapping[str, Any]]] = []

    def lookup(call_id: str, name: str, arguments: Mapping[str, Any]) -> dict[str, str]:
        calls.append((call_id, name, arguments))
        return {"status": "shipped"}

    llm = FakeLLM(
        [*words("Let me check. "), ToolCall("call_1", "lookup_order", '{"order_id": "42"}')],
        "It shipped yesterday.",
    )
    tts, stt = FakeTTS(), FakeSTT()
    config = ProcessConfig(functions=[LOOKUP], on_function_call=lookup)
    async with pipeline_call(pipeline(llm, tts, stt), config) as call:
        say(call, stt, "Where is order 42?")
        usage = await call.wait_for(Usage)

    assert calls == [("call_1", "lookup_order", {"order_id": "42"})]
    (event,) = call.of_type(FunctionCall)
    assert (event.call_id, event.name, dict(event.arguments)) == (
        "call_1",
        "lookup_order",
        {"order_id": "42"},
    )
    first, second = llm.requests
    assert first.tools == second.tools == (LOOKUP,)
    assert second.messages[1:] == [
        Message(
            "assistant",
            "Let me check.",
            tool_calls=(ToolCall("call_1", "lookup_order", '{"order_id": "42"}'),),
        ),
        Message("tool", json.dumps({"status": "shipped"}), tool_call_id="call_1"),
    ]
    # One response: both rounds' sentences, one end.
    assert tts.texts == ["Let me check.", "It shipped yesterday."]
    assert ("Let me check. It shipped yesterday.", True) in agent_text(call)
    assert [c.is_final for c in call.of_type(AudioChunk)].count(True) == 1
    assert usage.details["pipeline"]["function_rounds"] == 1


async def test_a_model_that_calls_functions_forever_is_stopped() -> None:
    counter = iter(range(100))

    def again(messages: object) -> list[object]:
        return [ToolCall(f"call_{next(counter)}", "lookup_order", "{}")]

    llm, stt = FakeLLM(then=again), FakeSTT()
    config = ProcessConfig(functions=[LOOKUP], on_function_call=lambda *_: {"status": "?"})
    async with pipeline_call(pipeline(llm, stt=stt, max_tool_rounds=2), config) as call:
        say(call, stt, "Where is my order?")
        usage = await call.wait_for(Usage)
    assert [len(r.tools) for r in llm.requests] == [1, 1, 0]  # the last round may not call
    assert len(call.of_type(FunctionCall)) == 2
    (error,) = call.of_type(ProviderError)
    assert not error.fatal
    assert "after 2 rounds" in str(error.error)
    assert usage.details["pipeline"]["function_rounds"] == 2


async def test_a_function_that_must_complete_survives_the_interruption() -> None:
    release, running = anyio.Event(), anyio.Event()

    async def place_order(call_id: str, name: str, arguments: Mapping[str, Any]) -> str:
        running.set()
        await release.wait()
        return "placed"

    order = FunctionDeclaration("place_order", must_complete=True)
    llm = FakeLLM(
        [*words("Placing it. "), ToolCall("c1", "place_order", "{}")], "Never said.", "Sure."
    )
    stt = FakeSTT()
    config = ProcessConfig(functions=[order], on_function_call=place_order)
    async with pipeline_call(pipeline(llm, stt=stt), config) as call:
        say(call, stt, "Order it")
        with anyio.fail_after(5):
            await running.wait()
        stt.stream.emit(SpeechStarted())
        await call.wait_for(SpeechStarted, after=3)
        await call.session.interrupt(10_000)
        release.set()
        usage = await call.wait_for(Usage)
        assert usage.details["pipeline"]["interrupted"]
        stt.stream.emit(Transcript("thanks", is_input=True, is_final=True), SpeechStopped())
        await llm.wait_for_requests(2)
    assert llm.requests[1].messages[1:] == [
        Message("assistant", "Placing it.", tool_calls=(ToolCall("c1", "place_order", "{}"),)),
        Message("tool", json.dumps("placed"), tool_call_id="c1"),
        Message("user", "thanks"),
    ]


async def test_an_interrupted_function_is_cancelled_and_the_model_told() -> None:
    running = anyio.Event()

    async def slow(call_id: str, name: str, arguments: Mapping[str, Any]) -> str:
        running.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    llm, stt = FakeLLM([ToolCall("c1", "lookup_order", "{}")], "Okay."), FakeSTT()
    config = ProcessConfig(functions=[LOOKUP], on_function_call=slow)
    async with pipeline_call(pipeline(llm, stt=stt), config) as call:
        say(call, stt, "Check it")
        with anyio.fail_after(5):
            await running.wait()
        await call.session.interrupt(0)  # the application stops the agent
        await call.wait_for(Usage)
        say(call, stt, "never mind")
        await llm.wait_for_requests(2)
    tool = llm.requests[1].messages[2]
    assert tool.role == "tool"
    assert "cancelled" in tool.content


# --- metrics --------------------------------------------------------------------------------


async def test_each_answer_reports_its_latencies() -> None:
    clock = FakeClock(10.0)
    llm = FakeLLM([lambda: clock.advance(0.4), *words("Hi there. Bye.")])
    tts = FakeTTS(on_start=lambda text: clock.advance(0.05))
    stt = FakeSTT()
    async with pipeline_call(pipeline(llm, tts, stt, clock=clock)) as call:
        stt.stream.emit(SpeechStarted(), SpeechStopped(trailing_silence_ms=200))
        await call.wait_for(SpeechStopped)  # the speech really ended at 9.8
        clock.advance(0.1)
        stt.stream.emit(Transcript("hi", is_input=True, is_final=True))
        usage = await call.wait_for(Usage)
    assert usage.details == {
        "pipeline": {
            "stt_final_ms": 300.0,  # 9.8 -> 10.1
            "llm_first_token_ms": 400.0,  # 10.1 -> 10.5
            "tts_first_audio_ms": 50.0,  # 10.5 -> 10.55
            "response_ms": 750.0,  # 9.8 -> 10.55
            "function_rounds": 0,
            "interrupted": False,
            "speculative": False,
        }
    }


# --- failures -------------------------------------------------------------------------------


async def test_a_recogniser_that_cannot_connect_fails_on_entry() -> None:
    stt = FakeSTT(connect_error=ConnectionFailedError("no route"))
    with pytest.raises(ConnectionFailedError, match="no route"):
        async with pipeline_call(pipeline(FakeLLM(), stt=stt)):
            pass


async def test_a_recogniser_that_dies_ends_the_session_with_a_fatal_error() -> None:
    stt = FakeSTT()
    async with pipeline_call(pipeline(FakeLLM(), stt=stt)) as call:
        stt.stream.emit(RuntimeError("socket closed"))
        events = await call.wait_ended()
    (error,) = [e for e in events if isinstance(e, ProviderError)]
    assert error.fatal
    assert "socket closed" in str(error.error)


async def test_a_recognition_stream_that_ends_during_the_call_is_fatal() -> None:
    stt = FakeSTT()
    async with pipeline_call(pipeline(FakeLLM(), stt=stt)) as call:
        stt.stream.end()
        events = await call.wait_ended()
    (error,) = [e for e in events if isinstance(e, ProviderError)]
    assert error.fatal


async def test_a_failing_model_is_reported_and_what_it_wrote_is_said() -> None:
    llm = FakeLLM([*words("Hi. Let"), RuntimeError("overloaded")], "Better now.")
    tts, stt = FakeTTS(), FakeSTT()
    async with pipeline_call(pipeline(llm, tts, stt)) as call:
        say(call, stt, "hello")
        await call.wait_for(Usage)
        say(call, stt, "again")
        await call.wait_for(Usage, after=call.events.index(call.of_type(Usage)[0]) + 1)
    (error,) = call.of_type(ProviderError)
    assert not error.fatal
    assert "overloaded" in str(error.error)
    assert tts.texts == ["Hi.", "Better now."]


async def test_a_failing_synthesis_ends_the_answer_with_what_was_said() -> None:
    llm = FakeLLM("First part. Second part. Third part.", "Sorry.")
    tts, stt = FakeTTS(fail_on="Second part."), FakeSTT()
    async with pipeline_call(pipeline(llm, tts, stt)) as call:
        say(call, stt, "go")
        await call.wait_for(Usage)
        say(call, stt, "hello?")
        await llm.wait_for_requests(2)
    assert user_and_agent(llm.requests[1].messages) == [
        ("user", "go"),
        ("assistant", "First part. Second part."),  # the third was never said
        ("user", "hello?"),
    ]
    (error,) = call.of_type(ProviderError)
    assert "could not say" in str(error.error)
    assert tts.texts[:2] == ["First part.", "Second part."]
    assert ("First part. Second part.", True) in agent_text(call)
    end = call.events[call.events.index(call.of_type(Usage)[0]) - 1]
    assert isinstance(end, AudioChunk)
    assert end.is_final


async def test_closing_the_pipeline_closes_its_providers() -> None:
    stt, llm, tts = FakeSTT(), FakeLLM(), FakeTTS()
    await TextPipeline(stt, llm, tts).aclose()
    assert [stt.closed, llm.closed, tts.closed] == [True, True, True]


async def test_providers_must_declare_their_formats() -> None:
    with pytest.raises(ValueError, match="no input formats"):
        TextPipeline(FakeSTT(accepts=[]), FakeLLM(), FakeTTS())
    with pytest.raises(ValueError, match="no output formats"):
        TextPipeline(FakeSTT(), FakeLLM(), FakeTTS(produces=[]))
