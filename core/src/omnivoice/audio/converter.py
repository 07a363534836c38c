"""Converting audio between formats: one-shot and streaming, through the codec registry.

:class:`StreamConverter` converts one stream (one call, one direction) chunk by chunk, with
a small delay (2 ms); :class:`Converter` converts a whole clip, time-aligned and exactly as
long as its input. Both build their converter through the
``register_codecs`` hook: ``codec="polyphase"`` (the default) is the core's own
:class:`PolyphaseConverter`, and an installed plugin may replace it or add others that
users select by name. See ``docs/audio.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from omnivoice.audio.format import (
    GEMINI_INPUT,
    GEMINI_OUTPUT,
    OPENAI,
    TWILIO,
    AudioFormat,
    Encoding,
)
from omnivoice.errors import UnsupportedFormatError

if TYPE_CHECKING:
    from omnivoice.audio.resample import Resampler
    from omnivoice.plugins import Registry

__all__ = [
    "DEFAULT_CODEC",
    "SUPPORTED_FORMATS",
    "SUPPORTED_RATES",
    "Converter",
    "PolyphaseConverter",
    "StreamConverter",
    "gemini_to_twilio",
    "openai_to_twilio",
    "twilio_to_gemini",
    "twilio_to_openai",
]

DEFAULT_CODEC = "polyphase"
"""The name the core registers its own converter under."""

SUPPORTED_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 44100, 48000)
"""Sample rates (Hz) :class:`PolyphaseConverter` converts between, in any direction."""

SUPPORTED_FORMATS: tuple[AudioFormat, ...] = tuple(
    AudioFormat(encoding, rate) for rate in SUPPORTED_RATES for encoding in Encoding
)
"""Every format :class:`PolyphaseConverter` accepts and produces (mono)."""


class _Stream(Protocol):
    """What a codec's factory returns (see ``register_codecs``)."""

    def convert(self, chunk: bytes, /) -> bytes: ...

    def flush(self) -> bytes: ...


# --- the core's converter -------------------------------------------------------------


class PolyphaseConverter:
    """The core's converter for one stream, registered as the ``polyphase`` codec.

    Converts between any two of :data:`SUPPORTED_FORMATS`: G.711 bit-exact, resampling
    with a stateful polyphase FIR (2 ms delay, see ``docs/audio.md``). A PCM16 chunk may
    end mid-sample: the dangling byte is kept and completed by the next chunk.
    """

    def __init__(self, src: AudioFormat, dst: AudioFormat) -> None:
        problem = _unsupported(src) or _unsupported(dst)
        if problem:
            raise UnsupportedFormatError(f"cannot convert {src} to {dst}: {problem}")
        # numpy (and scipy, for a filter's design) load on first use, not on import, so
        # that commands which only list plugins start quickly.
        from omnivoice.audio.resample import Resampler

        self.src = src
        self.dst = dst
        self._width = src.bytes_per_sample
        self._carry = b""
        self._engine: Resampler | _SameRate = (
            _SameRate(src.encoding, dst.encoding)
            if src.sample_rate == dst.sample_rate
            else Resampler(src, dst)
        )

    @property
    def delay(self) -> float:
        """The algorithmic delay in seconds (0 when the sample rates are equal)."""
        return self._engine.delay

    def convert(self, chunk: bytes) -> bytes:
        """Convert the next chunk of the stream; return every output sample it completes."""
        if self._carry or len(chunk) % self._width:
            chunk = self._whole_samples(chunk)
        return self._engine.convert(chunk)

    def flush(self) -> bytes:
        """End the stream: return the delayed tail, then start a new stream.

        A dangling PCM16 byte (half a sample) is dropped.
        """
        self._carry = b""
        return self._engine.flush()

    def _whole_samples(self, chunk: bytes) -> bytes:
        data = self._carry + bytes(chunk)
        whole = len(data) - len(data) % self._width
        self._carry = data[whole:]
        return data[:whole]


def _unsupported(fmt: AudioFormat) -> str | None:
    """Why the core's converter cannot handle ``fmt``, if it cannot."""
    if fmt.channels != 1:
        return f"{fmt} has {fmt.channels} channels; only mono is supported"
    if fmt.sample_rate not in SUPPORTED_RATES:
        rates = ", ".join(str(rate) for rate in SUPPORTED_RATES)
        return f"{fmt.sample_rate} Hz is not a supported sample rate ({rates})"
    return None


