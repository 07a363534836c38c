"""EnergyVAD: speech found by frame energy, whatever the chunk sizes."""

from __future__ import annotations

import numpy as np
import pytest

from omnivoice.audio import TWILIO, AudioFormat, Encoding, g711
from omnivoice.audio.vad import EnergyVAD, VoiceActivity

PCM8K = AudioFormat(Encoding.PCM16, 8000)


def tone(seconds: float, level_dbfs: float = -20.0) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000
    amplitude = 32767 * 10 ** (level_dbfs / 20)
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(int(8000 * seconds) * 2)


def feed(vad: EnergyVAD, audio: bytes, size: int = 320) -> list[tuple[int, VoiceActivity]]:
    """Each change with the number of 20 ms frames fed when it was reported."""
    changes = []
    fed = 0
    for start in range(0, len(audio), size):
        for frame in vad.split(audio[start : start + size]):
            fed += 1
            change = vad.update(frame)
            if change is not None:
                changes.append((fed, change))
    return changes


def test_speech_starts_after_voiced_frames_and_ends_after_the_silence() -> None:
    vad = EnergyVAD(PCM8K, start_frames=3, end_silence_ms=200)
    audio = silence(0.2) + tone(0.5) + silence(0.5)
    assert feed(vad, audio) == [
        (10 + 3, VoiceActivity(speaking=True)),
        (10 + 25 + 10, VoiceActivity(speaking=False, trailing_silence_ms=200)),
    ]
    assert not vad.speaking


@pytest.mark.parametrize("size", [1, 7, 161, 320, 4001])
def test_chunk_sizes_do_not_matter(size: int) -> None:
    audio = silence(0.3) + tone(0.4) + silence(0.7) + tone(0.3) + silence(0.1)
    reference = [change for _, change in feed(EnergyVAD(PCM8K), audio)]
    changes = EnergyVAD(PCM8K).process(audio[:0])
    vad = EnergyVAD(PCM8K)
    for start in range(0, len(audio), size):
        changes += vad.process(audio[start : start + size])
    assert changes == reference
    assert [c.speaking for c in changes] == [True, False, True]
    assert vad.speaking  # the last speech has not ended yet
    assert vad.silence_ms == 100


def test_clicks_and_quiet_sounds_are_not_speech() -> None:
    click = tone(0.02, level_dbfs=-3)  # one loud frame alone
    assert EnergyVAD(PCM8K).process(silence(0.5) + click + silence(0.5)) == []
    assert EnergyVAD(PCM8K).process(tone(1.0, level_dbfs=-60)) == []
    assert EnergyVAD(PCM8K, threshold_dbfs=-70).process(tone(1.0, level_dbfs=-60)) != []


def test_short_pauses_do_not_end_speech() -> None:
    audio = tone(0.3) + silence(0.2) + tone(0.3) + silence(0.5)
    changes = EnergyVAD(PCM8K, end_silence_ms=300).process(audio)
    assert [c.speaking for c in changes] == [True, False]


def test_g711_is_decoded_first() -> None:
    audio = silence(0.2) + tone(0.5) + silence(0.8)
    mulaw = g711.encode(audio, Encoding.MULAW)
    assert EnergyVAD(TWILIO).process(mulaw) == EnergyVAD(PCM8K).process(audio)


def test_ending_speech_early_starts_detection_afresh() -> None:
    vad = EnergyVAD(PCM8K, start_frames=2)
    assert vad.end_speech() is None  # nothing to end
    assert vad.process(tone(0.1) + silence(0.06)) == [VoiceActivity(speaking=True)]
    assert vad.silence_ms == 60
    assert vad.end_speech() == VoiceActivity(speaking=False, trailing_silence_ms=60)
    assert not vad.speaking
    assert vad.process(tone(0.02)) == []  # one voiced frame is not yet speech again
    assert vad.process(tone(0.02)) == [VoiceActivity(speaking=True)]


def test_stereo_is_refused() -> None:
    with pytest.raises(ValueError, match="mono"):
        EnergyVAD(AudioFormat(Encoding.PCM16, 8000, channels=2))
