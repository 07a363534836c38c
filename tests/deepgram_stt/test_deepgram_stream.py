"""A Deepgram recognition stream against the fake server: what goes on the wire, what comes
back as events, keeping the socket alive, the end of the stream, and failures."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import anyio
import pytest
from support.fake_deepgram import FakeDeepgram, listening, speech

from omnivoice.audio.format import TWILIO, AudioFormat, Encoding
from omnivoice.errors import (
    AuthFailedError,
    ConfigurationError,
    ConnectionFailedError,
    RateLimitedError,
    UnsupportedFormatError,
)
from omnivoice.net import ConnectionClosed, connect
from omnivoice.pipeline import EagerEndOfTurn, TurnResumed
from omnivoice.realtime import SpeechStarted, SpeechStopped, Transcript
from omnivoice.registration import Capability
from omnivoice.testing import silence
from omnivoice_deepgram_stt import DeepgramSTT

pytestmark = pytest.mark.anyio

PCM16K = AudioFormat(Encoding.PCM16, 16000)
WORDS = "where is my order"


async def test_the_callers_mulaw_goes_unchanged_with_the_documented_parameters(
    fake: FakeDeepgram,
) -> None:
    audio = silence(200, TWILIO) + speech(WORDS, TWILIO) + silence(1200, TWILIO)
    async with listening(DeepgramSTT("test", url=fake.url)) as run:
        await run.feed(audio)
        run.tx.close()  # the caller's audio is over: CloseStream, last results, Metadata
        with anyio.fail_after(10):
            await run.ended.wait()
    conn = fake.connections[0]
    assert conn.request.headers["authorization"] == "Token test"
    assert conn.params == {
        "model": "nova-3",
        "encoding": "mulaw",
        "sample_rate": "8000",
        "channels": "1",
        "interim_results": "true",
        "endpointing": "300",
        "utterance_end_ms": "1000",
        "vad_events": "true",
        "smart_format": "false",
        "punctuate": "true",
    }
    assert bytes(conn.audio) == audio  # exactly the caller's bytes, nothing added
    assert conn.of_type("CloseStream")
    assert conn.sent[-1]["type"] == "Metadata"
    assert conn.close_code == 1000
    assert run.error is None
    assert run.finals() == [WORDS]
    assert isinstance(run.events[0], SpeechStarted)
    assert isinstance(run.events[-1], SpeechStopped)
    partials = [e.text for e in run.events if isinstance(e, Transcript) and not e.is_final]
    assert partials
    assert all(WORDS.startswith(p) for p in partials)


async def test_options_become_query_parameters_as_deepgram_spells_them(
    fake: FakeDeepgram,
) -> None:
    stt = DeepgramSTT(
        "test",
        url=fake.url,
        language="en-US",
        endpointing_ms=None,
        utterance_end_ms=None,
        vad_events=False,
        smart_format=True,
        keyterms=["Acme", "order number"],
        params={"numerals": True, "tag": ["support", "eu"]},
    )
    assert not stt.capabilities & Capability.SPEECH_EVENTS  # no endpointing of its own
    async with listening(stt, PCM16K) as run:
        await run.feed(speech("hello", PCM16K), fmt=PCM16K)
        conn = await fake.connection(0)
        await fake.wait_until(lambda: len(conn.audio) > 0)
    pairs = parse_qsl(conn.request.query)
    assert ("keyterm", "Acme") in pairs
    assert ("keyterm", "order number") in pairs
    assert ("tag", "support") in pairs
    assert ("tag", "eu") in pairs
    params = conn.params
    assert (params["encoding"], params["sample_rate"]) == ("linear16", "16000")
    assert (params["endpointing"], params["vad_events"], params["smart_format"]) == (
        "false",
        "false",
        "true",
    )
    assert params["language"] == "en-US"
    assert params["numerals"] == "true"
    assert "utterance_end_ms" not in params


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, AuthFailedError), (403, AuthFailedError), (429, RateLimitedError), (503, None)],
)
async def test_refused_upgrades_raise_typed_errors(
    fake: FakeDeepgram, status: int, expected: type[Exception] | None
) -> None:
    fake.reject(status, "refused", {"dg-error": "Refused for the test.", "dg-request-id": "r-1"})
    with pytest.raises(ConnectionFailedError) as raised:
        async with listening(DeepgramSTT("test", url=fake.url)):
            pass
    if expected is not None:
        assert isinstance(raised.value, expected)
    else:
        assert type(raised.value) is ConnectionFailedError
    assert "Refused for the test." in str(raised.value)
    assert "r-1" in str(raised.value)


async def test_a_wrong_key_is_refused_before_any_audio(fake: FakeDeepgram) -> None:
    with pytest.raises(AuthFailedError, match="HTTP 401"):
        async with listening(DeepgramSTT("wrong", url=fake.url)):
            pass
    with pytest.raises(AuthFailedError, match="DEEPGRAM_API_KEY"):
        async with listening(DeepgramSTT("", url=fake.url)):
            pass
    assert fake.rejected == 0
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"diarize": "maybe"}, "diarize"), ({"frobnicate": True}, "frobnicate")],
)
async def test_bad_parameters_name_the_one_deepgram_refused(
    fake: FakeDeepgram, params: dict[str, str | bool], parameter: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        async with listening(DeepgramSTT("test", url=fake.url, params=params)):
            pass
    assert raised.value.parameter == parameter
    assert parameter in str(raised.value)


async def test_an_undeclared_format_or_bad_options_are_refused_at_once() -> None:
    stt = DeepgramSTT("test", url="ws://127.0.0.1:1/v1/listen")
    with pytest.raises(UnsupportedFormatError):
        async with listening(stt, AudioFormat(Encoding.PCM16, 11025)):
            pass
    with pytest.raises(ValueError, match="interim_results"):
        DeepgramSTT("k", interim_results=False)
    with pytest.raises(ValueError, match="eager_eot_threshold"):
        DeepgramSTT("k", model="flux-general-en", eot_threshold=0.6, eager_eot_threshold=0.8)


async def test_a_silent_stream_is_kept_alive_with_keepalive_text_frames() -> None:
    async with FakeDeepgram(idle_timeout=2.0) as fake:
        stt = DeepgramSTT("test", url=fake.url, keepalive_s=0.2)
        async with listening(stt) as run:
            await run.feed(speech("hello", TWILIO))
            conn = await fake.connection(0)
            await fake.wait_until(lambda: len(conn.of_type("KeepAlive")) >= 6)
            assert not conn.closed.is_set()
        assert fake.timeouts == 0
        assert len(fake.connections) == 1
        assert stt.stats["keepalives"] >= 6
        assert fake.violations == []


async def test_the_fake_closes_a_stream_that_sends_nothing_with_net_0001() -> None:
    async with FakeDeepgram(idle_timeout=0.5) as fake:
        headers = [("Authorization", "Token test")]
        url = fake.url + "?model=nova-3&encoding=mulaw&sample_rate=8000"
        async with connect(url, headers=headers) as ws:
            with anyio.fail_after(5), pytest.raises(ConnectionClosed) as closed:
                await ws.receive()
        assert (closed.value.code, closed.value.reason) == (1011, "NET-0001")


async def test_a_stream_closed_for_silence_is_replaced(fake: FakeDeepgram) -> None:
    stt = DeepgramSTT("test", url=fake.url, reconnect_delays=(0.0,))
    async with listening(stt) as run:
        first = await fake.connection(0)
        await first.close(1011, "NET-0001")  # as Deepgram closes a stream it timed out
        await fake.wait_until(lambda: len(fake.connections) == 2)
        await run.feed(silence(100, TWILIO) + speech(WORDS, TWILIO) + silence(800, TWILIO))
        await run.wait_for(lambda: WORDS in run.finals())
    assert fake.connections[1].params == first.params
    assert run.error is None


@pytest.mark.slow
async def test_a_held_call_stays_open_for_15_seconds(fake: FakeDeepgram) -> None:
    """Default timings: nothing from the caller for 15 s, Deepgram's 10 s timeout."""
    async with listening(DeepgramSTT("test", url=fake.url)) as run:
        await run.feed(speech("hello", TWILIO) + silence(600, TWILIO))
        await run.wait_for(lambda: run.finals() == ["hello"])
        conn = await fake.connection(0)
        held_from = conn.last_audio_at
        assert held_from is not None
        await fake.wait_until(lambda: anyio.current_time() - held_from >= 15.0, within=25.0)
        assert not conn.closed.is_set()
        keepalives = conn.of_type("KeepAlive")
        assert len(keepalives) >= 4
        gaps = [b - a for a, b in zip([held_from, *keepalives], keepalives, strict=False)]
        assert max(gaps) < 10.0  # always well within Deepgram's timeout
        # The call goes on on the same stream.
        await run.feed(speech("yes please", TWILIO) + silence(600, TWILIO))
        await run.wait_for(lambda: run.finals() == ["hello", "yes please"])
    assert fake.timeouts == 0
    assert len(fake.connections) == 1


