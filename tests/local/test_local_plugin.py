"""omnivoice-local as installed: its entry point registers the three ``local`` providers."""

from __future__ import annotations

from omnivoice.audio import AudioFormat, Encoding
from omnivoice.pipeline import LanguageModel, SpeechToText, TextToSpeech
from omnivoice.plugins import PLUGINS_ENV_VAR, Registry
from omnivoice.registration import Capability, Kind
from omnivoice_local import DEMO_CALLER_SCRIPT, LocalResponder, LocalSTT, LocalTTS


def registry() -> Registry:
    return Registry.load(environ={PLUGINS_ENV_VAR: "local"})


def test_the_three_providers_are_registered_as_local() -> None:
    loaded = registry()
    stt = loaded.get(Kind.STT, "local")
    llm = loaded.get(Kind.LLM, "local")
    tts = loaded.get(Kind.TTS, "local")
    for registration in (stt, llm, tts):
        assert registration.distribution == "omnivoice-local"
        assert registration.env_vars == ()  # no key, no endpoint
        assert registration.description
    assert stt.accepts == (AudioFormat(Encoding.PCM16, 16000),)
    assert tts.produces == (AudioFormat(Encoding.PCM16, 22050),)
    assert Capability.FUNCTION_CALLING in llm.capabilities
    assert "not a language model" in llm.description


def test_the_factories_take_the_documented_options() -> None:
    loaded = registry()
    stt = loaded.create(Kind.STT, "local", phrases=DEMO_CALLER_SCRIPT, endpoint_window_ms=400)
    llm = loaded.create(Kind.LLM, "local")
    tts = loaded.create(Kind.TTS, "local", voice="en", rate=160, pitch=40)
    assert isinstance(stt, LocalSTT)
    assert isinstance(stt, SpeechToText)
    assert isinstance(llm, LocalResponder)
    assert isinstance(llm, LanguageModel)
    assert isinstance(tts, LocalTTS)
    assert isinstance(tts, TextToSpeech)
    assert (stt.name, llm.name, tts.name) == ("local", "local", "local")
    assert stt.grammar is not None
    assert "what time is it please" in stt.grammar
    assert (tts.voice, tts.rate, tts.pitch) == ("en", 160, 40)
