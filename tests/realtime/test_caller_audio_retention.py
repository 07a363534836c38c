"""CallerAudio keeps what a vendor has not answered for yet, and replays it to the next sink."""

from __future__ import annotations

import pytest

from omnivoice.audio import TWILIO, AudioFormat, Encoding
from omnivoice.realtime import CallerAudio

pytestmark = pytest.mark.anyio


class Sink:
    def __init__(self, refuse_after: int | None = None) -> None:
        self.received = bytearray()
        self.refuse_after = refuse_after

    async def __call__(self, chunk: bytes) -> bool:
        if self.refuse_after is not None and len(self.received) >= self.refuse_after:
            return False
        self.received += chunk
        return True


def chunks(n: int, size: int = 160) -> list[bytes]:
    return [bytes([i % 256]) * size for i in range(n)]


async def test_unanswered_audio_goes_first_to_the_next_sink() -> None:
    caller = CallerAudio(TWILIO, hold_ms=1000, retain_ms=1000)
    first, second = Sink(), Sink()
    await caller.attach(first)
    audio = chunks(5)
    for chunk in audio:
        await caller.send(chunk)
    caller.acknowledge(2 * 160 + 40)  # answered up to 40 bytes into the third chunk
    assert caller.answered_bytes == 360
    assert caller.unanswered_bytes == 5 * 160 - 360
    caller.detach(first)
    await caller.send(b"\x09" * 160)  # held meanwhile
    starts: list[int] = []

    async def before() -> None:
        starts.append(caller.answered_bytes)

    assert await caller.attach(second, replay_unanswered=True, before=before)
    assert starts == [360]  # where the replay starts, in the caller's audio
    assert bytes(second.received) == b"".join(audio)[360:] + b"\x09" * 160
    assert caller.delivered_bytes == 6 * 160  # a replay is not delivered twice


async def test_acknowledging_is_bounded_by_what_was_delivered_and_whole_samples() -> None:
    caller = CallerAudio(AudioFormat(Encoding.PCM16, 16000), hold_ms=100, retain_ms=100)
    await caller.attach(Sink())
    await caller.send(bytes(640))
    caller.acknowledge(101)  # rounded down to a whole sample
    assert caller.answered_bytes == 100
    caller.acknowledge(50)  # never backwards
    assert caller.answered_bytes == 100
    caller.acknowledge(10_000)  # never past the audio delivered
    assert caller.answered_bytes == 640
    assert caller.unanswered_bytes == 0


async def test_unanswered_audio_is_bounded_and_what_is_let_go_is_counted() -> None:
    caller = CallerAudio(TWILIO, hold_ms=100, retain_ms=100)  # 800 bytes
    await caller.attach(Sink())
    for chunk in chunks(10):
        await caller.send(chunk)
    assert caller.unanswered_bytes == 800
    assert caller.unanswered_dropped_bytes == 800
    assert caller.answered_bytes == 800  # let go counts as no longer to be replayed


async def test_a_sink_that_fails_during_the_replay_leaves_the_audio_unanswered() -> None:
    caller = CallerAudio(TWILIO, hold_ms=1000, retain_ms=1000)
    await caller.attach(Sink())
    for chunk in chunks(4):
        await caller.send(chunk)
    caller.detach()  # that connection is gone
    failing = Sink(refuse_after=160)
    assert not await caller.attach(failing, replay_unanswered=True)
    assert not caller.attached
    assert caller.unanswered_bytes == 640
    later = Sink()
    assert await caller.attach(later, replay_unanswered=True)
    assert bytes(later.received) == b"".join(chunks(4))


async def test_without_retention_nothing_is_kept() -> None:
    caller = CallerAudio(TWILIO, hold_ms=1000)
    await caller.attach(Sink())
    await caller.send(bytes(160))
    assert caller.unanswered_bytes == 0
    assert caller.answered_bytes == 160
