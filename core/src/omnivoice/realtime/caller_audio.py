"""The caller's audio on its way to a vendor connection that may come and go.

A session reads the caller's audio and sends it to whatever serves the call now: a vendor
WebSocket, or another provider's session. While that is being replaced (a reconnection,
a renewal, a fallback) the audio must not be lost: :class:`CallerAudio` holds it, bounded,
and delivers it first, oldest first, to the next one. What happens when the hold is full
is an explicit choice (:class:`Overflow`); what is dropped is counted.

A vendor that says how far it has answered (a recogniser's final results cover the audio
up to a time) may lose a connection with audio it has not answered for yet: with
``retain_ms``, delivered audio is kept until :meth:`CallerAudio.acknowledge` says it was
answered for, and the next sink gets it again first.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable

import anyio

from omnivoice.audio.format import AudioFormat
from omnivoice.concurrency import fast_lock

__all__ = ["AudioSink", "CallerAudio", "Overflow"]

AudioSink = Callable[[bytes], Awaitable[bool]]
"""Sends one chunk to where the call is served; ``False`` if it can take no more (its
connection has gone): that chunk is then held for the next sink."""


class Overflow(enum.Enum):
    """What :class:`CallerAudio` does when audio arrives and its hold is full."""

    WAIT = "wait"
    """The caller's side waits until a sink takes the audio (back-pressure: nothing is
    dropped, but the caller's stream stalls)."""
    DROP_OLDEST = "drop_oldest"
    """The oldest held audio is dropped (counted in :attr:`CallerAudio.dropped_bytes`): the
    next sink hears the latest ``hold_ms``."""


