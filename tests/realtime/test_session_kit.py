"""The session kit, tested once for every provider built on it: serve_session,
EventChannel, choose_format, fast_lock and aclose_now."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from anyio.abc import TaskStatus

from omnivoice.audio import OPENAI, TWILIO, choose_format
from omnivoice.errors import AuthFailedError, OmnivoiceError, UnsupportedFormatError
from omnivoice.realtime import (
    AudioChunk,
    EventChannel,
    ProviderError,
    aclose_now,
    fast_lock,
    serve_session,
)

pytestmark = pytest.mark.anyio


class _Session:
    def __init__(self) -> None:
        self.events = EventChannel(4)


async def test_a_failed_start_is_raised_as_itself_even_from_a_task_group() -> None:
    async def run(*, task_status: TaskStatus[None]) -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(anyio.sleep_forever)
            raise AuthFailedError("bad key")

    session = _Session()
    with pytest.raises(AuthFailedError, match="bad key"):
        async with serve_session(session, run, events=session.events):
            pytest.fail("the block never runs when the start failed")


async def test_the_blocks_own_error_leaves_unchanged_and_cancels_the_work() -> None:
    cancelled = anyio.Event()

    async def run(*, task_status: TaskStatus[None]) -> None:
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    session = _Session()
    served: list[_Session] = []

    async def use() -> None:
        async with serve_session(session, run, events=session.events) as opened:
            served.append(opened)
            raise KeyError("the caller's own bug")

    with pytest.raises(KeyError):
        await use()
    assert served == [session]
    assert cancelled.is_set()


async def test_a_failure_after_the_start_becomes_a_fatal_event() -> None:
    async def run(*, task_status: TaskStatus[None]) -> None:
        task_status.started()
        await anyio.lowlevel.checkpoint()
        raise ValueError("a defect in the session")

    session = _Session()
    async with serve_session(session, run, events=session.events, name="acme"):
        events = [event async for event in session.events]
    (event,) = events
    assert isinstance(event, ProviderError)
    assert event.fatal
    assert "acme failed: ValueError: a defect in the session" in str(event.error)


async def test_the_events_end_when_the_work_does() -> None:
    async def run(*, task_status: TaskStatus[None]) -> None:
        task_status.started()
        await session.events.emit(AudioChunk(b"\x01", is_final=True))

    session = _Session()
    async with serve_session(session, run, events=session.events):
        with anyio.fail_after(5):
            events = [event async for event in session.events]
    assert events == [AudioChunk(b"\x01", is_final=True)]


async def test_work_that_ends_without_starting_is_a_clear_error() -> None:
    async def run(*, task_status: TaskStatus[None]) -> None:
        return

    session = _Session()
    with pytest.raises(OmnivoiceError, match="ended before it started"):
        async with serve_session(session, run, events=session.events, name="lazy"):
            pass


async def test_emit_says_when_the_consumer_has_gone() -> None:
    channel = EventChannel(1)
    assert await channel.emit(AudioChunk(b"a"))
    iterator = aiter(channel)
    assert await anext(iterator) == AudioChunk(b"a")
    await iterator.aclose()  # type: ignore[attr-defined]
    assert not await channel.emit(AudioChunk(b"b"))
    assert channel.consumer_gone
    channel.abandon()


async def test_emit_waits_while_the_channel_is_full() -> None:
    channel = EventChannel(1)
    await channel.emit(AudioChunk(b"a"))
    with anyio.move_on_after(0.05) as waited:
        await channel.emit(AudioChunk(b"b"))
    assert waited.cancelled_caught  # bounded: the session waits for its consumer
    channel.abandon()


def test_choose_format_prefers_the_wanted_one_when_offered() -> None:
    assert choose_format((OPENAI, TWILIO), TWILIO) == TWILIO
    assert choose_format((OPENAI,), TWILIO) == OPENAI
    assert choose_format((OPENAI, TWILIO)) == OPENAI
    with pytest.raises(UnsupportedFormatError, match="acme declares no formats"):
        choose_format((), TWILIO, who="acme")


async def test_an_uncontended_fast_lock_is_no_trip_through_the_event_loop() -> None:
    lock = fast_lock()
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(other)
        async with lock:  # free: taken at once, the other task does not get to run
            assert ran == []
        await anyio.wait_all_tasks_blocked()  # a real wait: now it has run
        assert ran == ["other"]
    assert not lock.locked()


async def test_aclose_now_runs_a_generators_cleanup_even_while_cancelled() -> None:
    cleaned = anyio.Event()

    async def stream() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            await anyio.lowlevel.checkpoint()  # cleanup that awaits
            cleaned.set()

    iterator = stream()
    assert await anext(iterator) == 1
    with anyio.CancelScope() as scope:
        scope.cancel()
        await aclose_now(iterator)
    assert cleaned.is_set()
    await aclose_now(object())  # nothing to close: nothing happens
