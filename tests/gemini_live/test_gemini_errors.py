"""How the service says no, as the contract's errors: on entry (the session does not open)
and in the middle of a call (the stream ends); the model capability checks; Vertex AI."""

from __future__ import annotations

import anyio
import pytest
from support.fake_gemini import BAD_KEY, VERTEX_PATH, FakeGemini, open_session

from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    RateLimitedError,
)
from omnivoice.realtime import AudioChunk, ProviderError, Transcript
from omnivoice_gemini_live import GeminiLiveError, Provider

pytestmark = pytest.mark.anyio


async def opening_fails(provider: Provider) -> Exception:
    with anyio.fail_after(10):
        try:
            async with open_session(provider):
                pass
        except Exception as exc:
            return exc
    raise AssertionError("the session opened")


async def test_a_bad_key_closed_with_1007_raises_auth_failed(fake: FakeGemini) -> None:
    error = await opening_fails(Provider("wrong", url=fake.url))
    assert type(error) is AuthFailedError
    assert "1007" in str(error)
    assert BAD_KEY in str(error)


async def test_a_bad_key_refused_on_the_upgrade_raises_auth_failed(fake: FakeGemini) -> None:
    fake.auth_failure = "http"
    error = await opening_fails(Provider("wrong", url=fake.url))
    assert type(error) is AuthFailedError
    assert "HTTP 401" in str(error)
    fake.reject(403, '{"error": {"code": 403, "message": "Permission denied."}}')
    assert type(await opening_fails(Provider("test", url=fake.url))) is AuthFailedError


async def test_an_unknown_model_raises_model_unavailable(fake: FakeGemini) -> None:
    error = await opening_fails(Provider("test", url=fake.url, model="gemini-0-live"))
    assert type(error) is ModelUnavailableError
    assert "1008" in str(error)
    # A wrong API version or path: the upgrade is answered 404.
    wrong_path = fake.base_url + "/ws/google.ai.generativelanguage.v9.GenerativeService.Bidi"
    assert type(await opening_fails(Provider("test", url=wrong_path))) is ModelUnavailableError


async def test_an_exhausted_quota_raises_rate_limited(fake: FakeGemini) -> None:
    fake.quota_exhausted = True
    error = await opening_fails(Provider("test", url=fake.url))
    assert type(error) is RateLimitedError
    assert "1011" in str(error)
    fake.quota_exhausted = False
    fake.reject(429, '{"error": {"code": 429, "message": "Too many requests."}}')
    assert type(await opening_fails(Provider("test", url=fake.url))) is RateLimitedError


async def test_other_failures_raise_connection_failed(fake: FakeGemini) -> None:
    fake.reject(503, "down for maintenance")
    error = await opening_fails(Provider("test", url=fake.url))
    assert type(error) is ConnectionFailedError
    assert "HTTP 503" in str(error)
    fake.reject(None)
    nobody = Provider("test", url="ws://127.0.0.1:9/ws", connect_timeout=2)
    assert type(await opening_fails(nobody)) is ConnectionFailedError
    fake.hold_setup = anyio.Event()  # the setup is never completed
    slow = Provider("test", url=fake.url, connect_timeout=0.5)
    error = await opening_fails(slow)
    assert type(error) is ConnectionFailedError
    assert "setup" in str(error)


async def test_no_key_raises_auth_failed_without_connecting(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    error = await opening_fails(Provider(url=fake.url))
    assert type(error) is AuthFailedError
    assert "GEMINI_API_KEY" in str(error)
    assert fake.requests == []


async def test_a_key_revoked_mid_call_ends_the_stream(fake: FakeGemini) -> None:
    with anyio.fail_after(10):
        async with open_session(Provider("test", url=fake.url)) as probe:
            conn = await fake.connection(0)
            await conn.respond(audio=b"\x01\x00" * 480, transcript="Hello.")
            await probe.wait_for(Transcript, lambda t: t.is_final)
            await conn.close(1007, "API key expired. Please renew the API key.")
            events = await probe.wait_ended()
    error = events[-1]
    assert isinstance(error, ProviderError)
    assert error.fatal
    assert isinstance(error.error, AuthFailedError)
    assert len(fake.connections) == 1  # another connection would fail the same way


async def test_quota_exhausted_mid_call_ends_the_stream(fake: FakeGemini) -> None:
    with anyio.fail_after(10):
        async with open_session(Provider("test", url=fake.url)) as probe:
            conn = await fake.connection(0)
            await conn.close(1011, "RESOURCE_EXHAUSTED: Quota exceeded for concurrent sessions.")
            events = await probe.wait_ended()
    assert isinstance(events[-1], ProviderError)
    assert isinstance(events[-1].error, RateLimitedError)


async def test_a_malformed_message_is_reported_and_the_call_goes_on(fake: FakeGemini) -> None:
    with anyio.fail_after(10):
        async with open_session(Provider("test", url=fake.url)) as probe:
            conn = await fake.connection(0)
            await conn.ws.send(b"{not json")
            await conn.send(
                {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "%%"}}]}}}
            )
            await conn.send({"brandNewField": {"x": 1}})
            await conn.respond(audio=b"\x01\x00" * 480, transcript="Still here.")
            await probe.wait_for(Transcript, lambda t: t.text == "Still here." and t.is_final)
    errors = probe.of_type(ProviderError)
    assert len(errors) == 2
    assert all(not e.fatal and isinstance(e.error, GeminiLiveError) for e in errors)
    stats = probe.session.stats  # type: ignore[attr-defined]
    assert stats["malformed_messages"] == 2
    assert stats["unknown_fields"] == {"brandNewField": 1}
    assert probe.of_type(AudioChunk)[-1].is_final


