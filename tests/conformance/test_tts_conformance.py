"""The text-to-speech conformance suite, run against the local eSpeak NG synthesiser (which
speaks a sentence at a time) and the scripted one that takes streamed text."""

from __future__ import annotations

import pytest
from support.fake_pipeline import FakeStreamingTTS

from omnivoice.errors import AuthFailedError
from omnivoice.testing import TextToSpeechConformance, TTSDriver
from omnivoice_local import LocalTTS


class TestLocalTTS(TextToSpeechConformance):
    @pytest.fixture
    def driver(self) -> TTSDriver:
        return TTSDriver(LocalTTS())


class _FakeDriver(TTSDriver):
    def failing(self, problem: str) -> FakeStreamingTTS | None:
        if problem != "auth":
            return None
        return FakeStreamingTTS(connect_error=AuthFailedError("bad key"))


class TestFakeStreamingTTS(TextToSpeechConformance):
    @pytest.fixture
    def driver(self) -> TTSDriver:
        return _FakeDriver(FakeStreamingTTS())
