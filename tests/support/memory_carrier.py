"""A carrier's media socket in memory, for the call driver (``run_call``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio

from omnivoice.audio import TWILIO
from omnivoice.telephony.carrier import CarrierSide
from omnivoice_twilio import TwilioTransport


class CarrierSocket:
    """The media socket as the carrier holds it, in memory."""

    def __init__(self) -> None:
        self.side = CarrierSide(TwilioTransport().new_protocol().wire, TWILIO)
        self.inbound_tx, self.inbound_rx = anyio.create_memory_object_stream[str](200)
        self.sent: list[dict[str, Any]] = []
        self._changed = anyio.Event()

    async def __aiter__(self) -> AsyncIterator[str]:
        async with self.inbound_rx:
            async for frame in self.inbound_rx:
                yield frame

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))
        self._changed.set()
        self._changed = anyio.Event()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.inbound_tx.close()

    async def wait_for(self, event: str, count: int = 1) -> None:
        with anyio.fail_after(5):
            while sum(1 for m in self.sent if m["event"] == event) < count:
                await self._changed.wait()
