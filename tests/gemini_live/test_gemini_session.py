"""One call against the fake service: the setup, audio both ways, transcripts, usage,
barge-in, options and the conversation a new session is given."""

from __future__ import annotations

import json

import anyio
import pytest
from support.fake_gemini import FakeGemini, open_session

from omnivoice.audio.format import GEMINI_INPUT, GEMINI_OUTPUT, AudioFormat, Encoding
from omnivoice.realtime import (
    AudioChunk,
    ConversationItem,
    FunctionDeclaration,
    HeardResponse,
    ProcessConfig,
    SpeechStarted,
    SpeechStopped,
    Transcript,
    Usage,
)
from omnivoice.testing import silence, tone
from omnivoice_gemini_live import Provider

pytestmark = pytest.mark.anyio

PCM8K = AudioFormat(Encoding.PCM16, 8000)


def numbered(n_bytes: int, seed: int = 0) -> bytes:
    """PCM16 whose every sample differs from its neighbours: loss or reordering shows."""
    return bytes((i * 7 + seed + i // 256) % 256 for i in range(n_bytes))


async def test_the_setup_comes_first_and_the_session_opens_at_setup_complete(
    fake: FakeGemini,
) -> None:
    fake.hold_setup = anyio.Event()
    provider = Provider("test", url=fake.url)
    tx, rx = anyio.create_memory_object_stream[bytes](8)
    opened = anyio.Event()
    with tx, rx, anyio.fail_after(10):
        for _ in range(4):
            tx.send_nowait(b"\x01\x00" * 320)  # the caller already speaks

        async def call() -> None:
            async with provider.process_audio_stream(rx) as session:
                opened.set()
                async for event in session:
                    if isinstance(event, AudioChunk):
                        break

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(call)
            await fake.wait_until(lambda: bool(fake.connections and fake.connections[0].setup))
            await anyio.wait_all_tasks_blocked()
            conn = fake.connections[0]
            assert not opened.is_set()  # entry waits for setupComplete
            assert conn.audio_messages == 0  # and no audio goes before it
            fake.hold_setup.set()
            await opened.wait()
            await conn.wait_audio(4 * 640)
            await conn.respond(audio=b"\x00\x01" * 100)
    assert bytes(conn.audio) == b"\x01\x00" * 1280


async def test_the_setup_by_default(fake: FakeGemini) -> None:
    provider = Provider("test", url=fake.url)
    lookup = FunctionDeclaration(
        "lookup_order",
        "Find an order",
        {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
    )
    config = ProcessConfig(instructions="You are the front desk.", functions=[lookup])
    with anyio.fail_after(10):
        async with open_session(provider, config):
            conn = await fake.connection(0)
    assert conn.request.headers["x-goog-api-key"] == "test"
    setup = conn.setup
    assert setup["model"] == "models/gemini-3.8-live"
    assert setup["generationConfig"] == {
        "responseModalities": ["AUDIO"],
        "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}},
    }
    assert setup["systemInstruction"] == {"parts": [{"text": "You are the front desk."}]}
    assert setup["inputAudioTranscription"] == {}
    assert setup["outputAudioTranscription"] == {}
    assert setup["sessionResumption"] == {}
    # A sliding window: audio sessions are not capped at 15 minutes.
    assert setup["contextWindowCompression"] == {"slidingWindow": {}}
    # gemini-3.8-live makes functions non-blocking by default: a declared one says BLOCKING.
    assert setup["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "lookup_order",
                    "description": "Find an order",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"id": {"type": "STRING"}},
                        "required": ["id"],
                    },
                    "behavior": "BLOCKING",
                }
            ]
        }
    ]
    assert "proactivity" not in setup  # always on for this model: never sent
    assert "realtimeInputConfig" not in setup  # automatic activity detection, its defaults


async def test_audio_transcripts_and_usage_both_ways(fake: FakeGemini) -> None:
    provider = Provider("test", url=fake.url)
    caller = numbered(16000, seed=3)  # 0.5 s at 16 kHz
    answer = numbered(48000, seed=5)  # 1 s at 24 kHz
    with anyio.fail_after(10):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            await probe.send(caller)
            await conn.wait_audio(len(caller))
            await conn.input_transcription("Where is ")
            await conn.input_transcription("my order?")
            await conn.respond(audio=answer, transcript="It shipped on Monday.", chunk=4801)
            await probe.wait_for(Transcript, lambda t: t.is_final and not t.is_input)
            await probe.wait_for(Usage)
    assert conn.mime_types == {"audio/pcm;rate=16000"}
    assert bytes(conn.audio) == caller
    chunks = probe.of_type(AudioChunk)
    assert b"".join(c.audio for c in chunks) == answer  # odd-sized parts rejoined exactly
    assert [c.is_final for c in chunks].count(True) == 1
    assert chunks[-1].is_final
    assert {c.response_id for c in chunks} == {"r1"}
    transcripts = [(t.text, t.is_input, t.is_final) for t in probe.of_type(Transcript)]
    assert transcripts[:2] == [("Where is ", True, False), ("my order?", True, False)]
    assert ("Where is my order?", True, True) in transcripts
    assert transcripts[-1] == ("It shipped on Monday.", False, True)
    assert probe.events[0] == SpeechStarted()
    assert SpeechStopped() in probe.events
    (usage,) = probe.of_type(Usage)
    assert (usage.input_tokens, usage.output_tokens) == (812, 95)
    assert usage.details["totalTokenCount"] == 907


