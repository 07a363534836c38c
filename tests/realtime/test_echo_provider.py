"""The built-in echo provider: it plays each utterance back after the caller pauses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from omnivoice.audio import TWILIO, AudioFormat, Encoding
from omnivoice.default_plugins.echo import EchoProvider
from omnivoice.errors import UnsupportedFormatError
from omnivoice.plugins import PLUGINS_ENV_VAR, Registry
from omnivoice.realtime import AudioChunk, ProcessConfig
from omnivoice.realtime.provider import ProviderEvent, SpeechStarted, SpeechStopped
from omnivoice.registration import Kind

pytestmark = pytest.mark.anyio

PCM8K = AudioFormat(Encoding.PCM16, 8000)


def tone(seconds: float, level_dbfs: float = -20.0, hz: float = 440.0) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000
    amplitude = 32767 * 10 ** (level_dbfs / 20)
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(int(8000 * seconds) * 2)


async def frames(audio: bytes, size: int = 320) -> AsyncIterator[bytes]:
    for start in range(0, len(audio), size):
        yield audio[start : start + size]


async def run(provider: EchoProvider, audio: bytes, size: int = 320) -> list[ProviderEvent]:
    stream = provider.process_audio_stream(
        frames(audio, size), ProcessConfig(), input_format=PCM8K, output_format=PCM8K
    )
    async with stream as session:
        return [event async for event in session]


async def test_an_utterance_is_played_back_after_the_pause() -> None:
    speech = tone(0.6)
    events = await run(EchoProvider(pause_ms=400), silence(0.5) + speech + silence(1.0))
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped, AudioChunk]
    reply = events[-1]
    assert isinstance(reply, AudioChunk)
    assert reply.is_final
    # The speech, 100 ms of what came before it, and 40 ms of the pause: not the whole pause.
    assert 0.6 <= PCM8K.duration(len(reply.audio)) <= 0.6 + 0.1 + 0.04 + 1e-9
    assert speech[:3200] in reply.audio


@pytest.mark.parametrize("size", [7, 161, 320, 4000])
async def test_chunk_sizes_do_not_matter(size: int) -> None:
    audio = silence(0.3) + tone(0.4) + silence(0.8)
    reference = await run(EchoProvider(pause_ms=400), audio)
    assert await run(EchoProvider(pause_ms=400), audio, size) == reference


async def test_two_utterances_give_two_replies() -> None:
    audio = tone(0.3) + silence(0.8) + tone(0.5, hz=700) + silence(0.8)
    replies = [e for e in await run(EchoProvider(pause_ms=400), audio) if isinstance(e, AudioChunk)]
    assert len(replies) == 2


async def test_silence_and_clicks_are_not_speech() -> None:
    click = tone(0.02, level_dbfs=-3)  # one loud frame alone
    assert await run(EchoProvider(), silence(0.5) + click + silence(1.0)) == []
    assert await run(EchoProvider(), tone(1.0, level_dbfs=-60)) == []


async def test_long_speech_is_played_back_in_bounded_pieces() -> None:
    events = await run(EchoProvider(max_utterance_s=0.5), tone(1.3))
    replies = [e for e in events if isinstance(e, AudioChunk)]
    assert len(replies) >= 2
    assert all(PCM8K.duration(len(r.audio)) <= 0.5 + 1e-9 for r in replies)


async def test_speech_cut_off_by_the_end_of_the_stream_is_still_returned() -> None:
    events = await run(EchoProvider(), tone(0.5))
    assert isinstance(events[-1], AudioChunk)


async def test_mulaw_is_refused_with_a_clear_error() -> None:
    stream = EchoProvider().process_audio_stream(
        frames(b""), ProcessConfig(), input_format=TWILIO, output_format=TWILIO
    )
    with pytest.raises(UnsupportedFormatError, match="mulaw@8000"):
        async with stream:
            pass


def test_echo_is_a_built_in_realtime_provider() -> None:
    registry = Registry.load(environ={PLUGINS_ENV_VAR: ""})
    registration = registry.get(Kind.REALTIME, "echo")
    assert registration.distribution == "omnivoice-core"
    assert PCM8K in registration.accepts
    assert isinstance(registry.create(Kind.REALTIME, "echo"), EchoProvider)
