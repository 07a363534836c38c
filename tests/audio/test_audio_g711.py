"""G.711 mu-law and A-law: bit-exact with audioop (the reference) over every input."""

from __future__ import annotations

import audioop

import numpy as np
import pytest

from omnivoice.audio import Encoding, g711
from omnivoice.errors import UnsupportedFormatError

ALL_CODES = bytes(range(256))
ALL_SAMPLES = np.arange(-32768, 32768, dtype="<i2").tobytes()

REFERENCE = {
    Encoding.MULAW: (audioop.ulaw2lin, audioop.lin2ulaw),
    Encoding.ALAW: (audioop.alaw2lin, audioop.lin2alaw),
}
G711 = list(REFERENCE)


@pytest.fixture(params=["audioop", "numpy"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with audioop available, and again with the numpy table fallback."""
    if request.param == "numpy":
        monkeypatch.setattr(g711, "_audioop", None)
    return str(request.param)


@pytest.mark.parametrize("encoding", G711)
def test_decode_table_matches_audioop_for_all_256_codes(encoding: Encoding) -> None:
    decode, _ = REFERENCE[encoding]
    assert g711.decode_table(encoding).astype("<i2").tobytes() == decode(ALL_CODES, 2)


@pytest.mark.parametrize("encoding", G711)
def test_encode_table_matches_audioop_for_all_65536_samples(encoding: Encoding) -> None:
    _, encode = REFERENCE[encoding]
    samples = np.frombuffer(ALL_SAMPLES, dtype="<i2")
    table = g711.encode_table(encoding)
    assert table[samples.view("<u2")].tobytes() == encode(ALL_SAMPLES, 2)


@pytest.mark.parametrize("encoding", G711)
def test_bytes_functions_match_audioop(encoding: Encoding, backend: str) -> None:
    decode, encode = REFERENCE[encoding]
    assert g711.decode(ALL_CODES, encoding) == decode(ALL_CODES, 2)
    assert g711.encode(ALL_SAMPLES, encoding) == encode(ALL_SAMPLES, 2)
    assert g711.decode(b"", encoding) == b""
    assert g711.encode(b"", encoding) == b""


@pytest.mark.parametrize("encoding", G711)
def test_every_code_survives_decode_then_encode(encoding: Encoding, backend: str) -> None:
    # mu-law has two codes for zero (0x7F and 0xFF); every other code is its own image.
    again = g711.encode(g711.decode(ALL_CODES, encoding), encoding)
    changed = {code for code, back in zip(ALL_CODES, again, strict=True) if code != back}
    assert changed == ({0x7F} if encoding is Encoding.MULAW else set())


@pytest.mark.parametrize(("encoding", "min_snr"), [(Encoding.MULAW, 37.0), (Encoding.ALAW, 37.0)])
def test_round_trip_snr_of_speech_band_audio(encoding: Encoding, min_snr: float) -> None:
    rate = 8000
    t = np.arange(rate) / rate
    tones = [(0.25, 440.0), (0.15, 1250.0), (0.1, 2300.0), (0.05, 3100.0)]
    signal = sum(a * np.sin(2 * np.pi * f * t + f) for a, f in tones)
    pcm = np.rint(np.asarray(signal) * 32767).astype("<i2")
    back = np.frombuffer(g711.decode(g711.encode(pcm.tobytes(), encoding), encoding), "<i2")
    error = back.astype(float) - pcm
    snr = 10 * np.log10(np.sum(pcm.astype(float) ** 2) / np.sum(error**2))
    assert snr >= min_snr


def test_encode_rejects_half_a_sample() -> None:
    with pytest.raises(ValueError, match="even length"):
        g711.encode(b"\x00\x00\x01", Encoding.MULAW)


def test_pcm16_is_not_a_g711_encoding() -> None:
    with pytest.raises(UnsupportedFormatError, match="pcm16"):
        g711.decode_table(Encoding.PCM16)
    with pytest.raises(UnsupportedFormatError, match="pcm16"):
        g711.decode(b"\x00", Encoding.PCM16)


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError, match="read-only"):
        g711.decode_table(Encoding.MULAW)[0] = 0
    with pytest.raises(ValueError, match="read-only"):
        g711.encode_table(Encoding.ALAW)[0] = 0