async def test_the_carrier_rate_can_go_to_the_service_as_it_is(fake: FakeGemini) -> None:
    provider = Provider("test", url=fake.url, input_rate=8000)
    assert provider.accepts == (PCM8K, GEMINI_INPUT)  # the bridge picks 8 kHz first
    with anyio.fail_after(10):
        async with open_session(provider, input_format=PCM8K) as probe:
            conn = await fake.connection(0)
            await probe.send(b"\x02\x00" * 800)
            await conn.wait_audio(1600)
    assert conn.mime_types == {"audio/pcm;rate=8000"}


async def test_snake_case_and_url_safe_base64_from_the_server(fake: FakeGemini) -> None:
    fake.snake_case = fake.urlsafe_base64 = True
    provider = Provider("test", url=fake.url)
    answer = bytes([0xFB, 0xFF, 0xFE, 0xFF]) * 300
    with anyio.fail_after(10):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            await conn.respond(audio=answer, transcript="Fine.")
            await probe.wait_for(Transcript, lambda t: t.is_final)
    assert b"".join(c.audio for c in probe.of_type(AudioChunk)) == answer


async def test_a_barge_in_ends_the_answer_at_once(fake: FakeGemini) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(10):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            turn = await conn.respond(
                audio=numbered(9600), transcript="On Sundays we open at ten", hold=True
            )
            await probe.wait_for(Transcript)
            start = len(probe.events)
            await conn.interrupt()
            await probe.wait_for(AudioChunk, lambda c: c.is_final, after=start)
            # The bridge heard 100 ms of it when the line was cleared.
            await probe.interrupt(heard_ms=100)
            await turn.finish()  # what the server had still queued: never passed on
            await conn.respond(audio=numbered(4800), transcript="Sure.")
            await probe.wait_for(Transcript, lambda t: t.text == "Sure." and t.is_final)
    events = probe.events[start:]
    assert events[0] == SpeechStarted()  # the barge-in signal, before anything else
    assert events[1] == AudioChunk(b"", is_final=True, response_id="r1")
    later = [e for e in events[2:] if isinstance(e, AudioChunk)]
    assert {c.response_id for c in later} == {"r2"}
    finals = [t.text for t in probe.of_type(Transcript) if t.is_final and not t.is_input]
    assert finals == ["On Sundays we", "Sure."]  # the words generated before the cut


async def test_a_local_interrupt_ends_the_answer_and_drops_its_rest(fake: FakeGemini) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(10):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            turn = await conn.respond(audio=numbered(9600), transcript="One two three", hold=True)
            await probe.wait_for(AudioChunk)
            await probe.interrupt(heard_ms=50)
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
            await turn.finish()
            await conn.respond(audio=numbered(960), transcript="Yes?")
            await probe.wait_for(Transcript, lambda t: t.text == "Yes?")
    r1 = [c for c in probe.of_type(AudioChunk) if c.response_id == "r1"]
    assert sum(len(c.audio) for c in r1) == 4800  # the first half only
    assert probe.session.stats["dropped_audio_bytes"] == 4800  # type: ignore[attr-defined]


async def test_a_late_interrupt_leaves_the_answer_that_began_since(fake: FakeGemini) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(10):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            await conn.respond(audio=numbered(4800), transcript="One two", hold=True)
            await probe.wait_for(AudioChunk)
            await conn.interrupt()
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
            turn = await conn.respond(audio=numbered(9600), transcript="Three four", hold=True)
            await probe.wait_for(AudioChunk, lambda c: c.response_id == "r2")
            # The bridge's interrupt for the first answer arrives only now.
            await probe.interrupt(100, [HeardResponse("r1", heard_ms=100, produced_ms=50)])
            await turn.finish()
            await probe.wait_for(AudioChunk, lambda c: c.is_final and c.response_id == "r2")
    r2 = [c for c in probe.of_type(AudioChunk) if c.response_id == "r2"]
    assert sum(len(c.audio) for c in r2) == 9600  # all of it: it was not what was cut short


