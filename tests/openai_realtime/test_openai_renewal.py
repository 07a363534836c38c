"""Long calls against the fake server: a new server session before the time limit (at a turn
boundary), on expiry and after a dropped connection, with the conversation replayed and no
caller audio lost."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest
from support.fake_openai import FakeConnection, FakeOpenAI, open_session

from omnivoice.realtime.provider import ProviderError, ProviderSwitched
from omnivoice.realtime.types import AudioChunk, FunctionDeclaration, ProcessConfig, Transcript
from omnivoice.testing import SessionProbe
from omnivoice_openai_realtime import Provider

pytestmark = pytest.mark.anyio

TOOL = FunctionDeclaration("get_hours", "Opening hours")
CONFIG = ProcessConfig(instructions="You are the front desk.", functions=(TOOL,))


class Caller:
    """The caller's audio: numbered 20 ms mu-law frames, so any loss or reordering shows."""

    def __init__(self, probe: SessionProbe) -> None:
        self.probe = probe
        self.sent = bytearray()

    async def speak(self, frames: int) -> None:
        for _ in range(frames):
            n = len(self.sent) // 160
            frame = bytes([n % 256, n // 256 % 256]) + bytes((n + i) % 251 for i in range(158))
            self.sent += frame
            await self.probe.send_audio(frame)


def assert_no_audio_lost(sent: bytes, connections: Sequence[FakeConnection]) -> None:
    """Each session got one contiguous stretch of the caller's audio (a new one starts with
    the pre-roll it shares with the previous); together they cover all of it, in order."""
    covered = 0
    for conn in connections:
        got = bytes(conn.audio)
        if not got:
            continue
        start = sent.find(got)
        assert start >= 0, "a session got audio out of order or altered"
        assert start <= covered, f"{covered - start} bytes of the caller's audio were lost"
        assert covered - start <= 4000, "more overlap than the 500 ms pre-roll"
        covered = max(covered, start + len(got))
    assert covered == len(sent)


async def test_renewal_waits_for_a_turn_boundary_and_replays_the_conversation(
    fake: FakeOpenAI,
) -> None:
    # Renew 0.2 s into each session (60 minutes and 5 in production).
    provider = Provider("test", url=fake.url, session_limit=1.0, renewal_margin=0.8)
    with anyio.fail_after(10):
        async with open_session(provider, CONFIG) as probe:
            caller = Caller(probe)
            first = await fake.connection(0)
            await caller.speak(10)
            await first.user_turn("When do you open?")
            await first.respond(audio=b"\x10" * 800, transcript="At nine.")
            held = await first.respond(audio=b"\x20" * 800, transcript="And we close", hold=True)
            await probe.wait_for(Transcript, lambda t: t.text == " close")  # its last delta
            # The renewal falls due while the agent speaks: the next session opens, and
            # the call stays where it is.
            session = probe.session
            await anyio.sleep_until(session._current.renew_at)  # type: ignore[attr-defined]
            second = await fake.connection(1)
            await anyio.wait_all_tasks_blocked()
            assert probe.of_type(ProviderSwitched) == []
            assert not first.closed.is_set()
            await caller.speak(10)
            await first.wait_audio(len(caller.sent))  # still the caller's session
            assert second.audio == b""
            await held.finish()  # the boundary: the call moves to the new session
            await caller.speak(10)
            switched = await probe.wait_for(ProviderSwitched)
            await first.wait_closed()  # the old session is closed once replaced
            await caller.speak(20)
            tail = bytes(caller.sent[-160:])
            await fake.wait_until(lambda: fake.received_audio_ending(tail))
    assert switched.reason == "the session's time limit is near"
    assert switched.previous == "openai-realtime/sess_1"
    assert switched.current == "openai-realtime/sess_2"
    finals = [i for i, e in enumerate(probe.events) if isinstance(e, AudioChunk) and e.is_final]
    assert finals[1] < probe.events.index(switched)  # after the held answer ended
    # The new session has the same set-up and the conversation so far, before any audio.
    assert second.updates[0]["instructions"] == "You are the front desk."
    assert second.updates[0]["tools"] == first.updates[0]["tools"]
    history = [
        (item["role"], item["content"][0]["text"])
        for item in second.created_items
        if item["type"] == "message"
    ]
    assert history == [
        ("user", "When do you open?"),
        ("assistant", "At nine."),
        ("assistant", "And we close"),
    ]
    creates = [i for i, e in enumerate(second.events) if e["type"] == "conversation.item.create"]
    assert all(second.appends_before[i] == 0 for i in creates)
    assert_no_audio_lost(bytes(caller.sent), fake.connections)
    assert probe.of_type(ProviderError) == []
    assert probe.session.stats["renewals"] >= 1  # type: ignore[attr-defined]


async def test_an_expired_session_is_resumed_at_once_with_no_audio_lost(
    fake: FakeOpenAI,
) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(10):
        async with open_session(provider, CONFIG) as probe:
            caller = Caller(probe)
            first = await fake.connection(0)
            await caller.speak(25)
            await first.wait_audio(len(caller.sent))
            await first.user_turn("Is the pool open?")
            await first.respond(audio=b"\x30" * 400, transcript="Yes, until ten.")
            await probe.wait_for(Transcript, lambda t: t.text == "Yes, until ten.")
            await first.expire()
            await caller.speak(25)  # while the next session opens: held, then sent
            second = await fake.connection(1)
            switched = await probe.wait_for(ProviderSwitched)
            await caller.speak(10)
            tail = bytes(caller.sent[-160:])
            await fake.wait_until(lambda: second.audio.endswith(tail))
    assert switched.reason == "the session expired"
    assert probe.of_type(ProviderError) == []  # expiry is handled, not an error
    history = [(i["role"], i["content"][0]["text"]) for i in second.created_items]
    assert history == [("user", "Is the pool open?"), ("assistant", "Yes, until ten.")]
    assert_no_audio_lost(bytes(caller.sent), [first, second])


async def test_a_dropped_connection_is_resumed_and_the_open_response_closed(
    fake: FakeOpenAI,
) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(10):
        async with open_session(provider, CONFIG) as probe:
            first = await fake.connection(0)
            await first.respond(audio=b"\x40" * 1600, transcript="Let me explain our", hold=True)
            await probe.wait_for(AudioChunk)
            await first.abort()  # the client sees 1006: recoverable
            # The consumer is not left inside a response that will never end.
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
            second = await fake.connection(1)
            switched = await probe.wait_for(ProviderSwitched)
            await second.respond(audio=b"\x50" * 160, transcript="Sorry, as I said.")
            await probe.wait_for(Transcript, lambda t: t.text == "Sorry, as I said.")
    assert "1006" in switched.reason
    assert probe.of_type(ProviderError) == []
    finals = [t.text for t in probe.of_type(Transcript) if t.is_final]
    assert finals == ["Let me explain our", "Sorry, as I said."]
    assert [(i["role"], i["content"][0]["text"]) for i in second.created_items] == [
        ("assistant", "Let me explain our")
    ]
