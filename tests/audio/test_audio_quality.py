"""Resampling quality measured with tones: passband, alias and image rejection, delay."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from omnivoice.audio import (
    OPENAI,
    SUPPORTED_RATES,
    TWILIO,
    AudioFormat,
    Converter,
    Encoding,
    PolyphaseConverter,
    StreamConverter,
    g711,
    openai_to_twilio,
    twilio_to_openai,
)

LEVEL = 0.5  # -6 dBFS
TELEPHONY = [(8000, 16000), (8000, 24000), (16000, 8000), (24000, 8000)]
PASSBAND = [300.0, 1000.0, 2000.0, 3000.0, 3400.0]


def pcm(rate: int) -> AudioFormat:
    return AudioFormat(Encoding.PCM16, rate)


def tone(freq: float, rate: int, seconds: float = 0.25) -> bytes:
    t = np.arange(round(rate * seconds)) / rate
    return np.rint(LEVEL * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def resample(data: bytes, src: int, dst: int) -> npt.NDArray[np.float64]:
    """One-shot conversion, with the first and last 20 ms (filter edges) cut off."""
    out = np.frombuffer(Converter().convert(data, pcm(src), pcm(dst)), "<i2")
    edge = dst // 50
    return out[edge:-edge].astype(np.float64)


def level_db(samples: npt.NDArray[np.float64], freq: float, rate: int) -> float:
    """Amplitude of one frequency, in dB relative to the test tones' amplitude."""
    window = np.blackman(len(samples))
    t = np.arange(len(samples)) / rate
    amplitude = 2 * abs(np.sum(samples * window * np.exp(-2j * np.pi * freq * t))) / window.sum()
    return float(20 * np.log10(max(amplitude, 1e-9) / (LEVEL * 32767)))


def folded(freq: float, rate: int) -> float:
    """Where ``freq`` lands once sampled at ``rate``."""
    return abs((freq + rate / 2) % rate - rate / 2)


@pytest.mark.parametrize(("src", "dst"), TELEPHONY)
def test_passband_is_flat_within_1_db_from_300_to_3400_hz(src: int, dst: int) -> None:
    gains = [level_db(resample(tone(f, src), src, dst), f, dst) for f in PASSBAND]
    assert max(abs(g) for g in gains) <= 1.0, gains


def test_a_6_khz_tone_going_from_24_to_8_khz_leaves_less_than_minus_80_db() -> None:
    reference = level_db(resample(tone(1000, 24000), 24000, 8000), 1000, 8000)
    alias = level_db(resample(tone(6000, 24000), 24000, 8000), 2000, 8000)
    assert alias - reference < -80


