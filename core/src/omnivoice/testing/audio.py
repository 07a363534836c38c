"""Test audio in any format: a tone that voice detectors take for speech, and silence."""

from __future__ import annotations

import numpy as np

from omnivoice.audio import g711
from omnivoice.audio.format import AudioFormat, Encoding

__all__ = ["silence", "tone"]


def tone(ms: float, audio_format: AudioFormat, hz: float = 300.0, level: float = 0.25) -> bytes:
    """``ms`` of a sine at ``hz``, ``level`` of full scale (-12 dBFS by default), in
    ``audio_format`` (mono): loud enough for any energy detector to call it speech."""
    n = round(audio_format.sample_rate * ms / 1000)
    t = np.arange(n) / audio_format.sample_rate
    pcm = np.rint(level * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()
    if audio_format.encoding is Encoding.PCM16:
        return pcm
    return g711.encode(pcm, audio_format.encoding)


def silence(ms: float, audio_format: AudioFormat) -> bytes:
    """``ms`` of digital silence in ``audio_format``."""
    return tone(ms, audio_format, level=0.0)
