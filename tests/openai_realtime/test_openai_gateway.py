"""Acceptance: ``omnivoice serve --provider openai``, pointed at the fake server, answers a
simulated phone call: G.711 straight through both ways, and a barge-in that cancels the
answer and truncates it to exactly what the caller heard.

The gateway runs as its own process, configured by environment variables alone, as a user
starts it; the phone plays Twilio's real media-stream protocol over real sockets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from support.fake_openai import FakeOpenAI
from support.gateway_process import running_gateway

from omnivoice.audio.format import TWILIO
from omnivoice.gateway.records import read_call_record
from omnivoice.telephony.phone import SimulatedPhone
from omnivoice_twilio.transport import TwilioTransport

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

BYTES_PER_MS = 8  # mu-law at 8 kHz


def speech(ms: int, seed: int) -> bytes:
    """Recognisable mu-law: never the silence codes (0xff, 0x7f), no two 20 ms frames alike."""
    return bytes((i * 13 + (i // 160) * 7 + seed) % 0x7F for i in range(ms * BYTES_PER_MS))


def only_record(directory: Path) -> dict[str, Any]:
    (path,) = directory.glob("*.jsonl")
    return read_call_record(path)


def heard_prefix(heard: bytes, audio: bytes) -> int:
    """How many bytes of ``audio``, from its start, the caller heard (contiguously)."""
    start = heard.find(audio[:160])
    if start < 0:
        return 0
    n = 0
    while n < len(audio) and start + n < len(heard) and heard[start + n] == audio[n]:
        n += 1
    return n


async def test_a_phone_call_with_a_barge_in_through_omnivoice_serve(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    caller = speech(400, seed=1)
    greeting = speech(400, seed=2)
    answer = speech(3000, seed=3)
    env = {"OPENAI_API_KEY": "test", "OPENAI_REALTIME_URL": fake.url}
    args = ("--provider", "openai", "--mark-every", "1", "--records", str(tmp_path))
    with running_gateway(*args, env=env) as base:
        url = base.replace("http://", "ws://") + "/twilio/media"
        phone = SimulatedPhone(
            url, TwilioTransport(), caller, TWILIO, voiced=[True] * 20, linger_s=4.0
        )
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(phone.run)
                conn = await fake.connection(0)
                await conn.wait_audio(len(caller))
                await conn.user_turn("Hello, when do you open?")
                await conn.respond(audio=greeting, transcript="We open at nine.")
                # Caller audio keeps arriving in real time: a clock for the call. The
                # greeting plays out (400 ms and the 100 ms lead) within 700 ms of it.
                await conn.wait_audio(len(conn.audio) + 700 * BYTES_PER_MS)
                response = await conn.respond(
                    audio=answer, transcript="On Sundays we open at ten, and", hold=True
                )
                await conn.wait_audio(len(conn.audio) + 1000 * BYTES_PER_MS)
                # The caller talks over the answer while it plays.
                await conn.speech_started(cancel=False)
                cancel = await conn.wait_for("response.cancel")
                truncate = await conn.wait_for("conversation.item.truncate")
                # 300 ms more on the line (the clear has reached the phone), then hang up.
                await conn.wait_audio(len(conn.audio) + 300 * BYTES_PER_MS)
                tasks.cancel_scope.cancel()
    report = phone.report

    # G.711 passthrough: the server got the caller's bytes, the caller heard the model's.
    session = conn.updates[0]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["input"]["transcription"] is not None
    assert bytes(conn.audio[: len(caller)]) == caller
    heard = bytes(phone.heard)
    assert heard_prefix(heard, greeting) == len(greeting)  # all of it, unaltered

    # The barge-in: the line was cleared, the answer cancelled and cut where the caller
    # stopped hearing it (the playback position, exact to the mark with --mark-every 1).
    assert report.clears == 1
    assert cancel == {"type": "response.cancel", "response_id": response.id}
    assert truncate["item_id"] == response.item_id
    heard_ms = heard_prefix(heard, answer) // BYTES_PER_MS
    assert 0 < heard_ms < 3000  # some of the answer, not all of it
    # The gateway knows the position from the marks acknowledged so far: those still on
    # their way back at the clear are at most the lead (100 ms) and a frame.
    assert abs(truncate["audio_end_ms"] - heard_ms) <= 120
    # Nothing of the answer after the cut reached the caller.
    start = heard.find(answer[:160])
    assert answer[heard_ms * BYTES_PER_MS + 320 :][:160] not in heard[start:]

    # The call record has the conversation as the caller heard it.
    record = only_record(tmp_path)
    turns = [(t["role"], t["text"], t.get("interrupted")) for t in record["transcript"]]
    assert turns[:3] == [
        ("user", "Hello, when do you open?", None),
        ("agent", "We open at nine.", False),
        ("agent", "On Sundays we open at ten, and", True),
    ]
    cut = record["transcript"][2]
    assert cut["heard_ms"] == truncate["audio_end_ms"]
    assert "On Sundays we open at ten, and".startswith(cut["heard_text"])
    assert record["metrics"]["interruptions"] == 1
