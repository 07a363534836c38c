"""``omnivoice serve --provider echo`` with the simulated phone, over real sockets.

The gateway runs as its own process, exactly as a user starts it; the simulated phone
plays Twilio or Telnyx through their real media-stream protocols.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding as KeyEncoding
from cryptography.hazmat.primitives.serialization import PublicFormat
from support.gateway_process import running_gateway

from omnivoice.audio import TWILIO, g711
from omnivoice.audio.format import Encoding
from omnivoice.net import ConnectionClosed, HandshakeError, WebSocket, connect
from omnivoice.telephony.carrier import CarrierSide
from omnivoice.telephony.phone import CallReport, SimulatedPhone
from omnivoice.telephony.transport import Transport
from omnivoice_telnyx import TelnyxTransport
from omnivoice_twilio import compute_signature
from omnivoice_twilio.transport import TwilioTransport

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

RATE = 8000


def tone(seconds: float, hz: float, level: float = 8000.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)  # 10 ms fades: no clicks
    return level * ramp * np.sin(2 * np.pi * hz * t)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds))


def mulaw(*parts: np.ndarray) -> tuple[bytes, list[bool]]:
    pcm = np.concatenate(parts).astype("<i2")
    voiced = [bool(np.abs(block).max() > 1000) for block in pcm.reshape(-1, 160)]
    return g711.encode(pcm.tobytes(), Encoding.MULAW), voiced


def decode(audio: bytes) -> np.ndarray:
    return np.frombuffer(g711.decode(audio, Encoding.MULAW), "<i2").astype(np.float64)


def dominant_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * RATE / len(pcm))


def voiced_ms(pcm: np.ndarray) -> int:
    frames = pcm[: len(pcm) - len(pcm) % 160].reshape(-1, 160)
    return 20 * int(np.sum(np.sqrt(np.mean(frames * frames, axis=1)) > 300))


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    with running_gateway("--provider", "echo", "--mark-every", "1") as url:
        yield url


def media_url(base: str, carrier: str) -> str:
    return base.replace("http://", "ws://") + f"/{carrier}/media"


async def call(
    base: str,
    transport: Transport,
    audio: bytes,
    voiced: list[bool],
    *,
    linger_s: float,
    headers: dict[str, str] | None = None,
) -> tuple[CallReport, bytes]:
    phone = SimulatedPhone(
        media_url(base, transport.name),
        transport,
        audio,
        TWILIO,
        voiced=voiced,
        linger_s=linger_s,
        headers=headers,
    )
    with anyio.fail_after(30):
        report = await phone.run()
    return report, bytes(phone.heard)


@pytest.mark.parametrize("transport", [TwilioTransport(), TelnyxTransport()], ids=lambda t: t.name)
async def test_the_caller_hears_its_own_speech_and_marks_track_the_playback(
    gateway: str, transport: Transport
) -> None:
    audio, voiced = mulaw(silence(0.3), tone(0.6, 300), silence(0.2))
    report, heard = await call(gateway, transport, audio, voiced, linger_s=2.5)

    pcm = decode(heard)
    assert 550 <= voiced_ms(pcm) <= 800  # the 600 ms of speech, played back once
    loud = np.flatnonzero(np.abs(pcm) > 1000)
    assert abs(dominant_hz(pcm[loud[0] : loud[-1]]) - 300) < 15
    # The echo came after the caller's pause: the gateway had to receive the 600 ms of
    # quiet that end an utterance (30 frames) before it could answer.
    assert report.latencies_ms
    assert report.quiet_frames_before_reply[0] >= 600 // 20
    assert report.clears == 0
    # Every mark came back once its audio had played, and says exactly how much had.
    assert report.marks_received == report.marks_acknowledged > 0
    for name, heard_ms in report.acknowledged:
        segment, position = name.split(".")[:2]
        assert segment == "s1"
        assert int(position) // 8 == heard_ms  # 8 bytes of mu-law per millisecond
    assert report.acknowledged[-1][0].endswith(".end")
    assert report.bad_frames == 0


@pytest.mark.parametrize("transport", [TwilioTransport(), TelnyxTransport()], ids=lambda t: t.name)
async def test_barge_in_clears_the_line_and_no_queued_frame_follows(
    gateway: str, transport: Transport
) -> None:
    # The echo of the 300 Hz utterance starts 0.6 s after it; the caller speaks again
    # (700 Hz) 0.1 s into that reply.
    audio, voiced = mulaw(tone(1.0, 300), silence(0.7), tone(0.6, 700), silence(0.1))
    report, heard = await call(gateway, transport, audio, voiced, linger_s=2.5)

    assert report.clears == 1
    # Paced, not sent whole: a clear drops about the lead (100 ms), never the ~900 ms rest
    # of the reply (the bound is loose: a loaded phone plays late and drops more).
    assert report.dropped_ms < 500
    clear = report.received.index("clear")
    before = [m for m in report.received[:clear] if isinstance(m, bytes)]
    after = [m for m in report.received[clear:] if isinstance(m, bytes)]
    assert before
    assert after
    assert abs(dominant_hz(decode(b"".join(before))) - 300) < 15
    # Nothing of the interrupted reply comes after the clear: only the next one (700 Hz).
    for payload in after:
        pcm = decode(payload)
        if np.sqrt(np.mean(pcm * pcm)) > 300:
            assert abs(dominant_hz(pcm) - 700) < 60
    # The first reply was cut short; the second played whole.
    pcm = decode(heard)
    assert voiced_ms(pcm) < 1000 + 650


async def test_a_phone_that_takes_turns_waits_for_each_reply(gateway: str) -> None:
    turns = [mulaw(tone(0.4, 300))[0], mulaw(tone(0.4, 500))[0]]
    phone = SimulatedPhone(
        media_url(gateway, "twilio"), TwilioTransport(), turns, TWILIO, linger_s=0.2, pause_s=0.3
    )
    with anyio.fail_after(30):
        report = await phone.run()
    assert report.clears == 0  # the caller never spoke over the agent
    assert len(report.latencies_ms) == 2
    # What the caller sent and heard line up frame by frame on the call's timeline.
    assert len(phone.spoken) == report.frames_sent * 160
    spoken, heard = decode(bytes(phone.spoken)), decode(bytes(phone.heard))
    second_turn = np.flatnonzero(np.abs(spoken) > 1000)[-1]
    first_reply = np.flatnonzero(np.abs(heard[:second_turn]) > 1000)
    assert len(first_reply) > 0  # the first reply was heard before the second turn ended
    assert abs(dominant_hz(heard[first_reply[0] : first_reply[-1]]) - 300) < 15


async def test_signatures_are_required_when_a_secret_is_set() -> None:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes(KeyEncoding.Raw, PublicFormat.Raw))
    env = {"TWILIO_AUTH_TOKEN": "s3cret", "TELNYX_PUBLIC_KEY": public.decode()}
    with running_gateway("--provider", "echo", env=env) as base:
        async with httpx.AsyncClient() as http:
            url = f"{base}/twilio/voice"
            form = {"CallSid": "CA1", "From": "+15550001111"}
            unsigned = await http.post(url, data=form)
            assert unsigned.status_code == 403
            forged = await http.post(
                url, data=form, headers={"X-Twilio-Signature": compute_signature(url, form, "no")}
            )
            assert forged.status_code == 403
            signed = await http.post(
                url,
                data=form,
                headers={"X-Twilio-Signature": compute_signature(url, form, "s3cret")},
            )
            assert signed.status_code == 200
            assert "<Connect><Stream" in signed.text
            assert 'value="+15550001111"' in signed.text

            body = json.dumps({"data": {"event_type": "call.initiated"}}).encode()
            now = str(int(time.time()))
            sig = base64.b64encode(key.sign(now.encode() + b"|" + body)).decode()
            telnyx = f"{base}/telnyx/voice"
            assert (await http.post(telnyx, content=body)).status_code == 403
            old = str(int(time.time()) - 600)
            stale = base64.b64encode(key.sign(old.encode() + b"|" + body)).decode()
            headers = {"telnyx-signature-ed25519": stale, "telnyx-timestamp": old}
            assert (await http.post(telnyx, content=body, headers=headers)).status_code == 403
            headers = {"telnyx-signature-ed25519": sig, "telnyx-timestamp": now}
            answer = await http.post(telnyx, content=body, headers=headers)
            assert answer.status_code == 200
            assert 'bidirectionalMode="rtp"' in answer.text

            health = (await http.get(f"{base}/healthz")).json()
            assert health["rejected_signatures"] == 4

        ws_url = media_url(base, "twilio")
        with pytest.raises(HandshakeError) as refused:
            async with connect(ws_url, headers=[("X-Twilio-Signature", "bogus")]):
                pass
        assert refused.value.status_code == 403

        transport = TwilioTransport()
        audio, voiced = mulaw(tone(0.3, 300), silence(0.2))
        report, _ = await call(
            base,
            transport,
            audio,
            voiced,
            linger_s=1.2,
            headers=transport.signed_headers(ws_url, "s3cret"),
        )
        assert report.frames_received > 0  # the signed call was served


async def _drain(ws: WebSocket) -> None:
    while True:
        await ws.receive()


async def _health(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        document: dict[str, Any] = (await http.get(f"{base}/healthz")).json()
        return document


async def _bad_stream(url: str, frames: list[str], *, expect_close: int | None) -> None:
    """Open a stream, send ``frames``; check the gateway closes it, or keeps it open."""
    async with connect(url) as ws:
        for frame in frames:
            await ws.send(frame)
        if expect_close is None:
            await ws.send(json.dumps({"event": "stop", "streamSid": "x", "sequenceNumber": "9"}))
            with anyio.fail_after(10), pytest.raises(ConnectionClosed) as closed:
                await ws.receive()  # the call ends after stop: the gateway closes
            assert closed.value.code in (1000, 1006)
        else:
            with anyio.fail_after(10), pytest.raises(ConnectionClosed) as closed:
                await _drain(ws)
            assert closed.value.code == expect_close
            assert closed.value.reason


async def test_bad_input_is_counted_and_never_disturbs_another_call(gateway: str) -> None:
    side = CarrierSide(TwilioTransport().new_protocol().wire, TWILIO)
    start = [side.connected(), side.start()]
    good_media = side.media(b"\xff" * 160, 0)
    url = media_url(gateway, "twilio")
    bad_cases: list[tuple[list[str], int | None]] = [
        ([*start, "{not json", good_media], None),
        ([*start, json.dumps({"event": "surprise"}), good_media], None),
        ([*start, good_media.replace('"payload": "', '"payload": "!!!')], None),
        ([side.connected(), good_media, side.start()], None),  # media before start
        ([*start, "x" * (64 * 1024 + 1)], 1009),
        ([side.connected(), json.dumps({"event": "start", "start": {}})], 1008),
    ]
    before = (await _health(gateway))["calls"]["bad_frames"]
    audio, voiced = mulaw(silence(0.2), tone(0.6, 300), silence(0.2))
    async with anyio.create_task_group() as tasks:
        results: list[tuple[CallReport, bytes]] = []

        async def good_call() -> None:
            results.append(await call(gateway, TwilioTransport(), audio, voiced, linger_s=2.0))

        tasks.start_soon(good_call)
        for frames, expect_close in bad_cases:
            await _bad_stream(url, frames, expect_close=expect_close)
    ((report, heard),) = results
    assert 550 <= voiced_ms(decode(heard)) <= 800  # the concurrent call was served whole
    assert report.close_code == 1000  # ended normally by its own stop
    after = (await _health(gateway))["calls"]["bad_frames"]
    for reason in (
        "malformed_json",
        "unknown_event",
        "invalid_base64",
        "media_before_start",
        "frame_too_large",
    ):
        assert after.get(reason, 0) > before.get(reason, 0), reason
