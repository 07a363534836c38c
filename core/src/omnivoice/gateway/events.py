"""What happens during a call, as a stream of events."""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio
import attrs

__all__ = ["Event", "EventType"]

log = logging.getLogger(__name__)


class EventType(enum.Enum):
    SESSION_STARTED = "session_started"
    SESSION_ENDED = "session_ended"
    USER_SPEECH_STARTED = "user_speech_started"
    USER_SPEECH_ENDED = "user_speech_ended"
    USER_TRANSCRIPT = "user_transcript"
    AGENT_SPEECH_STARTED = "agent_speech_started"
    AGENT_AUDIO_STARTED = "agent_audio_started"
    AGENT_SPEECH_ENDED = "agent_speech_ended"
    AGENT_TRANSCRIPT = "agent_transcript"
    INTERRUPTION = "interruption"
    FUNCTION_CALL = "function_call"
    PROVIDER_SWITCHED = "provider_switched"
    USAGE = "usage"
    DTMF = "dtmf"
    ERROR = "error"


@attrs.frozen
class Event:
    """One thing that happened, ``time`` seconds after the session started."""

    type: EventType
    time: float
    data: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type.value, "time": round(self.time, 4), **self.data}


class EventLog:
    """Fans events out to subscribers and to readers of :meth:`stream`.

    Subscribers (call records, observers) see every event synchronously. The stream keeps
    the last ``capacity`` events for its reader: a reader that falls further behind (or a
    call nobody reads events of) loses the oldest ones, each loss counted in
    :attr:`dropped` (and logged while someone reads), and the call is never slowed down.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._buffer: deque[Event] = deque()
        self._capacity = capacity
        self._subscribers: list[Callable[[Event], None]] = []
        self._wakeup = anyio.Event()
        self._closed = False
        self._reading = False
        self.dropped = 0

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        self._subscribers.append(callback)

    def emit(self, event: Event) -> None:
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("an event subscriber failed on %s", event.type.value)
        if len(self._buffer) >= self._capacity:
            self._buffer.popleft()
            self.dropped += 1
            if self._reading and (self.dropped == 1 or self.dropped % 1000 == 0):
                log.warning("event reader is behind: %d events dropped so far", self.dropped)
        self._buffer.append(event)
        self._wakeup.set()

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    def stream(self) -> AsyncIterator[Event]:
        """Every event from the start of the session (as far as the buffer reaches)."""
        self._reading = True
        return _Reader(self)

    async def _next(self) -> Event:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._wakeup = anyio.Event()
            await self._wakeup.wait()
        return self._buffer.popleft()


class _Reader:
    """The iterator of :meth:`EventLog.stream` (a plain object: nothing to close)."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    def __aiter__(self) -> _Reader:
        return self

    async def __anext__(self) -> Event:
        return await self._log._next()
