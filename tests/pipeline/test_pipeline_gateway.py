"""The text pipeline as the gateway serves it: through RealtimeBridge, from a Config."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from support.fake_pipeline import (
    PCM16K,
    PCM24K,
    FakeLLM,
    FakePipelinePlugin,
    FakeSTT,
    FakeTTS,
    Gate,
)

from omnivoice.audio import TWILIO
from omnivoice.errors import PluginNotFoundError
from omnivoice.gateway import Config, PipelineMode, RealtimeBridge
from omnivoice.gateway.config import TextConfig
from omnivoice.gateway.events import EventType
from omnivoice.gateway.server import Gateway
from omnivoice.pipeline import Message, TextPipeline, build_pipeline
from omnivoice.plugins import PLUGINS_ENV_VAR, Registry
from omnivoice.realtime import AudioChunk, FunctionDeclaration, ProcessConfig, Transcript
from omnivoice.realtime.provider import SpeechStarted, SpeechStopped
from omnivoice.telephony import Start
from omnivoice.testing import FakePlayback

pytestmark = pytest.mark.anyio

FRAME = bytes(range(256))[:160]  # 20 ms of mu-law that is not silence


async def until_final(audio: AsyncIterator[AudioChunk]) -> list[AudioChunk]:
    chunks = []
    with anyio.fail_after(5):
        async for chunk in audio:
            chunks.append(chunk)
            if chunk.is_final:
                return chunks
    raise AssertionError("the response never ended")


async def test_a_call_through_the_bridge_converts_both_ways() -> None:
    stt, llm, tts = FakeSTT(accepts=[PCM16K]), FakeLLM("Hi there. How are you?"), FakeTTS()
    provider = TextPipeline(stt, llm, tts, vad=False)
    async with RealtimeBridge.for_twilio(provider, ProcessConfig()) as bridge:
        assert (bridge.input_format, bridge.output_format) == (PCM16K, PCM24K)
        for _ in range(10):
            await bridge.send_audio(FRAME)
        with anyio.fail_after(5):
            assert len(await stt.stream.wait_for_audio(6400)) == 6400  # 200 ms at 16 kHz
        stt.stream.emit(
            SpeechStarted(),
            Transcript("hello", is_input=True, is_final=True),
            SpeechStopped(trailing_silence_ms=200),
        )
        chunks = await until_final(bridge.audio())
        await anyio.wait_all_tasks_blocked()  # the bridge has taken every event
        transcript = bridge.transcript()
        metrics = bridge.metrics()

    spoken_ms = tts.duration_ms("Hi there.") + tts.duration_ms("How are you?")
    assert sum(len(c.audio) for c in chunks) == 8 * spoken_ms  # mu-law at 8 kHz
    assert [(t.role, t.text) for t in transcript] == [
        ("user", "hello"),
        ("agent", "Hi there. How are you?"),
    ]
    assert metrics["turns"] == 1
    assert len(metrics["response_latencies_ms"]) == 1


async def test_barge_in_through_the_bridge_keeps_the_heard_words() -> None:
    stalled = Gate()
    stt = FakeSTT()
    llm = FakeLLM("One two three four. Five six seven eight.", "Sure, go ahead.")
    tts = FakeTTS(gates={"Five six seven eight.": stalled})
    playback = FakePlayback(heard_ms=190 + 105)  # the first sentence and half the second
    provider = TextPipeline(stt, llm, tts, vad=False)
    config = ProcessConfig(instructions="Count.")
    async with RealtimeBridge.for_twilio(provider, config, playback=playback) as bridge:
        audio = bridge.audio()
        events = bridge.events()
        stt.stream.emit(
            SpeechStarted(),
            Transcript("count", is_input=True, is_final=True),
            SpeechStopped(),
        )
        with anyio.fail_after(5):
            await anext(audio)
            playback.busy = True
            await stalled.reached.wait()
        stt.stream.emit(SpeechStarted())  # the caller speaks over the agent
        with anyio.fail_after(5):
            async for event in events:
                if event.type is EventType.INTERRUPTION:
                    break
        assert playback.clears == 1
        stt.stream.emit(Transcript("wait", is_input=True, is_final=True), SpeechStopped())
        # The interrupted response's rest is dropped; the next one plays.
        chunks = await until_final(audio)
        assert 8 * tts.duration_ms("Sure, go ahead.") <= sum(len(c.audio) for c in chunks)
        transcript = bridge.transcript()

    assert tts.streams[1].closed_early
    assert [m.content for m in llm.requests[1].messages] == [
        "Count.",
        "count",
        "One two three four. Five six",
        "wait",
    ]
    agent = next(t for t in transcript if t.role == "agent")
    assert agent.interrupted
    assert agent.heard_ms == 295
    assert agent.text == "One two three four. Five six seven eight."


# --- the gateway's configuration ------------------------------------------------------------

START = Start(
    stream_id="s", call_id="c", account_id=None, custom_parameters={}, media_format=TWILIO
)


def registry() -> Registry:
    return Registry.load(environ={PLUGINS_ENV_VAR: ""}, extra=[("fakes", FakePipelinePlugin())])


async def test_text_mode_builds_a_pipeline_from_registered_names() -> None:
    lookup = FunctionDeclaration("lookup")
    config = Config(
        mode=PipelineMode.TEXT,
        stt_provider="fake-stt",
        llm_provider="fake-llm",
        tts_provider="fake-tts",
        text=TextConfig(
            instructions="Be brief.",
            voice="ana",
            functions=[lookup],
            temperature=0.3,
            stt_options={"api_key": "k1"},
            llm_options={"model": "m1"},
            tts_options={"ms_per_char": 5},
            options={"end_silence_ms": 500, "max_tool_rounds": 2},
        ),
        transports=(),
    )
    gateway = Gateway.from_config(config, registry=registry())
    provider, process = await gateway.sessions(START)
    assert isinstance(provider, TextPipeline)
    assert isinstance(provider.stt, FakeSTT)
    assert isinstance(provider.llm, FakeLLM)
    assert isinstance(provider.tts, FakeTTS)
    assert provider.stt.options == {"api_key": "k1"}
    assert provider.llm.options == {"model": "m1"}
    assert provider.tts.ms_per_char == 5
    assert (provider.end_silence_ms, provider.max_tool_rounds) == (500, 2)
    assert provider.name == "fake-stt+fake-llm+fake-tts"
    assert (process.instructions, process.voice, process.temperature) == ("Be brief.", "ana", 0.3)
    assert process.functions == (lookup,)


async def test_text_mode_takes_provider_objects_too() -> None:
    stt, llm, tts = FakeSTT(), FakeLLM("Hello."), FakeTTS()
    config = Config(
        mode=PipelineMode.TEXT, stt_provider=stt, llm_provider=llm, tts_provider=tts, transports=()
    )
    provider, _ = await Gateway.from_config(config, registry=registry()).sessions(START)
    assert isinstance(provider, TextPipeline)
    assert (provider.stt, provider.llm, provider.tts) == (stt, llm, tts)
    # And the gateway's call serves it like any provider.
    async with RealtimeBridge.for_twilio(provider, ProcessConfig()) as bridge:
        stt.stream.emit(Transcript("hi", is_input=True, is_final=True))
        await until_final(bridge.audio())
    assert llm.requests[0].messages == [Message("user", "hi")]


def test_text_mode_needs_its_three_providers() -> None:
    with pytest.raises(ValueError, match="llm_provider, tts_provider"):
        Config(mode=PipelineMode.TEXT, stt_provider="fake-stt")


async def test_a_missing_or_wrong_provider_is_reported() -> None:
    with pytest.raises(PluginNotFoundError, match="pip install omnivoice-deepgram-stt"):
        build_pipeline(registry(), stt="deepgram", llm="fake-llm", tts="fake-tts")
    with pytest.raises(TypeError, match="not a LanguageModel"):
        build_pipeline(registry(), stt="fake-stt", llm="not-an-llm", tts="fake-tts")


async def test_build_pipeline_passes_options_through() -> None:
    pipeline = build_pipeline(
        registry(),
        stt="fake-stt",
        llm=FakeLLM(),
        tts="fake-tts",
        tts_options={"produces": [PCM16K]},
        max_turn_s=3.0,
        name="support-line",
    )
    assert pipeline.produces == (PCM16K,)
    assert pipeline.max_turn_s == 3.0
    assert pipeline.name == "support-line"
    assert (pipeline.accepts, pipeline.registry is not None) == ((PCM16K,), True)
