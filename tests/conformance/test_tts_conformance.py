"""The text-to-speech conformance suite's streamed-text tests, run against the scripted
synthesiser that takes streamed text (the local eSpeak NG one, which speaks a sentence at
a time, runs the suite in tests/local)."""

from __future__ import annotations

import pytest
from support.fake_pipeline import FakeStreamingTTS

from omnivoice.errors import AuthFailedError
from omnivoice.testing import TextToSpeechConformance, TTSDriver


class _FakeDriver(TTSDriver):
    def failing(self, problem: str) -> FakeStreamingTTS | None:
        if problem != "auth":
            return None
        return FakeStreamingTTS(connect_error=AuthFailedError("bad key"))


class TestFakeStreamingTTS(TextToSpeechConformance):
    @pytest.fixture
    def driver(self) -> TTSDriver:
        return _FakeDriver(FakeStreamingTTS())
