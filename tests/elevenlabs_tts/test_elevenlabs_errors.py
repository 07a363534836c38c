"""What the ElevenLabs provider raises, and when: refused keys, voices, models, quotas,
limits and unreachable servers, each as the contract's typed error."""

from __future__ import annotations

import anyio
import pytest
from elevenlabs_tts.conftest import tts_for
from elevenlabs_tts.test_elevenlabs_stream import by_words, speak
from support.fake_elevenlabs import FakeElevenLabs

from omnivoice.audio import TWILIO
from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    RateLimitedError,
)
from omnivoice_elevenlabs_tts import ElevenLabsTTS

pytestmark = pytest.mark.anyio


async def test_a_key_refused_with_1008_fails_the_first_response(fake: FakeElevenLabs) -> None:
    tts = tts_for(fake, api_key="wrong")
    async with tts.open_stream(audio_format=TWILIO) as stream:
        with pytest.raises(AuthFailedError, match="invalid_api_key"):
            await speak(stream, by_words("Hello."))
        # And every later one: no new socket mends a key.
        with pytest.raises(AuthFailedError):
            await speak(stream, by_words("Hello?"))
    assert [s.error for s in fake.connections] == ["invalid_api_key"]


@pytest.mark.parametrize("status", [401, 403])
async def test_a_key_refused_at_the_handshake_fails_on_entry(
    fake: FakeElevenLabs, status: int
) -> None:
    fake.bad_key_status = status
    with pytest.raises(AuthFailedError, match=f"HTTP {status}"):
        async with tts_for(fake, api_key="wrong").open_stream(audio_format=TWILIO):
            pass


async def test_no_key_is_refused_before_connecting(fake: FakeElevenLabs) -> None:
    tts = ElevenLabsTTS(voice_id="voice-1", url=fake.api_url)
    with pytest.raises(AuthFailedError, match="ELEVENLABS_API_KEY"):
        async with tts.open_stream(audio_format=TWILIO):
            pass
    with pytest.raises(AuthFailedError):
        await anext(aiter(tts.synthesize("Hi.", audio_format=TWILIO)))
    assert fake.requests == []


async def test_no_voice_is_a_configuration_error(fake: FakeElevenLabs) -> None:
    tts = tts_for(fake, voice_id=None)
    with pytest.raises(ModelUnavailableError, match="ELEVENLABS_VOICE_ID"):
        async with tts.open_stream(audio_format=TWILIO):
            pass


async def test_an_unknown_voice_or_model_is_named(fake: FakeElevenLabs) -> None:
    for options, named in [({"voice_id": "nobody"}, "'nobody'"), ({"model": "m9"}, "'m9'")]:
        tts = tts_for(fake, **options)
        with pytest.raises(ModelUnavailableError, match=named):
            async with tts.open_stream(audio_format=TWILIO) as stream:
                await speak(stream, by_words("Hello."))
        with pytest.raises(ModelUnavailableError, match=named):
            await anext(aiter(tts.synthesize("Hello.", audio_format=TWILIO)))


async def test_a_rate_limit_at_the_handshake_fails_on_entry(fake: FakeElevenLabs) -> None:
    fake.reject(429, '{"detail": {"status": "too_many_concurrent_requests"}}', {"Retry-After": "3"})
    with pytest.raises(RateLimitedError, match="retry after 3"):
        async with tts_for(fake).open_stream(audio_format=TWILIO):
            pass


async def test_an_exhausted_quota_fails_the_response(fake: FakeElevenLabs) -> None:
    fake.quota_chars = 10
    tts = tts_for(fake, reconnect_delays=[0.0])
    async with tts.open_stream(audio_format=TWILIO) as stream:
        with pytest.raises(RateLimitedError, match="quota"):
            await speak(stream, by_words("This is far more than ten characters."))
    assert fake.connections[0].error == "quota_exceeded"


async def test_an_unreachable_or_failing_server_is_a_connection_failure(
    fake: FakeElevenLabs,
) -> None:
    with pytest.raises(ConnectionFailedError, match="cannot reach"):
        async with tts_for(fake, url="http://127.0.0.1:9").open_stream(audio_format=TWILIO):
            pass
    fake.reject(500, "internal error")
    with pytest.raises(ConnectionFailedError, match="HTTP 500"):
        async with tts_for(fake).open_stream(audio_format=TWILIO):
            pass


async def test_a_server_gone_for_good_fails_the_response_and_a_later_one_tries_again(
    fake: FakeElevenLabs,
) -> None:
    tts = tts_for(fake, reconnect_delays=[0.0])
    async with tts.open_stream(audio_format=TWILIO) as stream:
        await fake.connection(0)
        fake.reject(503, "down")
        await fake.cut(0)
        with anyio.fail_after(10):
            await fake.wait_until(lambda: fake.rejected >= 1)  # its attempt to reconnect fails
        with pytest.raises(ConnectionFailedError, match="503"):
            await speak(stream, by_words("Hello."))
        fake.reject(None)  # it is back
        audio, _ = await speak(stream, by_words("Hello again."))
    assert audio == bytes(fake.connections[-1].context.audio)
