"""Acceptance: a text-mode call through ``omnivoice serve`` with ElevenLabs speaking (the
fake, by ``ELEVENLABS_API_URL``), called by the simulated phone over Twilio.

One WebSocket for the whole call, opened when the call starts, in mu-law (no conversion
anywhere); the model's words reach the vendor while it is still writing; the caller hears
the vendor's audio byte for byte; a barge-in closes the context and nothing of it is heard
after the clear; the call record and the model's history hold exactly the words whose
audio had played.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from support.elevenlabs_app import ANSWER, GREETING
from support.fake_elevenlabs import API_KEY, FakeElevenLabs
from support.gateway_process import running_gateway

from omnivoice.audio import TWILIO, g711
from omnivoice.audio.format import Encoding
from omnivoice.gateway.records import read_call_record
from omnivoice.telephony.phone import SimulatedPhone
from omnivoice_twilio import TwilioTransport

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TESTS = Path(__file__).resolve().parents[1]
BYTES_PER_MS = 8  # mu-law at 8 kHz
FRAME = 160


def caller(*pattern: tuple[float, bool]) -> tuple[bytes, list[bool]]:
    """Tone for speech, silence between, mu-law, with each frame's voiced flag."""
    parts = []
    for seconds, voiced in pattern:
        t = np.arange(int(8000 * seconds)) / 8000
        parts.append(6000 * np.sin(2 * np.pi * 300 * t) if voiced else np.zeros_like(t))
    pcm = np.concatenate(parts).astype("<i2")
    flags = [bool(np.abs(block).max() > 1000) for block in pcm.reshape(-1, FRAME)]
    return g711.encode(pcm.tobytes(), Encoding.MULAW), flags


def heard_prefix(heard: bytes, audio: bytes) -> int:
    """How many bytes of ``audio``, from its start, the caller heard (contiguously)."""
    start = heard.find(audio[:FRAME])
    if start < 0:
        return 0
    n = 0
    while n < len(audio) and start + n < len(heard) and heard[start + n] == audio[n]:
        n += 1
    return n


def only_record(directory: Path) -> dict[str, Any]:
    (path,) = directory.glob("*.jsonl")
    return read_call_record(path)


async def test_a_call_with_a_barge_in_through_omnivoice_serve(
    fake: FakeElevenLabs, tmp_path: Path
) -> None:
    audio, voiced = caller(
        (1.0, False),
        (0.5, True),  # caller turn 1: the greeting follows
        (3.0, False),
        (0.5, True),  # caller turn 2: the long answer follows
        (2.2, False),
        (0.6, True),  # caller turn 3, over the answer: a barge-in
        (3.0, False),
    )
    env = {
        "PYTHONPATH": str(TESTS),
        "ELEVENLABS_API_KEY": API_KEY,
        "ELEVENLABS_API_URL": fake.api_url,
    }
    args = ("support.elevenlabs_app:config", "--mark-every", "1", "--records", str(tmp_path))
    with running_gateway(*args, env=env) as base:
        phone = SimulatedPhone(
            base.replace("http://", "ws://") + "/twilio/media",
            TwilioTransport(),
            audio,
            TWILIO,
            voiced=voiced,
            linger_s=1.0,
        )
        with anyio.fail_after(40):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(phone.run)
                socket = await fake.connection(0)
                # Opened when the call started: before the caller's first turn had ended.
                assert phone.report.frames_sent < 75
                assert socket.contexts == {}
                await fake.wait_until(lambda: "r3" in socket.contexts)
                third = socket.contexts["r3"]
                await fake.wait_until(lambda: third.final_sent)
            # The phone hung up: the call's stream is closed with it.
            await fake.wait_until(lambda: socket.closed_by_client)
    report = phone.report
    heard = bytes(phone.heard)

    # One WebSocket for the whole call, mu-law from the vendor to the caller.
    assert len(fake.connections) == 1
    assert socket.multi
    assert socket.params["output_format"] == "ulaw_8000"
    assert socket.voice_id == "voice-1"  # TextConfig.voice
    assert socket.closed_by_client  # closed when the call ended
    greeting, answer = socket.contexts["r1"], socket.contexts["r2"]

    # The model's words went out as it wrote them, not once the answer was complete: the
    # second answer never was (the model was still writing when the caller barged in).
    assert greeting.text.split() == GREETING.split()
    assert len(greeting.texts) > 3
    assert answer.text.split() == ANSWER.split()[:-1]  # all but the word being written
    first_sentence = ANSWER[: ANSWER.index(". ") + 1]
    assert answer.generated.strip() == first_sentence  # flushed as it ended

    # The caller heard the vendor's audio byte for byte: all of the greeting...
    assert heard_prefix(heard, bytes(greeting.audio)) == len(greeting.audio)
    # ... and the answer up to the barge-in, which closed its context; nothing of it was
    # heard after the clear (even the audio the vendor sent after the close).
    assert report.clears == 1
    assert answer.closed
    played = heard_prefix(heard, bytes(answer.audio))
    assert 0 < played < len(answer.audio)
    start = heard.find(bytes(answer.audio[:FRAME]))
    later = bytes(answer.audio[played + FRAME :])
    assert not any(
        later[i : i + FRAME] in heard[start:] for i in range(0, len(later) - FRAME, FRAME)
    )

    # The record: the interrupted turn holds exactly the words whose audio had played
    # (a word counts once its midpoint had), by the vendor's own alignment.
    record = only_record(tmp_path)
    agents = [t for t in record["transcript"] if t["role"] == "agent"]
    assert agents[0]["text"] == GREETING
    assert agents[0]["heard_text"] == GREETING
    assert not agents[0]["interrupted"]
    cut = agents[1]
    assert cut["interrupted"]
    heard_words = [w for w, begin, end in answer.words() if (begin + end) / 2 <= cut["heard_ms"]]
    assert heard_words
    assert cut["heard_text"] == " ".join(heard_words)
    # The playback position the record uses is the caller's (marks, to a frame and the
    # marks still on their way back).
    assert abs(cut["heard_ms"] - played / BYTES_PER_MS) <= 120
    assert record["metrics"]["interruptions"] == 1

    # And the model was told the same words: it says them back in its next answer.
    assert third.text.split() == f"Sorry. I had said: {' '.join(heard_words)}".split()
