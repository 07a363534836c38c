"""The plugin registers the provider as ``gemini-live`` (alias ``gemini``), and the
registry builds it with the options a gateway configuration gives."""

from __future__ import annotations

import pytest

from omnivoice.plugins import PLUGINS_ENV_VAR, Registry
from omnivoice.realtime import Capability
from omnivoice.registration import Kind
from omnivoice_gemini_live import MODELS, GeminiLiveProvider, Provider, model_info


def test_it_registers_under_its_name_and_alias() -> None:
    registry = Registry.load(environ={PLUGINS_ENV_VAR: "gemini_live"})
    registration = registry.get(Kind.REALTIME, "gemini")
    assert registration is registry.get(Kind.REALTIME, "gemini-live")
    assert registration.name == "gemini-live"
    assert registration.distribution == "omnivoice-gemini-live"
    assert {"GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_LIVE_URL", "GEMINI_LIVE_MODEL"} <= set(
        registration.env_vars
    )
    caps = registration.capabilities
    for flag in (
        Capability.FUNCTION_CALLING,
        Capability.TRANSCRIPTS,
        Capability.SPEECH_EVENTS,
        Capability.INTERRUPTION,
        Capability.HISTORY,
    ):
        assert caps & flag
    # Its own context keeps what it generated: only the conversation log is cut.
    assert not caps & Capability.TRUNCATION


def test_the_registry_builds_it_with_a_configurations_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "from-env")
    registry = Registry.load(environ={PLUGINS_ENV_VAR: "gemini_live"})
    provider = registry.create(Kind.REALTIME, "gemini", voice="Aoede", model="gemini-3.8-live")
    assert isinstance(provider, GeminiLiveProvider)
    assert Provider is GeminiLiveProvider
    assert provider.options.voice == "Aoede"
    assert provider.options.api_key == "from-env"
    assert provider.endpoint == (
        "wss://generativelanguage.googleapis.com/ws/"
        "google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    )


def test_the_model_table() -> None:
    assert model_info("models/gemini-3.8-live") is MODELS["gemini-3.8-live"]
    assert model_info("gemini-3.8-live").non_blocking_default
    assert not model_info("gemini-3.1-flash-live-preview").non_blocking_tools
    vertex = "projects/p/locations/l/publishers/google/models/gemini-live-2.5-flash-native-audio"
    assert model_info(vertex).vertex
    unknown = model_info("gemini-9-live")
    assert unknown.name == "gemini-9-live"
    assert unknown.non_blocking_tools
    assert not unknown.non_blocking_default  # nothing implicit is sent
