"""Long calls against the fake service: ``goAway`` crossed at a turn boundary (or before
the deadline), a dropped connection resumed with the latest handle, a refused resumption
replaced by a fresh session with the conversation, and nothing lost on the way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from support.fake_gemini import FakeCall, FakeGemini, open_session

from omnivoice.errors import AuthFailedError, ConnectionFailedError
from omnivoice.realtime import (
    AudioChunk,
    Client,
    FunctionCall,
    FunctionDeclaration,
    HeardResponse,
    ProcessConfig,
    ProviderError,
    ProviderSwitched,
    Transcript,
)
from omnivoice.testing import SessionProbe
from omnivoice_gemini_live import Provider

pytestmark = pytest.mark.anyio

LOOKUP = FunctionDeclaration("lookup_order", "Find an order")
FRAME = 640  # 20 ms of PCM16 at 16 kHz


class Caller:
    """The caller's audio: numbered 20 ms frames, so any loss, repeat or reordering shows."""

    def __init__(self, probe: SessionProbe) -> None:
        self.probe = probe
        self.sent = bytearray()

    async def speak(self, frames: int) -> None:
        for _ in range(frames):
            n = len(self.sent) // FRAME
            frame = bytes([n % 256, n // 256 % 256]) + bytes(
                (n + i) % 251 for i in range(FRAME - 2)
            )
            self.sent += frame
            await self.probe.send_audio(frame)


async def test_go_away_is_crossed_at_the_turn_boundary_with_every_byte(
    fake: FakeGemini,
) -> None:
    provider = Provider("test", url=fake.url, instructions="You are the front desk.")
    config = ProcessConfig(functions=[LOOKUP])
    with anyio.fail_after(15):
        async with open_session(provider, config) as probe:
            caller = Caller(probe)
            first = await fake.connection(0)
            await caller.speak(10)
            await first.wait_audio(len(caller.sent))
            await first.respond(audio=b"\x01\x00" * 4800, transcript="Good morning.")
            held = await first.respond(audio=b"\x02\x00" * 9600, transcript="We open at", hold=True)
            await probe.wait_for(Transcript, lambda t: t.text == "We open ")
            await first.go_away("50s")
            # The model is speaking: the call stays where it is for now.
            await caller.speak(10)
            await first.wait_audio(len(caller.sent))
            await anyio.wait_all_tasks_blocked()
            assert len(fake.connections) == 1
            assert probe.of_type(ProviderSwitched) == []
            await held.finish()  # the turn boundary (and a fresh handle with it)
            assert first.session is not None
            latest = list(first.session.handles)[-1]
            await caller.speak(5)  # during the move: held, then sent on the new connection
            switched = await probe.wait_for(ProviderSwitched)
            second = await fake.connection(1)
            await first.wait_closed()
            await caller.speak(10)
            await second.wait_audio(len(caller.sent) - len(first.audio))
            await second.respond(audio=b"\x03\x00" * 2400, transcript="Anything else?")
            await probe.wait_for(Transcript, lambda t: t.text == "Anything else?" and t.is_final)
    # Every byte of the caller's audio reached the service, once, in order.
    assert fake.audio() == bytes(caller.sent)
    assert len(second.audio) > 0
    # The new connection resumed the session with the latest handle: same setup, no history.
    assert second.resumed
    assert second.handle == latest
    assert {k: v for k, v in second.setup.items() if k != "sessionResumption"} == {
        k: v for k, v in first.setup.items() if k != "sessionResumption"
    }
    assert second.of_kind("clientContent") == []
    assert switched.previous == "gemini-live/session-1"
    assert switched.current == "gemini-live/session-1"  # the same server session, resumed
    assert switched.reason == "goAway (50 s left on the connection) (resumed)"
    finals = [i for i, e in enumerate(probe.events) if isinstance(e, AudioChunk) and e.is_final]
    assert finals[1] < probe.events.index(switched)  # after the held answer ended
    assert probe.of_type(ProviderError) == []
    assert probe.session.stats["resumptions"] == 1  # type: ignore[attr-defined]


async def test_go_away_without_a_boundary_moves_before_the_deadline(fake: FakeGemini) -> None:
    provider = Provider("test", url=fake.url, go_away_margin=0.5)
    with anyio.fail_after(15):
        async with open_session(provider) as probe:
            caller = Caller(probe)
            first = await fake.connection(0)
            await first.respond(audio=b"\x02\x00" * 4800, transcript="Let me tell you", hold=True)
            await probe.wait_for(AudioChunk)
            await first.go_away("1s")  # and then the server goes quiet
            second = await fake.connection(1)
            switched = await probe.wait_for(ProviderSwitched)
            await caller.speak(5)
            await second.wait_audio(len(caller.sent))
    assert second.resumed
    assert switched.reason.startswith("goAway (1 s left")
    # The answer the old connection never finished was ended, with its words so far.
    start = probe.events.index(switched)
    assert AudioChunk(b"", is_final=True, response_id="r1") in probe.events[:start]
    assert Transcript("Let me", is_input=False, is_final=True) in probe.events[:start]
    assert fake.audio() == bytes(caller.sent)


async def test_a_dropped_connection_is_resumed_with_the_latest_handle(fake: FakeGemini) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(15):
        async with open_session(provider) as probe:
            caller = Caller(probe)
            first = await fake.connection(0)
            await caller.speak(10)
            await first.wait_audio(len(caller.sent))
            await first.respond(audio=b"\x01\x00" * 2400, transcript="Hello.")
            latest = await first.resumption_update()
            await first.respond(audio=b"\x02\x00" * 4800, transcript="Let me explain", hold=True)
            await probe.wait_for(AudioChunk, lambda c: c.response_id == "r2")
            await first.abort()  # the client sees 1006
            # The consumer is not left inside a response that will never end...
            await probe.wait_for(AudioChunk, lambda c: c.is_final and c.response_id == "r2")
            await caller.speak(10)  # ...and the caller's audio waits for the next connection
            second = await fake.connection(1)
            switched = await probe.wait_for(ProviderSwitched)
            await second.wait_audio(10 * FRAME)
            await second.respond(audio=b"\x03\x00" * 240, transcript="As I was saying.")
            await probe.wait_for(Transcript, lambda t: t.text == "As I was saying.")
    assert second.handle == latest
    assert "1006" in switched.reason
    assert fake.audio() == bytes(caller.sent)
    assert probe.of_type(ProviderError) == []


async def test_a_refused_resumption_becomes_a_fresh_session_with_the_heard_conversation(
    fake: FakeGemini,
) -> None:
    provider = Provider("test", url=fake.url, instructions="You are the front desk.")
    with anyio.fail_after(15):
        async with open_session(provider) as probe:
            first = await fake.connection(0)
            await first.input_transcription("When do you open?")
            await first.respond(audio=b"\x01\x00" * 2400, transcript="We open at nine.")
            await first.input_transcription("And on Sundays?")
            # One second of audio; the caller hears half of it, then speaks over it.
            await first.respond(
                audio=b"\x02\x00" * 24000,
                transcript="On Sundays we open at ten and close at four.",
                pieces=1,
                hold=True,
            )
            await probe.wait_for(Transcript, lambda t: t.text.startswith("On Sundays"))
            await first.interrupt()
            await probe.wait_for(AudioChunk, lambda c: c.is_final and c.response_id == "r2")
            # The bridge: the line cleared with 250 ms of the 1000 ms answer heard.
            await probe.interrupt(250, [HeardResponse("r2", heard_ms=250, produced_ms=1000)])
            fake.refuse_resumption = True
            await first.abort()
            switched = await probe.wait_for(ProviderSwitched)
            fresh = fake.connections[-1]
            await fresh.configured.wait()
    refused = fake.connections[1]
    assert refused.handle is not None  # it tried to resume first
    assert not refused.configured.is_set()
    assert fresh.handle is None
    assert fresh.setup["systemInstruction"] == first.setup["systemInstruction"]
    (content,) = fresh.of_kind("clientContent")
    assert content["turnComplete"] is False
    assert [(t["role"], t["parts"][0]["text"]) for t in content["turns"]] == [
        ("user", "When do you open?"),
        ("model", "We open at nine."),
        ("user", "And on Sundays?"),
        ("model", "On Sundays"),  # what the caller heard of it
    ]
    assert switched.reason.endswith("(a new session)")
    assert probe.session.stats["fresh_sessions"] == 1  # type: ignore[attr-defined]


async def test_without_a_handle_a_fresh_session_takes_the_call(fake: FakeGemini) -> None:
    fake.auto_handles = False
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(15):
        async with open_session(provider) as probe:
            first = await fake.connection(0)
            await first.input_transcription("Hello?", finished=True)
            await first.respond(audio=b"\x01\x00" * 240, transcript="Hi.")
            await probe.wait_for(Transcript, lambda t: t.text == "Hi." and t.is_final)
            await first.close(1011, "Internal error encountered.")
            second = await fake.connection(1)
            await probe.wait_for(ProviderSwitched)
    assert second.handle is None
    (content,) = second.of_kind("clientContent")
    assert [t["parts"][0]["text"] for t in content["turns"]] == ["Hello?", "Hi."]


async def test_when_no_connection_can_take_over_the_stream_ends_with_connection_failed(
    fake: FakeGemini,
) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(15):
        async with open_session(provider) as probe:
            first = await fake.connection(0)
            fake.reject(503, "Service unavailable")
            await first.abort()
            events = await probe.wait_ended()
    error = events[-1]
    assert isinstance(error, ProviderError)
    assert error.fatal
    assert type(error.error) is ConnectionFailedError
    assert "no new connection could take the call" in str(error.error)
    assert fake.rejected == 3  # each attempt, then it gave up


async def test_a_key_refused_on_reconnection_ends_the_call_at_once(fake: FakeGemini) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(15):
        async with open_session(provider) as probe:
            first = await fake.connection(0)
            fake.api_key = "rotated"
            await first.abort()
            events = await probe.wait_ended()
    assert isinstance(events[-1], ProviderError)
    assert isinstance(events[-1].error, AuthFailedError)
    assert len(fake.connections) == 2  # no point in trying again


async def test_answers_pending_at_a_move_are_delivered_on_the_new_connection(
    fake: FakeGemini,
) -> None:
    release = anyio.Event()

    async def handler(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
        await release.wait()
        return {"order": arguments.get("order")}

    provider = Provider("test", url=fake.url)
    config = ProcessConfig(functions=[LOOKUP], on_function_call=handler)
    with anyio.fail_after(15):
        async with open_session(provider, config) as probe:
            first = await fake.connection(0)
            (known,) = await first.tool_call(FakeCall("lookup_order", {"order": "A-1"}))
            await probe.wait_for(FunctionCall)
            await first.resumption_update()  # this handle's session has the first call
            (unknown,) = await first.tool_call(FakeCall("lookup_order", {"order": "B-2"}))
            await probe.wait_for(FunctionCall, count=2)
            await first.abort()
            second = await fake.connection(1)
            await probe.wait_for(ProviderSwitched)
            release.set()  # both finish on the new connection's watch
            await second.wait_answer(known)
            await second.wait_for(lambda: bool(second.texts))
    assert second.resumed
    assert second.answers[known]["response"] == {"output": {"order": "A-1"}}
    # The resumed session never saw the second call: its answer goes as words, not as
    # a toolResponse it would refuse.
    assert unknown not in second.answers
    assert second.texts == ['[The function lookup_order returned: {"order": "B-2"}]']


async def test_the_fallback_client_takes_the_call_when_gemini_cannot(fake: FakeGemini) -> None:
    async with FakeGemini() as backup_service:
        backup = Provider("test", url=backup_service.url)
        backup.name = "gemini-backup"
        client = Client(Provider("test", url=fake.url), backup)
        with anyio.fail_after(20):
            async with open_session(client) as probe:
                first = await fake.connection(0)
                await first.input_transcription("Hello?", finished=True)
                await first.respond(audio=b"\x01\x00" * 480, transcript="Hi.")
                await probe.wait_for(Transcript, lambda t: t.text == "Hi." and t.is_final)
                fake.reject(503, "Service unavailable")
                await first.abort()
                switched = await probe.wait_for(
                    ProviderSwitched, lambda s: s.current == "gemini-backup"
                )
                other = await backup_service.connection(0)
    assert switched.previous == "gemini-live"
    assert "HTTP 503" in switched.reason
    assert not any(isinstance(e, ProviderError) and e.fatal for e in probe.events)
    # The fallback session is given the conversation so far.
    (content,) = other.of_kind("clientContent")
    assert [t["parts"][0]["text"] for t in content["turns"]] == ["Hello?", "Hi."]
    assert backup_service.violations == []
