"""The fallback Client, driven with in-process fake providers."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager

import anyio
import attrs
import numpy as np
import pytest
from anyio.streams.memory import MemoryObjectSendStream

from omnivoice.audio import OPENAI, TWILIO, AudioFormat
from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    OmnivoiceError,
    RateLimitedError,
    SessionClosedError,
    UnsupportedFormatError,
)
from omnivoice.gateway.bridge import RealtimeBridge
from omnivoice.gateway.events import Event, EventType
from omnivoice.realtime import (
    AudioChunk,
    Capability,
    ConversationItem,
    FunctionDeclaration,
    ProcessConfig,
    Transcript,
)
from omnivoice.realtime.client import Client, FallbackProvider, FallbackSession
from omnivoice.realtime.provider import ProviderError, ProviderEvent, ProviderSwitched
from omnivoice.testing import ScriptedProvider, ScriptedSession

pytestmark = pytest.mark.anyio

FRAME = bytes(range(256))[:160]  # 20 ms of mu-law that is not silence
CONFIG = ProcessConfig(
    instructions="be brief",
    functions=[FunctionDeclaration("lookup_order", "find an order")],
)


def frame(n: int) -> bytes:
    """A 20 ms mu-law frame that tells which one it is."""
    return bytes([n % 256]) * 160


class GatedProvider(ScriptedProvider):
    """A fake whose connections wait, while ``gate`` is set, until the test opens it; it
    counts the sessions still open."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate: anyio.Event | None = None
        self.connecting = anyio.Event()
        self.open_sessions = 0

    @asynccontextmanager
    async def process_audio_stream(
        self,
        audio_in: AsyncIterable[bytes],
        config: ProcessConfig,
        *,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> AsyncIterator[ScriptedSession]:
        if self.gate is not None:
            self.connecting.set()
            await self.gate.wait()
        stream = super().process_audio_stream(
            audio_in, config, input_format=input_format, output_format=output_format
        )
        async with stream as session:
            self.open_sessions += 1
            try:
                yield session
            finally:
                self.open_sessions -= 1


class CrashingProvider(ScriptedProvider):
    """A fake whose session has a background task (as a real provider's socket reader) that
    fails when the test says so."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.crash = anyio.Event()

    @asynccontextmanager
    async def process_audio_stream(
        self,
        audio_in: AsyncIterable[bytes],
        config: ProcessConfig,
        *,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> AsyncIterator[ScriptedSession]:
        stream = super().process_audio_stream(
            audio_in, config, input_format=input_format, output_format=output_format
        )
        async with stream as session, anyio.create_task_group() as tasks:
            tasks.start_soon(self._read_socket)
            yield session

    async def _read_socket(self) -> None:
        await self.crash.wait()
        self.crash = anyio.Event()  # the next session crashes only when told again
        raise OmnivoiceError("reader crashed")


class Call:
    """One call through a client, as the test sees it."""

    def __init__(self, session: FallbackSession, audio: MemoryObjectSendStream[bytes]):
        self.session = session
        self.audio = audio
        self._events = aiter(session)

    async def next(self, n: int = 1) -> list[ProviderEvent]:
        with anyio.fail_after(5):
            return [await anext(self._events) for _ in range(n)]

    async def rest(self) -> list[ProviderEvent]:
        with anyio.fail_after(5):
            return [event async for event in self._events]

    async def send(self, *chunks: bytes) -> None:
        with anyio.fail_after(5):
            for chunk in chunks:
                await self.audio.send(chunk)


@asynccontextmanager
async def call(
    client: Client,
    config: ProcessConfig = CONFIG,
    *,
    audio_buffer: int = 100,
    fmt: AudioFormat = TWILIO,
) -> AsyncIterator[Call]:
    audio_tx, audio_rx = anyio.create_memory_object_stream[bytes](audio_buffer)
    with audio_tx, audio_rx:
        stream = client.process_audio_stream(audio_rx, config, input_format=fmt, output_format=fmt)
        async with stream as session:
            yield Call(session, audio_tx)


# --- the client as a provider ----------------------------------------------------------------


def test_it_presents_the_primary() -> None:
    primary = ScriptedProvider("openai", accepts=[OPENAI, TWILIO], produces=[OPENAI])
    client = Client(primary, ScriptedProvider("gemini", accepts=[OPENAI]))
    assert client.name == "openai"
    assert (client.accepts, client.produces) == ((OPENAI, TWILIO), (OPENAI,))
    assert Client(primary, name="resilient").name == "resilient"


def test_it_declares_what_every_provider_can_do() -> None:
    both = Capability.SPEECH_EVENTS | Capability.INTERRUPTION
    primary = ScriptedProvider("a", capabilities=both | Capability.HISTORY)
    client = Client(primary, ScriptedProvider("b", capabilities=both))
    assert client.capabilities == both
    assert FallbackProvider is Client


async def test_it_opens_in_the_primarys_formats_without_format_arguments() -> None:
    a = ScriptedProvider("a", accepts=[OPENAI, TWILIO], produces=[OPENAI])
    tx, rx = anyio.create_memory_object_stream[bytes](4)
    with tx, rx, anyio.fail_after(5):
        async with Client(a).process_audio_stream(rx, CONFIG):  # the seed's call shape
            (session,) = a.sessions
            assert (session.input_format, session.output_format) == (OPENAI, OPENAI)


async def test_a_provider_that_takes_no_history_takes_over_afresh() -> None:
    a = ScriptedProvider("a")
    b = ScriptedProvider("b", capabilities=Capability.SPEECH_EVENTS | Capability.INTERRUPTION)
    async with call(Client(a, b, reconnect_same=0)) as c:
        a.sessions[0].emit(
            Transcript("Where is my order?", is_input=True, is_final=True),
            SessionClosedError("socket closed"),
        )
        await c.next(2)
        (second,) = b.sessions
        assert second.config == CONFIG  # no history: it could not have used it


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="reconnect_same"):
        Client(ScriptedProvider(), reconnect_same=-1)
    with pytest.raises(ValueError, match="connect_timeout"):
        Client(ScriptedProvider(), connect_timeout=0)


async def test_the_primary_serves_when_it_connects() -> None:
    a, b = ScriptedProvider("a"), ScriptedProvider("b")
    async with call(Client(a, b)) as c:
        (session,) = a.sessions
        assert session.config is CONFIG
        assert c.session.provider == "a"
        await c.send(FRAME, FRAME)
        with anyio.fail_after(5):
            assert await session.wait_for_audio(320) == FRAME * 2
        session.emit(AudioChunk(FRAME), AudioChunk(FRAME, is_final=True))
        assert await c.next(2) == [AudioChunk(FRAME), AudioChunk(FRAME, is_final=True)]
    assert b.sessions == []


async def test_the_session_ends_when_the_caller_and_the_provider_are_done() -> None:
    a = GatedProvider("a")
    async with call(Client(a, ScriptedProvider("b"))) as c:
        session = a.sessions[0]
        await c.send(FRAME)
        c.audio.close()
        with anyio.fail_after(5):
            await session.audio_ended.wait()
        session.emit(Transcript("bye", is_input=False, is_final=True))
        session.end()
        assert await c.rest() == [Transcript("bye", is_input=False, is_final=True)]
        assert a.open_sessions == 0


# --- connect-time fallback -------------------------------------------------------------------


@pytest.mark.parametrize(
    "error_class",
    [ConnectionFailedError, RateLimitedError, ModelUnavailableError, AuthFailedError],
)
async def test_a_provider_that_cannot_connect_is_skipped(
    error_class: type[ConnectionFailedError],
) -> None:
    a = ScriptedProvider("a", connect_error=error_class("a is down"))
    b = ScriptedProvider("b")
    async with call(Client(a, b)) as c:
        (session,) = b.sessions
        assert session.config is CONFIG  # nothing was said yet: no history
        assert c.session.provider == "b"
        (switch,) = await c.next()
        assert switch == ProviderSwitched(
            "a", "b", f"connection failed: {error_class.__name__}: a is down"
        )
        await c.send(FRAME)
        with anyio.fail_after(5):
            assert await session.wait_for_audio(160) == FRAME


async def test_each_skip_is_reported_in_order() -> None:
    a = ScriptedProvider("a", connect_error=RateLimitedError("busy"))
    b = ScriptedProvider("b", connect_error=AuthFailedError("bad key"))
    c_ = ScriptedProvider("c")
    async with call(Client(a, b, c_)) as c:
        assert await c.next(2) == [
            ProviderSwitched("a", "b", "connection failed: RateLimitedError: busy"),
            ProviderSwitched("b", "c", "connection failed: AuthFailedError: bad key"),
        ]
        assert len(c_.sessions) == 1


async def test_when_no_provider_connects_the_error_names_each() -> None:
    last = ModelUnavailableError("no such model")
    client = Client(
        ScriptedProvider("a", connect_error=RateLimitedError("busy")),
        ScriptedProvider("b", connect_error=AuthFailedError("bad key")),
        ScriptedProvider("c", connect_error=last),
    )
    with pytest.raises(ConnectionFailedError) as caught:
        async with call(client):
            pytest.fail("no session should open")
    message = str(caught.value)
    assert "a: RateLimitedError: busy" in message
    assert "b: AuthFailedError: bad key" in message
    assert "c: ModelUnavailableError: no such model" in message
    assert caught.value.__cause__ is last


async def test_other_errors_propagate_without_trying_the_fallbacks() -> None:
    b = ScriptedProvider("b")
    client = Client(ScriptedProvider("a", connect_error=OmnivoiceError("bad request")), b)
    with pytest.raises(OmnivoiceError, match="bad request") as caught:
        async with call(client):
            pytest.fail("no session should open")
    assert not isinstance(caught.value, ConnectionFailedError)
    assert b.sessions == []


async def test_a_connection_that_hangs_times_out() -> None:
    a, b = GatedProvider("a"), ScriptedProvider("b")
    a.gate = anyio.Event()  # never opened
    async with call(Client(a, b, connect_timeout=0.05)) as c:
        assert await c.next() == [
            ProviderSwitched(
                "a", "b", "connection failed: ConnectionFailedError: no session within 0.05 s"
            )
        ]
        assert len(b.sessions) == 1


async def test_formats_no_codec_converts_are_refused_when_the_call_starts() -> None:
    odd = AudioFormat(OPENAI.encoding, 11025)
    client = Client(ScriptedProvider("a"), ScriptedProvider("b", accepts=[odd]))
    with pytest.raises(UnsupportedFormatError):
        async with call(client):
            pytest.fail("no session should open")


# --- mid-call failover -----------------------------------------------------------------------


async def test_a_dead_session_is_replaced_with_the_conversation_carried_over() -> None:
    a, b = ScriptedProvider("a"), ScriptedProvider("b")
    async with call(Client(a, b)) as c:
        first = a.sessions[0]
        first.emit(
            Transcript("Where is my order?", is_input=True, is_final=True),
            Transcript("It ", is_input=False),
            Transcript("It shipped.", is_input=False, is_final=True),
            AudioChunk(FRAME),  # a response in progress...
            SessionClosedError("socket closed"),  # ...when the connection drops
        )
        events = await c.next(6)
        assert events[3] == AudioChunk(FRAME)
        # The response cut short is ended, so that the bridge's accounting holds.
        assert events[4] == AudioChunk(b"", is_final=True)
        assert events[5] == ProviderSwitched(
            "a", "a", "session failed: SessionClosedError: socket closed"
        )
        second = a.sessions[1]
        assert second.config == attrs.evolve(
            CONFIG,
            history=(
                ConversationItem("user", "Where is my order?"),
                ConversationItem("agent", "It shipped."),
            ),
        )
        assert c.session.provider == "a"
        await c.send(FRAME)
        with anyio.fail_after(5):
            assert await second.wait_for_audio(160) == FRAME
        second.emit(AudioChunk(FRAME, is_final=True))
        assert await c.next() == [AudioChunk(FRAME, is_final=True)]
    assert b.sessions == []


async def test_when_the_same_provider_refuses_the_next_one_takes_over() -> None:
    a, b = ScriptedProvider("a"), ScriptedProvider("b")
    async with call(Client(a, b)) as c:
        first = a.sessions[0]
        first.emit(Transcript("Hello?", is_input=True, is_final=True))
        await c.next()
        a.connect_error = RateLimitedError("busy")
        first.emit(ProviderError(ConnectionFailedError("gone"), fatal=True))
        assert await c.next(2) == [
            ProviderSwitched("a", "a", "session failed: ConnectionFailedError: gone"),
            ProviderSwitched("a", "b", "connection failed: RateLimitedError: busy"),
        ]
        (session,) = b.sessions
        assert session.config.history == (ConversationItem("user", "Hello?"),)
        assert session.config.instructions == CONFIG.instructions
        assert session.config.functions == CONFIG.functions
        assert c.session.provider == "b"


async def test_the_same_provider_is_retried_once_until_it_completes_a_response() -> None:
    a, b = ScriptedProvider("a"), ScriptedProvider("b")
    async with call(Client(a, b, reconnect_same=1)) as c:
        a.sessions[0].emit(RuntimeError("boom"))
        assert await c.next() == [ProviderSwitched("a", "a", "session failed: RuntimeError: boom")]
        # A complete response shows the provider works: a later failure may retry it.
        a.sessions[1].emit(AudioChunk(FRAME, is_final=True))
        a.sessions[1].end()
        assert await c.next(2) == [
            AudioChunk(FRAME, is_final=True),
            ProviderSwitched(
                "a",
                "a",
                "session failed: SessionClosedError: the session ended before the call did",
            ),
        ]
        # Failing again before any complete response: on to the next provider.
        a.sessions[2].emit(RuntimeError("boom"))
        assert await c.next() == [ProviderSwitched("a", "b", "session failed: RuntimeError: boom")]
        assert len(a.sessions) == 3
        assert len(b.sessions) == 1


async def test_without_same_provider_reconnects_the_next_one_takes_over() -> None:
    a, b = ScriptedProvider("a"), ScriptedProvider("b")
    async with call(Client(a, b, reconnect_same=0)) as c:
        a.sessions[0].emit(RuntimeError("boom"))
        assert await c.next() == [ProviderSwitched("a", "b", "session failed: RuntimeError: boom")]
        assert len(a.sessions) == 1


async def test_a_failure_inside_the_providers_tasks_is_a_failover_too() -> None:
    a = CrashingProvider("a")
    async with call(Client(a)) as c:
        a.sessions[0].emit(AudioChunk(FRAME))
        assert await c.next() == [AudioChunk(FRAME)]
        a.crash.set()
        assert await c.next(2) == [
            AudioChunk(b"", is_final=True),
            ProviderSwitched("a", "a", "session failed: OmnivoiceError: reader crashed"),
        ]
        await c.send(FRAME)
        with anyio.fail_after(5):
            assert await a.sessions[1].wait_for_audio(160) == FRAME


async def test_when_no_provider_can_take_over_the_session_ends_with_a_fatal_error() -> None:
    a, b = ScriptedProvider("a"), ScriptedProvider("b", connect_error=AuthFailedError("bad key"))
    async with call(Client(a, b)) as c:
        a.connect_error = ConnectionFailedError("unreachable")
        a.sessions[0].emit(AudioChunk(FRAME), RuntimeError("boom"))
        *events, last = await c.rest()
        assert events == [AudioChunk(FRAME), AudioChunk(b"", is_final=True)]
        assert isinstance(last, ProviderError)
        assert last.fatal
        assert isinstance(last.error, ConnectionFailedError)
        message = str(last.error)
        assert "session failed: RuntimeError: boom" in message
        assert "a: ConnectionFailedError: unreachable" in message
        assert "b: AuthFailedError: bad key" in message
        assert last.error.__cause__ is b.connect_error
        assert c.session.provider is None


async def test_a_failure_after_the_caller_has_gone_ends_the_session() -> None:
    a = ScriptedProvider("a")
    async with call(Client(a, ScriptedProvider("b"))) as c:
        session = a.sessions[0]
        c.audio.close()
        with anyio.fail_after(5):
            await session.audio_ended.wait()
        closed = SessionClosedError("socket closed")
        session.emit(closed)
        assert await c.rest() == [ProviderError(closed, fatal=True)]
    assert len(a.sessions) == 1


async def test_the_history_is_kept_compact() -> None:
    config = attrs.evolve(CONFIG, history=[ConversationItem("user", "from an earlier session")])
    a = ScriptedProvider("a")
    async with call(Client(a, history_items=4, history_chars=35), config) as c:
        first = a.sessions[0]
        first.emit(
            Transcript("one", is_input=True, is_final=True),
            Transcript("two", is_input=False, is_final=True),
            Transcript("x" * 20, is_input=True, is_final=True),
            # Agent text that never got its final transcript: what was said of it counts.
            Transcript("I can ", is_input=False),
            Transcript("help.", is_input=False),
            RuntimeError("boom"),
        )
        await c.next(6)
        history = a.sessions[1].config.history
    # At most four items (the earliest fell out), within 35 characters (so "one" did too).
    assert history == (
        ConversationItem("agent", "two"),
        ConversationItem("user", "x" * 20),
        ConversationItem("agent", "I can help."),
    )


async def test_the_callers_audio_during_a_reconnection_goes_to_the_new_session_first() -> None:
    a = GatedProvider("a")
    async with call(Client(a, buffer_ms=1000), audio_buffer=4) as c:
        first = a.sessions[0]
        await c.send(frame(0))
        with anyio.fail_after(5):
            await first.wait_for_audio(160)
        a.gate = anyio.Event()
        first.emit(RuntimeError("boom"))
        with anyio.fail_after(5):
            await a.connecting.wait()
        # 1.2 s of the caller while nobody listens: the newest second is kept.
        await c.send(*[frame(n) for n in range(1, 61)])
        await anyio.wait_all_tasks_blocked()
        a.gate.set()
        switch, dropped = await c.next(2)
        assert switch == ProviderSwitched("a", "a", "session failed: RuntimeError: boom")
        assert isinstance(dropped, ProviderError)
        assert not dropped.fatal
        assert "200 ms of the caller's audio was dropped" in str(dropped.error)
        assert c.session.dropped_audio_ms == 200
        await c.send(frame(61))
        second = a.sessions[1]
        with anyio.fail_after(5):
            received = await second.wait_for_audio(51 * 160)
        assert received == b"".join(frame(n) for n in range(11, 62))
        assert first.received == frame(0)


async def test_an_interruption_goes_to_the_session_serving_the_call() -> None:
    a = ScriptedProvider("a")
    async with call(Client(a)) as c:
        await c.session.interrupt(50)
        a.sessions[0].emit(RuntimeError("boom"))
        await c.next()
        await c.session.interrupt(120)
        assert a.sessions[0].interrupts == [50]
        assert a.sessions[1].interrupts == [120]


async def test_a_fallback_with_other_formats_is_converted_to_the_sessions() -> None:
    a = ScriptedProvider("a", connect_error=ConnectionFailedError("down"))
    b = ScriptedProvider("b", accepts=[OPENAI], produces=[OPENAI])
    client = Client(a, b)
    assert client.accepts == (TWILIO,)
    async with call(client) as c:
        await c.next()  # the switch
        (session,) = b.sessions
        assert (session.input_format, session.output_format) == (OPENAI, OPENAI)
        await c.send(*[FRAME] * 10)
        with anyio.fail_after(5):
            received = await session.wait_for_audio(9600)
        assert len(received) == 9600  # 200 ms of PCM16 at 24 kHz
        tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(4800) / 24000)).astype("<i2")
        session.emit(AudioChunk(tone.tobytes(), is_final=True))
        (chunk,) = await c.next()
        assert isinstance(chunk, AudioChunk)
        assert chunk.is_final
        assert len(chunk.audio) == 1600  # 200 ms of mu-law at 8 kHz


# --- structure and back-pressure -------------------------------------------------------------


async def test_a_slow_session_slows_the_caller_side_down() -> None:
    a = ScriptedProvider("a", consume_audio=False)
    async with call(Client(a), audio_buffer=4) as c:
        accepted = 0
        with pytest.raises(anyio.WouldBlock):  # noqa: PT012 - counting up to the block
            for _ in range(100):
                c.audio.send_nowait(FRAME)
                accepted += 1
                await anyio.wait_all_tasks_blocked()
        # One chunk offered to the session, four waiting in the caller's stream.
        assert accepted == 5


async def test_a_slow_event_reader_slows_the_provider_down() -> None:
    a = ScriptedProvider("a")
    async with call(Client(a)) as c:
        session = a.sessions[0]
        session.emit(*[AudioChunk(FRAME) for _ in range(100)])
        await anyio.wait_all_tasks_blocked()
        waiting = session._rx.statistics().current_buffer_used
        assert 0 < waiting < 100
        assert len(await c.next(100)) == 100


async def test_leaving_the_session_closes_the_provider_session() -> None:
    a = GatedProvider("a")
    async with call(Client(a)) as c:
        a.sessions[0].emit(RuntimeError("boom"))
        await c.next()
        assert a.open_sessions == 1
    assert a.open_sessions == 0


async def test_aclose_closes_every_provider() -> None:
    a, b = ScriptedProvider("a"), ScriptedProvider("b")
    await Client(a, b, a).aclose()
    assert a.closed
    assert b.closed


# --- through the bridge ----------------------------------------------------------------------


async def test_a_failover_through_the_bridge() -> None:
    a, b = ScriptedProvider("a"), ScriptedProvider("b")
    switched = anyio.Event()
    events: list[Event] = []

    def record(event: Event) -> None:
        events.append(event)
        if event.type is EventType.PROVIDER_SWITCHED:
            switched.set()

    async with RealtimeBridge.for_twilio(Client(a, b), CONFIG) as bridge:
        bridge.subscribe(record)
        audio = bridge.audio()
        first = a.sessions[0]
        await bridge.send_audio(FRAME)
        with anyio.fail_after(5):
            await first.wait_for_audio(160)
        first.emit(Transcript("Where is my order?", is_input=True, is_final=True))
        first.emit(AudioChunk(FRAME), SessionClosedError("socket closed"))
        with anyio.fail_after(5):
            assert await anext(audio) == AudioChunk(FRAME)
            assert await anext(audio) == AudioChunk(b"", is_final=True)
            await switched.wait()
        second = a.sessions[1]
        assert second.config.history == (ConversationItem("user", "Where is my order?"),)
        # The call goes on with the new session.
        await bridge.send_audio(FRAME)
        with anyio.fail_after(5):
            await second.wait_for_audio(160)
        second.emit(AudioChunk(FRAME, is_final=True))
        with anyio.fail_after(5):
            assert await anext(audio) == AudioChunk(FRAME, is_final=True)
        metrics = bridge.metrics()
    (event,) = [e for e in events if e.type is EventType.PROVIDER_SWITCHED]
    assert event.data == {
        "previous": "a",
        "current": "a",
        "reason": "session failed: SessionClosedError: socket closed",
    }
    assert metrics["provider_switches"] == 1
    assert metrics["errors"] == 0
    assert metrics["turns"] == 2
    assert b.sessions == []
