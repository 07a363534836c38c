"""RealtimeBridge with an in-process fake provider."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import numpy as np
import pytest

from omnivoice.audio import GEMINI_INPUT, GEMINI_OUTPUT, OPENAI, TWILIO, AudioFormat
from omnivoice.errors import AuthFailedError, SessionClosedError, UnsupportedFormatError
from omnivoice.gateway.bridge import RealtimeBridge
from omnivoice.gateway.events import Event, EventType
from omnivoice.realtime import AudioChunk, Capability, HeardResponse, ProcessConfig, Transcript
from omnivoice.realtime.provider import (
    FunctionCall,
    ProviderError,
    SpeechStarted,
    SpeechStopped,
    Usage,
)
from omnivoice.testing import FakeClock, FakePlayback, ScriptedProvider, ScriptedSession, tone

pytestmark = pytest.mark.anyio

FRAME = bytes(range(256))[:160]  # 20 ms of mu-law that is not silence
CONFIG = ProcessConfig(instructions="be brief")


def session_of(provider: ScriptedProvider) -> ScriptedSession:
    (session,) = provider.sessions
    return session


async def take(audio: AsyncIterator[AudioChunk], n: int) -> list[AudioChunk]:
    chunks = []
    with anyio.fail_after(5):
        for _ in range(n):
            chunks.append(await anext(audio))
    return chunks


def types(events: list[Event]) -> list[EventType]:
    return [event.type for event in events]


async def collect_events(bridge: RealtimeBridge) -> list[Event]:
    return [event async for event in bridge.events()]


# --- formats -------------------------------------------------------------------------------


async def test_mulaw_passes_straight_through_when_the_provider_takes_it() -> None:
    provider = ScriptedProvider(accepts=[OPENAI, TWILIO], produces=[TWILIO])
    async with RealtimeBridge.for_twilio(provider, CONFIG) as bridge:
        assert (bridge.input_format, bridge.output_format) == (TWILIO, TWILIO)
        session = session_of(provider)
        for _ in range(3):
            await bridge.send_audio(FRAME)
        with anyio.fail_after(5):
            assert await session.wait_for_audio(480) == FRAME * 3
        session.emit(AudioChunk(FRAME * 2), AudioChunk(FRAME, is_final=True))
        chunks = await take(bridge.audio(), 2)
        assert b"".join(c.audio for c in chunks) == FRAME * 3
        assert chunks[-1].is_final
    assert session.config is CONFIG


async def test_conversion_both_ways_for_a_pcm_provider() -> None:
    provider = ScriptedProvider(accepts=[OPENAI], produces=[OPENAI])
    async with RealtimeBridge.for_twilio(provider, CONFIG) as bridge:
        session = session_of(provider)
        assert (session.input_format, session.output_format) == (OPENAI, OPENAI)
        for _ in range(10):
            await bridge.send_audio(FRAME)
        with anyio.fail_after(5):
            received = await session.wait_for_audio(9600)
        assert len(received) == 9600  # 200 ms of PCM16 at 24 kHz: frame in, frame out
        tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(4800) / 24000)).astype("<i2")
        session.emit(AudioChunk(tone.tobytes(), is_final=True))
        (chunk,) = await take(bridge.audio(), 1)
        assert len(chunk.audio) == 1600  # 200 ms of mu-law at 8 kHz
        assert chunk.is_final


async def test_gemini_takes_16k_and_gives_24k() -> None:
    provider = ScriptedProvider(accepts=[GEMINI_INPUT], produces=[GEMINI_OUTPUT])
    async with RealtimeBridge.for_twilio_gemini(provider, CONFIG) as bridge:
        session = session_of(provider)
        assert (session.input_format, session.output_format) == (GEMINI_INPUT, GEMINI_OUTPUT)
        for _ in range(5):
            await bridge.send_audio(FRAME)
        with anyio.fail_after(5):
            assert len(await session.wait_for_audio(3200)) == 3200  # 100 ms at 16 kHz
        session.emit(AudioChunk(bytes(4800), is_final=True))  # 100 ms at 24 kHz
        (chunk,) = await take(bridge.audio(), 1)
        assert len(chunk.audio) == 800


def test_a_provider_without_formats_is_refused() -> None:
    with pytest.raises(UnsupportedFormatError, match="declares no formats"):
        RealtimeBridge.for_twilio(ScriptedProvider(accepts=[]), CONFIG)


def test_formats_are_picked_from_what_the_provider_declares() -> None:
    pcm8k = AudioFormat(OPENAI.encoding, 8000)
    bridge = RealtimeBridge(ScriptedProvider(accepts=[pcm8k], produces=[OPENAI]), CONFIG, TWILIO)
    assert (bridge.input_format, bridge.output_format) == (pcm8k, OPENAI)


# --- events, transcript, metrics -----------------------------------------------------------


async def test_a_turn_gives_events_transcript_and_metrics() -> None:
    clock = FakeClock()
    provider = ScriptedProvider()
    bridge = RealtimeBridge.for_twilio(provider, CONFIG, clock=clock)
    async with anyio.create_task_group() as tasks, bridge:
        session = session_of(provider)
        events: list[Event] = []

        async def record() -> None:
            events.extend(await collect_events(bridge))

        tasks.start_soon(record)
        await bridge.send_audio(FRAME)
        clock.now += 1.0
        session.emit(SpeechStarted())
        session.emit(Transcript("Where is", is_input=True))
        await anyio.wait_all_tasks_blocked()
        clock.now += 1.5
        session.emit(SpeechStopped())
        session.emit(Transcript("Where is my order?", is_input=True, is_final=True))
        await anyio.wait_all_tasks_blocked()
        clock.now += 0.3
        session.emit(Transcript("It ", is_input=False), AudioChunk(FRAME * 25))
        session.emit(Transcript("shipped.", is_input=False))
        session.emit(Transcript("It shipped.", is_input=False, is_final=True))
        session.emit(AudioChunk(FRAME * 25, is_final=True))
        session.emit(FunctionCall("call_1", "lookup_order", {"order_id": "42"}))
        session.emit(Usage(input_tokens=180, output_tokens=73))
        session.emit(ProviderError(AuthFailedError("not fatal here")))
        audio = bridge.audio()
        chunks = await take(audio, 2)
        assert sum(len(c.audio) for c in chunks) == 8000
        await anyio.wait_all_tasks_blocked()  # the pump has handled every emitted event
        clock.now += 1.0
        metrics = bridge.metrics()
        transcript = bridge.transcript()

    user, agent = transcript
    assert (user.role, user.text, user.start, user.end) == ("user", "Where is my order?", 1.0, 2.5)
    assert (agent.role, agent.text, agent.start) == ("agent", "It shipped.", 2.8)
    assert agent.heard_text == "It shipped."
    assert not agent.interrupted
    assert agent.heard_ms == 1000
    assert metrics["turns"] == 1
    assert metrics["function_calls"] == 1
    assert metrics["errors"] == 1
    assert metrics["input_tokens"] == 180
    assert metrics["audio_in_bytes"] == 160
    assert metrics["audio_out_bytes"] == 8000
    assert metrics["user_speech_s"] == 1.5
    assert metrics["agent_speech_s"] == 1.0
    assert metrics["response_latencies_ms"] == [300.0]
    assert metrics["response_latency_ms"]["p50"] == 300.0
    assert metrics["duration_s"] == 3.8
    # The first audio handed out and the end of the agent's speech are seen by the audio
    # reader, the rest by the provider pump: the two interleave as the tasks are scheduled.
    ended = types(events).index(EventType.AGENT_SPEECH_ENDED)
    assert ended > types(events).index(EventType.AGENT_SPEECH_STARTED)
    [handed] = [e for e in events if e.type is EventType.AGENT_AUDIO_STARTED]
    assert types(events).index(EventType.AGENT_SPEECH_STARTED) < events.index(handed) < ended
    assert handed.data["latency_ms"] == 300.0  # the same figure as the metrics
    assert handed.data["onset_ms"] >= 0
    reader = {EventType.AGENT_SPEECH_ENDED, EventType.AGENT_AUDIO_STARTED}
    assert [t for t in types(events) if t not in reader] == [
        EventType.SESSION_STARTED,
        EventType.USER_SPEECH_STARTED,
        EventType.USER_TRANSCRIPT,
        EventType.USER_SPEECH_ENDED,
        EventType.USER_TRANSCRIPT,
        EventType.AGENT_TRANSCRIPT,
        EventType.AGENT_SPEECH_STARTED,
        EventType.AGENT_TRANSCRIPT,
        EventType.AGENT_TRANSCRIPT,
        EventType.FUNCTION_CALL,
        EventType.USAGE,
        EventType.ERROR,
        EventType.SESSION_ENDED,
    ]
    assert events[-1].data["metrics"]["turns"] == 1
    (call,) = [e for e in events if e.type is EventType.FUNCTION_CALL]
    assert call.data == {
        "call_id": "call_1",
        "name": "lookup_order",
        "arguments": {"order_id": "42"},
    }


# --- interruption ----------------------------------------------------------------------------


async def test_barge_in_clears_the_line_drops_queued_audio_and_keeps_the_heard_text() -> None:
    playback = FakePlayback(heard_ms=400)
    provider = ScriptedProvider()
    async with RealtimeBridge.for_twilio(provider, CONFIG, playback=playback) as bridge:
        session = session_of(provider)
        audio = bridge.audio()
        text = "one two three four five six seven eight nine ten"
        session.emit(Transcript(text, is_input=False, is_final=True))
        session.emit(*[AudioChunk(FRAME * 5) for _ in range(10)])  # 1 s, not final yet
        (first,) = await take(audio, 1)
        playback.busy = True
        await anyio.wait_all_tasks_blocked()  # the rest is queued in the bridge now
        session.emit(SpeechStarted())
        with anyio.fail_after(5):
            await session.interrupted.wait()
        # The provider keeps sending the cancelled response until it notices: dropped.
        session.emit(AudioChunk(FRAME * 5), AudioChunk(FRAME, is_final=True))
        session.emit(AudioChunk(b"\x01" * 160, is_final=True))  # the next response
        (next_chunk,) = await take(audio, 1)
        assert next_chunk.audio == b"\x01" * 160
        assert session.interrupts == [400]
        assert playback.clears == 1
        agent = next(t for t in bridge.transcript() if t.role == "agent")
        assert agent.interrupted
        assert agent.heard_ms == 400
        assert agent.text == text
        assert agent.heard_text == "one two three four"
        assert bridge.metrics()["interruptions"] == 1
    assert first.audio == FRAME * 5


async def test_interrupt_says_what_was_heard_of_each_response_cut_short() -> None:
    playback = FakePlayback(heard_ms=300)
    provider = ScriptedProvider()
    async with RealtimeBridge.for_twilio(provider, CONFIG, playback=playback) as bridge:
        session = session_of(provider)
        audio = bridge.audio()
        # "Let me check" plays; the answer after it is already queued behind it.
        session.emit(AudioChunk(FRAME * 50, response_id="r1"))
        session.emit(AudioChunk(b"", is_final=True, response_id="r1"))
        session.emit(AudioChunk(FRAME * 25, response_id="r2"))
        await take(audio, 3)
        playback.busy = True
        session.emit(SpeechStarted())
        with anyio.fail_after(5):
            await session.interrupted.wait()
    assert session.interrupts == [300]
    assert session.heard == [
        (HeardResponse("r1", 300, 1000), HeardResponse("r2", 0, 500)),
    ]


async def test_a_provider_without_speech_events_gets_barge_in_from_the_bridge() -> None:
    playback = FakePlayback(heard_ms=200)
    provider = ScriptedProvider(capabilities=Capability.INTERRUPTION)
    async with RealtimeBridge.for_twilio(provider, CONFIG, playback=playback) as bridge:
        session = session_of(provider)
        session.emit(AudioChunk(FRAME * 50))  # the agent talks on
        await take(bridge.audio(), 1)
        playback.busy = True
        for _ in range(5):  # the caller talks over it: 100 ms of a loud tone
            await bridge.send_audio(tone(20, TWILIO))
        with anyio.fail_after(5):
            await session.interrupted.wait()
        assert session.interrupts == [200]
        assert playback.clears == 1
        assert [t.role for t in bridge.transcript()] == ["agent", "user"]


async def test_a_provider_without_interruption_is_not_asked_to_stop() -> None:
    playback = FakePlayback(heard_ms=200)
    provider = ScriptedProvider(capabilities=Capability.SPEECH_EVENTS)
    async with RealtimeBridge.for_twilio(provider, CONFIG, playback=playback) as bridge:
        session = session_of(provider)
        audio = bridge.audio()
        session.emit(AudioChunk(FRAME * 50))
        await take(audio, 1)
        playback.busy = True
        session.emit(SpeechStarted())
        session.emit(AudioChunk(FRAME, is_final=True), AudioChunk(b"\x02" * 160, is_final=True))
        (after,) = await take(audio, 1)  # the bridge itself dropped the rest of the first
    assert after.audio == b"\x02" * 160
    assert playback.clears == 1
    assert session.interrupts == []


async def test_speech_while_the_agent_is_silent_is_not_an_interruption() -> None:
    playback = FakePlayback(heard_ms=0)
    provider = ScriptedProvider()
    async with RealtimeBridge.for_twilio(provider, CONFIG, playback=playback) as bridge:
        session = session_of(provider)
        session.emit(SpeechStarted(), SpeechStopped())
        session.emit(AudioChunk(FRAME, is_final=True))
        await take(bridge.audio(), 1)
        assert playback.clears == 0
        assert session.interrupts == []
        assert bridge.metrics()["interruptions"] == 0


async def test_interruption_after_the_text_arrives_late() -> None:
    playback = FakePlayback(heard_ms=500)
    provider = ScriptedProvider()
    async with RealtimeBridge.for_twilio(provider, CONFIG, playback=playback) as bridge:
        session = session_of(provider)
        session.emit(AudioChunk(FRAME * 50))  # 1 s of audio, no text yet
        await take(bridge.audio(), 1)
        playback.busy = True
        await bridge.interrupt()
        session.emit(Transcript("alpha beta gamma delta", is_input=False, is_final=True))
        session.emit(AudioChunk(b"", is_final=True))
        session.end()
        async for _ in bridge.audio():
            pass
        (agent,) = bridge.transcript()
        assert agent.heard_text == "alpha beta"
        assert session.interrupts == [500]


async def test_without_a_playback_heard_is_what_was_handed_over() -> None:
    provider = ScriptedProvider()
    async with RealtimeBridge.for_twilio(provider, CONFIG) as bridge:
        session = session_of(provider)
        session.emit(AudioChunk(FRAME * 5), AudioChunk(FRAME * 5))
        await take(bridge.audio(), 1)
        await bridge.interrupt()
        assert session.interrupts == [100]


# --- lifecycle, errors, back-pressure -----------------------------------------------------------


async def test_connection_errors_surface_on_entry() -> None:
    provider = ScriptedProvider(connect_error=AuthFailedError("bad key"))
    with pytest.raises(AuthFailedError):
        async with RealtimeBridge.for_twilio(provider, CONFIG):
            pass


async def test_a_session_that_dies_is_reported_and_ends_the_audio() -> None:
    provider = ScriptedProvider()
    async with RealtimeBridge.for_twilio(provider, CONFIG) as bridge:
        session = session_of(provider)
        session.emit(AudioChunk(FRAME), RuntimeError("socket exploded"))
        chunks = [chunk async for chunk in bridge.audio()]
        assert [c.audio for c in chunks] == [FRAME]
        with pytest.raises(SessionClosedError):
            await bridge.send_audio(FRAME)
        events = bridge.metrics()
        assert events["errors"] == 1


async def test_a_slow_provider_slows_the_caller_side_down() -> None:
    provider = ScriptedProvider(consume_audio=False)
    async with RealtimeBridge.for_twilio(provider, CONFIG, inbound_buffer=4) as bridge:
        for _ in range(4):
            with anyio.fail_after(5):
                await bridge.send_audio(FRAME)
        with anyio.move_on_after(0.2) as scope:
            await bridge.send_audio(FRAME)  # the fifth waits: the buffer is bounded
        assert scope.cancelled_caught


async def test_a_slow_audio_reader_slows_the_provider_down() -> None:
    provider = ScriptedProvider()
    async with RealtimeBridge.for_twilio(provider, CONFIG, outbound_buffer=2) as bridge:
        session = session_of(provider)
        session.emit(*[AudioChunk(FRAME) for _ in range(10)])
        await anyio.wait_all_tasks_blocked()
        # Two in the buffer and one held by the pump: the rest waits at the provider.
        assert session._rx.statistics().current_buffer_used == 7
        assert len(await take(bridge.audio(), 10)) == 10


async def test_events_end_after_session_ended() -> None:
    provider = ScriptedProvider()
    bridge = RealtimeBridge.for_twilio(provider, CONFIG)
    async with bridge:
        pass
    events = await collect_events(bridge)
    assert types(events) == [EventType.SESSION_STARTED, EventType.SESSION_ENDED]
    with pytest.raises(SessionClosedError):
        await bridge.send_audio(FRAME)
