"""Fixtures of the Deepgram tests: the fake server, checked for violations."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.fake_deepgram import FakeDeepgram


@pytest.fixture
async def fake() -> AsyncIterator[FakeDeepgram]:
    """A fake Deepgram server; the test fails if the client broke the protocol."""
    async with FakeDeepgram() as server:
        yield server
    assert server.violations == []