async def test_finalize_flushes_the_words_heard_and_ends_the_turn(fake: FakeDeepgram) -> None:
    stt = DeepgramSTT("test", url=fake.url, endpointing_ms=2000, utterance_end_ms=None)
    audio = speech(WORDS, TWILIO) + silence(200, TWILIO)
    async with listening(stt) as run:
        await run.feed(audio)
        conn = await fake.connection(0)
        await fake.wait_until(lambda: len(conn.audio) == len(audio))
        await stt.finalize(run.stream)
        await run.wait_for(lambda: bool(run.of_type(SpeechStopped)))
        assert run.finals() == [WORDS]
        assert len(conn.of_type("Finalize")) == 1
        assert conn.results(from_finalize=True, speech_final=False)


async def test_a_drop_mid_utterance_loses_no_words(fake: FakeDeepgram) -> None:
    audio = silence(3200, TWILIO) + speech(WORDS, TWILIO) + silence(1000, TWILIO)
    # Cut after the silence (answered for by an empty final) and half the words.
    fake.drop_after_bytes = 8 * 3200 + 8 * 400
    stt = DeepgramSTT("test", url=fake.url)
    async with listening(stt) as run:
        await run.feed(audio)
        run.tx.close()
        with anyio.fail_after(10):
            await run.ended.wait()
        stats = run.stream.stats  # type: ignore[attr-defined]
    first, second = fake.connections
    assert first.close_code == 1006
    assert second.params == first.params  # the same parameters
    answered = round(first.results(is_final=True)[-1]["duration"] * 8000)
    # The second connection heard again what the first had not answered for, then the rest.
    assert bytes(first.audio[:answered]) + bytes(second.audio) == audio
    assert len(second.audio) < len(audio)
    assert run.finals() == [WORDS]
    assert stats["reconnects"] == 1
    assert len(run.of_type(SpeechStarted)) == 1  # one turn, though two streams heard it
    assert run.error is None