class CallerAudio:
    """The caller's audio between ``audio_in`` and the sink serving the call.

    With a sink attached, each chunk goes straight to it (a sink that is slow slows the
    caller's side). With none, chunks are held, up to ``hold_ms``; then ``overflow``
    decides. :meth:`attach` delivers what is held (and, on request, the last
    ``preroll_ms`` already delivered to the previous sink, for a new vendor session that
    must hear the start of speech again) before anything newer.

    With ``retain_ms``, each delivered chunk is also kept until :meth:`acknowledge` covers
    it (at most ``retain_ms``: beyond, the oldest is let go, counted in
    :attr:`unanswered_dropped_bytes`); :meth:`attach` with ``replay_unanswered`` delivers
    it again before what is held.
    """

    def __init__(
        self,
        audio_format: AudioFormat,
        *,
        hold_ms: int,
        preroll_ms: int = 0,
        overflow: Overflow = Overflow.WAIT,
        retain_ms: int = 0,
    ) -> None:
        if hold_ms < 0 or preroll_ms < 0 or retain_ms < 0:
            raise ValueError("hold_ms, preroll_ms and retain_ms must not be negative")
        self.format = audio_format
        self.overflow = overflow
        self._hold_cap = audio_format.bytes_per_frame(hold_ms)
        self._preroll_cap = audio_format.bytes_per_frame(preroll_ms)
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self._preroll: deque[bytes] = deque()
        self._preroll_bytes = 0
        self._retain_cap = audio_format.bytes_per_frame(retain_ms)
        self._unanswered: deque[bytes] = deque()
        self._unanswered_bytes = 0
        self._sink: AudioSink | None = None
        self._lock = fast_lock()
        self._changed = anyio.Event()
        self._ended = anyio.Event()
        self.dropped_bytes = 0
        """Caller audio dropped so far (``Overflow.DROP_OLDEST`` only)."""
        self.delivered_bytes = 0
        """Caller audio taken by sinks so far (preroll replays not counted twice)."""
        self.answered_bytes = 0
        """Delivered audio acknowledged as answered for (:meth:`acknowledge`), or let go."""
        self.unanswered_dropped_bytes = 0
        """Unanswered audio let go because it exceeded ``retain_ms``."""

    # --- state --------------------------------------------------------------------------

    @property
    def attached(self) -> bool:
        return self._sink is not None

    @property
    def held_bytes(self) -> int:
        return self._held_bytes

    @property
    def unanswered_bytes(self) -> int:
        """Delivered audio kept because nothing has answered for it yet (``retain_ms``)."""
        return self._unanswered_bytes

    @property
    def dropped_ms(self) -> int:
        return round(self.format.duration(self.dropped_bytes) * 1000)

    @property
    def ended(self) -> bool:
        """The caller's audio is over (``audio_in`` is exhausted)."""
        return self._ended.is_set()

    @property
    def finished(self) -> bool:
        """The caller's audio is over and every chunk of it was delivered."""
        return self.ended and not self._held

    async def wait_ended(self) -> None:
        await self._ended.wait()

    # --- the caller's side --------------------------------------------------------------

    async def pump(self, audio_in: AsyncIterable[bytes]) -> None:
        """Read the caller's audio until it ends, sending each chunk (runs for the call)."""
        try:
            async for chunk in audio_in:
                if chunk:
                    await self.send(chunk)
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        finally:
            self._ended.set()
            self._notify()

    async def send(self, chunk: bytes) -> None:
        """Deliver one chunk: to the sink if one is attached, else into the hold."""
        while True:
            async with self._lock:
                sink = self._sink
                if sink is not None:
                    if await sink(chunk):
                        self._delivered(chunk)
                        return
                    if self._sink is sink:  # gone: hold the chunk for the next sink
                        self._sink = None
                    continue
                if self._held_bytes + len(chunk) <= self._hold_cap:
                    self._hold(chunk)
                    return
                if self.overflow is Overflow.DROP_OLDEST:
                    self._hold(chunk)
                    while self._held_bytes > self._hold_cap and len(self._held) > 1:
                        oldest = self._held.popleft()
                        self._held_bytes -= len(oldest)
                        self.dropped_bytes += len(oldest)
                    return
                changed = self._changed
            await changed.wait()  # Overflow.WAIT: until a sink attaches

    # --- the serving side ---------------------------------------------------------------

    async def attach(
        self,
        sink: AudioSink,
        *,
        replay_preroll: bool = False,
        replay_unanswered: bool = False,
        before: Callable[[], Awaitable[object]] | None = None,
    ) -> bool:
        """Make ``sink`` the destination of the caller's audio.

        Under the lock (no chunk moves meanwhile): ``before()`` if given (a new vendor
        session's context, say; :attr:`answered_bytes` is then where the replay of
        unanswered audio starts), then the preroll if ``replay_preroll``, then the
        unanswered audio if ``replay_unanswered``, then everything held, oldest first.
        Returns ``False`` if the sink failed during that replay: it is not attached, and
        what it did not take is still held (and still unanswered).
        """
        async with self._lock:
            if before is not None:
                await before()
            if replay_preroll:
                for chunk in list(self._preroll):
                    if not await sink(chunk):
                        return False
            if replay_unanswered:
                for chunk in list(self._unanswered):
                    if not await sink(chunk):
                        return False
            while self._held:
                chunk = self._held[0]
                if not await sink(chunk):
                    return False
                self._held.popleft()
                self._held_bytes -= len(chunk)
                self._delivered(chunk)
            self._sink = sink
        self._notify()
        return True

    def detach(self, sink: AudioSink | None = None) -> None:
        """Stop sending to the attached sink (or only if it is ``sink``): hold from now on.

        A chunk the sink is taking at this moment is held if it refuses it; the owner
        should make a sink that has gone refuse (close its stream) before detaching it.
        """
        if sink is None or self._sink is sink:
            self._sink = None
            self._notify()

    def acknowledge(self, position: int) -> None:
        """The audio delivered up to byte ``position`` (counted as :attr:`delivered_bytes`
        counts) has been answered for: it is not replayed any more. A position before the
        last one, or past what was delivered, is taken as far as it is valid; it is
        rounded down to a whole sample."""
        position = min(position, self.delivered_bytes)
        position -= position % self.format.bytes_per_sample
        unanswered = self._unanswered
        while position > self.answered_bytes and unanswered:
            chunk = unanswered[0]
            covered = position - self.answered_bytes
            if covered >= len(chunk):
                unanswered.popleft()
                self._unanswered_bytes -= len(chunk)
                self.answered_bytes += len(chunk)
            else:
                unanswered[0] = chunk[covered:]
                self._unanswered_bytes -= covered
                self.answered_bytes += covered

    # --- helpers ------------------------------------------------------------------------

    def _hold(self, chunk: bytes) -> None:
        self._held.append(chunk)
        self._held_bytes += len(chunk)

    def _delivered(self, chunk: bytes) -> None:
        self.delivered_bytes += len(chunk)
        if self._retain_cap:
            self._retain(chunk)
        else:
            self.answered_bytes = self.delivered_bytes
        cap = self._preroll_cap
        if not cap:
            return
        preroll = self._preroll
        preroll.append(chunk)
        self._preroll_bytes += len(chunk)
        while self._preroll_bytes - len(preroll[0]) >= cap:
            self._preroll_bytes -= len(preroll.popleft())

    def _retain(self, chunk: bytes) -> None:
        unanswered = self._unanswered
        unanswered.append(chunk)
        self._unanswered_bytes += len(chunk)
        while self._unanswered_bytes > self._retain_cap and len(unanswered) > 1:
            oldest = unanswered.popleft()
            self._unanswered_bytes -= len(oldest)
            self.answered_bytes += len(oldest)
            self.unanswered_dropped_bytes += len(oldest)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