async def test_options_and_the_calls_config(fake: FakeGemini) -> None:
    provider = Provider(
        "test",
        url=fake.url,
        voice="Kore",
        instructions="Default instructions.",
        temperature=0.4,
        language="en-GB",
        start_sensitivity="START_SENSITIVITY_LOW",
        end_sensitivity="END_SENSITIVITY_HIGH",
        prefix_padding_ms=40,
        activity_handling="START_OF_ACTIVITY_INTERRUPTS",
        compression_trigger_tokens=25600,
        compression_target_tokens=12800,
        setup_options={"generationConfig": {"maxOutputTokens": 400}},
    )
    config = ProcessConfig(
        voice="Charon",
        instructions="Call instructions.",
        temperature=0.9,
        extensions={"silence_duration_ms": 800, "output_transcription": False, "other": 1},
    )
    with anyio.fail_after(10):
        async with open_session(provider, config):
            conn = await fake.connection(0)
    setup = conn.setup
    assert setup["generationConfig"] == {
        "responseModalities": ["AUDIO"],
        "temperature": 0.9,
        "speechConfig": {
            "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Charon"}},
            "languageCode": "en-GB",
        },
        "maxOutputTokens": 400,
    }
    assert setup["systemInstruction"]["parts"][0]["text"] == "Call instructions."
    assert setup["realtimeInputConfig"] == {
        "automaticActivityDetection": {
            "startOfSpeechSensitivity": "START_SENSITIVITY_LOW",
            "endOfSpeechSensitivity": "END_SENSITIVITY_HIGH",
            "prefixPaddingMs": 40,
            "silenceDurationMs": 800,
        },
        "activityHandling": "START_OF_ACTIVITY_INTERRUPTS",
    }
    assert setup["contextWindowCompression"] == {
        "slidingWindow": {"targetTokens": 12800},
        "triggerTokens": 25600,
    }
    assert "outputAudioTranscription" not in setup
    assert setup["inputAudioTranscription"] == {}


async def test_it_runs_from_the_environment(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "test")
    monkeypatch.setenv("GEMINI_LIVE_URL", fake.url)
    monkeypatch.setenv("GEMINI_LIVE_MODEL", "gemini-2.5-flash-native-audio-preview-12-2025")
    provider = Provider()
    with anyio.fail_after(10):
        async with open_session(provider):
            conn = await fake.connection(0)
    assert conn.setup["model"] == "models/gemini-2.5-flash-native-audio-preview-12-2025"
    assert conn.request.headers["x-goog-api-key"] == "test"
    monkeypatch.setenv("GEMINI_API_KEY", "preferred")
    assert Provider().options.api_key == "preferred"


async def test_a_new_session_is_given_the_conversation_before_any_audio(
    fake: FakeGemini,
) -> None:
    history = (
        ConversationItem("user", "Is the shop open today?"),
        ConversationItem("agent", "Yes, until six."),
    )
    for model, seeded_in_setup in (
        ("gemini-3.8-live", False),
        ("gemini-3.1-flash-live-preview", True),
    ):
        provider = Provider("test", url=fake.url, model=model)
        with anyio.fail_after(10):
            async with open_session(provider, ProcessConfig(history=history)) as probe:
                conn = await fake.connection(len(fake.connections) - 1)
                await probe.send(b"\x01\x00" * 160)
                await conn.wait_audio(320)
        (content,) = conn.of_kind("clientContent")
        assert content["turns"] == [
            {"role": "user", "parts": [{"text": "Is the shop open today?"}]},
            {"role": "model", "parts": [{"text": "Yes, until six."}]},
        ]
        index = conn.messages.index({"clientContent": content})
        assert conn.audio_before[index] == 0
        # 3.1 takes client content only as initial history, declared in the setup.
        assert content["turnComplete"] is seeded_in_setup
        assert ("historyConfig" in conn.setup) is seeded_in_setup


async def test_client_marked_activity_when_automatic_detection_is_off(fake: FakeGemini) -> None:
    provider = Provider("test", url=fake.url, automatic_activity_detection=False)
    with anyio.fail_after(10):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            await probe.send(tone(400, GEMINI_INPUT) + silence(1000, GEMINI_INPUT))
            await probe.wait_for(SpeechStopped)
            await conn.wait_for(lambda: bool(conn.of_kind("realtimeInput")[1:]))
    assert conn.setup["realtimeInputConfig"] == {"automaticActivityDetection": {"disabled": True}}
    signals = [next(iter(m)) for m in conn.of_kind("realtimeInput")]
    assert signals == ["activityStart", "activityEnd"]
    start, end = (
        conn.audio_before[conn.messages.index({"realtimeInput": {s: {}}})] for s in signals
    )
    assert start < 640 * 3  # before the first frames of speech went
    assert end >= 400 * 32  # after all of it
    assert [type(e) for e in probe.events if isinstance(e, SpeechStarted | SpeechStopped)] == [
        SpeechStarted,
        SpeechStopped,
    ]


async def test_the_output_format_is_24_khz(fake: FakeGemini) -> None:
    provider = Provider("test", url=fake.url)
    assert provider.produces == (GEMINI_OUTPUT,)
    with anyio.fail_after(10):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            await conn.respond(audio=b"\x00\x00" * 2400)
            final = await probe.wait_for(AudioChunk, lambda c: c.is_final)
    assert final.response_id == "r1"
    assert json.loads(json.dumps(conn.setup))["generationConfig"]["responseModalities"] == ["AUDIO"]