def test_what_a_model_does_not_take_is_refused_when_configured() -> None:
    with pytest.raises(ValueError, match="cannot be turned off"):
        Provider("test", model="gemini-3.8-live", proactive_audio=False)
    with pytest.raises(ValueError, match="no affective dialog"):
        Provider("test", model="gemini-3.8-live", affective_dialog=True)
    with pytest.raises(ValueError, match="takes no thinking settings"):
        Provider("test", model="gemini-3.8-live", thinking_budget=0)
    with pytest.raises(ValueError, match="takes thinking_level"):
        Provider("test", model="gemini-3.1-flash-live-preview", thinking_budget=0)
    with pytest.raises(ValueError, match="no proactive audio"):
        Provider("test", model="gemini-3.1-flash-live-preview", proactive_audio=True)
    with pytest.raises(ValueError, match="v1alpha"):
        Provider(
            "test", model="gemini-2.5-flash-native-audio-preview-12-2025", affective_dialog=True
        )
    with pytest.raises(ValueError, match="api_version"):
        Provider("test", api_version="v2")
    Provider("test", model="gemini-3.8-live", proactive_audio=True)  # always on: fine
    Provider("test", model="gemini-3.1-flash-live-preview", thinking_level="low")


async def test_v1alpha_features_of_the_native_audio_model(fake: FakeGemini) -> None:
    url = (
        fake.base_url
        + "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent"
    )
    provider = Provider(
        "test",
        url=url,
        model="gemini-2.5-flash-native-audio-preview-12-2025",
        api_version="v1alpha",
        proactive_audio=True,
        affective_dialog=True,
        thinking_budget=0,
    )
    with anyio.fail_after(10):
        async with open_session(provider):
            conn = await fake.connection(0)
    assert conn.setup["proactivity"] == {"proactiveAudio": True}
    assert conn.setup["generationConfig"]["enableAffectiveDialog"] is True
    assert conn.setup["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    # The endpoint follows the API version when no URL is given.
    assert ".v1alpha." in Provider("test", api_version="v1alpha").endpoint


async def test_vertex_ai_takes_a_bearer_token_and_the_full_model_name(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "acme-voice")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    monkeypatch.setenv("GEMINI_LIVE_ACCESS_TOKEN", "vertex-token")
    default = Provider()
    assert default.endpoint == (
        "wss://europe-west4-aiplatform.googleapis.com/ws/"
        "google.cloud.aiplatform.v1.LlmBidiService/BidiGenerateContent"
    )
    assert default.model == "gemini-live-2.5-flash-native-audio"
    provider = Provider(url=fake.vertex_url)
    with anyio.fail_after(10):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            await conn.respond(audio=b"\x01\x00" * 480, transcript="Hello from Vertex.")
            await probe.wait_for(Transcript, lambda t: t.is_final)
    assert conn.request.path == VERTEX_PATH
    assert conn.request.headers["authorization"] == "Bearer vertex-token"
    assert "x-goog-api-key" not in conn.request.headers
    assert conn.setup["model"] == (
        "projects/acme-voice/locations/europe-west4/publishers/google/models/"
        "gemini-live-2.5-flash-native-audio"
    )
    # A stale token is refused like a bad key.
    stale = Provider(url=fake.vertex_url, access_token="stale")
    assert type(await opening_fails(stale)) is AuthFailedError
    monkeypatch.delenv("GEMINI_LIVE_ACCESS_TOKEN")
    missing = await opening_fails(Provider(url=fake.vertex_url))
    assert type(missing) is AuthFailedError
    assert "access token" in str(missing)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    with pytest.raises(ValueError, match="project"):
        Provider()
    full = "projects/p/locations/global/publishers/google/models/gemini-3.8-live"
    assert Provider(model=full, location="global").endpoint.startswith(
        "wss://aiplatform.googleapis.com/ws/"
    )