async def test_repeated_failure_ends_the_stream_with_a_typed_error(fake: FakeDeepgram) -> None:
    fake.drop_after_bytes = 800
    stt = DeepgramSTT("test", url=fake.url, reconnect_delays=(0.0, 0.0))
    async with listening(stt) as run:
        await fake.connection(0)
        fake.reject(503, "down", {"dg-error": "Service unavailable."})
        await run.feed(silence(200, TWILIO))
        with anyio.fail_after(10):
            await run.ended.wait()
    assert isinstance(run.error, ConnectionFailedError)
    assert "Service unavailable." in str(run.error)
    assert fake.rejected == 2


async def test_undecodable_audio_is_not_retried(fake: FakeDeepgram) -> None:
    async with listening(DeepgramSTT("test", url=fake.url)) as run:
        conn = await fake.connection(0)
        await conn.close(1008, "DATA-0000")
        with anyio.fail_after(10):
            await run.ended.wait()
    assert isinstance(run.error, ConnectionFailedError)
    assert "DATA-0000" in str(run.error)
    assert len(fake.connections) == 1


async def test_unknown_and_malformed_messages_are_counted_and_the_stream_goes_on(
    fake: FakeDeepgram,
) -> None:
    stt = DeepgramSTT("test", url=fake.url)
    async with listening(stt) as run:
        conn = await fake.connection(0)
        await conn.send({"type": "SomethingNew", "x": 1})
        await conn.ws.send("not json at all")
        await conn.ws.send(json.dumps({"type": "Results", "channel": "nonsense"}))
        await conn.send({"type": "Error", "variant": "SchemaError", "description": "bad"})
        await run.feed(speech("hello", TWILIO) + silence(600, TWILIO))
        await run.wait_for(lambda: run.finals() == ["hello"])
        stats = run.stream.stats  # type: ignore[attr-defined]
    assert stats["unknown_messages"] == 1
    assert stats["malformed_messages"] == 2
    assert stats["error_messages"] == 1
    assert stt.stats["malformed_messages"] == 2  # and the provider's totals