@pytest.mark.parametrize(("src", "dst"), [(16000, 8000), (24000, 8000), (48000, 8000)])
def test_aliases_folding_into_the_passband_are_rejected_by_80_db(src: int, dst: int) -> None:
    for freq in np.linspace(4600, src / 2 - 200, 7):
        out = resample(tone(freq, src), src, dst)
        assert level_db(out, folded(freq, dst), dst) < -80, freq


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (8000, 24000), (8000, 48000)])
def test_images_of_the_passband_are_rejected_by_80_db(src: int, dst: int) -> None:
    for freq in PASSBAND:
        out = resample(tone(freq, src), src, dst)
        images = [k * src + s * freq for k in range(1, dst // src) for s in (-1, 1)]
        for image in (i for i in images if i < dst / 2):
            assert level_db(out, image, dst) < -80, (freq, image)


@pytest.mark.parametrize(("src", "dst"), list(itertools.permutations(SUPPORTED_RATES, 2)))
def test_every_pair_passes_1_khz_and_rejects_above_the_lower_nyquist(src: int, dst: int) -> None:
    assert abs(level_db(resample(tone(1000, src), src, dst), 1000, dst)) < 0.1
    nyquist = min(src, dst) / 2
    if src > dst:  # a tone the output cannot hold must not fold back into it
        freq = min(nyquist + 1000, src / 2 - 200)
        out = resample(tone(freq, src), src, dst)
        assert level_db(out, folded(freq, dst), dst) < -80
    else:  # the first image of a tone must not appear
        freq = nyquist - 1000
        out = resample(tone(freq, src), src, dst)
        assert level_db(out, src - freq, dst) < -80


@pytest.mark.parametrize(("src", "dst"), list(itertools.permutations(SUPPORTED_RATES, 2)))
def test_delay_is_2_ms_measured_on_an_impulse(src: int, dst: int) -> None:
    # An impulse at a time both rates sample; its band-limited image peaks 2 ms later.
    at = 0.02
    impulse = np.zeros(src // 10, dtype="<i2")
    impulse[round(at * src)] = 20000
    stream = StreamConverter(pcm(src), pcm(dst))
    out = np.frombuffer(stream.convert(impulse.tobytes()) + stream.flush(), "<i2")
    delay = int(np.argmax(out)) / dst - at
    assert abs(delay - 0.002) <= 1 / dst
    assert PolyphaseConverter(pcm(src), pcm(dst)).delay == pytest.approx(0.002, abs=1e-5)
    # A one-shot conversion takes the delay off: the peak stays where it was.
    clip = np.frombuffer(Converter().convert(impulse.tobytes(), pcm(src), pcm(dst)), "<i2")
    assert abs(int(np.argmax(clip)) / dst - at) <= 1 / dst
    assert len(clip) == len(impulse) * dst // src


def test_a_one_shot_1_khz_tone_comes_out_in_phase() -> None:
    # 20 ms of a 1 kHz tone burst from Twilio to OpenAI: 960 bytes, on the input's time
    # axis. The burst's envelope shows a shift (a steady 1 kHz tone would hide 2 ms).
    t_in, t_out = np.arange(160) / 8000, np.arange(480) / OPENAI.sample_rate
    burst = LEVEL * 32767 * np.sin(2 * np.pi * 1000 * t_in) * np.hanning(160)
    phone = g711.encode(np.rint(burst).astype("<i2").tobytes(), Encoding.MULAW)
    expected = LEVEL * 32767 * np.sin(2 * np.pi * 1000 * t_out)
    expected *= np.interp(t_out, t_in, np.hanning(160))
    out = Converter().convert(phone, TWILIO, OPENAI)
    assert len(out) == 960
    aligned = np.frombuffer(out, "<i2").astype(np.float64)
    assert np.corrcoef(aligned, expected)[0, 1] > 0.99
    # The stream keeps its 2 ms delay: the same burst through it is that much late.
    stream = StreamConverter(TWILIO, OPENAI)
    late = np.frombuffer(stream.convert(phone) + stream.flush(), "<i2").astype(np.float64)
    assert np.corrcoef(late[:480], expected)[0, 1] < 0.97
    assert np.corrcoef(late[48:528], expected)[0, 1] > 0.99


def test_full_scale_overshoot_saturates_instead_of_wrapping() -> None:
    # A full-scale square wave rings past full scale after each edge (Gibbs).
    square = np.where(np.arange(800) % 80 < 40, 32767, -32768).astype("<i2")
    stream = StreamConverter(pcm(8000), pcm(24000))
    out = np.frombuffer(stream.convert(square.tobytes()) + stream.flush(), "<i2")
    assert out.max() == 32767
    assert out.min() == -32768
    # Away from each edge, every output sample keeps the sign of the (delayed) input.
    position = np.arange(len(out)) / 3 - 16  # in input samples, less the 2 ms delay
    from_edge = (position + 0.5) % 40  # edges lie half-way between two input samples
    steady = (position > 2) & (position < 798) & (from_edge > 1) & (from_edge < 39)
    expected = np.where(((position + 0.5) // 40) % 2 == 0, 1, -1)
    assert np.array_equal(np.sign(out[steady]), expected[steady])


def test_mu_law_round_trip_through_the_provider_rate_keeps_38_db_snr() -> None:
    rate = OPENAI.sample_rate
    t = np.arange(rate) / rate
    tones = [(0.25, 440.0), (0.15, 1250.0), (0.1, 2300.0), (0.05, 3100.0)]
    signal = np.rint(sum(a * np.sin(2 * np.pi * f * t + f) for a, f in tones) * 32767)
    original = np.asarray(signal, dtype="<i2")
    phone = openai_to_twilio(original.tobytes())
    assert len(phone) == TWILIO.bytes_per_second  # one second, time-aligned
    back = np.frombuffer(twilio_to_openai(phone), "<i2").astype(np.float64)
    assert len(back) == len(original)
    aligned = back[2400:-2400]
    reference = original[2400:-2400].astype(np.float64)
    snr = 10 * np.log10(np.sum(reference**2) / np.sum((aligned - reference) ** 2))
    assert snr >= 35
