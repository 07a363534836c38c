"""Audio formats: what the bytes of a stream mean.

PCM16 is signed 16-bit little-endian. G.711 (mu-law, A-law) is one byte per sample.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import attrs

from omnivoice.errors import UnsupportedFormatError

__all__ = [
    "GEMINI_INPUT",
    "GEMINI_OUTPUT",
    "OPENAI",
    "TELNYX",
    "TELNYX_L16_16K",
    "TWILIO",
    "AudioFormat",
    "Encoding",
    "choose_format",
]


class Encoding(enum.Enum):
    """How one sample is stored."""

    PCM16 = "pcm16"
    """Signed 16-bit little-endian linear PCM."""
    MULAW = "mulaw"
    """ITU-T G.711 mu-law, one byte per sample."""
    ALAW = "alaw"
    """ITU-T G.711 A-law, one byte per sample."""

    @property
    def sample_width(self) -> int:
        """Bytes per sample of one channel."""
        return 2 if self is Encoding.PCM16 else 1


@attrs.frozen
class AudioFormat:
    """An encoding, a sample rate in Hz, and a channel count (interleaved)."""

    encoding: Encoding
    sample_rate: int = attrs.field(validator=attrs.validators.gt(0))
    channels: int = attrs.field(default=1, validator=attrs.validators.gt(0))

    @property
    def bytes_per_sample(self) -> int:
        """Bytes of one sample frame: all channels of one instant."""
        return self.encoding.sample_width * self.channels

    @property
    def bytes_per_second(self) -> int:
        return self.bytes_per_sample * self.sample_rate

    def bytes_per_frame(self, ms: float = 20) -> int:
        """Bytes of ``ms`` milliseconds of audio (a telephony frame is 20 ms)."""
        return round(self.sample_rate * ms / 1000) * self.bytes_per_sample

    def duration(self, n_bytes: int) -> float:
        """Seconds of audio in ``n_bytes`` bytes (a partial sample counts for nothing)."""
        return (n_bytes // self.bytes_per_sample) / self.sample_rate

    def __str__(self) -> str:
        channels = "" if self.channels == 1 else f" x{self.channels}"
        return f"{self.encoding.value}@{self.sample_rate}{channels}"


TWILIO = AudioFormat(Encoding.MULAW, 8000)
"""Twilio Media Streams: mu-law 8 kHz mono."""
TELNYX = AudioFormat(Encoding.MULAW, 8000)
"""Telnyx media streaming with PCMU (the default codec): mu-law 8 kHz mono."""
TELNYX_L16_16K = AudioFormat(Encoding.PCM16, 16000)
"""Telnyx media streaming with L16 at 16 kHz."""
OPENAI = AudioFormat(Encoding.PCM16, 24000)
"""OpenAI Realtime ``audio/pcm``: PCM16 24 kHz mono."""
GEMINI_INPUT = AudioFormat(Encoding.PCM16, 16000)
"""Gemini Live input: PCM16 16 kHz mono."""
GEMINI_OUTPUT = AudioFormat(Encoding.PCM16, 24000)
"""Gemini Live output: PCM16 24 kHz mono."""


def choose_format(
    offered: Sequence[AudioFormat], wanted: AudioFormat | None = None, *, who: str = "it"
) -> AudioFormat:
    """The format a session uses, of those ``offered`` (preferred first): ``wanted`` when
    it is offered (G.711 passed straight through from a phone line), else the first.

    The one rule the bridge, the fallback client, the text pipeline and the providers'
    default formats all follow. Raises :class:`~omnivoice.errors.UnsupportedFormatError`
    when nothing is offered (``who`` names the offerer in the message).
    """
    if not offered:
        raise UnsupportedFormatError(f"{who} declares no formats")
    if wanted is not None and wanted in offered:
        return wanted
    return offered[0]
