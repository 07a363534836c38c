"""Streaming conversion: chunked equals all at once, frame in frame out, odd bytes, flush,
bad input, and selection through the codec registry."""

from __future__ import annotations

import audioop
import itertools
from typing import ClassVar

import numpy as np
import pytest

from omnivoice import hookimpl
from omnivoice.audio import (
    GEMINI_INPUT,
    GEMINI_OUTPUT,
    OPENAI,
    SUPPORTED_FORMATS,
    SUPPORTED_RATES,
    TELNYX_L16_16K,
    TWILIO,
    AudioFormat,
    Converter,
    Encoding,
    PolyphaseConverter,
    StreamConverter,
    gemini_to_twilio,
    openai_to_twilio,
    twilio_to_gemini,
    twilio_to_openai,
)
from omnivoice.errors import PluginNotFoundError, UnsupportedFormatError
from omnivoice.plugins import PLUGINS_ENV_VAR, Registry
from omnivoice.registration import Kind, Register

PAIRS = [
    (TWILIO, OPENAI),
    (OPENAI, TWILIO),
    (TWILIO, GEMINI_INPUT),
    (GEMINI_OUTPUT, TWILIO),
    (TELNYX_L16_16K, OPENAI),
    (AudioFormat(Encoding.ALAW, 8000), AudioFormat(Encoding.PCM16, 22050)),
    (AudioFormat(Encoding.PCM16, 44100), AudioFormat(Encoding.ALAW, 8000)),
    (AudioFormat(Encoding.PCM16, 48000), AudioFormat(Encoding.PCM16, 44100)),
    (TWILIO, AudioFormat(Encoding.ALAW, 8000)),
    (TELNYX_L16_16K, GEMINI_INPUT),
]


def noise(fmt: AudioFormat, seconds: float, seed: int = 0) -> bytes:
    """Loud random audio in ``fmt`` (full-scale noise exercises saturation too)."""
    rng = np.random.default_rng(seed)
    n = round(fmt.sample_rate * seconds)
    if fmt.encoding is Encoding.PCM16:
        return rng.integers(-32768, 32768, n).astype("<i2").tobytes()
    return rng.integers(0, 256, n).astype(np.uint8).tobytes()


def stream_whole(src: AudioFormat, dst: AudioFormat, data: bytes) -> bytes:
    """``data`` through a fresh stream at once: delay in front, tail at the end."""
    stream = StreamConverter(src, dst)
    return stream.convert(data) + stream.flush()


def chunked(converter: StreamConverter, data: bytes, sizes: list[int]) -> bytes:
    out, start = [], 0
    for size in itertools.cycle(sizes):
        if start >= len(data):
            break
        out.append(converter.convert(data[start : start + size]))
        start += size
    return b"".join(out) + converter.flush()


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=[f"{s}-{d}" for s, d in PAIRS])
def test_chunked_output_equals_one_shot_output_whatever_the_chunk_sizes(
    src: AudioFormat, dst: AudioFormat
) -> None:
    data = noise(src, 0.3)
    whole = stream_whole(src, dst, data)
    rng = np.random.default_rng(len(data))
    for case in range(4):
        # Sizes from empty to longer than a converter's internal piece, odd counts included.
        sizes = [int(s) for s in rng.integers(0, 4000 if case == 0 else 700, 40)]
        assert chunked(StreamConverter(src, dst), data, sizes) == whole, sizes


def test_a_dangling_pcm16_byte_is_completed_by_the_next_chunk() -> None:
    data = noise(OPENAI, 0.05)
    whole = stream_whole(OPENAI, TWILIO, data)
    stream = StreamConverter(OPENAI, TWILIO)
    assert stream.convert(data[:1]) == b""
    for cut in range(1, len(data), 2 * 37 + 1):  # odd offsets all along the stream
        stream = StreamConverter(OPENAI, TWILIO)
        assert stream.convert(data[:cut]) + stream.convert(data[cut:]) + stream.flush() == whole
    # One byte at a time, too.
    assert chunked(StreamConverter(OPENAI, TWILIO), data, [1]) == whole


