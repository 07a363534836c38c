"""The core's own realtime providers pass the realtime conformance suite: the echo
provider, the fallback client, and the text pipeline (over scripted STT, LLM and TTS,
speaking a sentence at a time or streaming the model's text)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from support.fake_pipeline import FakeLLM, FakeStreamingTTS, FakeSTT, FakeTTS, Gate, words

from omnivoice.default_plugins.echo import EchoProvider
from omnivoice.pipeline import Message, TextDelta, TextPipeline, ToolCall
from omnivoice.realtime import (
    Client,
    ConnectionFailedError,
    SpeechStarted,
    SpeechStopped,
    Transcript,
)
from omnivoice.testing import (
    RealtimeDriver,
    RealtimeProviderConformance,
    ScriptedProvider,
    SessionProbe,
)


class TestEchoProvider(RealtimeProviderConformance):
    @pytest.fixture
    def driver(self) -> RealtimeDriver:
        return RealtimeDriver(EchoProvider(pause_ms=300))


class _FallbackDriver(RealtimeDriver):
    def failing(self, problem: str) -> Client | None:
        if problem != "unreachable":
            return None
        down = ConnectionFailedError("the provider is down")
        return Client(
            ScriptedProvider("a", connect_error=down), ScriptedProvider("b", connect_error=down)
        )


class TestFallbackClient(RealtimeProviderConformance):
    @pytest.fixture
    def driver(self) -> RealtimeDriver:
        # A primary that cannot connect, and a working fallback behind it.
        down = ScriptedProvider("down", connect_error=ConnectionFailedError("down"))
        echo = EchoProvider(pause_ms=300)
        down.accepts = down.produces = echo.accepts
        return _FallbackDriver(Client(down, echo, name="resilient"))


class _PipelineDriver(RealtimeDriver):
    """Scripts the recogniser and the model of a text pipeline over fakes."""

    def __init__(self, tts: FakeTTS | None = None) -> None:
        self.stt = FakeSTT()
        self.llm = FakeLLM(then=self._reply)
        self.next: Sequence[object] | str = "Hello there. How can I help?"
        super().__init__(TextPipeline(self.stt, self.llm, tts or FakeTTS(), vad=False))

    def _reply(self, messages: Sequence[Message]) -> Sequence[object] | str:
        reply, self.next = self.next, "Hello there. How can I help?"
        return reply

    def _caller_says(self, text: str) -> None:
        self.stt.streams[-1].emit(
            SpeechStarted(),
            Transcript(text, is_input=True, is_final=True),
            SpeechStopped(trailing_silence_ms=200),
        )

    async def respond(self, probe: SessionProbe, *, hold: bool = False) -> None:
        if hold:  # the model stops after its first sentence, until interrupted
            self.next = [*words("One two three. "), Gate(), TextDelta("Four.")]
        self._caller_says("hello")

    async def barge_in(self, probe: SessionProbe) -> None:
        self.stt.streams[-1].emit(SpeechStarted())

    async def call_function(
        self, probe: SessionProbe, name: str, arguments: Mapping[str, Any]
    ) -> None:
        self.next = [ToolCall("call-1", name, json.dumps(dict(arguments)))]
        self._caller_says("where is my order")

    async def function_output(self, probe: SessionProbe, call_id: str) -> str:
        requests = await self.llm.wait_for_requests(2)
        (tool,) = [m for m in requests[1].messages if m.tool_call_id == call_id]
        return tool.content


class TestTextPipeline(RealtimeProviderConformance):
    @pytest.fixture
    def driver(self) -> RealtimeDriver:
        return _PipelineDriver()


class TestTextPipelineWithStreamedSpeech(RealtimeProviderConformance):
    @pytest.fixture
    def driver(self) -> RealtimeDriver:
        return _PipelineDriver(FakeStreamingTTS())