class _SameRate:
    """Re-encoding without resampling: stateless, no delay."""

    delay = 0.0

    def __init__(self, src: Encoding, dst: Encoding) -> None:
        from omnivoice.audio import g711

        self.convert: Callable[[bytes], bytes]
        if src is dst:
            self.convert = bytes
        elif src is Encoding.PCM16:
            self.convert = lambda data: g711.encode(data, dst)
        elif dst is Encoding.PCM16:
            self.convert = lambda data: g711.decode(data, src)
        else:  # G.711 to G.711: one byte to one byte
            table = bytes(g711.encode_table(dst)[g711.decode_table(src).view("u2")])
            self.convert = lambda data: bytes(data).translate(table)

    def flush(self) -> bytes:
        return b""


# --- the public API ---------------------------------------------------------------------


def _open(codec: str, registry: Registry | None, src: AudioFormat, dst: AudioFormat) -> _Stream:
    # The registry's modules import this package (for AudioFormat): import them late.
    from omnivoice.plugins import get_registry
    from omnivoice.registration import Kind

    registry = registry if registry is not None else get_registry()
    stream: _Stream = registry.get(Kind.CODEC, codec).factory(src, dst)
    return stream


class StreamConverter:
    """Converts one stream (one call, one direction) chunk by chunk, keeping state.

    ``codec`` names a registered converter (the core's is ``polyphase``); ``registry``
    defaults to the process-wide one. Build one per call and direction; call
    :attr:`flush` at the end of the stream.
    """

    convert: Callable[[bytes], bytes]
    """Convert the next chunk; a 20 ms frame in gives a 20 ms frame out."""
    flush: Callable[[], bytes]
    """End the stream: return the audio still delayed in the converter."""

    def __init__(
        self,
        src: AudioFormat,
        dst: AudioFormat,
        codec: str = DEFAULT_CODEC,
        *,
        registry: Registry | None = None,
    ) -> None:
        self.src = src
        self.dst = dst
        self.codec = codec
        stream = _open(codec, registry, src, dst)
        # The codec's own methods, bound once: no extra Python call per frame.
        self.convert = stream.convert
        self.flush = stream.flush


class Converter:
    """Converts whole clips (one-shot). For a live stream, use :class:`StreamConverter`.

    A clip comes out time-aligned with its input and exactly as long, like
    ``scipy.signal.resample_poly``: ``n`` samples at ``src`` give ``ceil(n * dst_rate /
    src_rate)`` samples at ``dst``, with the stream's delay (``delay`` seconds, 2 ms for
    the core's converter) taken off the front and the rest of its tail off the end.
    """

    def __init__(self, codec: str = DEFAULT_CODEC, *, registry: Registry | None = None) -> None:
        self.codec = codec
        self._registry = registry

    def convert(self, data: bytes, src: AudioFormat, dst: AudioFormat) -> bytes:
        """Convert a whole clip from ``src`` to ``dst``."""
        stream = _open(self.codec, self._registry, src, dst)
        out = stream.convert(data) + stream.flush()
        width = dst.bytes_per_sample
        # A codec that states no delay is taken to have none.
        skip = round(getattr(stream, "delay", 0.0) * dst.sample_rate) * width
        n_in = len(data) // src.bytes_per_sample
        n_out = -(-n_in * dst.sample_rate // src.sample_rate)
        return out[skip : skip + n_out * width]


_converter = Converter()


def twilio_to_openai(data: bytes) -> bytes:
    """A whole clip from Twilio (mu-law 8 kHz) to OpenAI Realtime (PCM16 24 kHz)."""
    return _converter.convert(data, TWILIO, OPENAI)


def openai_to_twilio(data: bytes) -> bytes:
    """A whole clip from OpenAI Realtime (PCM16 24 kHz) to Twilio (mu-law 8 kHz)."""
    return _converter.convert(data, OPENAI, TWILIO)


def twilio_to_gemini(data: bytes) -> bytes:
    """A whole clip from Twilio (mu-law 8 kHz) to Gemini Live input (PCM16 16 kHz)."""
    return _converter.convert(data, TWILIO, GEMINI_INPUT)


def gemini_to_twilio(data: bytes) -> bytes:
    """A whole clip from Gemini Live output (PCM16 24 kHz) to Twilio (mu-law 8 kHz)."""
    return _converter.convert(data, GEMINI_OUTPUT, TWILIO)