# --- Flux ---------------------------------------------------------------------------------------


async def test_flux_speaks_v2_with_speculative_ends_of_turns(fake: FakeDeepgram) -> None:
    stt = DeepgramSTT("test", model="flux-general-en", url=fake.flux_url, eager_eot_threshold=0.4)
    audio = (
        speech("where is my", TWILIO)
        + silence(500, TWILIO)  # long enough for an eager end of turn, not for the end
        + speech("order", TWILIO)
        + silence(1000, TWILIO)
    )
    async with listening(stt) as run:
        await run.feed(audio)
        await run.wait_for(lambda: bool(run.of_type(SpeechStopped)))
    conn = fake.connections[0]
    assert conn.request.path == "/v2/listen"
    assert conn.params == {
        "model": "flux-general-en",
        "encoding": "mulaw",
        "sample_rate": "8000",
        "eager_eot_threshold": "0.4",
    }
    assert conn.turn_events()[0] == "StartOfTurn"
    kinds = [type(e) for e in run.events]
    assert kinds.index(EagerEndOfTurn) < kinds.index(TurnResumed) < kinds.index(SpeechStopped)
    # Eager at the pause, resumed, eager again in the last silence, then the end.
    assert run.of_type(EagerEndOfTurn) == [EagerEndOfTurn("where is my"), EagerEndOfTurn(WORDS)]
    assert run.finals() == [WORDS]


async def test_flux_gets_silence_while_the_line_is_quiet_so_the_turn_ends(
    fake: FakeDeepgram,
) -> None:
    stt = DeepgramSTT("test", model="flux-general-en", url=fake.flux_url)
    async with listening(stt) as run:
        await run.feed(speech(WORDS, TWILIO))  # and then nothing: the caller is on hold
        await run.wait_for(lambda: bool(run.of_type(SpeechStopped)))
        stats = run.stream.stats  # type: ignore[attr-defined]
    assert run.finals() == [WORDS]
    assert stats["filled_bytes"] > 0
    assert fake.connections[0].turn_events()[-1] == "EndOfTurn"


async def test_flux_finalize_forces_the_end_of_the_turn(fake: FakeDeepgram) -> None:
    stt = DeepgramSTT("test", model="flux-general-en", url=fake.flux_url, eot_threshold=0.9)
    audio = speech(WORDS, TWILIO) + silence(100, TWILIO)
    async with listening(stt) as run:
        await run.feed(audio)
        conn = await fake.connection(0)
        await fake.wait_until(lambda: len(conn.audio) >= len(audio))
        await stt.finalize(run.stream)
        await run.wait_for(lambda: bool(run.of_type(SpeechStopped)))
    assert fake.connections[0].of_type("ForceEndTurn")
    assert run.finals() == [WORDS]
