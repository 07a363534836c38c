"""Sessions against the fake server: set-up (GA and beta), audio both ways, transcripts,
usage, options, environment variables, the registry and history replay."""

from __future__ import annotations

import base64
import json
import os

import anyio
import pytest
from support.fake_openai import FakeOpenAI, open_session

from omnivoice.audio.format import OPENAI, TWILIO, AudioFormat, Encoding
from omnivoice.gateway.config import Config, RealtimeConfig
from omnivoice.gateway.server import Gateway
from omnivoice.plugins import Registry
from omnivoice.realtime.provider import ProviderError, SpeechStarted, SpeechStopped, Usage
from omnivoice.realtime.types import (
    AudioChunk,
    ConversationItem,
    FunctionDeclaration,
    ProcessConfig,
    Transcript,
)
from omnivoice.registration import Capability, Kind
from omnivoice.telephony.events import Start
from omnivoice_openai_realtime import FORMATS, OpenAIRealtimeError, OpenAIRealtimeProvider, Provider

pytestmark = pytest.mark.anyio

ALAW = AudioFormat(Encoding.ALAW, 8000)
ENV_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_REALTIME_URL",
    "OPENAI_REALTIME_MODEL",
    "OPENAI_REALTIME_API",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the OpenAI variables they set."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def pattern(n_bytes: int, seed: int = 0) -> bytes:
    """Recognisable audio bytes: no two 20 ms frames alike."""
    return bytes((i * 7 + i // 160 + seed) % 251 for i in range(n_bytes))


@pytest.mark.parametrize("api", ["ga", "beta"])
async def test_session_setup(fake: FakeOpenAI, api: str) -> None:
    tool = FunctionDeclaration(
        "lookup_order", "Find an order", {"type": "object", "properties": {}}
    )
    provider = Provider("test", url=fake.url, api=api, voice="marin")  # type: ignore[arg-type]
    config = ProcessConfig(instructions="Be brief.", functions=(tool,))
    with anyio.fail_after(5):
        async with open_session(provider, config):
            conn = await fake.connection(0)
    assert conn.api == api
    headers = conn.request.headers
    assert headers["authorization"] == "Bearer test"
    assert headers.get("openai-beta") == ("realtime=v1" if api == "beta" else None)
    assert conn.model == "gpt-realtime"
    (session,) = conn.updates
    assert session["instructions"] == "Be brief."
    assert session["tools"] == [{"type": "function", **tool.to_dict()}]
    if api == "ga":
        assert session["type"] == "realtime"
        assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        assert session["audio"]["output"] == {"format": {"type": "audio/pcmu"}, "voice": "marin"}
        # Transcripts of the caller are on by default, turns are the server VAD's.
        assert session["audio"]["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe"}
        assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    else:
        assert session["input_audio_format"] == session["output_audio_format"] == "g711_ulaw"
        assert session["voice"] == "marin"
        assert session["input_audio_transcription"] == {"model": "gpt-4o-mini-transcribe"}
        assert session["turn_detection"]["type"] == "server_vad"


@pytest.mark.parametrize("api", ["ga", "beta"])
@pytest.mark.parametrize("fmt", [TWILIO, ALAW, OPENAI], ids=str)
async def test_audio_passes_through_unchanged_both_ways(
    fake: FakeOpenAI, api: str, fmt: AudioFormat
) -> None:
    provider = Provider("test", url=fake.url, api=api)  # type: ignore[arg-type]
    caller = pattern(fmt.bytes_per_frame(300))
    agent = pattern(fmt.bytes_per_frame(700), seed=3)
    with anyio.fail_after(5):
        async with open_session(provider, fmt=fmt) as probe:
            conn = await fake.connection(0)
            step = fmt.bytes_per_frame(20)
            for start in range(0, len(caller), step):
                await probe.send_audio(caller[start : start + step])
            await conn.wait_audio(len(caller))
            await conn.respond(audio=agent, transcript="Hello there", chunk=999)
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
    # G.711 and PCM alike: the bytes are the caller's and the model's, untouched.
    assert bytes(conn.audio) == caller
    chunks = probe.of_type(AudioChunk)
    assert b"".join(c.audio for c in chunks) == agent
    assert [c.is_final for c in chunks] == [False] * (len(chunks) - 1) + [True]
    expected = {TWILIO: "audio/pcmu", ALAW: "audio/pcma", OPENAI: "audio/pcm"}[fmt]
    if api == "ga":
        assert conn.session["audio"]["input"]["format"]["type"] == expected
        assert conn.session["audio"]["output"]["format"]["type"] == expected


async def test_user_and_agent_transcripts_speech_and_usage(fake: FakeOpenAI) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(5):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            await conn.user_turn("Where is my order?")
            await conn.respond(audio=pattern(1600), transcript="It shipped yesterday.")
            await probe.wait_for(Usage)
    events = [e for e in probe.events if not isinstance(e, AudioChunk)]
    assert events == [
        SpeechStarted(),
        SpeechStopped(),
        Transcript("Where is ", is_input=True, is_final=False),
        Transcript("my order?", is_input=True, is_final=False),
        Transcript("Where is my order?", is_input=True, is_final=True),
        Transcript("It", is_input=False, is_final=False),
        Transcript(" shipped", is_input=False, is_final=False),
        Transcript(" yesterday.", is_input=False, is_final=False),
        Transcript("It shipped yesterday.", is_input=False, is_final=True),
        Usage(180, 73, events[-1].details if isinstance(events[-1], Usage) else {}),
    ]
    usage = probe.of_type(Usage)[0]
    assert usage.details["output_token_details"] == {"text_tokens": 18, "audio_tokens": 55}
    # The audio's last chunk comes before the final transcript (the server's order).
    kinds = [type(e).__name__ for e in probe.events]
    assert kinds.index("AudioChunk") < kinds.index("Usage")


async def test_nothing_is_dropped_when_the_consumer_lags(fake: FakeOpenAI) -> None:
    # A buffer of 4 events and 300 deltas: the receive loop waits for the consumer.
    provider = Provider("test", url=fake.url, event_buffer=4)
    agent = pattern(300 * 40)
    with anyio.fail_after(10):
        async with open_session(provider, collect=False) as probe:
            conn = await fake.connection(0)
            await conn.respond(audio=agent, chunk=40)
            received = bytearray()
            async for event in probe.session:
                if isinstance(event, AudioChunk):
                    received += event.audio
                    if event.is_final:
                        break
    assert bytes(received) == agent


async def test_options_apply_to_every_session_and_the_call_config_overrides(
    fake: FakeOpenAI,
) -> None:
    provider = Provider(
        "test",
        url=fake.url,
        model="gpt-realtime-mini",
        voice="cedar",
        instructions="Default instructions.",
        turn_detection="semantic_vad",
        transcription_model="whisper-1",
        transcription_language="fr",
        noise_reduction="far_field",
        speed=1.2,
        session_options={"max_output_tokens": 512},
    )
    fake.models.add("gpt-realtime-mini")
    with anyio.fail_after(5):
        async with open_session(provider):
            first = await fake.connection(0)
        async with open_session(provider):
            second = await fake.connection(1)
        call = ProcessConfig(
            instructions="Per-call instructions.",
            voice="marin",
            extensions={"turn_detection": None, "transcription_model": None, "other": 1},
        )
        async with open_session(provider, call):
            third = await fake.connection(2)
    for conn in (first, second):
        assert conn.model == "gpt-realtime-mini"
        session = conn.updates[0]
        assert session["instructions"] == "Default instructions."
        assert session["audio"]["output"]["voice"] == "cedar"
        assert session["audio"]["output"]["speed"] == 1.2
        audio_in = session["audio"]["input"]
        assert audio_in["turn_detection"]["type"] == "semantic_vad"
        assert audio_in["transcription"] == {"model": "whisper-1", "language": "fr"}
        assert audio_in["noise_reduction"] == {"type": "far_field"}
        assert session["max_output_tokens"] == 512
    session = third.updates[0]
    assert session["instructions"] == "Per-call instructions."
    assert session["audio"]["output"]["voice"] == "marin"
    assert session["audio"]["input"]["turn_detection"] is None
    assert "transcription" not in session["audio"]["input"]
    assert session["max_output_tokens"] == 512  # the rest stays as configured


async def test_temperature_is_sent_to_the_beta_interface_only(fake: FakeOpenAI) -> None:
    config = ProcessConfig(temperature=0.7)
    with anyio.fail_after(5):
        async with open_session(Provider("test", url=fake.url, api="beta"), config):
            beta = await fake.connection(0)
        async with open_session(Provider("test", url=fake.url, temperature=0.9), config):
            ga = await fake.connection(1)
    assert beta.updates[0]["temperature"] == 0.7
    assert "temperature" not in ga.updates[0]  # the GA interface has none


async def test_the_environment_configures_the_provider(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("OPENAI_REALTIME_URL", fake.url)
    monkeypatch.setenv("OPENAI_REALTIME_MODEL", "gpt-realtime-2")
    monkeypatch.setenv("OPENAI_REALTIME_API", "beta")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-1")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-1")
    fake.models.add("gpt-realtime-2")
    provider = Provider()
    assert provider.endpoint == f"{fake.url}?model=gpt-realtime-2"
    with anyio.fail_after(5):
        async with open_session(provider):
            conn = await fake.connection(0)
    assert conn.api == "beta"
    assert conn.model == "gpt-realtime-2"
    assert conn.request.headers["authorization"] == "Bearer test"
    assert conn.request.headers["openai-organization"] == "org-1"
    assert conn.request.headers["openai-project"] == "proj-1"
    # Arguments win over the environment.
    explicit = Provider("other", url="wss://proxy.example/v1/realtime?model=m", api="ga")
    assert explicit.endpoint == "wss://proxy.example/v1/realtime?model=m"
    assert explicit.api == "ga"


def test_defaults_without_environment() -> None:
    provider = Provider()
    assert provider.endpoint == "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    assert provider.api == "ga"
    with pytest.raises(ValueError, match="api must be"):
        Provider(api="v2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="turn_detection"):
        Provider(turn_detection="always")


def test_the_registry_knows_it_by_both_names() -> None:
    registry = Registry.load(
        environ={k: v for k, v in os.environ.items() if k != "OMNIVOICE_PLUGINS"}
    )
    registration = registry.get(Kind.REALTIME, "openai")
    assert registration is registry.get(Kind.REALTIME, "openai-realtime")
    assert registration.name == "openai-realtime"
    assert registration.distribution == "omnivoice-openai-realtime"
    assert registration.accepts == registration.produces == FORMATS
    assert TWILIO in registration.accepts
    expected = (
        Capability.FUNCTION_CALLING
        | Capability.TRANSCRIPTS
        | Capability.INTERRUPTION
        | Capability.TRUNCATION
        | Capability.HISTORY
    )
    assert expected in registration.capabilities
    assert {"OPENAI_API_KEY", "OPENAI_REALTIME_URL", "OPENAI_REALTIME_MODEL"} <= set(
        registration.env_vars
    )
    provider = registry.create(Kind.REALTIME, "openai", api_key="k", model="gpt-realtime-mini")
    assert isinstance(provider, Provider)
    assert provider.name == "openai-realtime"
    assert provider.model == "gpt-realtime-mini"


@pytest.mark.parametrize(("api", "assistant_type"), [("ga", "output_text"), ("beta", "text")])
async def test_history_is_replayed_before_the_callers_audio(
    fake: FakeOpenAI, api: str, assistant_type: str
) -> None:
    history = (
        ConversationItem("user", "I'd like to change my booking."),
        ConversationItem("agent", "Sure, which date?"),
        ConversationItem("user", "Friday."),
    )
    provider = Provider("test", url=fake.url, api=api)  # type: ignore[arg-type]
    with anyio.fail_after(5):
        async with open_session(provider, ProcessConfig(history=history)) as probe:
            conn = await fake.connection(0)
            await probe.send_audio(b"\xff" * 160)
            await conn.wait_audio(160)
    creates = [i for i, e in enumerate(conn.events) if e["type"] == "conversation.item.create"]
    assert len(creates) == 3
    assert all(conn.appends_before[i] == 0 for i in creates)  # before any audio
    items = [conn.events[i]["item"] for i in creates]
    assert [(i["role"], i["content"][0]["type"], i["content"][0]["text"]) for i in items] == [
        ("user", "input_text", "I'd like to change my booking."),
        ("assistant", assistant_type, "Sure, which date?"),
        ("user", "input_text", "Friday."),
    ]


async def test_the_session_ends_once_the_caller_is_gone_and_the_agent_is_done(
    fake: FakeOpenAI,
) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(5):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            response = await conn.respond(audio=pattern(800), transcript="Goodbye!", hold=True)
            probe.end_audio()
            await probe.wait_for(AudioChunk)
            assert not probe.ended.is_set()  # the agent is still speaking
            await response.finish()
            await probe.wait_ended()
            await conn.wait_closed()
    assert probe.of_type(AudioChunk)[-1].is_final
    assert probe.of_type(Transcript)[-1] == Transcript("Goodbye!", is_input=False, is_final=True)


async def test_unknown_events_are_counted_and_malformed_ones_reported(fake: FakeOpenAI) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(5):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            await conn.send({"type": "response.something_new", "detail": 1})
            await conn.ws.send("{this is not json")
            bad = {"type": "response.output_audio.delta", "response_id": "r", "item_id": "i"}
            await conn.ws.send(json.dumps({**bad, "delta": "@@@"}))
            await probe.wait_for(ProviderError, count=2)
            # The call goes on.
            await conn.respond(audio=base64.b64decode("AAEC"), transcript="ok")
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
            stats = probe.session.stats  # type: ignore[attr-defined]
    errors = probe.of_type(ProviderError)
    assert [e.fatal for e in errors] == [False, False]
    assert all(isinstance(e.error, OpenAIRealtimeError) for e in errors)
    assert stats["unknown_events"] == {"response.something_new": 1}
    assert stats["malformed_events"] == 2


async def test_a_gateway_config_names_it(fake: FakeOpenAI) -> None:
    config = Config(
        realtime=RealtimeConfig(
            provider="openai",
            api_key="test",
            voice="marin",
            instructions="You are the front desk.",
            options={"url": fake.url, "turn_detection": "semantic_vad"},
        )
    )
    gateway = Gateway.from_config(config)
    start = Start("MZ1", "CA1", None, {}, TWILIO)
    provider, process_config = await gateway.sessions(start)
    assert isinstance(provider, Provider)
    with anyio.fail_after(5):
        async with open_session(provider, process_config):
            conn = await fake.connection(0)
    session = conn.updates[0]
    assert session["instructions"] == "You are the front desk."
    assert session["audio"]["output"]["voice"] == "marin"
    assert session["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"


async def test_the_seeds_call_shape_opens_a_session_in_the_preferred_formats(
    fake: FakeOpenAI,
) -> None:
    provider = OpenAIRealtimeProvider(api_key="test", url=fake.url)
    assert Provider is OpenAIRealtimeProvider
    tx, rx = anyio.create_memory_object_stream[bytes](4)
    with tx, rx, anyio.fail_after(5):
        config = ProcessConfig(instructions="You are the front desk.")
        async with provider.process_audio_stream(rx, config):  # no formats: mu-law both ways
            conn = await fake.connection(0)
    assert conn.updates[0]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert conn.updates[0]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert conn.updates[0]["instructions"] == "You are the front desk."
