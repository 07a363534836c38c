"""A streaming voice-activity detector: speech found by frame energy, with hysteresis.

:class:`EnergyVAD` cuts a stream into frames (20 ms by default, whatever the chunk sizes),
calls a frame voiced when its level is above a threshold, and reports the start of speech
after a few voiced frames in a row (a click is not speech) and its end after enough quiet.
It is the detector behind the ``echo`` provider and the text pipeline's end-of-turn
fallback. Pure code: no I/O, no tasks.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from omnivoice.audio import g711
from omnivoice.audio.format import AudioFormat, Encoding

__all__ = ["EnergyVAD", "VoiceActivity"]


@attrs.frozen
class VoiceActivity:
    """A change the detector saw: speech started (``speaking``) or ended."""

    speaking: bool
    trailing_silence_ms: int = 0
    """For an end: the quiet it took to notice, so the speech really ended that long ago."""


class EnergyVAD:
    """Finds speech in one stream of ``audio_format`` (PCM16 or G.711, mono).

    A frame of ``frame_ms`` is voiced when its mean power is above ``threshold_dbfs``;
    speech starts after ``start_frames`` voiced frames in a row and ends after
    ``end_silence_ms`` of unvoiced frames. Feed the stream with :meth:`process`, or frame
    by frame with :meth:`split` and :meth:`update`.
    """

    def __init__(
        self,
        audio_format: AudioFormat,
        *,
        threshold_dbfs: float = -40.0,
        start_frames: int = 2,
        end_silence_ms: int = 600,
        frame_ms: int = 20,
    ) -> None:
        if audio_format.channels != 1:
            raise ValueError(f"the detector takes mono audio, not {audio_format}")
        self.audio_format = audio_format
        self.frame_ms = frame_ms
        self.frame_bytes = audio_format.bytes_per_frame(frame_ms)
        # Mean square of int16 samples at the threshold level.
        self._threshold = (32768 * 10 ** (threshold_dbfs / 20)) ** 2
        self._start_frames = max(1, start_frames)
        self._end_frames = max(1, math.ceil(end_silence_ms / frame_ms))
        self._pending = b""
        self._voiced_run = 0
        self._quiet_run = 0
        self.speaking = False
        """Speech is in progress (it started and has not ended)."""

    @property
    def silence_ms(self) -> int:
        """The quiet at the end of the speech in progress so far (0 when not speaking)."""
        return self._quiet_run * self.frame_ms if self.speaking else 0

    def process(self, chunk: bytes) -> list[VoiceActivity]:
        """Take the next chunk (any size); return the starts and ends it completes."""
        changes = []
        for frame in self.split(chunk):
            change = self.update(frame)
            if change is not None:
                changes.append(change)
        return changes

    def split(self, chunk: bytes) -> list[bytes]:
        """The whole frames the stream has now; the rest waits for the next chunk."""
        data = self._pending + chunk if self._pending else chunk
        usable = len(data) - len(data) % self.frame_bytes
        self._pending = data[usable:]
        return [
            data[start : start + self.frame_bytes] for start in range(0, usable, self.frame_bytes)
        ]

    def update(self, frame: bytes) -> VoiceActivity | None:
        """Take one frame (from :meth:`split`); return the change it makes, if any."""
        voiced = self._level(frame) > self._threshold
        if not self.speaking:
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run >= self._start_frames:
                self.speaking = True
                self._voiced_run = self._quiet_run = 0
                return VoiceActivity(speaking=True)
            return None
        self._quiet_run = 0 if voiced else self._quiet_run + 1
        if self._quiet_run >= self._end_frames:
            return self.end_speech()
        return None

    def end_speech(self) -> VoiceActivity | None:
        """End the speech in progress now (a length limit): its end, or ``None`` if quiet.

        Detection starts afresh: new speech needs ``start_frames`` voiced frames again.
        """
        if not self.speaking:
            return None
        change = VoiceActivity(speaking=False, trailing_silence_ms=self.silence_ms)
        self.speaking = False
        self._voiced_run = self._quiet_run = 0
        return change

    def _level(self, frame: bytes) -> float:
        encoding = self.audio_format.encoding
        if encoding is Encoding.PCM16:
            samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
        else:
            codes = np.frombuffer(frame, dtype=np.uint8)
            samples = g711.decode_table(encoding)[codes].astype(np.float32)
        return float(np.mean(samples * samples)) if len(samples) else 0.0
