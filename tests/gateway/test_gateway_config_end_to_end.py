"""``omnivoice serve module:config`` with a realtime configuration, and its call records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.gateway_process import running_gateway

from omnivoice.audio import TWILIO, g711
from omnivoice.audio.format import Encoding
from omnivoice.gateway.records import read_call_record
from omnivoice.telephony.phone import SimulatedPhone
from omnivoice_twilio import TwilioTransport

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TESTS = Path(__file__).resolve().parents[1]


def speech(*pattern: tuple[float, bool]) -> tuple[bytes, list[bool]]:
    """Alternating tone and silence, mu-law, with the voiced flag of each 20 ms frame."""
    parts = []
    for seconds, voiced in pattern:
        t = np.arange(int(8000 * seconds)) / 8000
        parts.append(6000 * np.sin(2 * np.pi * 300 * t) if voiced else np.zeros_like(t))
    pcm = np.concatenate(parts).astype("<i2")
    flags = [bool(np.abs(block).max() > 1000) for block in pcm.reshape(-1, 160)]
    return g711.encode(pcm.tobytes(), Encoding.MULAW), flags


async def test_a_configured_gateway_records_the_call(tmp_path: Path) -> None:
    records = tmp_path / "records"
    args = ("support.scripted_app:config", "--records", str(records))
    with running_gateway(*args, env={"PYTHONPATH": str(TESTS)}) as base:
        audio, voiced = speech((0.2, False), (0.5, True), (2.0, False), (0.5, True), (0.3, False))
        phone = SimulatedPhone(
            base.replace("http://", "ws://") + "/twilio/media",
            TwilioTransport(),
            audio,
            TWILIO,
            voiced=voiced,
            linger_s=2.0,
        )
        report = await phone.run()
    assert report.close_code == 1000  # the gateway ended the call after the stop

    (path,) = records.glob("*.jsonl")
    record = read_call_record(path)
    assert record["complete"]
    assert record["call"]["transport"] == "twilio"
    assert record["call"]["provider"] == "scripted"
    turns = [(turn["role"], turn["text"]) for turn in record["transcript"]]
    assert turns == [
        ("user", "caller turn 1"),
        ("agent", "Agent reply 1"),
        ("user", "caller turn 2"),
        ("agent", "Agent reply 2"),
    ]
    agent = [turn for turn in record["transcript"] if turn["role"] == "agent"]
    assert all(not turn["interrupted"] and turn["heard_text"] == turn["text"] for turn in agent)
    assert all(500 <= turn["heard_ms"] <= 700 for turn in agent)
    metrics = record["metrics"]
    assert metrics["turns"] == 2
    assert metrics["interruptions"] == 0
    assert metrics["response_latency_ms"]["count"] == 2
    # Measured from the real end of speech: the 400 ms of quiet the echo waited for count
    # (to within the record's 0.1 ms rounding of both ends).
    assert all(latency >= 399 for latency in metrics["response_latencies_ms"]), metrics[
        "response_latencies_ms"
    ]
    assert metrics["audio_in_bytes"] == report.frames_sent * 160
    types = [event["type"] for event in record["events"]]
    assert types[0] == "session_started"
    assert types[-1] == "session_ended"
    assert types.count("agent_speech_ended") == 2
