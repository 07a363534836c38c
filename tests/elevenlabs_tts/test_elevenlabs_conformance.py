"""The ElevenLabs provider passes the text-to-speech conformance suite against the fake,
over the WebSocket (streamed text and word timings) and over HTTP streaming."""

from __future__ import annotations

import pytest
from elevenlabs_tts.conftest import tts_for
from support.fake_elevenlabs import FakeElevenLabs

from omnivoice.testing import TextToSpeechConformance, TTSDriver
from omnivoice_elevenlabs_tts import ElevenLabsTTS


class _Driver(TTSDriver):
    def __init__(self, fake: FakeElevenLabs, **options: object) -> None:
        super().__init__(tts_for(fake, **options))
        self.fake = fake
        self.options = options

    def failing(self, problem: str) -> ElevenLabsTTS | None:
        if problem == "auth":
            return tts_for(self.fake, **{**self.options, "api_key": "wrong"})
        # Nothing listens there (the discard port, closed).
        return tts_for(self.fake, **{**self.options, "url": "http://127.0.0.1:9"})


class TestElevenLabsWebSocket(TextToSpeechConformance):
    @pytest.fixture
    def driver(self, fake: FakeElevenLabs) -> TTSDriver:
        return _Driver(fake)


class TestElevenLabsHTTP(TextToSpeechConformance):
    @pytest.fixture
    def driver(self, fake: FakeElevenLabs) -> TTSDriver:
        return _Driver(fake, transport="http", url=fake.http_url)
