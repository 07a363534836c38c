"""The carrier's side of a call, in memory: a media socket, the line's playback, a clock.

:class:`FakeCarrierSocket` is what :func:`omnivoice.gateway.call.run_call` serves when no
network is wanted (feed it frames a :class:`~omnivoice.telephony.carrier.CarrierSide`
builds); :class:`FakePlayback` is the bridge's view of the carrier's playout;
:class:`FakeClock` is a clock only the test moves.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio

__all__ = ["FakeCarrierSocket", "FakeClock", "FakePlayback"]

_INBOUND_CAPACITY = 100


class FakeCarrierSocket:
    """The carrier's media WebSocket, in memory: a :class:`~omnivoice.gateway.call.CarrierSocket`.

    The test sends the carrier's frames with ``await socket.inbound_tx.send(frame)``;
    :attr:`sent` holds what the gateway sent, parsed; :attr:`closed` its close code and
    reason.
    """

    def __init__(self) -> None:
        self.inbound_tx, self.inbound_rx = anyio.create_memory_object_stream[str](_INBOUND_CAPACITY)
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self._changed = anyio.Event()

    async def __aiter__(self) -> AsyncIterator[str]:
        async with self.inbound_rx:
            async for frame in self.inbound_rx:
                yield frame

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))
        self._notify()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)
        self.inbound_tx.close()
        self._notify()

    async def wait_for(self, count: int, event: str, *, within: float = 10.0) -> None:
        """Until the gateway has sent ``count`` frames of ``event`` (``"media"``...), at
        most ``within`` seconds."""
        with anyio.fail_after(within):
            while sum(1 for m in self.sent if m.get("event") == event) < count:
                changed = self._changed
                await changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


class FakePlayback:
    """The carrier side of a bridge: busy while the test says so; a fixed heard position."""

    def __init__(self, heard_ms: int) -> None:
        self.busy = False
        self.heard_ms = heard_ms
        self.clears = 0

    async def clear(self) -> int:
        self.clears += 1
        self.busy = False
        return self.heard_ms


class FakeClock:
    """A clock (seconds) that only the test moves."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