def test_a_dangling_byte_at_the_end_of_the_stream_is_dropped() -> None:
    data = noise(OPENAI, 0.02)
    stream = StreamConverter(OPENAI, TWILIO)
    out = stream.convert(data + b"\x7f") + stream.flush()
    assert out == stream_whole(OPENAI, TWILIO, data)
    same_rate = StreamConverter(OPENAI, GEMINI_OUTPUT)
    assert same_rate.convert(data + b"\x7f") + same_rate.flush() == data


@pytest.mark.parametrize(
    ("src_rate", "dst_rate"), list(itertools.product(SUPPORTED_RATES, repeat=2))
)
def test_each_20_ms_frame_in_gives_exactly_a_20_ms_frame_out(src_rate: int, dst_rate: int) -> None:
    src, dst = AudioFormat(Encoding.MULAW, src_rate), AudioFormat(Encoding.PCM16, dst_rate)
    stream = StreamConverter(src, dst)
    data = noise(src, 0.2)
    frame = src.bytes_per_frame(20)
    sizes = {len(stream.convert(data[i : i + frame])) for i in range(0, len(data), frame)}
    assert sizes == {dst.bytes_per_frame(20)}


@pytest.mark.parametrize(
    ("src", "dst"), [(TWILIO, OPENAI), (OPENAI, TWILIO), (TWILIO, GEMINI_INPUT)]
)
def test_flush_returns_the_2_ms_tail_and_starts_a_new_stream(
    src: AudioFormat, dst: AudioFormat
) -> None:
    data = noise(src, 0.1)
    stream = StreamConverter(src, dst)
    body = stream.convert(data)
    tail = stream.flush()
    assert len(body) == dst.bytes_per_frame(100)
    assert len(tail) == dst.bytes_per_frame(2)
    assert stream.flush() == b""
    # The stream starts afresh: the same input gives the same output again.
    assert stream.convert(data) + stream.flush() == body + tail


def test_empty_input_gives_empty_output() -> None:
    for src, dst in PAIRS:
        assert Converter().convert(b"", src, dst) == b""
        stream = StreamConverter(src, dst)
        assert stream.convert(b"") == b""
        assert stream.flush() == b""
    assert twilio_to_openai(b"") == b""


