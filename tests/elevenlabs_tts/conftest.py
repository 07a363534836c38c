"""Fixtures of the ElevenLabs tests: the fake server, checked for violations."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.fake_elevenlabs import API_KEY, VOICE, FakeElevenLabs

from omnivoice_elevenlabs_tts import ElevenLabsTTS


@pytest.fixture
async def fake() -> AsyncIterator[FakeElevenLabs]:
    """A fake ElevenLabs; the test fails if the client broke the protocol."""
    async with FakeElevenLabs() as server:
        yield server
    assert server.violations == []


def tts_for(fake: FakeElevenLabs, **options: object) -> ElevenLabsTTS:
    """The provider, pointed at the fake with a good key and a known voice."""
    options.setdefault("api_key", API_KEY)
    options.setdefault("voice_id", VOICE)
    options.setdefault("url", fake.api_url)
    return ElevenLabsTTS(**options)  # type: ignore[arg-type]
