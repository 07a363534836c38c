"""The offline local providers pass the speech-to-text, LLM and TTS conformance suites."""

from __future__ import annotations

import functools

import pytest

from omnivoice.audio import AudioFormat, Converter, Encoding
from omnivoice.pipeline import Message
from omnivoice.testing import (
    LanguageModelConformance,
    LLMDriver,
    SpeechToTextConformance,
    STTDriver,
    TextToSpeechConformance,
    TTSDriver,
    silence,
)
from omnivoice_local import DEMO_CALLER_SCRIPT, LocalResponder, LocalSTT, LocalTTS, _espeak
from omnivoice_local.llm import CURRENT_TIME_TOOL

SENTENCE = "What time is it please"


@functools.cache
def spoken(text: str, fmt: AudioFormat) -> bytes:
    speech = b"".join(_espeak.engine().synthesize(text, voice="en-us", rate=175, pitch=50))
    return Converter().convert(speech, AudioFormat(Encoding.PCM16, _espeak.SAMPLE_RATE), fmt)


class _LocalSTTDriver(STTDriver):
    def speech(self, audio_format: AudioFormat) -> tuple[bytes, str | None]:
        audio = silence(300, audio_format) + spoken(SENTENCE, audio_format)
        return audio + silence(1200, audio_format), SENTENCE.lower()


@functools.cache
def _recogniser() -> LocalSTT:
    return LocalSTT(phrases=DEMO_CALLER_SCRIPT)  # loading the model takes a while: once


class TestLocalSTT(SpeechToTextConformance):
    @pytest.fixture
    def driver(self) -> STTDriver:
        return _LocalSTTDriver(_recogniser())


class _LocalLLMDriver(LLMDriver):
    """The demo responder answers its own intents: a time question calls its tool."""

    TOOL = CURRENT_TIME_TOOL

    def tool_conversation(self) -> list[Message]:
        return [Message("user", "What time is it please?")]


class TestLocalResponder(LanguageModelConformance):
    @pytest.fixture
    def driver(self) -> LLMDriver:
        return _LocalLLMDriver(LocalResponder())


class TestLocalTTS(TextToSpeechConformance):
    @pytest.fixture
    def driver(self) -> TTSDriver:
        return TTSDriver(LocalTTS())
