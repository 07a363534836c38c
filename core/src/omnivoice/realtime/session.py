"""The session kit: what every provider's session needs, written once.

- :func:`serve_session` runs a session's work in a task group of its own and hands the
  session to the caller once it is up; a failed start is raised as itself, not wrapped in
  an exception group, and so is the caller's own error.
- :class:`EventChannel` carries a session's events to its consumer, bounded, and knows
  when the consumer has gone.
- :func:`~omnivoice.concurrency.aclose_now` (closing an iterator now, even from a
  cancelled scope) and :func:`~omnivoice.concurrency.fast_lock` (a lock that costs nothing
  when nobody else holds it) come from :mod:`omnivoice.concurrency`.

A provider typically writes::

    def open_session(self, audio_in, config, *, input_format, output_format):
        session = _Session(audio_in, config, ...)   # its __aiter__ is session.events
        return serve_session(session, session.run, events=session.events)

where ``session.run(task_status=...)`` connects to the vendor, calls
``task_status.started()`` once the session can take the call, then serves it until the
call ends. See ``docs/providers/contract.md``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from omnivoice.errors import OmnivoiceError, describe_error, unwrap_error
from omnivoice.realtime.provider import ProviderError, ProviderEvent

__all__ = ["EventChannel", "serve_session"]

log = logging.getLogger(__name__)

S = TypeVar("S")

DEFAULT_EVENT_CAPACITY = 64
"""Events queued for a slow consumer before the session waits for it."""


class EventChannel:
    """A session's events on their way to its consumer.

    Bounded: :meth:`emit` waits while ``capacity`` events are queued, so a slow consumer
    slows the session down and nothing is dropped. Iterate it to receive (one consumer).
    :meth:`close` ends the events after those queued; a consumer that stops iterating
    (or closes its end) makes every later :meth:`emit` return ``False``.
    """

    def __init__(self, capacity: int = DEFAULT_EVENT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._tx: MemoryObjectSendStream[ProviderEvent]
        self._rx: MemoryObjectReceiveStream[ProviderEvent]
        self._tx, self._rx = anyio.create_memory_object_stream[ProviderEvent](capacity)
        self._gone = False

    def __aiter__(self) -> AsyncIterator[ProviderEvent]:
        return self._rx

    @property
    def consumer_gone(self) -> bool:
        """The consumer has stopped listening: nothing emitted now reaches anyone."""
        return self._gone

    async def emit(self, event: ProviderEvent) -> bool:
        """Pass ``event`` on, waiting while the queue is full; ``False`` if nobody listens
        any more (the channel was closed, or its consumer has gone)."""
        if self._gone:
            return False
        try:
            await self._tx.send(event)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._gone = True
            return False
        return True

    def close(self) -> None:
        """No more events: the consumer receives those queued, then its iteration ends."""
        self._tx.close()

    def abandon(self) -> None:
        """Close both ends (the session is over): what is still queued is discarded."""
        self._gone = True
        self._tx.close()
        self._rx.close()


class _Started:
    """A task status that remembers whether ``started()`` was called."""

    def __init__(self, status: TaskStatus[None]) -> None:
        self._status = status
        self.done = False

    def started(self, value: None = None) -> None:
        self.done = True
        self._status.started()


@asynccontextmanager
async def serve_session(
    session: S,
    run: Callable[..., Awaitable[None]],
    *,
    events: EventChannel | None = None,
    name: str = "session",
) -> AsyncIterator[S]:
    """Serve ``session`` while ``run(task_status=...)`` runs in a task group of its own.

    ``run`` opens what the session needs (the vendor's connection), calls
    ``task_status.started()`` once the session can take the call, then serves it. Until
    then, its exceptions leave this context manager as themselves (the one exception of
    nested single-exception groups, so ``except AuthFailedError`` works). Once started,
    ``run`` should report failures as events; if it raises anyway, the error becomes a
    fatal :class:`~omnivoice.realtime.ProviderError` on ``events`` (logged with ``name``)
    instead of escaping into the caller's code. When ``run`` returns, ``events`` is closed
    (the consumer's iteration ends). Leaving the ``async with`` block cancels ``run``;
    an exception of the block's own passes through unchanged.
    """
    failure: BaseException | None = None
    async with anyio.create_task_group() as tasks:
        try:
            await tasks.start(_serve, run, events, name)
        except BaseException as exc:
            failure = unwrap_error(exc)
            tasks.cancel_scope.cancel()
        else:
            try:
                yield session
            except BaseException as exc:
                failure = exc
            finally:
                tasks.cancel_scope.cancel()
    if events is not None:
        events.abandon()
    if failure is not None:
        raise failure


async def _serve(
    run: Callable[..., Awaitable[None]],
    events: EventChannel | None,
    name: str,
    *,
    task_status: TaskStatus[None],
) -> None:
    status = _Started(task_status)
    try:
        await run(task_status=status)
    except Exception as exc:
        if not status.done:
            raise  # a failed start: tasks.start() raises it to the opener
        error = unwrap_error(exc)
        log.exception("%s failed during the call", name)
        if events is not None:
            if not isinstance(error, OmnivoiceError):
                wrapped = OmnivoiceError(f"{name} failed: {describe_error(error)}")
                wrapped.__cause__ = error
                error = wrapped
            assert isinstance(error, OmnivoiceError)
            await events.emit(ProviderError(error, fatal=True))
    finally:
        if events is not None:
            events.close()
    if not status.done:
        raise OmnivoiceError(f"{name} ended before it started")
