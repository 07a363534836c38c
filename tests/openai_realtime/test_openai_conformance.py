"""The OpenAI Realtime provider passes the realtime conformance suite, against the fake."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from support.fake_openai import FakeCall, FakeConnection, FakeOpenAI

from omnivoice.testing import RealtimeDriver, RealtimeProviderConformance, SessionProbe
from omnivoice_openai_realtime import OpenAIRealtimeProvider

ANSWER = bytes(range(1, 128)) * 40  # 635 ms of mu-law, never silence


class _OpenAIDriver(RealtimeDriver):
    def __init__(self, fake: FakeOpenAI) -> None:
        super().__init__(OpenAIRealtimeProvider("test", url=fake.url))
        self.fake = fake

    async def _connection(self) -> FakeConnection:
        return await self.fake.connection(len(self.fake.connections) - 1)

    async def respond(self, probe: SessionProbe, *, hold: bool = False) -> None:
        conn = await self._connection()
        await conn.user_turn("Are you open today?")
        await conn.respond(audio=ANSWER, transcript="Yes, until six.", hold=hold)

    async def barge_in(self, probe: SessionProbe) -> None:
        conn = await self._connection()
        await conn.speech_started()

    async def call_function(
        self, probe: SessionProbe, name: str, arguments: Mapping[str, Any]
    ) -> None:
        conn = await self._connection()
        await conn.user_turn("Where is my order?")
        await conn.respond(calls=[FakeCall(name, dict(arguments), call_id="call_1")])

    async def function_output(self, probe: SessionProbe, call_id: str) -> str:
        conn = await self._connection()
        await self.fake.wait_until(lambda: call_id in conn.outputs)
        return str(conn.outputs[call_id])

    def failing(self, problem: str) -> OpenAIRealtimeProvider | None:
        if problem == "auth":
            return OpenAIRealtimeProvider("wrong-key", url=self.fake.url)
        return OpenAIRealtimeProvider("test", url="ws://127.0.0.1:9/v1/realtime")


class TestOpenAIRealtime(RealtimeProviderConformance):
    @pytest.fixture
    def driver(self, fake: FakeOpenAI) -> RealtimeDriver:
        return _OpenAIDriver(fake)
