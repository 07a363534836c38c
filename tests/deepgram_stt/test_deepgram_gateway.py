"""Acceptance: a text-mode call through ``omnivoice serve`` with ``stt_provider="deepgram"``,
pointed at the fake Deepgram server by ``DEEPGRAM_URL``, called by the simulated phone over
Twilio's media-stream protocol.

Deepgram gets the caller's own mu-law bytes; the caller's turns end on its endpointing (the
pipeline's detector is off in this gateway); the caller speaking over the agent is heard
from its ``SpeechStarted`` and the carrier's line is cleared; the call record holds
Deepgram's transcript.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from support.fake_deepgram import FakeDeepgram, speech
from support.gateway_process import running_gateway

from omnivoice.audio.format import TWILIO
from omnivoice.gateway.records import read_call_record
from omnivoice.telephony.phone import SimulatedPhone
from omnivoice.testing import silence
from omnivoice_twilio.transport import TwilioTransport

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TESTS = Path(__file__).resolve().parents[1]
WORDS = "where is my order"


def only_record(directory: Path) -> dict[str, Any]:
    (path,) = directory.glob("*.jsonl")
    return read_call_record(path)


async def test_a_text_mode_call_through_omnivoice_serve_with_deepgram(
    fake: FakeDeepgram, tmp_path: Path
) -> None:
    # The answer starts about 0.3 s after the question (Deepgram's endpointing) and lasts
    # about 3 s; the caller says "wait" 1.4 s after the question, over the answer.
    caller = (
        silence(300, TWILIO)
        + speech(WORDS, TWILIO)
        + silence(1400, TWILIO)
        + speech("wait", TWILIO)
        + silence(1500, TWILIO)
    )
    env = {"PYTHONPATH": str(TESTS), "DEEPGRAM_API_KEY": "test", "DEEPGRAM_URL": fake.url}
    args = ("support.deepgram_app:config", "--mark-every", "1", "--records", str(tmp_path))
    with running_gateway(*args, env=env) as base:
        url = base.replace("http://", "ws://") + "/twilio/media"
        phone = SimulatedPhone(url, TwilioTransport(), caller, TWILIO, linger_s=2.0)
        with anyio.fail_after(30):
            await phone.run()
        conn = await fake.connection(0)
        with anyio.fail_after(10):
            await conn.closed.wait()
    report = phone.report

    # Deepgram heard the carrier's mu-law as it came, all of it and nothing else.
    assert conn.params["encoding"] == "mulaw"
    assert conn.params["sample_rate"] == "8000"
    assert conn.request.headers["authorization"] == "Token test"
    assert bytes(conn.audio) == bytes(phone.spoken)
    assert bytes(phone.spoken).startswith(caller)
    assert conn.of_type("CloseStream")  # the hang-up closed the stream as Deepgram asks

    # Each turn ended on Deepgram's endpointing (the only turn detector of this gateway).
    endpoints = [
        r["channel"]["alternatives"][0]["transcript"] for r in conn.results(speech_final=True)
    ]
    assert endpoints[:2] == [WORDS, "wait"]

    # The caller spoke over the answer: Deepgram's SpeechStarted, the line cleared.
    assert [m["type"] for m in conn.sent].count("SpeechStarted") == 2
    assert report.clears == 1
    assert report.dropped_ms > 0  # the rest of the answer never played

    # The call record has Deepgram's words for the caller.
    record = only_record(tmp_path)
    turns = [(t["role"], t["text"]) for t in record["transcript"]]
    assert turns[0] == ("user", WORDS)
    assert turns[1][0] == "agent"
    assert turns[1][1].startswith(f"You asked about {WORDS}.")
    assert ("user", "wait") in turns
    assert record["transcript"][1]["interrupted"] is True
    assert record["metrics"]["interruptions"] == 1
    assert fake.violations == []
