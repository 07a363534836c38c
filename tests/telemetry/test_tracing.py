"""OpenTelemetry spans of a call, recorded by the SDK's in-memory exporter.

A text-pipeline call (fake recogniser, model and synthesiser) through the call driver:
the caller asks, the model calls a function and then answers, and the caller speaks over
the answer.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from support.fake_pipeline import FakeLLM, FakeSTT, FakeTTS, Gate

from omnivoice.audio import TWILIO
from omnivoice.gateway.call import run_call
from omnivoice.pipeline import TextPipeline
from omnivoice.pipeline.contracts import TextDelta, ToolCall
from omnivoice.plugins import PLUGINS_ENV_VAR, Registry
from omnivoice.realtime import FunctionDeclaration, ProcessConfig, Transcript
from omnivoice.realtime.provider import Provider, SpeechStarted, SpeechStopped
from omnivoice.telemetry.tracing import use_tracer_provider
from omnivoice.telephony import Start
from omnivoice.telephony.carrier import CarrierSide
from omnivoice.testing import FakeCarrierSocket
from omnivoice_twilio import TwilioTransport

pytestmark = pytest.mark.anyio


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with use_tracer_provider(provider):
        yield exporter
    provider.shutdown()


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_call_gives_its_span_turn_spans_and_provider_spans(
    exporter: InMemorySpanExporter,
) -> None:
    stalled = Gate()
    stt = FakeSTT()
    llm = FakeLLM(
        [ToolCall("t1", "current_time", "{}")],
        [TextDelta("It is noon. "), TextDelta("Anything else?")],
    )
    tts = FakeTTS(gates={"Anything else?": stalled})
    pipeline = TextPipeline(stt, llm, tts, vad=False)
    config = ProcessConfig(
        functions=[FunctionDeclaration("current_time")],
        on_function_call=lambda call_id, name, arguments: {"time": "12:00"},
    )

    async def sessions(start: Start) -> tuple[Provider, ProcessConfig]:
        return pipeline, config

    registry = Registry.load(environ={PLUGINS_ENV_VAR: ""})  # the built-in telemetry only
    socket = FakeCarrierSocket()
    side = CarrierSide(TwilioTransport().new_protocol().wire, TWILIO)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(lambda: run_call(socket, TwilioTransport(), sessions, registry=registry))
        await socket.inbound_tx.send(side.connected())
        await socket.inbound_tx.send(side.start())
        await socket.inbound_tx.send(side.media(b"\xff" * 160, timestamp_ms=0))
        await anyio.wait_all_tasks_blocked()  # the session is open, the recogniser listens
        stt.stream.emit(
            SpeechStarted(),
            Transcript("what time is it", is_input=True, is_final=True),
            SpeechStopped(trailing_silence_ms=200),
        )
        await socket.wait_for(1, "media")  # the answer's first audio reached the line
        with anyio.fail_after(5):
            await stalled.reached.wait()
        stt.stream.emit(SpeechStarted())  # the caller speaks over the agent
        await socket.wait_for(1, "clear")
        await socket.inbound_tx.send(side.stop())

    spans = exporter.get_finished_spans()
    [call] = named(spans, "omnivoice.call")
    assert call.attributes is not None
    assert call.attributes["omnivoice.transport"] == "twilio"
    assert call.attributes["omnivoice.call.id"].startswith("call-")
    assert call.attributes["omnivoice.stream_id"]
    assert call.attributes["omnivoice.outcome"] == "completed"
    assert call.status.status_code is not StatusCode.ERROR
    trace_id = call.context.trace_id
    assert all(span.context.trace_id == trace_id for span in spans)

    turns = named(spans, "omnivoice.turn")
    assert [t.attributes["omnivoice.turn.index"] for t in turns if t.attributes] == [1, 2]
    first = next(t for t in turns if t.attributes and t.attributes["omnivoice.turn.index"] == 1)
    assert all(parent_of(t) == call.context.span_id for t in turns)
    assert first.attributes is not None
    assert first.attributes["omnivoice.response_latency_ms"] >= 0
    assert first.attributes["omnivoice.onset_ms"] >= 0
    assert first.attributes["omnivoice.turn.interrupted"] is True
    assert first.attributes["omnivoice.barge_in_latency_ms"] >= 0
    [barge_in] = [e for e in first.events if e.name == "barge_in"]
    assert barge_in.attributes is not None
    assert "omnivoice.barge_in_latency_ms" in barge_in.attributes

    [connect] = named(spans, "omnivoice.provider.connect")
    assert parent_of(connect) == call.context.span_id
    assert connect.start_time is not None
    assert connect.end_time is not None
    assert connect.start_time <= connect.end_time

    [tool] = named(spans, "omnivoice.tool_call")
    assert tool.attributes is not None
    assert tool.attributes["omnivoice.function"] == "current_time"
    assert tool.attributes["omnivoice.function.outcome"] == "ok"
    # Provider operations of the first turn are under it.
    for name in ("omnivoice.stt.segment", "omnivoice.llm.request", "omnivoice.tts.synthesis"):
        [span] = named(spans, name)
        assert parent_of(span) == first.context.span_id, name
    assert parent_of(tool) == first.context.span_id
    [stt_span] = named(spans, "omnivoice.stt.segment")
    [llm_span] = named(spans, "omnivoice.llm.request")
    [tts_span] = named(spans, "omnivoice.tts.synthesis")
    assert stt_span.attributes is not None
    assert stt_span.attributes["omnivoice.stt_final_ms"] >= 0
    assert llm_span.attributes is not None
    assert llm_span.attributes["omnivoice.llm_first_token_ms"] >= 0
    assert llm_span.attributes["omnivoice.function_rounds"] == 1
    assert tts_span.attributes is not None
    assert tts_span.attributes["omnivoice.tts_first_audio_ms"] >= 0
    assert call.start_time is not None
    assert call.end_time is not None
    for span in (llm_span, tts_span, tool):
        assert span.start_time is not None
        assert span.end_time is not None
        assert call.start_time <= span.start_time <= span.end_time <= call.end_time


async def test_without_an_sdk_nothing_is_recorded() -> None:
    from opentelemetry import trace

    from omnivoice.telemetry import tracing

    # The global provider is the API's default (no SDK configured): spans are no-ops.
    with tracing.operation("omnivoice.tool_call", **{"omnivoice.function": "f"}) as span:
        span.set("omnivoice.function.outcome", "ok")
    assert not trace.get_current_span().is_recording()
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)


async def test_function_calls_are_spans_and_counted_by_outcome(
    exporter: InMemorySpanExporter,
) -> None:
    from prometheus_client import REGISTRY

    from omnivoice.realtime.functions import run_function_call

    def count(outcome: str) -> float:
        return (
            REGISTRY.get_sample_value("omnivoice_function_calls_total", {"outcome": outcome}) or 0
        )

    def broken(call_id: str, name: str, arguments: object) -> None:
        raise RuntimeError("broken")

    async def slow(call_id: str, name: str, arguments: object) -> None:
        await anyio.sleep_forever()

    before = {o: count(o) for o in ("ok", "error", "timeout", "cancelled")}
    ok = ProcessConfig(on_function_call=lambda *args: {"ok": True})
    await run_function_call(ok, "1", "fine", "{}")
    await run_function_call(ProcessConfig(on_function_call=broken), "2", "broken", "{}")
    late = ProcessConfig(on_function_call=slow, function_timeout=0.01)
    await run_function_call(late, "3", "late", "{}")
    with anyio.move_on_after(0.01):  # the caller interrupted: the call is cancelled
        await run_function_call(ProcessConfig(on_function_call=slow), "4", "gone", "{}")

    assert {o: count(o) - before[o] for o in before} == {
        "ok": 1,
        "error": 1,
        "timeout": 1,
        "cancelled": 1,
    }
    spans = {
        s.attributes["omnivoice.function"]: s
        for s in named(exporter.get_finished_spans(), "omnivoice.tool_call")
        if s.attributes
    }
    assert spans["fine"].status.status_code is not StatusCode.ERROR
    for name in ("broken", "late", "gone"):
        assert spans[name].status.status_code is StatusCode.ERROR, name
