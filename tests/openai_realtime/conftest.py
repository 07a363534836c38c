"""Fixtures of the OpenAI Realtime tests: the fake server, checked for violations."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.fake_openai import FakeOpenAI


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    """A fake OpenAI Realtime server; the test fails if the client broke the protocol."""
    async with FakeOpenAI() as server:
        yield server
    assert server.violations == []
