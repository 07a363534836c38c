"""One phone call through the gateway: the carrier's socket, the playout and the bridge.

Three tasks serve a call, all in one task group: the receiver turns the carrier's frames
into events (caller audio to the bridge, mark acknowledgements to the playout), the
forwarder moves the agent's audio from the bridge into the playout, and the pacer sends
it to the carrier in real time. Leaving the task group (the caller hung up, the stream
stopped, the provider ended) cancels them all.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import anyio
import attrs

from omnivoice.calls import CallInfo
from omnivoice.concurrency import fast_lock
from omnivoice.errors import ConnectionFailedError, OmnivoiceError
from omnivoice.gateway.bridge import RealtimeBridge
from omnivoice.gateway.playout import Playout, SendAudio, SendMark
from omnivoice.plugins import Registry
from omnivoice.realtime.provider import Provider
from omnivoice.realtime.types import ProcessConfig
from omnivoice.telemetry.context import call_scope, current_call
from omnivoice.telephony.events import CarrierError, Dtmf, Mark, Media, Start, Stop
from omnivoice.telephony.protocol import ProtocolError, StreamProtocol
from omnivoice.telephony.transport import Transport

__all__ = ["CallSettings", "CarrierSocket", "SessionFactory", "run_call"]

log = logging.getLogger(__name__)

_call_ids = itertools.count(1)
_CALL_ID_PREFIX = os.environ.get("OMNIVOICE_CALL_ID_PREFIX", "call-")
"""Workers of ``serve --workers`` set their own, so that call ids stay unique."""


class CarrierSocket(Protocol):
    """The carrier's media WebSocket, whatever server accepted it."""

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Frames until the carrier closes the socket."""
        ...

    async def send(self, text: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


SessionFactory = Callable[[Start], Awaitable[tuple[Provider, ProcessConfig]]]
"""Chooses the provider and its configuration for a call, once its stream has started."""


@attrs.frozen
class CallSettings:
    """How calls are paced and bridged."""

    lead_ms: int = 100
    """How far ahead of the carrier's playout agent audio may be sent."""
    mark_every: int = 5
    """Frames between marks (1 gives the playback position exactly, to the frame)."""
    codec: str = "polyphase"
    """The converter for audio that needs converting."""


@attrs.define
class CallStats:
    """What the gateway counts across calls."""

    active: int = 0
    total: int = 0
    protocol_errors: int = 0
    provider_failures: int = 0
    internal_errors: int = 0
    bad_frames: dict[str, int] = attrs.field(factory=dict)
    """Frames skipped or refused, by reason, over all calls."""

    def add_frames(self, protocol: StreamProtocol) -> None:
        for reason, count in protocol.stats.items():
            self.bad_frames[reason] = self.bad_frames.get(reason, 0) + count


class _Line:
    """The caller's line: the playout and the socket it is sent on. The bridge's Playback."""

    def __init__(
        self,
        socket: CarrierSocket,
        protocol: StreamProtocol,
        playout: Playout,
        clock: Callable[[], float],
    ) -> None:
        self.socket = socket
        self.protocol = protocol
        self.playout = playout
        self.clock = clock
        self.clears = 0
        self._send_lock = fast_lock()
        self._wake = anyio.Event()

    @property
    def busy(self) -> bool:
        return self.playout.busy

    def push(self, audio: bytes, final: bool) -> None:
        self.playout.push(audio, final=final)
        self._wake.set()

    async def clear(self) -> int:
        # Everything queued is dropped now, before the first await: no queued frame can
        # follow the clear.
        played = self.playout.clear(self.clock())
        self.clears += 1
        await self.send(self.protocol.clear())
        self._wake.set()
        return played.heard_ms if played is not None else 0

    async def send(self, text: str) -> None:
        async with self._send_lock:
            await self.socket.send(text)

    async def pace(self) -> None:
        """Send due frames and marks forever, sleeping until the next one is due."""
        while True:
            item = self.playout.poll(self.clock())
            if isinstance(item, SendAudio):
                await self.send(self.protocol.media(item.payload))
            elif isinstance(item, SendMark):
                await self.send(self.protocol.mark(item.name))
            else:
                self._wake = anyio.Event()
                with anyio.move_on_after(item if item != math.inf else None):
                    await self._wake.wait()


