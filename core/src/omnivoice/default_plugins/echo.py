"""Built-in plugin: the ``echo`` realtime provider, the classic PBX echo test.

It plays the caller's speech back once the caller pauses, so an operator can check the
phone wiring, the audio path both ways, barge-in and the round-trip latency without any
AI service. Speech is found by frame energy with a little hysteresis (the shared
:class:`~omnivoice.audio.vad.EnergyVAD`); nothing leaves the process.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import asynccontextmanager

from omnivoice.audio.format import AudioFormat, Encoding
from omnivoice.audio.vad import EnergyVAD
from omnivoice.errors import UnsupportedFormatError
from omnivoice.hookspecs import hookimpl
from omnivoice.realtime.provider import (
    Provider,
    ProviderEvent,
    RealtimeSession,
    SpeechStarted,
    SpeechStopped,
)
from omnivoice.realtime.types import AudioChunk, HeardResponse, ProcessConfig
from omnivoice.registration import Capability, Register

__all__ = ["EchoProvider"]

_FORMATS = tuple(AudioFormat(Encoding.PCM16, rate) for rate in (8000, 16000, 24000))


class EchoProvider(Provider):
    """Plays back each utterance of the caller after a pause.

    ``pause_ms`` of quiet ends an utterance; a frame is speech when its level is above
    ``threshold_dbfs``; utterances longer than ``max_utterance_s`` are played back as they
    reach that length (memory stays bounded).
    """

    name = "echo"
    accepts = _FORMATS
    produces = _FORMATS
    capabilities = Capability.SPEECH_EVENTS | Capability.INTERRUPTION

    def __init__(
        self,
        *,
        pause_ms: int = 600,
        threshold_dbfs: float = -40.0,
        max_utterance_s: float = 30.0,
        **_options: object,
    ) -> None:
        self.pause_ms = pause_ms
        self.threshold_dbfs = threshold_dbfs
        self.max_utterance_s = max_utterance_s

    @asynccontextmanager
    async def open_session(
        self,
        audio_in: AsyncIterable[bytes],
        config: ProcessConfig,
        *,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> AsyncIterator[RealtimeSession]:
        if input_format not in self.accepts or output_format != input_format:
            raise UnsupportedFormatError(
                f"echo plays audio back unchanged: it needs the same PCM16 format both ways, "
                f"got {input_format} in and {output_format} out"
            )
        yield _EchoSession(self, audio_in, input_format)


class _EchoSession:
    def __init__(self, provider: EchoProvider, audio_in: AsyncIterable[bytes], fmt: AudioFormat):
        self._audio_in = audio_in
        self._format = fmt
        self._threshold_dbfs = provider.threshold_dbfs
        self._pause_ms = provider.pause_ms
        self._max_frames = max(1, int(provider.max_utterance_s * 50))  # 20 ms frames
        self.interruptions: list[int] = []

    async def interrupt(self, heard_ms: int, *, responses: Sequence[HeardResponse] = ()) -> None:
        # Nothing to stop: everything of an utterance is yielded at once and the bridge
        # already dropped what was not played.
        self.interruptions.append(heard_ms)

    def __aiter__(self) -> AsyncIterator[ProviderEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[ProviderEvent]:
        vad = EnergyVAD(
            self._format,
            threshold_dbfs=self._threshold_dbfs,
            start_frames=2,  # two voiced frames in a row: speech, not a click
            end_silence_ms=self._pause_ms,
        )
        preroll: deque[bytes] = deque(maxlen=5)  # 100 ms before the onset
        utterance: list[bytes] = []
        async for chunk in self._audio_in:
            for frame in vad.split(chunk):
                change = vad.update(frame)
                if not utterance:
                    preroll.append(frame)
                    if change is not None and change.speaking:
                        utterance.extend(preroll)
                        preroll.clear()
                        yield SpeechStarted()
                    continue
                utterance.append(frame)
                if change is None and len(utterance) >= self._max_frames:
                    change = vad.end_speech()
                if change is not None:
                    # Play the speech back without the pause that ended it (keep 40 ms).
                    quiet_frames = change.trailing_silence_ms // vad.frame_ms
                    keep = len(utterance) - max(0, quiet_frames - 2)
                    yield SpeechStopped(trailing_silence_ms=change.trailing_silence_ms)
                    yield AudioChunk(b"".join(utterance[:keep]), is_final=True)
                    utterance = []
        if utterance:
            yield SpeechStopped()
            yield AudioChunk(b"".join(utterance), is_final=True)


@hookimpl
def register_realtime_providers(register: Register) -> None:
    register(
        "echo",
        EchoProvider,
        description="plays the caller's speech back after a pause (wiring and latency test)",
    )
