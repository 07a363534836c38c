"""One call through the call driver, with an in-memory carrier socket and a fake provider."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import pytest

from omnivoice import hookimpl
from omnivoice.audio import TWILIO
from omnivoice.calls import CallInfo
from omnivoice.errors import AuthFailedError
from omnivoice.gateway.call import CallSettings, CallStats, run_call
from omnivoice.gateway.events import Event, EventType
from omnivoice.plugins import PLUGINS_ENV_VAR, Registry
from omnivoice.realtime import AudioChunk, ProcessConfig
from omnivoice.realtime.provider import Provider, SpeechStarted
from omnivoice.telephony import Start
from omnivoice.telephony.carrier import CarrierSide
from omnivoice.telephony.transport import Transport
from omnivoice.testing import FakeCarrierSocket, ScriptedProvider
from omnivoice_telnyx import TelnyxTransport
from omnivoice_twilio import TwilioTransport

pytestmark = pytest.mark.anyio


class Observer:
    def __init__(self) -> None:
        self.started: list[CallInfo] = []
        self.events: list[Event] = []
        self.ended: list[tuple[CallInfo, Any, Any]] = []

    @hookimpl
    def call_started(self, call: CallInfo) -> None:
        self.started.append(call)

    @hookimpl
    def call_event(self, call: CallInfo, event: Event) -> None:
        self.events.append(event)

    @hookimpl
    def call_ended(self, call: CallInfo, transcript: Any, metrics: Any) -> None:
        self.ended.append((call, transcript, metrics))


def payloads(messages: list[dict[str, Any]]) -> list[bytes]:
    return [base64.b64decode(m["media"]["payload"]) for m in messages if m["event"] == "media"]


async def serve_one(
    provider: Provider,
    socket: FakeCarrierSocket,
    observer: Observer,
    stats: CallStats,
    transport: Transport | None = None,
) -> None:
    async def sessions(start: Start) -> tuple[Provider, ProcessConfig]:
        return provider, ProcessConfig()

    registry = Registry.load(environ={PLUGINS_ENV_VAR: ""}, extra=[("observer", observer)])
    await run_call(
        socket,
        transport or TwilioTransport(),
        sessions,
        registry=registry,
        settings=CallSettings(lead_ms=100, mark_every=5),
        stats=stats,
    )


async def test_barge_in_clears_and_no_queued_frame_follows_the_clear() -> None:
    provider, socket, observer, stats = (
        ScriptedProvider(),
        FakeCarrierSocket(),
        Observer(),
        CallStats(),
    )
    side = CarrierSide(TwilioTransport().new_protocol().wire, TWILIO)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(serve_one, provider, socket, observer, stats)
        await socket.inbound_tx.send(side.connected())
        await socket.inbound_tx.send(side.start())
        with anyio.fail_after(5):
            await provider.session_started.wait()
        session = provider.sessions[0]
        session.emit(AudioChunk(b"\x01" * 160 * 50))  # one second, still going
        await socket.wait_for(3, "media")
        session.emit(SpeechStarted())
        await socket.wait_for(1, "clear")
        session.emit(AudioChunk(b"\x01" * 160, is_final=True))  # the rest of the old one
        session.emit(AudioChunk(b"\x02" * 320, is_final=True))  # the next response
        cleared_at = len(payloads(socket.sent))
        await socket.wait_for(cleared_at + 2, "media")
        await socket.inbound_tx.send(side.dtmf("7"))
        await socket.inbound_tx.send(side.stop())

    clear = next(i for i, m in enumerate(socket.sent) if m["event"] == "clear")
    before, after = payloads(socket.sent[:clear]), payloads(socket.sent[clear:])
    assert before
    assert all(p == b"\x01" * 160 for p in before)
    assert 3 <= len(before) <= 6  # paced: at most the 100 ms lead (and the frame in flight)
    assert after == [b"\x02" * 160, b"\x02" * 160]
    assert all(m["streamSid"] == side.stream_id for m in socket.sent)
    assert session.interrupts
    assert socket.closed == (1000, "call ended")
    # Observers saw the call from start to end, with its events.
    (call,) = observer.started
    assert (call.transport, call.carrier_call_id) == ("twilio", side.call_id)
    types = [e.type for e in observer.events]
    assert EventType.INTERRUPTION in types
    dtmf = [e for e in observer.events if e.type is EventType.DTMF]
    assert [e.data["digit"] for e in dtmf] == ["7"]
    ((_, transcript, metrics),) = observer.ended
    assert metrics["interruptions"] == 1
    assert [(turn.role, turn.interrupted) for turn in transcript] == [
        ("agent", True),
        ("user", False),
        ("agent", False),
    ]
    assert stats.active == 0
    assert stats.total == 1


async def test_a_provider_that_cannot_connect_ends_only_this_call() -> None:
    provider = ScriptedProvider(connect_error=AuthFailedError("bad key"))
    socket, observer, stats = FakeCarrierSocket(), Observer(), CallStats()
    side = CarrierSide(TwilioTransport().new_protocol().wire, TWILIO)
    await socket.inbound_tx.send(side.connected())
    await socket.inbound_tx.send(side.start())
    with anyio.fail_after(5):
        await serve_one(provider, socket, observer, stats)
    assert socket.closed == (1011, "provider unavailable: AuthFailedError")
    assert stats.provider_failures == 1
    assert len(observer.ended) == 1  # the call's end is still observed


async def test_a_protocol_violation_closes_the_call_with_its_reason() -> None:
    socket, observer, stats = FakeCarrierSocket(), Observer(), CallStats()
    side = CarrierSide(TwilioTransport().new_protocol().wire, TWILIO)
    for frame in (side.connected(), side.start(), side.start()):  # a second start
        await socket.inbound_tx.send(frame)
    with anyio.fail_after(5):
        await serve_one(ScriptedProvider(), socket, observer, stats)
    assert socket.closed is not None
    assert socket.closed[0] == 1008
    assert "start" in socket.closed[1]
    assert stats.protocol_errors == 1
    assert stats.bad_frames == {"duplicate_start": 1}


async def test_a_carrier_that_leaves_before_start_is_no_call() -> None:
    socket, observer, stats = FakeCarrierSocket(), Observer(), CallStats()
    socket.inbound_tx.close()
    await serve_one(ScriptedProvider(), socket, observer, stats)
    assert observer.started == []
    assert stats.active == 0


CALLER, CALLED = "+13122010094", "+13122123456"


@pytest.mark.parametrize(
    ("transport", "side_options"),
    [
        # Twilio's numbers arrive as the <Parameter>s the webhook's answer forwarded...
        (TwilioTransport(), {"custom_parameters": {"from": CALLER, "to": CALLED}}),
        # ...Telnyx's in the start frame itself.
        (TelnyxTransport(), {"extra": {"from": CALLER, "to": CALLED}}),
    ],
    ids=["twilio", "telnyx"],
)
async def test_observers_learn_the_caller_and_the_called_number(
    transport: Transport, side_options: dict[str, Any]
) -> None:
    socket, observer, stats = FakeCarrierSocket(), Observer(), CallStats()
    side = CarrierSide(transport.new_protocol().wire, TWILIO, **side_options)
    for frame in (side.connected(), side.start(), side.stop()):
        await socket.inbound_tx.send(frame)
    with anyio.fail_after(5):
        await serve_one(ScriptedProvider(), socket, observer, stats, transport)
    (call,) = observer.started
    assert (call.parameters["from"], call.parameters["to"]) == (CALLER, CALLED)