async def run_call(
    socket: CarrierSocket,
    transport: Transport,
    sessions: SessionFactory,
    *,
    registry: Registry,
    settings: CallSettings = CallSettings(),
    stats: CallStats | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Serve one call on an accepted media socket until it ends. Never raises for the
    call's own failures: they are logged, counted and end this call only."""
    stats = stats if stats is not None else CallStats()
    call = _Call(socket, transport, sessions, registry, settings, clock)
    with call_scope(call.id, transport.name):
        await _serve_call(call, socket, transport, registry, stats)


async def _serve_call(
    call: _Call, socket: CarrierSocket, transport: Transport, registry: Registry, stats: CallStats
) -> None:
    stats.active += 1
    stats.total += 1
    error: BaseException | None = None
    try:
        await call.serve()
        await _close(socket, 1000, "call ended")
    except Exception as raised:
        # Task groups wrap what their tasks raise: look at the failure itself.
        error = exc = _leaf(raised)
        if isinstance(exc, ProtocolError):
            stats.protocol_errors += 1
            log.warning("%s (%s): closing: %s", call.id, transport.name, exc)
            await _close(socket, exc.close_code, str(exc))
        elif isinstance(exc, ConnectionFailedError):
            stats.provider_failures += 1
            log.error("%s (%s): provider unavailable: %s", call.id, transport.name, exc)
            await _close(socket, 1011, f"provider unavailable: {type(exc).__name__}")
        elif isinstance(exc, OmnivoiceError):
            log.error("%s (%s): %s", call.id, transport.name, exc)
            await _close(socket, 1011, type(exc).__name__)
        else:
            stats.internal_errors += 1
            log.exception("%s (%s): unexpected failure", call.id, transport.name)
            await _close(socket, 1011, "internal error")
    except BaseException as raised:  # cancelled: the server is shutting down
        error = raised
        raise
    finally:
        stats.active -= 1
        stats.add_frames(call.protocol)
        registry.notify(
            "stream_ended",
            transport=transport.name,
            call=call.info,
            error=error,
            bad_frames=dict(call.protocol.stats),
        )


class _Call:
    """One call's state: what ``run_call`` serves."""

    def __init__(
        self,
        socket: CarrierSocket,
        transport: Transport,
        sessions: SessionFactory,
        registry: Registry,
        settings: CallSettings,
        clock: Callable[[], float],
    ) -> None:
        self.id = f"{_CALL_ID_PREFIX}{next(_call_ids)}"
        self.socket = socket
        self.transport = transport
        self.protocol = transport.new_protocol()
        self.sessions = sessions
        self.registry = registry
        self.settings = settings
        self.clock = clock
        self.frames = aiter(socket)
        self.info: CallInfo | None = None

    async def serve(self) -> None:
        try:
            start = await self._wait_for_start()
            if start is not None:  # else the carrier left before the stream started
                await self._converse(start)
        finally:
            close = getattr(self.frames, "aclose", None)  # a generator's cleanup runs now
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()

    async def _wait_for_start(self) -> Start | None:
        async for frame in self.frames:
            event = self.protocol.receive(frame)
            if isinstance(event, Start):
                return event
            if isinstance(event, Stop):
                return None
        return None

    async def _converse(self, start: Start) -> None:
        provider, config = await self.sessions(start)
        info = CallInfo(
            call_id=self.id,
            transport=self.transport.name,
            provider=provider.name,
            carrier_call_id=start.call_id,
            stream_id=start.stream_id,
            started_at=time.time(),
            parameters=dict(start.custom_parameters),
        )
        self.info = info
        scope = current_call()
        if scope is not None:  # every log record of the call carries its ids from here
            scope.bind(
                carrier_call_id=start.call_id, stream_id=start.stream_id, provider=provider.name
            )
        log.info(
            "%s: %s stream %s started, provider %s",
            *(self.id, self.transport.name, start.stream_id, provider.name),
        )
        self.registry.notify("call_started", call=info)
        settings = self.settings
        playout = Playout(
            start.media_format, lead_ms=settings.lead_ms, mark_every=settings.mark_every
        )
        line = _Line(self.socket, self.protocol, playout, self.clock)
        bridge = RealtimeBridge(
            provider,
            config,
            start.media_format,
            codec=settings.codec,
            playback=line,
            clock=self.clock,
        )
        bridge.subscribe(lambda event: self.registry.notify("call_event", call=info, event=event))
        try:
            async with bridge, anyio.create_task_group() as tasks:
                tasks.start_soon(line.pace)
                tasks.start_soon(self._forward, bridge, line, tasks.cancel_scope)
                await self._receive(bridge, line)
                tasks.cancel_scope.cancel()
        finally:
            self.registry.notify(
                "call_ended", call=info, transcript=bridge.transcript(), metrics=bridge.metrics()
            )
            log.info("%s: ended", self.id)

    @staticmethod
    async def _forward(bridge: RealtimeBridge, line: _Line, call: anyio.CancelScope) -> None:
        async for chunk in bridge.audio():
            line.push(chunk.audio, chunk.is_final)
        call.cancel()  # the provider's session is over: so is the call

    async def _receive(self, bridge: RealtimeBridge, line: _Line) -> None:
        async for frame in self.frames:
            event = self.protocol.receive(frame)
            if isinstance(event, Media):
                if event.track == "inbound":
                    await bridge.send_audio(event.payload)
            elif isinstance(event, Mark):
                played = line.playout.acknowledge(event.name, line.clock())
                if played is not None:
                    bridge.playback_finished(played.heard_ms)
            elif isinstance(event, Dtmf):
                bridge.dtmf(event.digit)
            elif isinstance(event, Stop):
                return
            elif isinstance(event, CarrierError):
                log.warning(
                    "%s: carrier error %s %s: %s", self.id, event.code, event.title, event.detail
                )


def _leaf(exc: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _close(socket: CarrierSocket, code: int, reason: str) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(2):
        try:
            await socket.close(code, reason[:120])
        except Exception:  # the socket may already be gone; nothing more to do
            log.debug("closing the carrier socket failed", exc_info=True)
