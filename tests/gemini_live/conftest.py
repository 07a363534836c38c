"""Fixtures of the Gemini Live tests: the fake service, checked for violations."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.fake_gemini import FakeGemini


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    """A fake Gemini Live service; the test fails if the client broke the protocol."""
    async with FakeGemini() as server:
        yield server
    assert server.violations == []
