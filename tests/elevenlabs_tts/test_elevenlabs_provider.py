"""The provider's configuration, its registration, and a text at a time: over the
``stream-input`` WebSocket and over HTTP streaming."""

from __future__ import annotations

import pytest
from elevenlabs_tts.conftest import tts_for
from support.fake_elevenlabs import API_KEY, FakeElevenLabs

from omnivoice.audio import TWILIO, AudioFormat, Encoding
from omnivoice.errors import AuthFailedError, ModelUnavailableError, RateLimitedError
from omnivoice.plugins import PLUGINS_ENV_VAR, Registry
from omnivoice.registration import Capability, Kind
from omnivoice_elevenlabs_tts import ElevenLabsTTS

pytestmark = pytest.mark.anyio

PCM16K = AudioFormat(Encoding.PCM16, 16000)


async def say(tts: ElevenLabsTTS, text: str, fmt: AudioFormat = TWILIO, **kw: str) -> bytes:
    return b"".join([piece async for piece in tts.synthesize(text, audio_format=fmt, **kw)])


def test_it_is_registered_as_elevenlabs() -> None:
    registry = Registry.load(environ={PLUGINS_ENV_VAR: "elevenlabs_tts"})
    registration = registry.get(Kind.TTS, "elevenlabs")
    assert registration.distribution == "omnivoice-elevenlabs-tts"
    assert registration.produces[0] == TWILIO
    assert registration.capabilities & Capability.INPUT_STREAMING
    assert registration.capabilities & Capability.WORD_TIMINGS
    assert set(registration.env_vars) == {
        "ELEVENLABS_API_KEY",
        "ELEVENLABS_API_URL",
        "ELEVENLABS_VOICE_ID",
    }


async def test_it_works_from_the_environment_alone(
    fake: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", API_KEY)
    monkeypatch.setenv("ELEVENLABS_API_URL", fake.api_url)
    monkeypatch.setenv("ELEVENLABS_VOICE_ID", "voice-2")
    tts = ElevenLabsTTS()
    assert (tts.url, tts.model, tts.transport) == (fake.api_url, "eleven_flash_v2_5", "websocket")
    audio = await say(tts, "Hello.")
    socket = fake.connections[0]
    assert (socket.voice_id, socket.headers["xi-api-key"]) == ("voice-2", API_KEY)
    assert audio == bytes(socket.context.audio)
    # The call's voice comes first.
    await say(tts, "Hello.", voice="voice-1")
    assert fake.connections[1].voice_id == "voice-1"


def test_bad_options_fail_at_once() -> None:
    with pytest.raises(ValueError, match="transport"):
        ElevenLabsTTS("k", transport="grpc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_contexts"):
        ElevenLabsTTS("k", max_contexts=6)
    with pytest.raises(ValueError, match="keepalive_s"):
        ElevenLabsTTS("k", keepalive_s=30, inactivity_timeout=20)
    with pytest.raises(ValueError, match="http"):
        ElevenLabsTTS("k", url="api.elevenlabs.io")
    with pytest.raises(ValueError, match="50-500"):
        ElevenLabsTTS("k", chunk_length_schedule=[5])


async def test_a_text_over_its_own_stream_input_socket(fake: FakeElevenLabs) -> None:
    tts = tts_for(fake, voice_settings={"stability": 0.5})
    audio = await say(tts, "Your order has shipped. It arrives Tuesday.", PCM16K)
    (socket,) = fake.connections
    assert not socket.multi
    assert socket.params["output_format"] == "pcm_16000"
    assert socket.messages == [
        {"text": " ", "voice_settings": {"stability": 0.5}},
        {"text": "Your order has shipped. It arrives Tuesday. ", "flush": True},
        {"text": ""},
    ]
    assert audio == bytes(socket.context.audio)
    assert socket.context.final_sent


async def test_http_streaming_for_servers_that_refuse_websockets(fake: FakeElevenLabs) -> None:
    tts = tts_for(fake, transport="http", url=fake.http_url, voice_settings={"speed": 1.1})
    assert tts.capabilities == Capability.STREAMING  # a sentence at a time, untimed
    audio = await say(tts, "Hello there.")
    (request,) = fake.http_requests
    assert request["method"] == "POST"
    assert request["path"] == "/v1/text-to-speech/voice-1/stream"
    assert request["params"] == {"output_format": "ulaw_8000"}
    assert request["headers"]["xi-api-key"] == API_KEY
    assert request["body"] == {
        "text": "Hello there.",
        "model_id": "eleven_flash_v2_5",
        "voice_settings": {"speed": 1.1},
    }
    assert audio == bytes(request["context"].audio)
    assert fake.connections == []
    await tts.aclose()
    await tts.aclose()


async def test_http_errors_are_typed(fake: FakeElevenLabs) -> None:
    with pytest.raises(AuthFailedError):
        await say(tts_for(fake, transport="http", url=fake.http_url, api_key="no"), "Hi.")
    with pytest.raises(ModelUnavailableError, match="'nobody'"):
        await say(tts_for(fake, transport="http", url=fake.http_url, voice_id="nobody"), "Hi.")
    with pytest.raises(ModelUnavailableError, match="'m9'"):
        await say(tts_for(fake, transport="http", url=fake.http_url, model="m9"), "Hi.")
    fake.reject(429, "slow down")
    with pytest.raises(RateLimitedError):
        await say(tts_for(fake, transport="http", url=fake.http_url), "Hi.")
