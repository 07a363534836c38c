"""CallerAudio: the caller's audio while the connection serving the call is replaced."""

from __future__ import annotations

import anyio
import pytest

from omnivoice.audio import TWILIO
from omnivoice.realtime import CallerAudio, Overflow

pytestmark = pytest.mark.anyio

FRAME = 160  # 20 ms of mu-law


def frame(n: int) -> bytes:
    return bytes([n]) * FRAME


class Sink:
    def __init__(self, takes: int = 1000) -> None:
        self.got: list[bytes] = []
        self.takes = takes  # chunks it takes before it goes away

    async def __call__(self, chunk: bytes) -> bool:
        if len(self.got) >= self.takes:
            return False
        self.got.append(chunk)
        return True


async def test_attached_audio_goes_straight_to_the_sink() -> None:
    audio, sink = CallerAudio(TWILIO, hold_ms=100), Sink()
    assert await audio.attach(sink)
    await audio.send(frame(1))
    assert sink.got == [frame(1)]
    assert audio.delivered_bytes == FRAME


async def test_audio_is_held_while_detached_and_delivered_first_to_the_next_sink() -> None:
    audio = CallerAudio(TWILIO, hold_ms=100)
    for n in range(3):
        await audio.send(frame(n))
    assert audio.held_bytes == 3 * FRAME
    sink = Sink()
    await audio.attach(sink)
    await audio.send(frame(3))
    assert sink.got == [frame(0), frame(1), frame(2), frame(3)]
    assert audio.held_bytes == 0


async def test_a_sink_that_goes_away_leaves_its_chunk_held_for_the_next() -> None:
    audio, first = CallerAudio(TWILIO, hold_ms=100), Sink(takes=1)
    await audio.attach(first)
    await audio.send(frame(1))
    await audio.send(frame(2))  # refused: the first sink has gone
    assert not audio.attached
    second = Sink()
    await audio.attach(second)
    assert (first.got, second.got) == ([frame(1)], [frame(2)])


async def test_drop_oldest_keeps_the_latest_and_counts_the_rest() -> None:
    audio = CallerAudio(TWILIO, hold_ms=40, overflow=Overflow.DROP_OLDEST)
    for n in range(5):
        await audio.send(frame(n))
    assert audio.dropped_bytes == 3 * FRAME
    assert audio.dropped_ms == 60
    sink = Sink()
    await audio.attach(sink)
    assert sink.got == [frame(3), frame(4)]


async def test_wait_holds_the_callers_side_until_a_sink_takes_the_audio() -> None:
    audio = CallerAudio(TWILIO, hold_ms=40, overflow=Overflow.WAIT)
    await audio.send(frame(0))
    await audio.send(frame(1))
    sent = anyio.Event()

    async def third() -> None:
        await audio.send(frame(2))
        sent.set()

    sink = Sink()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(third)
        await anyio.wait_all_tasks_blocked()
        assert not sent.is_set()  # the hold is full: the caller's side waits
        await audio.attach(sink)
        with anyio.fail_after(5):
            await sent.wait()
    assert sink.got == [frame(0), frame(1), frame(2)]
    assert audio.dropped_bytes == 0


async def test_a_new_session_can_hear_the_last_moments_again() -> None:
    audio = CallerAudio(TWILIO, hold_ms=100, preroll_ms=40)
    first = Sink()
    await audio.attach(first)
    for n in range(4):
        await audio.send(frame(n))
    audio.detach(first)
    before: list[str] = []
    second = Sink()

    async def context() -> None:
        before.append("context")
        assert second.got == []  # nothing reaches the new sink before its context

    await audio.attach(second, replay_preroll=True, before=context)
    assert before == ["context"]
    assert second.got == [frame(2), frame(3)]


async def test_the_end_of_the_callers_audio_is_known() -> None:
    tx, rx = anyio.create_memory_object_stream[bytes](4)
    audio, sink = CallerAudio(TWILIO, hold_ms=100), Sink()
    await audio.attach(sink)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(audio.pump, rx)
        with tx:
            await tx.send(frame(1))
        with anyio.fail_after(5):
            await audio.wait_ended()
    assert audio.finished
    assert sink.got == [frame(1)]
    rx.close()
