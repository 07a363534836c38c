"""The Gemini Live provider passes the realtime conformance suite, against the fake service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from support.fake_gemini import FakeCall, FakeConnection, FakeGemini

from omnivoice.audio.format import GEMINI_OUTPUT
from omnivoice.testing import RealtimeDriver, RealtimeProviderConformance, SessionProbe, tone
from omnivoice_gemini_live import Provider


class GeminiDriver(RealtimeDriver):
    """Makes the fake's model answer, call functions and hear the caller."""

    def __init__(self, fake: FakeGemini) -> None:
        super().__init__(Provider("test", url=fake.url))
        self.fake = fake

    async def _conn(self) -> FakeConnection:
        await self.fake.wait_until(lambda: bool(self.fake.connections))
        return await self.fake.connection(len(self.fake.connections) - 1)

    async def respond(self, probe: SessionProbe, *, hold: bool = False) -> None:
        conn = await self._conn()
        await conn.input_transcription("Hello?")
        audio = tone(400, GEMINI_OUTPUT)
        await conn.respond(audio=audio, transcript="Hello, how can I help?", hold=hold)

    async def barge_in(self, probe: SessionProbe) -> None:
        await (await self._conn()).voice_activity(start=True)

    async def call_function(
        self, probe: SessionProbe, name: str, arguments: Mapping[str, Any]
    ) -> None:
        await (await self._conn()).tool_call(FakeCall(name, arguments))

    async def function_output(self, probe: SessionProbe, call_id: str) -> str:
        answer = await (await self._conn()).wait_answer(call_id)
        return json.dumps(answer["response"]["output"])

    def failing(self, problem: str) -> Provider | None:
        if problem == "auth":
            return Provider("wrong", url=self.fake.url)
        return Provider("test", url="ws://127.0.0.1:9/nothing-listens-here", connect_timeout=2)


class TestGeminiLive(RealtimeProviderConformance):
    @pytest.fixture
    async def driver(self) -> AsyncIterator[RealtimeDriver]:
        async with FakeGemini() as fake:
            yield GeminiDriver(fake)
        assert fake.violations == []
