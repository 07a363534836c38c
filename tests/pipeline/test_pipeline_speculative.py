"""The text pipeline with a recogniser that predicts the end of turns (EagerEndOfTurn,
TurnResumed), and asks to finalize when the pipeline ends a turn itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import numpy as np
import pytest
from support.fake_pipeline import FakeLLM, FakeSTT, FakeTTS, pipeline_call, words

from omnivoice.pipeline import EagerEndOfTurn, TextPipeline, ToolCall, TurnResumed
from omnivoice.realtime import AudioChunk, FunctionDeclaration, ProcessConfig, Transcript
from omnivoice.realtime.provider import SpeechStarted, SpeechStopped, Usage

pytestmark = pytest.mark.anyio

WORDS = "where is my order"


def pipeline(llm: FakeLLM, tts: FakeTTS, stt: FakeSTT, **options: Any) -> TextPipeline:
    options.setdefault("vad", False)
    return TextPipeline(stt, llm, tts, **options)


def users(llm: FakeLLM, index: int) -> list[str]:
    return [m.content for m in llm.requests[index].messages if m.role == "user"]


async def test_an_eager_end_of_turn_starts_the_answer_said_once_the_turn_ends() -> None:
    llm, tts, stt = FakeLLM("It shipped."), FakeTTS(), FakeSTT()
    async with pipeline_call(pipeline(llm, tts, stt)) as call:
        stt.stream.emit(SpeechStarted(), Transcript(WORDS, is_input=True), EagerEndOfTurn(WORDS))
        with anyio.fail_after(5):
            await llm.wait_for_requests(1)  # asked while the caller's turn is still open
            await anyio.wait_all_tasks_blocked()
        assert llm.streams[0].finished
        assert call.of_type(AudioChunk) == []  # but nothing is said of it yet
        assert tts.texts == []
        stt.stream.emit(Transcript(WORDS, is_input=True, is_final=True), SpeechStopped())
        usage = await call.wait_for(Usage)
    assert len(llm.requests) == 1  # the answer prepared is the one said
    assert users(llm, 0) == [WORDS]
    assert tts.texts == ["It shipped."]
    assert usage.details["pipeline"]["speculative"] is True
    kinds = [type(e) for e in call.events]
    assert kinds.index(SpeechStopped) < kinds.index(AudioChunk)


async def test_turn_resumed_drops_the_prepared_answer() -> None:
    llm, tts, stt = FakeLLM("Hello?", "Connecting you now."), FakeTTS(), FakeSTT()
    async with pipeline_call(pipeline(llm, tts, stt)) as call:
        stt.stream.emit(SpeechStarted(), EagerEndOfTurn("i want"))
        with anyio.fail_after(5):
            await llm.wait_for_requests(1)
        stt.stream.emit(TurnResumed())
        full = "i want to speak with an agent"
        stt.stream.emit(Transcript(full, is_input=True, is_final=True), SpeechStopped())
        usage = await call.wait_for(Usage)
        await llm.wait_for_requests(2)
    assert users(llm, 1) == [full]  # the dropped answer left nothing in the conversation
    assert tts.texts == ["Connecting you now."]
    assert usage.details["pipeline"]["speculative"] is False
    assert len(call.of_type(Usage)) == 1


async def test_a_turn_that_ends_with_other_words_is_answered_afresh() -> None:
    llm, tts, stt = FakeLLM("Yes?", "Right away."), FakeTTS(), FakeSTT()
    async with pipeline_call(pipeline(llm, tts, stt)) as call:
        stt.stream.emit(SpeechStarted(), EagerEndOfTurn("yes"))
        with anyio.fail_after(5):
            await llm.wait_for_requests(1)
        stt.stream.emit(Transcript("yes please", is_input=True, is_final=True), SpeechStopped())
        await call.wait_for(Usage)
    assert users(llm, 1) == ["yes please"]
    assert tts.texts == ["Right away."]


async def test_a_prepared_answer_runs_no_function_before_the_turn_ends() -> None:
    calls: list[str] = []

    def lookup(call_id: str, name: str, arguments: Mapping[str, Any]) -> dict[str, str]:
        calls.append(call_id)
        return {"status": "shipped"}

    llm = FakeLLM(
        [*words("Let me check. "), ToolCall("call_1", "lookup_order", "{}")], "It shipped."
    )
    tts, stt = FakeTTS(), FakeSTT()
    config = ProcessConfig(functions=[FunctionDeclaration("lookup_order")], on_function_call=lookup)
    async with pipeline_call(pipeline(llm, tts, stt), config) as call:
        stt.stream.emit(SpeechStarted(), EagerEndOfTurn(WORDS))
        with anyio.fail_after(5):
            await llm.wait_for_requests(1)
            await anyio.wait_all_tasks_blocked()
        assert llm.streams[0].finished  # it asked for the function
        assert calls == []
        stt.stream.emit(Transcript(WORDS, is_input=True, is_final=True), SpeechStopped())
        await call.wait_for(Usage)
    assert calls == ["call_1"]
    assert tts.texts == ["Let me check.", "It shipped."]


def tone(seconds: float) -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000
    return (6000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()


async def test_the_recogniser_is_asked_to_finalize_when_the_detector_ends_the_turn() -> None:
    llm, tts, stt = FakeLLM("Hello!"), FakeTTS(), FakeSTT()
    provider = pipeline(llm, tts, stt, vad=True, end_silence_ms=300)
    async with pipeline_call(provider) as call:
        await call.send(bytes(6400) + tone(0.5))
        await call.wait_for(SpeechStarted)
        assert stt.finalized == []
        await call.send(bytes(16000))
        await call.wait_for(SpeechStopped)
        assert stt.finalized == [stt.stream]
        stt.stream.emit(Transcript("hello", is_input=True, is_final=True))
        await call.wait_for(Usage)
    assert len(stt.finalized) == 1  # not when the recogniser's own endpointing ends a turn


async def test_the_recogniser_is_asked_to_finalize_at_the_turn_limit() -> None:
    llm, tts, stt = FakeLLM("Let me stop you there."), FakeTTS(), FakeSTT()
    provider = pipeline(llm, tts, stt, max_turn_s=0.05, final_timeout_s=0.05)
    async with pipeline_call(provider) as call:
        stt.stream.emit(SpeechStarted(), Transcript("la la", is_input=True))
        await call.wait_for(SpeechStopped)
        assert stt.finalized == [stt.stream]
        await call.wait_for(Usage)
