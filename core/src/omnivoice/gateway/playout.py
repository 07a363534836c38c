"""Outbound audio for one call: paced like a phone line, and tracked by marks.

Sans-IO: the caller passes the time in and sends what :meth:`Playout.poll` returns. Audio
goes out in 20 ms frames with a small lead over the carrier's playout (default at most
100 ms ahead), never a whole response at once, so that a ``clear`` silences the caller's
line within that lead. Marks go out after every few frames and at the end of each segment
(one provider response); the carrier echoes a mark when the audio before it has played, so
the playout knows how much of each segment the caller heard: exactly at each acknowledged
mark, and in between by the real-time clock, bounded by the next unacknowledged mark.
"""

from __future__ import annotations

import math
from collections import deque

import attrs

from omnivoice.audio.format import AudioFormat

__all__ = ["Playout", "SegmentPlayed", "SendAudio", "SendMark"]


@attrs.frozen
class SendAudio:
    """Send this audio to the carrier now."""

    payload: bytes


@attrs.frozen
class SendMark:
    """Send a mark with this name now."""

    name: str


@attrs.frozen
class SegmentPlayed:
    """A segment finished playing (its last mark came back) or was cut off by a clear."""

    segment: int
    heard_ms: int
    interrupted: bool = False


@attrs.define
class _Segment:
    id: int
    queued: int = 0
    """Bytes pushed so far."""
    sent: int = 0
    """Bytes sent to the carrier."""
    acked: int = 0
    """Bytes the carrier confirmed as played (the last acknowledged mark)."""
    acked_at: float | None = None
    starts_at: float | None = None
    """Estimated time its first byte starts playing."""
    final: bool = False
    """Its end was pushed."""


@attrs.define
class _Mark:
    segment: _Segment
    position: int
    final: bool


