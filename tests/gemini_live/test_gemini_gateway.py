"""Acceptance: ``omnivoice serve`` with ``RealtimeConfig(provider="gemini")``, pointed at the
fake service, answers a simulated phone call over Twilio: the reply converted to 8 kHz
mu-law, a barge-in cleared at once, a function answered under its call id, a ``goAway``
crossed with every byte of the caller's audio, and a call record of what was heard.

The gateway runs as its own process, configured by the environment and a config module,
as a user starts it; the phone plays Twilio's real media-stream protocol over sockets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from support.fake_gemini import FakeCall, FakeGemini
from support.gateway_process import running_gateway

from omnivoice.audio.converter import StreamConverter
from omnivoice.audio.format import GEMINI_INPUT, GEMINI_OUTPUT, TWILIO
from omnivoice.gateway.records import read_call_record
from omnivoice.telephony.phone import SimulatedPhone
from omnivoice.testing import tone
from omnivoice_twilio.transport import TwilioTransport

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TESTS = Path(__file__).resolve().parents[1]
MS_16K = 32  # bytes of PCM16 at 16 kHz per millisecond


def caller_speech(ms: int) -> bytes:
    """Recognisable mu-law: never the silence codes, no two 20 ms frames alike."""
    return bytes((i * 13 + (i // 160) * 7 + 1) % 0x7F for i in range(ms * 8))


def only_record(directory: Path) -> dict[str, Any]:
    (path,) = directory.glob("*.jsonl")
    return read_call_record(path)


def contains(heard: bytes, audio: bytes) -> bool:
    return audio in heard


async def test_a_phone_call_through_omnivoice_serve_with_gemini(
    fake: FakeGemini, tmp_path: Path
) -> None:
    greeting = tone(400, GEMINI_OUTPUT, hz=440)
    answer = tone(3000, GEMINI_OUTPUT, hz=660)
    monday = tone(400, GEMINI_OUTPUT, hz=550)
    later = tone(400, GEMINI_OUTPUT, hz=330)
    env = {"PYTHONPATH": str(TESTS), "GEMINI_API_KEY": "test", "GEMINI_LIVE_URL": fake.url}
    args = ("support.fake_gemini_app:config", "--records", str(tmp_path))
    with running_gateway(*args, env=env) as base:
        url = base.replace("http://", "ws://") + "/twilio/media"
        phone = SimulatedPhone(url, TwilioTransport(), caller_speech(6000), TWILIO, linger_s=3.0)
        report = phone.report

        async def played(ms: int) -> None:
            """Until the caller has heard ``ms`` of agent audio in all (the call's clock:
            caller audio reaches the service in a burst after the set-up)."""
            await fake.wait_until(lambda: report.heard_ms >= ms)

        async def line(ms: int) -> None:
            """Until the phone has been on the line ``ms`` longer (the caller waits for the
            gateway to have the last mark of a reply back before speaking again)."""
            target = report.frames_sent + ms // 20
            await fake.wait_until(lambda: report.frames_sent >= target)

        with anyio.fail_after(40):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(phone.run)
                first = await fake.connection(0)
                await first.wait_audio(400 * MS_16K)

                # A reply: Gemini's 24 kHz PCM reaches the caller as 8 kHz mu-law.
                await first.input_transcription("Hello, when do you open?")
                await first.respond(audio=greeting, transcript="We open at nine.")
                await played(400)
                await line(300)

                # A function call, answered with the handler's result under its id.
                await first.input_transcription("Has order A-1 shipped?")
                (call_id,) = await first.tool_call(FakeCall("lookup_order", {"order": "A-1"}))
                answered = await first.wait_answer(call_id)
                await first.respond(audio=greeting[:9600], transcript="Yes, it has.")
                await played(600)
                await line(300)

                # A barge-in: the line is cleared the moment ``interrupted`` arrives.
                await first.input_transcription("And on Sundays?")
                await first.respond(
                    audio=answer, transcript="On Sundays we open at ten and", hold=True
                )
                await played(1100)  # half a second of it
                await anyio.wait_all_tasks_blocked()
                before = len(report.received)
                await first.interrupt()
                await fake.wait_until(lambda: "clear" in report.received)
                clear_at = report.received.index("clear")
                heard_at_clear = report.heard_ms
                await first.input_transcription("Wait, what about Monday?")
                await line(300)
                after_clear = report.received[clear_at + 1 :]
                await first.respond(audio=monday, transcript="On Mondays at nine.")
                await played(heard_at_clear + 400)
                await line(300)

                # goAway: the call moves to a resumed session and goes on.
                await first.go_away("30s")
                second = await fake.connection(1)
                await first.wait_closed()
                await second.wait_audio(200 * MS_16K)
                await second.input_transcription("Thanks.")
                await second.respond(audio=later, transcript="You are welcome.")
                await line(800)
                tasks.cancel_scope.cancel()
    heard = bytes(phone.heard)

    # The reply, converted to 8 kHz mu-law, reached the caller whole.
    assert contains(heard, StreamConverter(GEMINI_OUTPUT, TWILIO).convert(greeting))
    assert fake.connections[0].mime_types == {"audio/pcm;rate=16000"}

    # The function's answer, under the call's id.
    assert answered["id"] == call_id
    assert answered["name"] == "lookup_order"
    assert answered["response"] == {
        "output": {"order": "A-1", "status": "shipped", "call": call_id}
    }

    # The barge-in: one clear, within a frame of the interruption reaching the gateway
    # (at most the frame already on its way), and nothing of that reply after it.
    assert report.clears == 1
    between = [item for item in report.received[before:clear_at] if isinstance(item, bytes)]
    assert len(between) <= 1
    assert [item for item in after_clear if isinstance(item, bytes)] == []

    # goAway: every byte of the caller's audio reached the service (old and new
    # connections together), in order, and the conversation went on.
    assert second.resumed
    assert second.of_kind("clientContent") == []
    received = fake.audio()
    expected = StreamConverter(TWILIO, GEMINI_INPUT).convert(bytes(phone.spoken))
    assert received == expected[: len(received)]
    assert len(first.audio) > 0
    assert len(second.audio) > 0
    assert StreamConverter(GEMINI_OUTPUT, TWILIO).convert(later)[800:1600] in heard

    # The call record: both sides' words, and only the heard part of the cut reply.
    record = only_record(tmp_path)
    turns = [(t["role"], t["text"], t.get("interrupted")) for t in record["transcript"]]
    assert turns[:2] == [
        ("user", "Hello, when do you open?", None),
        ("agent", "We open at nine.", False),
    ]
    cut = next(t for t in record["transcript"] if t.get("interrupted"))
    assert cut["text"] == "On Sundays we open"  # the words of the half generated
    assert 0 < cut["heard_ms"] < 1500
    assert cut["heard_text"]
    assert cut["text"].startswith(cut["heard_text"])
    assert cut["heard_text"] != cut["text"]
    assert ("user", "Has order A-1 shipped?", None) in turns
    assert ("agent", "Yes, it has.", False) in turns
    assert ("user", "And on Sundays?", None) in turns
    assert ("user", "Wait, what about Monday?", None) in turns
    assert ("agent", "On Mondays at nine.", False) in turns
    assert ("user", "Thanks.", None) in turns
    assert ("agent", "You are welcome.", False) in turns
    assert record["metrics"]["interruptions"] == 1
    assert record["metrics"]["function_calls"] == 1
    assert record["metrics"]["provider_switches"] == 1


async def test_omnivoice_serve_runs_it_from_flags_and_the_environment(
    fake: FakeGemini,
) -> None:
    reply = tone(400, GEMINI_OUTPUT, hz=440)
    env = {"GEMINI_API_KEY": "test", "GEMINI_LIVE_URL": fake.url, "GEMINI_LIVE_MODEL": ""}
    args = ("--provider", "gemini", "--instructions", "Be brief.", "--voice", "Kore")
    with running_gateway(*args, env=env) as base:
        url = base.replace("http://", "ws://") + "/twilio/media"
        phone = SimulatedPhone(url, TwilioTransport(), caller_speech(1500), TWILIO, linger_s=2.0)
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(phone.run)
                conn = await fake.connection(0)
                await conn.wait_audio(200 * MS_16K)
                await conn.respond(audio=reply, transcript="Hello.")
                await fake.wait_until(lambda: phone.report.heard_ms >= 400)
                tasks.cancel_scope.cancel()
    assert conn.setup["model"] == "models/gemini-3.8-live"
    assert conn.setup["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    voice = conn.setup["generationConfig"]["speechConfig"]["voiceConfig"]
    assert voice == {"prebuiltVoiceConfig": {"voiceName": "Kore"}}
    assert StreamConverter(GEMINI_OUTPUT, TWILIO).convert(reply) in bytes(phone.heard)
