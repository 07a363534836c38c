"""Function calls against the fake server: run beside the call, answered together, cancelled
by an interruption unless they must complete."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.from_thread
import pytest
from support.fake_openai import FakeCall, FakeOpenAI, open_session

from omnivoice.realtime.provider import FunctionCall, SpeechStarted
from omnivoice.realtime.types import AudioChunk, FunctionDeclaration, ProcessConfig, Transcript
from omnivoice_openai_realtime import Provider

pytestmark = pytest.mark.anyio

WEATHER = FunctionDeclaration("get_weather", "Weather in a city")
TIME = FunctionDeclaration("get_time", "Time in a city")
ORDER = FunctionDeclaration("place_order", "Place an order", must_complete=True)
CANCELLED = {"error": "cancelled: the caller interrupted"}


async def test_parallel_calls_are_answered_then_one_response_create(fake: FakeOpenAI) -> None:
    weather_started, time_started = anyio.Event(), anyio.Event()

    async def handler(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
        # Each waits for the other to have started: they can only finish if run together.
        if name == "get_weather":
            weather_started.set()
            await time_started.wait()
            return {"city": arguments["city"], "sky": "clear"}
        time_started.set()
        await weather_started.wait()
        return {"city": arguments["city"], "time": "12:00"}

    config = ProcessConfig(functions=(WEATHER, TIME), on_function_call=handler)
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(5):
        async with open_session(provider, config) as probe:
            conn = await fake.connection(0)
            await conn.respond(
                calls=[
                    FakeCall("get_weather", {"city": "Paris"}, call_id="call_w"),
                    FakeCall("get_time", {"city": "Tokyo"}, call_id="call_t"),
                ]
            )
            await conn.wait_for("response.create")
            follow_up = await conn.respond(audio=b"\x11" * 800, transcript="Sunny in Paris.")
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
        await conn.wait_closed()
    assert probe.of_type(FunctionCall) == [
        FunctionCall("call_w", "get_weather", {"city": "Paris"}),
        FunctionCall("call_t", "get_time", {"city": "Tokyo"}),
    ]
    assert json.loads(conn.outputs["call_w"]) == {"city": "Paris", "sky": "clear"}
    assert json.loads(conn.outputs["call_t"]) == {"city": "Tokyo", "time": "12:00"}
    types = [e["type"] for e in conn.events]
    assert types.count("response.create") == 1
    last_output = max(i for i, t in enumerate(types) if t == "conversation.item.create")
    assert last_output < types.index("response.create")  # after every answer
    assert follow_up.status == "completed"


async def test_a_slow_handler_never_holds_the_call_up(fake: FakeOpenAI) -> None:
    release = anyio.Event()

    def lookup(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
        anyio.from_thread.run(release.wait)  # a plain handler blocks its worker thread
        return {"found": True}

    config = ProcessConfig(functions=(WEATHER,), on_function_call=lookup)
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(5):
        async with open_session(provider, config) as probe:
            conn = await fake.connection(0)
            await conn.respond(calls=[FakeCall("get_weather", {"city": "Oslo"})])
            await probe.wait_for(FunctionCall)
            # The handler is still running: events keep flowing both ways.
            await probe.send_audio(b"\x7f" * 160)
            await conn.wait_audio(160)
            await conn.transcribe("item_u1", "Weather in Oslo?")  # a late transcript
            await probe.wait_for(Transcript, lambda t: t.is_input and t.is_final)
            assert conn.outputs == {}
            release.set()
            await conn.wait_for("response.create")
    assert list(conn.outputs.values()) == ['{"found": true}']


async def test_failures_are_answered_to_the_model(fake: FakeOpenAI) -> None:
    async def broken(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
        raise RuntimeError("the database is down")

    config = ProcessConfig(functions=(WEATHER,), on_function_call=broken)
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(5):
        async with open_session(provider, config):
            conn = await fake.connection(0)
            await conn.respond(calls=[FakeCall("get_weather", '{"city": ')])
            await conn.wait_for("response.create")
    (output,) = conn.outputs.values()
    assert "not valid JSON" in json.loads(output)["error"]


@pytest.mark.parametrize("by", ["server", "client"])
async def test_an_interruption_cancels_calls_unless_they_must_complete(
    fake: FakeOpenAI, by: str
) -> None:
    release = anyio.Event()
    started: list[str] = []

    async def handler(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
        started.append(name)
        await release.wait()
        return {"done": name}

    config = ProcessConfig(functions=(WEATHER, ORDER), on_function_call=handler)
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(5):
        async with open_session(provider, config) as probe:
            conn = await fake.connection(0)
            await conn.respond(
                calls=[
                    FakeCall("get_weather", {"city": "Lima"}, call_id="call_w"),
                    FakeCall("place_order", {"item": "pizza"}, call_id="call_o"),
                ],
                audio=b"\x22" * 1600,
                transcript="Let me check.",
                hold=True,
            )
            await probe.wait_for(FunctionCall, count=2)
            await probe.wait_for(AudioChunk)
            if by == "server":
                await conn.speech_started()  # the server cancels the response
                await probe.wait_for(AudioChunk, lambda c: c.is_final)
            else:
                await conn.speech_started()
                await probe.wait_for(SpeechStarted)
                await probe.session.interrupt(120)
                await conn.wait_for("conversation.item.truncate")
            # The cancellable call is answered at once; the order keeps running.
            await conn.wait_for("conversation.item.create")
            assert json.loads(conn.outputs["call_w"]) == CANCELLED
            assert "call_o" not in conn.outputs
            release.set()
            await conn.wait_for("conversation.item.create", count=2)
        await conn.wait_closed()
    assert json.loads(conn.outputs["call_o"]) == {"done": "place_order"}
    # The caller is speaking: the answers go in the conversation, no response is forced.
    assert conn.of_type("response.create") == []


async def test_answers_that_arrive_during_another_response_get_their_own(
    fake: FakeOpenAI,
) -> None:
    release = anyio.Event()

    async def handler(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
        await release.wait()
        return "ok"

    config = ProcessConfig(functions=(WEATHER,), on_function_call=handler)
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(5):
        async with open_session(provider, config) as probe:
            conn = await fake.connection(0)
            await conn.respond(calls=[FakeCall("get_weather", {"city": "Nice"})])
            await probe.wait_for(FunctionCall)
            # A response the model started meanwhile (without the answer).
            meanwhile = await conn.respond(audio=b"\x33" * 800, transcript="One moment.", hold=True)
            await probe.wait_for(AudioChunk)
            release.set()
            await conn.wait_for("conversation.item.create")
            assert conn.of_type("response.create") == []  # not during a response
            await meanwhile.finish()
            await conn.wait_for("response.create")
        await conn.wait_closed()
    assert len(conn.of_type("response.create")) == 1
