"""WAV files in and out, for the simulated phone, demos and tests (not the hot path)."""

from __future__ import annotations

import wave
from os import PathLike

import numpy as np

from omnivoice.audio import g711
from omnivoice.audio.format import AudioFormat, Encoding

__all__ = ["read_wav", "voiced_frames", "write_wav"]


def read_wav(path: str | PathLike[str]) -> tuple[bytes, AudioFormat]:
    """Read a PCM WAV file as mono PCM16 (channels are averaged), with its format."""
    with wave.open(str(path), "rb") as wav:
        width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    if width == 2:
        samples = np.frombuffer(frames, "<i2").astype(np.int32)
    elif width == 1:  # 8-bit WAV is unsigned
        samples = (np.frombuffer(frames, np.uint8).astype(np.int32) - 128) << 8
    else:
        raise ValueError(f"{path}: {8 * width}-bit WAV is not supported; use 16-bit PCM")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int32)
    return samples.astype("<i2").tobytes(), AudioFormat(Encoding.PCM16, rate)


def write_wav(path: str | PathLike[str], data: bytes, fmt: AudioFormat) -> None:
    """Write audio in ``fmt`` as a 16-bit PCM WAV file (G.711 is decoded)."""
    pcm = data if fmt.encoding is Encoding.PCM16 else g711.decode(data, fmt.encoding)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(fmt.channels)
        wav.setsampwidth(2)
        wav.setframerate(fmt.sample_rate)
        wav.writeframes(pcm)


def voiced_frames(
    pcm: bytes, fmt: AudioFormat, *, threshold_dbfs: float = -40.0, frame_ms: int = 20
) -> list[bool]:
    """For each ``frame_ms`` frame of mono PCM16 audio: whether its level is speech-like."""
    step = fmt.bytes_per_frame(frame_ms) // 2
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], "<i2").astype(np.float64)
    usable = len(samples) - len(samples) % step
    blocks = samples[:usable].reshape(-1, step)
    levels = np.mean(blocks * blocks, axis=1)
    threshold = (32768 * 10 ** (threshold_dbfs / 20)) ** 2
    voiced = [bool(level > threshold) for level in levels]
    if usable < len(samples):
        tail = samples[usable:]
        voiced.append(bool(np.mean(tail * tail) > threshold))
    return voiced
