"""Errors against the fake server: each refusal raises its class on entry; errors during a
call are reported, and only those that end the session are fatal."""

from __future__ import annotations

import socket

import anyio
import pytest
from support.fake_openai import FakeOpenAI, open_session

from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    RateLimitedError,
)
from omnivoice.realtime.provider import ProviderError
from omnivoice.realtime.types import AudioChunk
from omnivoice_openai_realtime import OpenAIRealtimeError, Provider
from omnivoice_openai_realtime import provider as provider_module

pytestmark = pytest.mark.anyio


async def open_and_expect(
    provider: Provider, error: type[Exception]
) -> pytest.ExceptionInfo[Exception]:
    with anyio.fail_after(5), pytest.raises(error) as raised:
        async with open_session(provider):
            pass
    return raised


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, AuthFailedError),
        (403, AuthFailedError),
        (404, ModelUnavailableError),
        (429, RateLimitedError),
        (500, ConnectionFailedError),
    ],
)
async def test_a_refused_handshake_raises_its_class(
    fake: FakeOpenAI, status: int, expected: type[Exception]
) -> None:
    fake.reject(status, '{"error": {"message": "No.", "code": "x"}}', {"Retry-After": "7"})
    raised = await open_and_expect(Provider("test", url=fake.url), expected)
    assert type(raised.value) is expected
    assert f"HTTP {status}: No." in str(raised.value)
    if status == 429:
        assert "retry after 7 s" in str(raised.value)


async def test_a_bad_key_is_an_auth_failure(fake: FakeOpenAI) -> None:
    # As the server does it: the upgrade succeeds, an invalid_api_key error, close 3000.
    raised = await open_and_expect(Provider("wrong", url=fake.url), AuthFailedError)
    assert "Incorrect API key" in str(raised.value)


async def test_a_bad_key_refused_over_http_is_an_auth_failure() -> None:
    async with FakeOpenAI(auth_failure="http") as fake:
        raised = await open_and_expect(Provider("wrong", url=fake.url), AuthFailedError)
    assert "HTTP 401" in str(raised.value)


async def test_an_unknown_model_is_unavailable(fake: FakeOpenAI) -> None:
    await open_and_expect(Provider("test", url=fake.url, model="gpt-nope"), ModelUnavailableError)
    async with FakeOpenAI(unknown_model="event") as by_event:
        raised = await open_and_expect(
            Provider("test", url=by_event.url, model="gpt-nope"), ModelUnavailableError
        )
    assert "does not exist" in str(raised.value)


async def test_a_missing_key_fails_without_connecting(fake: FakeOpenAI) -> None:
    raised = await open_and_expect(Provider(url=fake.url), AuthFailedError)
    assert "OPENAI_API_KEY" in str(raised.value)
    assert fake.connections == []


async def test_network_failures_are_connection_failures() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/v1/realtime"
    raised = await open_and_expect(Provider("test", url=url), ConnectionFailedError)
    assert type(raised.value) is ConnectionFailedError
    assert "cannot reach" in str(raised.value)


async def test_a_refused_session_configuration_fails_the_start() -> None:
    async with FakeOpenAI(refuse_session="invalid_value") as fake:
        raised = await open_and_expect(Provider("test", url=fake.url), ConnectionFailedError)
    assert "refused the session" in str(raised.value)
    assert isinstance(raised.value.__cause__, OpenAIRealtimeError)
    assert raised.value.__cause__.code == "invalid_value"


async def test_a_silent_server_times_out() -> None:
    async with FakeOpenAI(silent=True) as fake:
        raised = await open_and_expect(
            Provider("test", url=fake.url, connect_timeout=0.2), ConnectionFailedError
        )
    assert "did not set the session up" in str(raised.value)


async def test_errors_during_a_call_are_reported_and_the_call_goes_on(fake: FakeOpenAI) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(5):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            await conn.error("invalid_value", "Invalid value: 'robot'.")
            await conn.error("rate_limit_exceeded", "Slow down.", type="rate_limit_exceeded")
            await conn.error("response_cancel_not_active")  # a benign race: not reported
            await conn.send(
                {
                    "type": "conversation.item.input_audio_transcription.failed",
                    "item_id": "item_u1",
                    "content_index": 0,
                    "error": {"type": "transcription_error", "code": "x", "message": "garbled"},
                }
            )
            await probe.wait_for(ProviderError, count=3)
            await conn.respond(audio=b"\x01" * 160)
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
    errors = probe.of_type(ProviderError)
    assert [type(e.error) for e in errors] == [
        OpenAIRealtimeError,
        RateLimitedError,
        OpenAIRealtimeError,
    ]
    assert [e.fatal for e in errors] == [False, False, False]
    assert errors[0].error.code == "invalid_value"  # type: ignore[attr-defined]
    assert "garbled" in str(errors[2].error)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("invalid_api_key", AuthFailedError),
        ("response_model_not_found", ModelUnavailableError),
        ("close_1008", ConnectionFailedError),
    ],
)
async def test_errors_that_end_the_session_are_fatal(
    fake: FakeOpenAI, script: str, expected: type[Exception]
) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(5):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            if script == "invalid_api_key":
                await conn.error("invalid_api_key", "Incorrect API key provided.")
                await conn.close(3000, "invalid_request_error.invalid_api_key")
            elif script == "response_model_not_found":
                await conn.fail_response("model_not_found", "The model does not exist.")
            else:
                await conn.close(1008, "policy violation")
            await probe.wait_ended()
    (error,) = probe.of_type(ProviderError)
    assert type(error.error) is expected
    assert error.fatal
    assert len(fake.connections) == 1  # not retried: it cannot help


async def test_a_normal_close_ends_the_session_quietly(fake: FakeOpenAI) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(5):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            await conn.close(1000)
            await probe.wait_ended()
    assert probe.events == []


async def test_a_dropped_connection_that_cannot_be_resumed_is_fatal(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provider_module, "_RECONNECT_DELAYS", (0.0, 0.0, 0.0))
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(5):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            fake.reject(503, "overloaded")
            await conn.abort()  # the client sees 1006
            await probe.wait_ended()
    (error,) = probe.of_type(ProviderError)
    assert type(error.error) is ConnectionFailedError
    assert error.fatal
    assert "HTTP 503" in str(error.error)
    assert fake.rejected == 3  # three attempts to resume
