"""ITU-T G.711 mu-law and A-law, bit-exact with the standard's reference behaviour.

The tables below are computed from the G.711 encoding rules and verified, value by value,
against ``audioop`` (the standard library's C implementation on Python 3.11 and 3.12,
provided by the ``audioop-lts`` distribution from 3.13 on). :func:`decode` and
:func:`encode` use ``audioop`` when it is importable and the tables otherwise; the
resampler reads the tables directly, because a table lookup fuses decoding with the
conversion to its working type.
"""

from __future__ import annotations

import functools
import warnings
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from omnivoice.audio.format import Encoding
from omnivoice.errors import UnsupportedFormatError

__all__ = ["decode", "decode_table", "encode", "encode_table"]


def _import_audioop() -> ModuleType | None:
    with warnings.catch_warnings():
        # Deprecated in 3.11 and 3.12, where it is still the reference; audioop-lts after.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:  # pragma: no cover - only without audioop-lts on 3.13+
            return None
    return audioop


_audioop: ModuleType | None = _import_audioop()

_G711 = (Encoding.MULAW, Encoding.ALAW)


def _check(encoding: Encoding) -> None:
    if encoding not in _G711:
        raise UnsupportedFormatError(f"{encoding.value} is not a G.711 encoding")


# --- the G.711 rules, vectorised ------------------------------------------------------


def _mulaw_decode(codes: npt.NDArray[np.int32]) -> npt.NDArray[Any]:
    u = ~codes & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84)


def _alaw_decode(codes: npt.NDArray[np.int32]) -> npt.NDArray[Any]:
    a = codes ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t)


def _segment(magnitude: npt.NDArray[np.int32], ends: tuple[int, ...]) -> npt.NDArray[np.int32]:
    """The first segment whose end is at least ``magnitude`` (8 when none is)."""
    return np.searchsorted(np.array(ends), magnitude, side="left").astype(np.int32)


def _mulaw_encode(samples: npt.NDArray[np.int32]) -> npt.NDArray[Any]:
    pcm = samples >> 2  # mu-law works on 14 bits
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), 8159) + 33
    seg = _segment(magnitude, (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF))
    code = (seg << 4) | ((magnitude >> (np.minimum(seg, 7) + 1)) & 0x0F)
    return np.where(seg >= 8, 0x7F, code) ^ mask


def _alaw_encode(samples: npt.NDArray[np.int32]) -> npt.NDArray[Any]:
    pcm = samples >> 3  # A-law works on 13 bits
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    magnitude = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = _segment(magnitude, (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF))
    shift = np.where(seg < 2, 1, np.minimum(seg, 7))
    code = (seg << 4) | ((magnitude >> shift) & 0x0F)
    return np.where(seg >= 8, 0x7F, code) ^ mask


def _readonly(array: npt.NDArray[np.generic]) -> None:
    array.flags.writeable = False


@functools.cache
def decode_table(encoding: Encoding) -> npt.NDArray[np.int16]:
    """The 256 PCM16 values of a G.711 encoding, indexed by code byte (read-only)."""
    _check(encoding)
    codes = np.arange(256, dtype=np.int32)
    rule = _mulaw_decode if encoding is Encoding.MULAW else _alaw_decode
    table = rule(codes).astype(np.int16)
    _readonly(table)
    return table


@functools.cache
def encode_table(encoding: Encoding) -> npt.NDArray[np.uint8]:
    """The G.711 code of every PCM16 sample, indexed by its bits read as ``uint16``.

    Look up an ``int16`` array ``x`` with ``table[x.view(np.uint16)]`` (read-only).
    """
    _check(encoding)
    samples = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)
    rule = _mulaw_encode if encoding is Encoding.MULAW else _alaw_encode
    table = rule(samples).astype(np.uint8)
    _readonly(table)
    return table


# --- bytes in, bytes out --------------------------------------------------------------


def decode(data: bytes, encoding: Encoding) -> bytes:
    """G.711 bytes to PCM16 (signed little-endian), one sample per byte."""
    _check(encoding)
    if _audioop is not None:
        if encoding is Encoding.MULAW:
            return bytes(_audioop.ulaw2lin(data, 2))
        return bytes(_audioop.alaw2lin(data, 2))
    codes = np.frombuffer(data, dtype=np.uint8)
    return decode_table(encoding).take(codes).astype("<i2", copy=False).tobytes()


def encode(data: bytes, encoding: Encoding) -> bytes:
    """PCM16 (signed little-endian) to G.711 bytes; ``len(data)`` must be even."""
    _check(encoding)
    if len(data) % 2:
        raise ValueError(f"PCM16 data must have an even length, got {len(data)} bytes")
    if _audioop is not None:
        if encoding is Encoding.MULAW:
            return bytes(_audioop.lin2ulaw(data, 2))
        return bytes(_audioop.lin2alaw(data, 2))
    samples = np.frombuffer(data, dtype="<u2")
    return encode_table(encoding).take(samples).tobytes()
