"""A connection that dies silently (no close, no reset: the network just stops) is found by
its unanswered pings, cut, and the call resumed on a new one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute
from support.fake_gemini import API_PATH, FakeGemini, open_session

from omnivoice.realtime import ProviderError, ProviderSwitched, Transcript
from omnivoice_gemini_live import Provider

pytestmark = pytest.mark.anyio


class Relay:
    """A TCP relay to the fake service whose current connections can be made a black hole."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = ""
        self._frozen: set[int] = set()
        self._open: list[int] = []
        self._numbers = 0

    def freeze(self) -> None:
        """What is open now forwards nothing more, either way (new connections work)."""
        self._frozen.update(self._open)

    async def _pump(
        self, number: int, source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream
    ) -> None:
        try:
            while True:
                data = await source.receive()
                if number not in self._frozen:
                    await sink.send(data)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def _serve(self, client: anyio.abc.SocketStream) -> None:
        self._numbers += 1
        number = self._numbers
        self._open.append(number)
        upstream = await anyio.connect_tcp("127.0.0.1", self.port)
        async with client, upstream, anyio.create_task_group() as tasks:
            tasks.start_soon(self._pump, number, upstream, client)
            await self._pump(number, client, upstream)  # the client gone: so is this
            tasks.cancel_scope.cancel()
        self._open.remove(number)


@asynccontextmanager
async def relay_to(fake: FakeGemini) -> AsyncIterator[Relay]:
    port = int(fake.base_url.rsplit(":", 1)[1])
    relay = Relay(port)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tasks:
        local = listener.extra(SocketAttribute.local_port)
        relay.url = f"ws://127.0.0.1:{local}" + API_PATH.format(version="v1beta")
        tasks.start_soon(listener.serve, relay._serve)
        yield relay
        tasks.cancel_scope.cancel()


async def test_a_silent_connection_is_cut_by_its_pings_and_resumed(fake: FakeGemini) -> None:
    async with relay_to(fake) as relay:
        provider = Provider("test", url=relay.url, ping_interval=0.2, ping_timeout=0.5)
        with anyio.fail_after(15):
            async with open_session(provider) as probe:
                first = await fake.connection(0)
                await first.respond(audio=b"\x01\x00" * 480, transcript="Hello.")
                await probe.wait_for(Transcript, lambda t: t.is_final)
                relay.freeze()
                switched = await probe.wait_for(ProviderSwitched)
                second = await fake.connection(1)
                await second.respond(audio=b"\x02\x00" * 480, transcript="Still here.")
                await probe.wait_for(Transcript, lambda t: t.text == "Still here." and t.is_final)
    assert second.resumed
    assert "1006" in switched.reason
    assert probe.of_type(ProviderError) == []
