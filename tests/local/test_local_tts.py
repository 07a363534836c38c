"""The ``local`` text-to-speech provider: eSpeak NG from espeakng-loader, for real."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Callable

import anyio
import numpy as np
import pytest

from omnivoice.audio import TWILIO, AudioFormat, Encoding
from omnivoice.audio.wav import voiced_frames
from omnivoice.errors import UnsupportedFormatError
from omnivoice_local import LocalTTS, _espeak

pytestmark = pytest.mark.anyio

PCM22K = AudioFormat(Encoding.PCM16, 22050)


async def speak(tts: LocalTTS, text: str, voice: str | None = None) -> list[bytes]:
    return [piece async for piece in tts.synthesize(text, audio_format=PCM22K, voice=voice)]


@pytest.fixture
def clauses_made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The clauses eSpeak NG is asked to speak, in order."""
    engine = _espeak.engine()
    made: list[str] = []
    synthesize: Callable[..., list[bytes]] = engine.synthesize

    def recording(text: str, **options: object) -> list[bytes]:
        made.append(text)
        return synthesize(text, **options)

    monkeypatch.setattr(engine, "synthesize", recording)
    return made


async def test_it_produces_speech_in_the_declared_format() -> None:
    tts = LocalTTS()
    assert tts.produces == (PCM22K,)
    pieces = await speak(tts, "Hello, who am I speaking with?")
    audio = b"".join(pieces)
    assert all(len(piece) % 2 == 0 and piece for piece in pieces)
    assert 1.0 < PCM22K.duration(len(audio)) < 4.0
    samples = np.frombuffer(audio, "<i2").astype(np.float64)
    level_dbfs = 20 * math.log10(math.sqrt(np.mean(samples**2)) / 32768)
    assert -35 < level_dbfs < -6
    assert np.max(np.abs(samples)) < 32767  # not clipped
    voiced = voiced_frames(audio, PCM22K)
    assert sum(voiced) / len(voiced) > 0.5
    # Speech has its energy in the voice band, unlike a click or a hum.
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / PCM22K.sample_rate)
    band = spectrum[(freqs > 100) & (freqs < 4000)].sum() / spectrum.sum()
    assert band > 0.8


async def test_its_audio_converts_to_a_carrier_format() -> None:
    from omnivoice.audio import Converter

    audio = b"".join(await speak(LocalTTS(), "Goodbye."))
    phone = Converter().convert(audio, PCM22K, TWILIO)  # what a carrier gets
    assert 0.3 < TWILIO.duration(len(phone)) < 2.0


async def test_the_first_clause_is_yielded_before_the_next_is_made(
    clauses_made: list[str],
) -> None:
    stream = LocalTTS().synthesize(
        "Hello! This is the offline demo assistant, and I can tell you the time.",
        audio_format=PCM22K,
    )
    first = await anext(stream)
    assert first
    assert clauses_made == ["Hello!"]
    rest = [piece async for piece in stream]
    assert rest
    assert clauses_made == [
        "Hello!",
        "This is the offline demo assistant,",
        "and I can tell you the time.",
    ]


async def test_clauses_keep_the_pauses_of_the_whole_text() -> None:
    text = "Thank you, that is all. Goodbye."
    streamed = b"".join(await speak(LocalTTS(), text))
    whole = b"".join(_espeak.engine().synthesize(text, voice="en-us", rate=175, pitch=50))
    assert abs(len(streamed) - len(whole)) < PCM22K.bytes_per_frame(20)


async def test_abbreviations_and_decimals_are_not_clause_ends(clauses_made: list[str]) -> None:
    await speak(LocalTTS(), "It costs 3.5 dollars, i.e. not much.")
    assert clauses_made == ["It costs 3.5 dollars,", "i.e. not much."]


async def test_closing_the_stream_stops_the_synthesis(clauses_made: list[str]) -> None:
    tts = LocalTTS()
    stream = tts.synthesize("One, two, three, four, five.", audio_format=PCM22K)
    assert isinstance(stream, AsyncGenerator)
    assert await anext(stream)
    await stream.aclose()
    assert clauses_made == ["One,"]
    assert await speak(tts, "Six.")  # the engine is free again


async def test_cancelling_the_reader_stops_the_synthesis(clauses_made: list[str]) -> None:
    tts = LocalTTS()
    pieces = 0
    with anyio.CancelScope() as scope:
        async for _ in tts.synthesize("One, two, three, four, five.", audio_format=PCM22K):
            pieces += 1
            scope.cancel()
    assert pieces == 1
    assert clauses_made == ["One,"]


async def test_concurrent_calls_are_served_safely_one_clause_at_a_time() -> None:
    tts = LocalTTS()
    jobs = [
        ("Hello, who am I speaking with?", "en-us"),
        ("Yes.", "en"),
        ("Thank you, that is all. Goodbye, and have a nice evening.", "en-us+f3"),
    ]
    alone = [PCM22K.duration(len(b"".join(await speak(tts, t, v)))) for t, v in jobs]
    together: dict[int, float] = {}

    async def run(index: int, text: str, voice: str) -> None:
        together[index] = PCM22K.duration(len(b"".join(await speak(tts, text, voice))))

    async with anyio.create_task_group() as group:
        for index, (text, voice) in enumerate(jobs * 2):
            group.start_soon(run, index, text, voice)
    # Each call got its own audio, whole: the length of its text alone. (eSpeak NG's pitch
    # flutter runs on from call to call, so the samples themselves differ a little.)
    for index in range(len(jobs) * 2):
        assert together[index] == pytest.approx(alone[index % len(jobs)], rel=0.02)
    assert alone[0] > 2 * alone[1]
    assert alone[2] > 1.5 * alone[0]


async def test_rate_and_voice_change_the_audio() -> None:
    slow = b"".join(await speak(LocalTTS(rate=120), "What time is it?"))
    fast = b"".join(await speak(LocalTTS(rate=300), "What time is it?"))
    assert len(slow) > 1.5 * len(fast)
    us = b"".join(await speak(LocalTTS(), "What time is it?"))
    assert b"".join(await speak(LocalTTS(), "What time is it?", voice="en")) != us


async def test_another_format_is_refused() -> None:
    with pytest.raises(UnsupportedFormatError, match="pcm16@22050"):
        await speak_in(LocalTTS(), TWILIO)


async def speak_in(tts: LocalTTS, fmt: AudioFormat) -> None:
    async for _ in tts.synthesize("Hello.", audio_format=fmt):
        pass


async def test_an_unknown_voice_is_an_error_and_the_engine_stays_usable() -> None:
    tts = LocalTTS(voice="no-such-voice")
    with pytest.raises(RuntimeError, match="no-such-voice"):
        await speak(tts, "Hello.")
    assert await speak(tts, "Hello.", voice="en-us")


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="rate"):
        LocalTTS(rate=20)
    with pytest.raises(ValueError, match="pitch"):
        LocalTTS(pitch=101)
