"""The speech-to-text conformance suite, run against DeepgramSTT and the fake server (Nova
and Flux), with speech the fake recognises."""

from __future__ import annotations

import pytest
from support.fake_deepgram import FakeDeepgram, speech

from omnivoice.audio.format import AudioFormat
from omnivoice.pipeline import SpeechToText
from omnivoice.testing import SpeechToTextConformance, STTDriver, silence
from omnivoice_deepgram_stt import DeepgramSTT


class DeepgramDriver(STTDriver):
    def __init__(self, stt: DeepgramSTT, fake: FakeDeepgram, url: str) -> None:
        super().__init__(stt)
        self.fake = fake
        self.url = url

    def speech(self, audio_format: AudioFormat) -> tuple[bytes, str | None]:
        words = "where is my order"
        return speech(words, audio_format) + silence(1200, audio_format), words

    def failing(self, problem: str) -> SpeechToText | None:
        model = self.stt.model if isinstance(self.stt, DeepgramSTT) else "nova-3"
        if problem == "auth":
            return DeepgramSTT("not-the-key", model=model, url=self.url)
        # Nothing listens on port 1 of the loopback interface.
        return DeepgramSTT("test", model=model, url="ws://127.0.0.1:1/v1/listen")


class TestNovaConformance(SpeechToTextConformance):
    @pytest.fixture
    def driver(self, fake: FakeDeepgram) -> STTDriver:
        return DeepgramDriver(DeepgramSTT("test", url=fake.url), fake, fake.url)


class TestFluxConformance(SpeechToTextConformance):
    @pytest.fixture
    def driver(self, fake: FakeDeepgram) -> STTDriver:
        stt = DeepgramSTT("test", model="flux-general-en", url=fake.flux_url)
        return DeepgramDriver(stt, fake, fake.flux_url)