class Playout:
    """Pace, mark and track the agent's audio to the caller, for one call."""

    def __init__(
        self,
        audio_format: AudioFormat,
        *,
        frame_ms: int = 20,
        lead_ms: int = 100,
        mark_every: int = 5,
    ) -> None:
        if lead_ms < frame_ms:
            raise ValueError(f"lead_ms ({lead_ms}) must be at least one frame ({frame_ms} ms)")
        if mark_every < 1:
            raise ValueError("mark_every must be at least 1")
        self.format = audio_format
        self.frame_bytes = audio_format.bytes_per_frame(frame_ms)
        self._lead = lead_ms / 1000
        self._mark_every = mark_every
        self._bytes_per_second = audio_format.bytes_per_second
        self._frames: deque[tuple[_Segment, bytes, bool]] = deque()  # segment, audio, last
        self._pending = b""
        self._segments: deque[_Segment] = deque()
        self._marks: dict[str, _Mark] = {}
        self._next_segment = 1
        self._play_end = -math.inf
        self._frames_since_mark = 0
        self.unknown_marks = 0
        """Marks acknowledged that this playout did not send (or already cancelled)."""

    # --- input ------------------------------------------------------------------------

    def push(self, audio: bytes, *, final: bool = False) -> int:
        """Queue audio of the current segment; ``final`` ends the segment. Returns its id."""
        segment = self._current_segment()
        data = self._pending + audio if self._pending else audio
        step = self.frame_bytes
        whole = len(data) - len(data) % step
        frames = self._frames
        for start in range(0, whole, step):
            frames.append((segment, data[start : start + step], False))
        self._pending = data[whole:]
        segment.queued += len(audio)
        if final:
            segment.final = True
            if self._pending:
                frames.append((segment, self._pending, True))
                self._pending = b""
            elif frames and frames[-1][0] is segment:
                frames[-1] = (segment, frames[-1][1], True)
            else:  # nothing left to send: the segment ends with a bare mark
                frames.append((segment, b"", True))
        return segment.id

    def _current_segment(self) -> _Segment:
        if self._segments and not self._segments[-1].final:
            return self._segments[-1]
        segment = _Segment(self._next_segment)
        self._next_segment += 1
        self._segments.append(segment)
        return segment

    # --- output -----------------------------------------------------------------------

    def poll(self, now: float) -> SendAudio | SendMark | float:
        """What to send now, or the seconds to wait before asking again (``inf``: idle)."""
        if not self._frames:
            return math.inf
        segment, audio, last = self._frames[0]
        if audio:
            wait = self._play_end - now - self._lead
            if wait > 1e-6:  # a microsecond of slack absorbs floating-point rounding
                return wait
            self._frames.popleft()
            if segment.starts_at is None:
                segment.starts_at = max(now, self._play_end)
            self._play_end = max(self._play_end, now) + len(audio) / self._bytes_per_second
            segment.sent += len(audio)
            self._frames_since_mark += 1
            if last or self._frames_since_mark >= self._mark_every:
                # The mark goes out right behind its frame, before any other frame.
                self._frames.appendleft((segment, b"", last))
            return SendAudio(audio)
        self._frames.popleft()
        return self._mark(segment, last)

    def _mark(self, segment: _Segment, final: bool) -> SendMark:
        self._frames_since_mark = 0
        name = f"s{segment.id}.{segment.sent}{'.end' if final else ''}"
        self._marks[name] = _Mark(segment, segment.sent, final)
        return SendMark(name)

    # --- feedback ---------------------------------------------------------------------

    def acknowledge(self, name: str, now: float) -> SegmentPlayed | None:
        """The carrier echoed mark ``name``: the audio before it has played."""
        mark = self._marks.pop(name, None)
        if mark is None:
            self.unknown_marks += 1
            return None
        segment = mark.segment
        segment.acked = max(segment.acked, mark.position)
        segment.acked_at = now
        # Earlier marks of this and earlier segments have played too.
        for other_name, other in list(self._marks.items()):
            if other.segment.id < segment.id or (
                other.segment is segment and other.position <= mark.position
            ):
                del self._marks[other_name]
        if not mark.final:
            return None
        while self._segments and self._segments[0].id <= segment.id:
            self._segments.popleft()
        return SegmentPlayed(segment.id, self._ms(segment.sent))

    def clear(self, now: float) -> SegmentPlayed | None:
        """Drop everything queued (the caller barged in). Send the carrier's ``clear`` next.

        Returns the segment that was playing, with how much of it the caller heard, or
        ``None`` if no agent audio was queued or playing.
        """
        playing = self.current_segment(now)
        heard = self.heard_ms(now) if playing is not None else 0
        self._frames.clear()
        self._pending = b""
        self._segments.clear()
        self._marks.clear()
        self._play_end = -math.inf
        self._frames_since_mark = 0
        if playing is None:
            return None
        return SegmentPlayed(playing, heard, interrupted=True)

    # --- state ------------------------------------------------------------------------

    def current_segment(self, now: float) -> int | None:
        """The id of the segment the caller hears now (or that is next), if any."""
        for segment in self._segments:
            if segment.sent == 0 and segment.queued == 0 and not segment.final:
                continue
            return segment.id
        return None

    @property
    def busy(self) -> bool:
        """Agent audio is queued, or sent and not yet confirmed as played."""
        return bool(self._frames or self._pending or self._segments)

    def heard_ms(self, now: float) -> int:
        """How much of the current segment the caller has heard, in milliseconds."""
        for segment in self._segments:
            if segment.sent == 0 and segment.acked == 0:
                return 0
            if segment.acked >= segment.sent and segment.final:
                continue
            return self._ms(self._position(segment, now))
        return 0

    def _position(self, segment: _Segment, now: float) -> int:
        """Bytes of ``segment`` played at ``now``: acknowledged, then extrapolated."""
        upper = min(
            (m.position for m in self._marks.values() if m.segment is segment),
            default=segment.sent,
        )
        origin = segment.acked_at if segment.acked_at is not None else segment.starts_at
        if origin is None:
            return segment.acked
        elapsed = max(0.0, now - origin)
        estimate = segment.acked + int(elapsed * self._bytes_per_second)
        estimate -= estimate % self.format.bytes_per_sample
        return max(segment.acked, min(estimate, upper))

    def _ms(self, n_bytes: int) -> int:
        return round(self.format.duration(n_bytes) * 1000)