def test_the_convenience_functions_convert_whole_clips() -> None:
    phone = noise(TWILIO, 0.1)
    assert twilio_to_openai(phone) == Converter().convert(phone, TWILIO, OPENAI)
    assert twilio_to_gemini(phone) == Converter().convert(phone, TWILIO, GEMINI_INPUT)
    voice = noise(OPENAI, 0.1)
    assert openai_to_twilio(voice) == Converter().convert(voice, OPENAI, TWILIO)
    assert gemini_to_twilio(voice) == Converter().convert(voice, GEMINI_OUTPUT, TWILIO)
    assert len(twilio_to_openai(phone)) == OPENAI.bytes_per_frame(100)
    assert len(gemini_to_twilio(voice)) == TWILIO.bytes_per_frame(100)


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=[f"{s}-{d}" for s, d in PAIRS])
def test_a_one_shot_clip_is_the_stream_without_its_delay_and_tail(
    src: AudioFormat, dst: AudioFormat
) -> None:
    data = noise(src, 0.1)
    stream = StreamConverter(src, dst)
    width = dst.bytes_per_sample
    delay = round(PolyphaseConverter(src, dst).delay * dst.sample_rate) * width
    n_in = len(data) // src.bytes_per_sample
    n_out = -(-n_in * dst.sample_rate // src.sample_rate)  # rounded up, as resample_poly
    whole = stream.convert(data) + stream.flush()
    assert Converter().convert(data, src, dst) == whole[delay : delay + n_out * width]


def test_twenty_ms_of_mu_law_gives_twenty_ms_at_24_khz() -> None:
    assert len(Converter().convert(noise(TWILIO, 0.02), TWILIO, OPENAI)) == 960
    assert len(Converter().convert(noise(OPENAI, 0.02), OPENAI, TWILIO)) == 160


def test_same_rate_conversions_match_audioop() -> None:
    pcm, phone = noise(TELNYX_L16_16K, 0.05), noise(TWILIO, 0.05)
    ulaw16, alaw8 = AudioFormat(Encoding.MULAW, 16000), AudioFormat(Encoding.ALAW, 8000)
    pcm8 = AudioFormat(Encoding.PCM16, 8000)
    convert = Converter().convert
    assert convert(pcm, TELNYX_L16_16K, ulaw16) == audioop.lin2ulaw(pcm, 2)
    assert convert(phone, TWILIO, pcm8) == audioop.ulaw2lin(phone, 2)
    assert convert(phone, TWILIO, alaw8) == audioop.lin2alaw(audioop.ulaw2lin(phone, 2), 2)
    assert convert(pcm, TELNYX_L16_16K, GEMINI_INPUT) == pcm
    assert PolyphaseConverter(TWILIO, alaw8).delay == 0


@pytest.mark.parametrize(
    ("src", "dst", "reason"),
    [
        (AudioFormat(Encoding.PCM16, 11025), TWILIO, "11025 Hz"),
        (OPENAI, AudioFormat(Encoding.MULAW, 12000), "12000 Hz"),
        (AudioFormat(Encoding.PCM16, 24000, channels=2), TWILIO, "mono"),
    ],
)
def test_an_unsupported_pair_names_both_formats(
    src: AudioFormat, dst: AudioFormat, reason: str
) -> None:
    for build in (lambda: StreamConverter(src, dst), lambda: Converter().convert(b"", src, dst)):
        with pytest.raises(UnsupportedFormatError) as caught:
            build()
        assert str(src) in str(caught.value)
        assert str(dst) in str(caught.value)
        assert reason in str(caught.value)


def test_the_core_registers_polyphase_with_every_format_it_converts() -> None:
    registry = Registry.load(environ={PLUGINS_ENV_VAR: ""})
    registration = registry.get(Kind.CODEC, "polyphase")
    assert registration.distribution == "omnivoice-core"
    assert set(registration.accepts) == set(registration.produces) == set(SUPPORTED_FORMATS)
    assert len(SUPPORTED_FORMATS) == 18
    assert isinstance(registration.factory(TWILIO, OPENAI), PolyphaseConverter)


class _Recording:
    """A codec that records what it was asked and returns its input."""

    made: ClassVar[list[tuple[AudioFormat, AudioFormat]]] = []

    def __init__(self, src: AudioFormat, dst: AudioFormat) -> None:
        self.made.append((src, dst))

    def convert(self, chunk: bytes) -> bytes:
        return chunk

    def flush(self) -> bytes:
        return b"<end>"


def _codec_plugin(name: str, priority: int) -> object:
    class Plugin:
        @hookimpl
        def register_codecs(self, register: Register) -> None:
            register(name, _Recording, accepts=[TWILIO], produces=[OPENAI], priority=priority)

    return Plugin()


def test_a_plugin_replaces_polyphase_with_a_higher_priority() -> None:
    registry = Registry.load(
        environ={PLUGINS_ENV_VAR: ""}, extra=[("better", _codec_plugin("polyphase", 1))]
    )
    _Recording.made.clear()
    stream = StreamConverter(TWILIO, OPENAI, registry=registry)
    assert stream.convert(b"abc") == b"abc"
    assert stream.flush() == b"<end>"
    assert Converter(registry=registry).convert(b"xyz", TWILIO, OPENAI) == b"xyz<end>"
    assert _Recording.made == [(TWILIO, OPENAI), (TWILIO, OPENAI)]


def test_users_select_another_codec_by_name() -> None:
    registry = Registry.load(
        environ={PLUGINS_ENV_VAR: ""}, extra=[("alt", _codec_plugin("passthrough", 0))]
    )
    assert StreamConverter(TWILIO, OPENAI, "passthrough", registry=registry).convert(b"a") == b"a"
    core = StreamConverter(TWILIO, OPENAI, registry=registry)
    assert len(core.convert(b"\xff" * 160)) == OPENAI.bytes_per_frame(20)
    with pytest.raises(PluginNotFoundError, match="no-such-codec"):
        Converter("no-such-codec", registry=registry).convert(b"", TWILIO, OPENAI)
