"""The text pipeline with a text-to-speech that takes streamed text (``INPUT_STREAMING``):
one stream per call, the model's words streamed into it as written, word timings."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from support.fake_pipeline import (
    PCM16K,
    PCM24K,
    FakeLLM,
    FakeStreamingTTS,
    FakeSTT,
    Gate,
    pipeline_call,
    words,
)

from omnivoice.audio import TWILIO
from omnivoice.errors import AuthFailedError
from omnivoice.gateway import RealtimeBridge
from omnivoice.gateway.events import EventType
from omnivoice.pipeline import EagerEndOfTurn, Flush, Message, TextDelta, TextPipeline, ToolCall
from omnivoice.realtime import (
    AudioChunk,
    FunctionDeclaration,
    ProcessConfig,
    Transcript,
    WordTiming,
    heard_words,
)
from omnivoice.realtime.provider import ProviderError, SpeechStarted, SpeechStopped, Usage
from omnivoice.testing import FakePlayback, SessionProbe

pytestmark = pytest.mark.anyio


def pipeline(llm: FakeLLM, tts: FakeStreamingTTS, stt: FakeSTT, **options: Any) -> TextPipeline:
    options.setdefault("vad", False)
    return TextPipeline(stt, llm, tts, **options)


def say(stt: FakeSTT, text: str) -> None:
    stt.stream.emit(
        SpeechStarted(), Transcript(text, is_input=True, is_final=True), SpeechStopped()
    )


def agent_text(call: SessionProbe) -> list[tuple[str, bool]]:
    return [(t.text, t.is_final) for t in call.of_type(Transcript) if not t.is_input]


def timed(call: SessionProbe) -> list[WordTiming]:
    return [word for chunk in call.of_type(AudioChunk) for word in chunk.words]


async def test_one_stream_per_call_is_opened_when_the_call_starts() -> None:
    stt, llm, tts = FakeSTT(), FakeLLM("Hello there.", "Sure."), FakeStreamingTTS()
    async with pipeline_call(pipeline(llm, tts, stt), ProcessConfig(voice="ana")) as call:
        # Before the caller has said anything.
        assert len(tts.calls) == 1
        assert tts.call.responses == []
        assert (tts.call.audio_format, tts.call.voice) == (PCM24K, "ana")
        say(stt, "hi")
        await call.wait_for(AudioChunk, lambda c: c.is_final)
        say(stt, "thanks")
        await call.wait_for(AudioChunk, lambda c: c.is_final, count=2)
        stream = tts.call
    assert stream.closed
    assert len(tts.calls) == 1
    assert len(stream.responses) == 2  # one response each
    assert tts.requests == []  # no sentence calls


async def test_the_models_words_reach_the_synthesis_as_they_are_written() -> None:
    gate = Gate()
    llm = FakeLLM([*words("One two three. Four "), gate, *words("five six.")])
    stt, tts = FakeSTT(), FakeStreamingTTS()
    async with pipeline_call(pipeline(llm, tts, stt)) as call:
        say(stt, "count")
        await gate.reached.wait()
        # The model is held mid-sentence: what it wrote is being spoken already.
        await call.wait_for(AudioChunk, lambda c: bool(c.words) and c.words[0].text == "Four")
        assert tts.call.responses[0].received == ["One ", "two ", "three. ", "Four "]
        gate.open()
        await call.wait_for(AudioChunk, lambda c: c.is_final)
        await call.wait_for(Usage)
    spoken = tts.call.responses[0]
    assert spoken.received == ["One ", "two ", "three. ", "Four ", "five ", "six.", Flush()]
    assert spoken.finished
    # Transcript pieces are the words as their audio comes; then the whole text.
    assert agent_text(call) == [
        ("One", False),
        (" two", False),
        (" three.", False),
        (" Four", False),
        (" five", False),
        (" six.", False),
        ("One two three. Four five six.", True),
    ]
    # Each chunk carries the words it completes, timed from the start of the response.
    assert [w.text for w in timed(call)] == ["One", "two", "three.", "Four", "five", "six."]
    assert [w.start_ms for w in timed(call)] == [0, 40, 80, 150, 200, 250]
    assert sum(len(c.audio) for c in call.of_type(AudioChunk)) == PCM24K.bytes_per_frame(300)


async def test_barge_in_keeps_exactly_the_words_whose_audio_was_heard() -> None:
    stall = Gate()
    llm = FakeLLM("One two three four five six seven.", "Yes?")
    stt, tts = FakeSTT(), FakeStreamingTTS(word_gates={"five": stall})
    async with pipeline_call(pipeline(llm, tts, stt)) as call:
        say(stt, "count")
        await stall.reached.wait()
        # "three" runs from 80 to 130 ms, "four" from 140 to 180: heard up to 165 ms,
        # the caller heard "four" past its midpoint (160 ms).
        await call.session.interrupt(165)
        await call.wait_for(AudioChunk, lambda c: c.is_final)
        usage = await call.wait_for(Usage)
        say(stt, "wait")
        await llm.wait_for_requests(2)
    assert usage.details["pipeline"]["interrupted"] is True
    assert tts.call.responses[0].closed_early
    assert [(m.role, m.content) for m in llm.requests[1].messages] == [
        ("user", "count"),
        ("assistant", "One two three four"),
        ("user", "wait"),
    ]
    # The final transcript holds what was synthesised; the heard words are the bridge's.
    assert agent_text(call)[-1] == ("One two three four", True)
    assert [w.text for w in heard_words(timed(call), 165)] == ["One", "two", "three", "four"]


async def test_an_interruption_after_all_was_synthesised_still_cuts_the_conversation() -> None:
    llm = FakeLLM("One two three.", "Yes?")
    stt, tts = FakeSTT(), FakeStreamingTTS()
    async with pipeline_call(pipeline(llm, tts, stt)) as call:
        say(stt, "count")
        await call.wait_for(Usage)
        await call.session.interrupt(50)  # it is still playing: "two" (40-70) not heard
        say(stt, "hm")
        await llm.wait_for_requests(2)
    assert [m.content for m in llm.requests[1].messages] == ["count", "One", "hm"]


async def test_text_before_a_function_call_is_flushed_and_spoken_while_it_runs() -> None:
    ran = anyio.Event()
    release = anyio.Event()

    async def lookup(call_id: str, name: str, arguments: Any) -> dict[str, str]:
        ran.set()
        await release.wait()
        return {"status": "shipped"}

    llm = FakeLLM(
        [*words("Let me check. "), ToolCall("c1", "lookup", json.dumps({"order": "1"}))],
        "It has shipped.",
    )
    stt, tts = FakeSTT(), FakeStreamingTTS()
    config = ProcessConfig(functions=[FunctionDeclaration("lookup")], on_function_call=lookup)
    async with pipeline_call(pipeline(llm, tts, stt), config) as call:
        say(stt, "where is my order")
        await ran.wait()
        # While the function runs, the text before it was flushed and is being spoken.
        await call.wait_for(AudioChunk, lambda c: any(w.text == "check." for w in c.words))
        release.set()
        await call.wait_for(AudioChunk, lambda c: c.is_final)
    # One response, one synthesis stream: both rounds in it.
    (spoken,) = tts.call.responses
    assert spoken.received == [
        *["Let ", "me ", "check. ", Flush()],  # the end of the first round
        *["It ", "has ", "shipped.", Flush()],
    ]
    assert agent_text(call)[-1] == ("Let me check. It has shipped.", True)
    contents = [(m.role, m.content) for m in llm.requests[1].messages if m.role == "assistant"]
    assert contents == [("assistant", "Let me check.")]


async def test_sentence_calls_are_kept_when_streaming_is_turned_off() -> None:
    stt, llm, tts = FakeSTT(), FakeLLM("Hello there. Bye."), FakeStreamingTTS()
    async with pipeline_call(pipeline(llm, tts, stt, stream_text=False)) as call:
        say(stt, "hi")
        await call.wait_for(AudioChunk, lambda c: c.is_final)
    assert tts.calls == []
    assert tts.texts == ["Hello there.", "Bye."]


async def test_a_failing_response_is_reported_and_the_next_one_is_spoken() -> None:
    stt, llm = FakeSTT(), FakeLLM("First.", "Second.")
    tts = FakeStreamingTTS(fail_on_response=0)
    async with pipeline_call(pipeline(llm, tts, stt)) as call:
        say(stt, "one")
        error = await call.wait_for(ProviderError)
        assert not error.fatal
        say(stt, "two")
        await call.wait_for(AudioChunk, lambda c: c.is_final)
    assert agent_text(call) == [("Second.", False), ("Second.", True)]


async def test_a_stream_that_cannot_open_fails_the_session_on_entry() -> None:
    tts = FakeStreamingTTS(connect_error=AuthFailedError("bad key"))
    with pytest.raises(AuthFailedError):
        async with pipeline_call(pipeline(FakeLLM(), tts, FakeSTT())):
            pass


async def test_conversion_keeps_the_word_timings() -> None:
    stt, llm, tts = FakeSTT(), FakeLLM("Hi there."), FakeStreamingTTS(produces=[PCM16K])
    async with pipeline_call(pipeline(llm, tts, stt), output_format=PCM24K) as call:
        say(stt, "hi")
        await call.wait_for(AudioChunk, lambda c: c.is_final)
    assert [(w.text, w.start_ms) for w in timed(call)] == [("Hi", 0), ("there.", 30)]
    *chunks, last = call.of_type(AudioChunk)
    assert sum(len(c.audio) for c in chunks) == PCM24K.bytes_per_frame(100)  # as at 16 kHz
    assert len(last.audio) == PCM24K.bytes_per_frame(2)  # the converter's last 2 ms


async def test_the_call_record_holds_the_heard_words_by_their_timings() -> None:
    stall = Gate()
    stt = FakeSTT()
    llm = FakeLLM("Sunday we open at ten and close at four.", "Sure.")
    tts = FakeStreamingTTS(produces=[TWILIO], word_gates={"close": stall})
    # Heard 150 ms: "Sunday" (0-60), "we" (70-90), "open" (100-140): "at" (150-170) not.
    playback = FakePlayback(heard_ms=150)
    provider = TextPipeline(stt, llm, tts, vad=False)
    async with RealtimeBridge.for_twilio(provider, ProcessConfig(), playback=playback) as bridge:
        assert bridge.output_format == TWILIO  # no conversion at all
        audio, events = bridge.audio(), bridge.events()
        say(stt, "when do you open")
        with anyio.fail_after(5):
            await anext(audio)
            playback.busy = True
            await stall.reached.wait()
        stt.stream.emit(SpeechStarted())
        with anyio.fail_after(5):
            async for event in events:
                if event.type is EventType.AGENT_SPEECH_ENDED:
                    break
        stt.stream.emit(Transcript("wait", is_input=True, is_final=True), SpeechStopped())
        await llm.wait_for_requests(2)
        transcript = bridge.transcript()
    agent = next(t for t in transcript if t.role == "agent")
    assert agent.interrupted
    assert agent.heard_ms == 150
    assert agent.text == "Sunday we open at ten and"
    assert agent.heard_text == "Sunday we open"
    assert [m.content for m in llm.requests[1].messages] == [
        "when do you open",
        "Sunday we open",
        "wait",
    ]


async def test_untimed_streaming_estimates_what_was_heard_over_the_response() -> None:
    class Untimed(FakeStreamingTTS):
        capabilities = FakeStreamingTTS.capabilities & ~FakeStreamingTTS.capabilities.WORD_TIMINGS

    stt, llm, tts = FakeSTT(), FakeLLM([TextDelta("aaaa bbbb cccc dddd")], "Ok."), Untimed()
    async with pipeline_call(pipeline(llm, tts, stt)) as call:
        say(stt, "go")
        await call.wait_for(Usage)
        await call.session.interrupt(100)  # of 200 ms: the first two words
        say(stt, "stop")
        await llm.wait_for_requests(2)
    pieces = [text for text, final in agent_text(call) if not final]
    assert "".join(pieces).split() == ["aaaa", "bbbb", "cccc", "dddd"]
    assert llm.requests[1].messages[1] == Message("assistant", "aaaa bbbb")


async def test_a_speculative_answer_reaches_the_synthesis_only_once_confirmed() -> None:
    stt, llm, tts = FakeSTT(), FakeLLM("It shipped yesterday."), FakeStreamingTTS()
    async with pipeline_call(pipeline(llm, tts, stt)) as call:
        stt.stream.emit(SpeechStarted(), EagerEndOfTurn("where is it"))
        with anyio.fail_after(5):
            await llm.wait_for_requests(1)
            await anyio.wait_all_tasks_blocked()
        assert tts.call.responses == []  # written, not spoken: nothing sent to the vendor
        stt.stream.emit(Transcript("where is it", is_input=True, is_final=True), SpeechStopped())
        await call.wait_for(AudioChunk, lambda c: c.is_final)
    (spoken,) = tts.call.responses
    assert [w.text for w in spoken.words] == ["It", "shipped", "yesterday."]
