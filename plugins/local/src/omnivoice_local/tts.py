"""The ``local`` text-to-speech provider: eSpeak NG, offline, from the package index.

``espeakng-loader`` ships the eSpeak NG library and its data, so no system package is
needed. The text is spoken clause by clause: each clause is synthesised in a worker thread
under the library's process-wide lock (concurrent calls take turns, clause by clause), and
its audio is yielded before the next clause is made. The first audio comes after the first
clause, and a cancelled synthesis yields nothing more.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from functools import partial

import anyio.lowlevel
import anyio.to_thread

from omnivoice.audio.format import AudioFormat, Encoding
from omnivoice.errors import UnsupportedFormatError
from omnivoice.pipeline.contracts import TextToSpeech
from omnivoice.registration import Capability
from omnivoice_local import _espeak

__all__ = ["LocalTTS"]

_CLAUSE_END = re.compile(r"(?:(?<=[,;:!?])|(?<=\w\w[.]))\s+")
"""Where a clause ends: punctuation, then a space. A full stop after a single letter is an
abbreviation's (``i.e.``, ``U.S.A.``), and ``3.5`` has no space: they stay whole."""


class LocalTTS(TextToSpeech):
    """Offline speech synthesis with eSpeak NG: PCM16 mono at 22050 Hz.

    ``voice`` is an eSpeak NG voice name (``en-us``, ``en`` for British English,
    ``en-us+f3`` for a variant, or another language eSpeak NG speaks: ``fr``, ``de``...),
    ``rate`` the speed in words per minute (80-450) and ``pitch`` the base pitch (0-100).
    ``synthesize(voice=...)`` overrides the voice for one text. eSpeak NG is a formant
    synthesiser: robotic, but clear, tiny and fast (a sentence takes a few milliseconds of
    CPU).
    """

    name = "local"
    produces = (AudioFormat(Encoding.PCM16, _espeak.SAMPLE_RATE),)
    capabilities = Capability.STREAMING

    def __init__(self, *, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> None:
        if not 80 <= rate <= 450:
            raise ValueError(f"rate must be 80-450 words per minute, got {rate}")
        if not 0 <= pitch <= 100:
            raise ValueError(f"pitch must be 0-100, got {pitch}")
        self.voice = voice
        self.rate = rate
        self.pitch = pitch

    async def synthesize(
        self, text: str, *, audio_format: AudioFormat, voice: str | None = None
    ) -> AsyncIterator[bytes]:
        """Speak ``text`` in ``audio_format`` (PCM16 at 22050 Hz), clause by clause.

        Raises :class:`~omnivoice.errors.UnsupportedFormatError` for another format, and
        ``ESpeakError`` (a ``RuntimeError``) if eSpeak NG cannot load or has no such voice.
        """
        if audio_format not in self.produces:
            raise UnsupportedFormatError(
                f"the local text-to-speech produces {self.produces[0]} only, not {audio_format}"
            )
        engine = await anyio.to_thread.run_sync(_espeak.engine)
        speak = partial(
            engine.synthesize, voice=voice or self.voice, rate=self.rate, pitch=self.pitch
        )
        for clause in _clauses(text):
            # Not abandoned on cancellation: the clause is done in milliseconds, and the
            # lock must be released by the thread that took it.
            for piece in await anyio.to_thread.run_sync(speak, clause):
                await anyio.lowlevel.checkpoint()  # a cancelled reader gets no more audio
                yield piece


def _clauses(text: str) -> list[str]:
    return [clause for clause in _CLAUSE_END.split(text.strip()) if clause]
