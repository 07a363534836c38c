"""Function calls against the fake service: run off the receive loop, answered under their
ids as objects, blocking and non-blocking, cancelled by the server or by an interruption."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from support.fake_gemini import FakeCall, FakeGemini, open_session

from omnivoice.realtime import (
    AudioChunk,
    FunctionCall,
    FunctionDeclaration,
    ProcessConfig,
    ProviderError,
)
from omnivoice_gemini_live import FunctionCallCancelledError, Provider

pytestmark = pytest.mark.anyio

LOOKUP = FunctionDeclaration(
    "lookup_order",
    "Find an order",
    {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]},
)
NOTIFY = FunctionDeclaration("notify", "Text the caller")
PLACE = FunctionDeclaration("place_order", "Place an order", must_complete=True)
NATIVE_25 = "gemini-2.5-flash-native-audio-preview-12-2025"


async def test_calls_are_run_and_answered_together_under_their_ids(fake: FakeGemini) -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []

    def handler(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
        calls.append((call_id, name, dict(arguments)))
        if arguments["order"] == "B-2":
            raise LookupError("no such order")
        return {"status": "shipped"}

    config = ProcessConfig(functions=[LOOKUP], on_function_call=handler)
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(10):
        async with open_session(provider, config) as probe:
            conn = await fake.connection(0)
            first, second = await conn.tool_call(
                FakeCall("lookup_order", {"order": "A-1"}),
                FakeCall("lookup_order", {"order": "B-2"}),
            )
            await probe.wait_for(FunctionCall, count=2)
            await conn.wait_answer(second)
    assert sorted(c[0] for c in calls) == sorted([first, second])
    assert [(e.call_id, e.name, dict(e.arguments)) for e in probe.of_type(FunctionCall)] == [
        (first, "lookup_order", {"order": "A-1"}),
        (second, "lookup_order", {"order": "B-2"}),
    ]
    (responses,) = conn.tool_responses  # one toolResponse for the whole toolCall
    by_id = {r["id"]: r for r in responses}
    assert by_id[first] == {
        "id": first,
        "name": "lookup_order",
        "response": {"output": {"status": "shipped"}},
    }
    assert by_id[second]["response"] == {"error": "LookupError: no such order"}


async def test_a_running_call_holds_nothing_up(fake: FakeGemini) -> None:
    release = anyio.Event()

    async def handler(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
        await release.wait()
        return {"status": "shipped"}

    config = ProcessConfig(functions=[LOOKUP], on_function_call=handler)
    with anyio.fail_after(10):
        async with open_session(Provider("test", url=fake.url), config) as probe:
            conn = await fake.connection(0)
            (call_id,) = await conn.tool_call(FakeCall("lookup_order", {"order": "A-1"}))
            await probe.wait_for(FunctionCall)
            # The model keeps talking ("let me check") and the caller's audio keeps going.
            await conn.respond(audio=b"\x01\x00" * 2400, transcript="Let me check.")
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
            await probe.send(b"\x02\x00" * 1600)
            await conn.wait_audio(3200)
            assert call_id not in conn.answers
            release.set()
            answer = await conn.wait_answer(call_id)
    assert answer["response"] == {"output": {"status": "shipped"}}


async def test_non_blocking_functions_are_declared_and_answered_with_their_scheduling(
    fake: FakeGemini,
) -> None:
    def handler(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
        return {"sent": True} if name == "notify" else {"status": "shipped"}

    provider = Provider("test", url=fake.url, model=NATIVE_25, non_blocking={"notify": "INTERRUPT"})
    config = ProcessConfig(functions=[LOOKUP, NOTIFY], on_function_call=handler)
    with anyio.fail_after(10):
        async with open_session(provider, config):
            conn = await fake.connection(0)
            blocking, non_blocking = await conn.tool_call(
                FakeCall("lookup_order", {"order": "A-1"}), FakeCall("notify")
            )
            await conn.wait_answer(blocking)
            await conn.wait_answer(non_blocking)
    declarations = {d["name"]: d for d in conn.setup["tools"][0]["functionDeclarations"]}
    assert declarations["notify"]["behavior"] == "NON_BLOCKING"
    assert "behavior" not in declarations["lookup_order"]  # blocking is this model's default
    # Each answered on its own: the non-blocking one as soon as it was ready.
    assert sorted(len(r) for r in conn.tool_responses) == [1, 1]
    assert conn.answers[non_blocking]["scheduling"] == "INTERRUPT"
    assert "scheduling" not in conn.answers[blocking]


def test_a_model_without_non_blocking_functions_refuses_them() -> None:
    with pytest.raises(ValueError, match="blocking functions only"):
        Provider("test", model="gemini-3.1-flash-live-preview", non_blocking={"notify": "SILENT"})
    with pytest.raises(ValueError, match="non_blocking"):
        Provider("test", model=NATIVE_25, non_blocking={"notify": "SOON"})


async def test_the_server_cancels_calls_that_need_not_complete(fake: FakeGemini) -> None:
    started = anyio.Event()
    finish_order = anyio.Event()
    cancelled: list[str] = []

    async def handler(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
        if name == "place_order":
            started.set()
            await finish_order.wait()
            return {"order": "placed"}
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.append(name)

    config = ProcessConfig(functions=[LOOKUP, PLACE], on_function_call=handler)
    with anyio.fail_after(10):
        async with open_session(Provider("test", url=fake.url), config) as probe:
            conn = await fake.connection(0)
            lookup, place = await conn.tool_call(
                FakeCall("lookup_order", {"order": "A-1"}), FakeCall("place_order")
            )
            await started.wait()
            await conn.interrupt()  # the caller spoke over it
            await conn.cancel_calls([lookup, place])
            report = await probe.wait_for(ProviderError)
            await fake.wait_until(lambda: cancelled == ["lookup_order"])
            finish_order.set()  # an order being placed is placed all the same
            await conn.wait_for(lambda: bool(conn.texts))
    assert not report.fatal
    assert isinstance(report.error, FunctionCallCancelledError)
    assert set(report.error.call_ids) == {lookup, place}
    assert report.error.kept == 1
    # Nothing is answered for calls the model cancelled; the one that ran on is told in
    # words, since the model no longer expects its toolResponse.
    assert conn.tool_responses == []
    assert conn.texts == ['[The function place_order returned: {"order": "placed"}]']


async def test_an_interruption_cancels_the_calls_of_its_turn_and_answers_them(
    fake: FakeGemini,
) -> None:
    cancelled = anyio.Event()

    async def handler(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    config = ProcessConfig(functions=[LOOKUP], on_function_call=handler)
    with anyio.fail_after(10):
        async with open_session(Provider("test", url=fake.url), config) as probe:
            conn = await fake.connection(0)
            await conn.respond(audio=b"\x01\x00" * 4800, transcript="Let me check", hold=True)
            (call_id,) = await conn.tool_call(FakeCall("lookup_order", {"order": "A-1"}))
            await probe.wait_for(FunctionCall)
            await probe.interrupt(heard_ms=80)  # the bridge's barge-in, the model unaware
            await cancelled.wait()
            answer = await conn.wait_answer(call_id)
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
    # The model waits for an answer it did not cancel: it is told.
    assert answer["response"] == {"error": "cancelled: the caller interrupted"}


async def test_too_many_calls_at_once_are_refused_with_an_answer(fake: FakeGemini) -> None:
    release = anyio.Event()

    async def handler(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
        await release.wait()
        return "done"

    provider = Provider("test", url=fake.url, max_function_calls=1)
    config = ProcessConfig(functions=[LOOKUP], on_function_call=handler)
    with anyio.fail_after(10):
        async with open_session(provider, config) as probe:
            conn = await fake.connection(0)
            (first,) = await conn.tool_call(FakeCall("lookup_order", {"order": "1"}))
            await probe.wait_for(FunctionCall)
            (second,) = await conn.tool_call(FakeCall("lookup_order", {"order": "2"}))
            refused = await conn.wait_answer(second)
            assert first not in conn.answers
            release.set()
            await conn.wait_answer(first)
    assert refused["response"] == {"error": "refused: too many function calls are running"}
    assert probe.session.stats["refused_function_calls"] == 1  # type: ignore[attr-defined]
    (report,) = probe.of_type(ProviderError)  # counted and reported
    assert not report.fatal
    assert "refused" in str(report.error)
