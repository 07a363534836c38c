"""eSpeak NG through ctypes, on the library and data that ``espeakng-loader`` ships.

The library keeps global state (one voice, one callback, one synthesis at a time) and is
not thread-safe, so the process holds one :class:`_ESpeak`, and every synthesis takes its
lock. Calls block for the few milliseconds a clause takes: run them in a worker thread.
"""

from __future__ import annotations

import ctypes
import threading

import espeakng_loader  # type: ignore[import-untyped]

SAMPLE_RATE = 22050
"""What eSpeak NG's own voices produce: PCM16 mono at 22050 Hz."""

# From espeak-ng/speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
"""Return an error instead of exiting the process when the data is missing."""
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
"""A pause after the text, as after the clause's punctuation within a longer text."""
_RATE = 1
_PITCH = 3
_EE_OK = 0
_BUFFER_MS = 100
"""Audio per callback: the pieces a synthesis is delivered in."""

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class ESpeakError(RuntimeError):
    """eSpeak NG could not load or refused a request."""


class _ESpeak:
    """The loaded library. Use :func:`engine`."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL(str(espeakng_loader.get_library_path()))
            data_path = str(espeakng_loader.get_data_path())
        except (OSError, RuntimeError) as exc:
            raise ESpeakError(f"cannot load eSpeak NG from espeakng-loader: {exc}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate != SAMPLE_RATE:
            raise ESpeakError(
                f"eSpeak NG did not initialise with its data at {data_path} "
                f"(it answered {rate}, expected a sample rate of {SAMPLE_RATE} Hz)"
            )
        self._lib = lib
        self._lock = threading.Lock()
        self._sink: list[bytes] | None = None
        # ctypes keeps no reference to a callback it was given: this one lives as long as us.
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    def synthesize(self, text: str, *, voice: str, rate: int, pitch: int) -> list[bytes]:
        """Speak ``text`` with ``voice`` (an eSpeak NG voice name such as ``en-us``) at
        ``rate`` words per minute and ``pitch`` (0-100): PCM16 mono pieces at
        :data:`SAMPLE_RATE`, in order."""
        data = text.encode("utf-8") + b"\0"
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.encode("utf-8")) != _EE_OK:
                raise ESpeakError(f"eSpeak NG has no voice {voice!r}")
            self._lib.espeak_SetParameter(_RATE, rate, 0)
            self._lib.espeak_SetParameter(_PITCH, pitch, 0)
            pieces: list[bytes] = []
            self._sink = pieces
            try:
                status = self._lib.espeak_Synth(
                    data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
                )
            finally:
                self._sink = None
        if status != _EE_OK:
            raise ESpeakError(f"eSpeak NG failed to synthesise (status {status})")
        return pieces

    def _on_audio(
        self, wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int | None
    ) -> int:
        if count > 0 and wav and self._sink is not None:
            # Native byte order: little-endian on every platform espeakng-loader ships for.
            self._sink.append(ctypes.string_at(wav, count * 2))
        return 0  # go on


_engine: _ESpeak | None = None
_engine_lock = threading.Lock()


def engine() -> _ESpeak:
    """The process's eSpeak NG, loaded on first use (blocking: call it in a worker thread)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _ESpeak()
        return _engine
