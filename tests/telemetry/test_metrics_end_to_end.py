"""``/metrics`` of ``omnivoice serve`` during and after a call, with one worker and with two.

The echo provider plays each utterance back after a pause; the simulated phone speaks,
then speaks again over the reply (a barge-in), and hears the second reply. Each scrape is
a new connection, so with ``--workers 2`` it may reach either worker: both must answer
for the whole server.
"""

from __future__ import annotations

import re
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from support.served_gateway import GatewayProcess, serving, value

from omnivoice.audio import TWILIO, g711
from omnivoice.audio.format import Encoding
from omnivoice.telephony.phone import CallReport, SimulatedPhone
from omnivoice_twilio.transport import TwilioTransport

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

RATE = 8000
LABELS = {"transport": "twilio", "provider": "echo"}


def tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
    return 8000.0 * ramp * np.sin(2 * np.pi * hz * t)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds))


def caller_audio() -> tuple[bytes, list[bool]]:
    # The echo of the first utterance starts 0.6 s after it; the caller speaks again 0.1 s
    # into that reply, and the second utterance is echoed in turn.
    pcm = np.concatenate([tone(1.0, 300), silence(0.7), tone(0.6, 700), silence(0.1)])
    pcm = pcm.astype("<i2")
    voiced = [bool(np.abs(block).max() > 1000) for block in pcm.reshape(-1, 160)]
    return g711.encode(pcm.tobytes(), Encoding.MULAW), voiced


class WatchedPhone(SimulatedPhone):
    """The simulated phone, telling the test when it hears the agent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first_reply = anyio.Event()
        self.reply_after_clear = anyio.Event()

    def _on_audio(self, payload: bytes) -> None:
        super()._on_audio(payload)
        self.first_reply.set()
        if self.report.clears:
            self.reply_after_clear.set()


async def scrape_during_and_after(gateway: GatewayProcess) -> tuple[Any, Any, Any, CallReport]:
    audio, voiced = caller_audio()
    url = gateway.url.replace("http://", "ws://") + "/twilio/media"
    phone = WatchedPhone(url, TwilioTransport(), audio, TWILIO, voiced=voiced, linger_s=2.5)
    report: CallReport | None = None

    async def call() -> None:
        nonlocal report
        report = await phone.run()

    with anyio.fail_after(60):
        before = await gateway.scrape()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(call)
            # The first reply reached the phone: the call started and its latency was
            # measured before that audio was sent.
            await phone.first_reply.wait()
            during = await gateway.scrape()
            # The second reply follows the barge-in, which was counted before it.
            await phone.reply_after_clear.wait()
            later = await gateway.scrape()
        counted = await gateway.wait_for_line(r"counted as completed")
        after = await gateway.scrape()
    assert report is not None
    return before, during, (later, after, counted), report


@pytest.mark.parametrize("workers", [1, 2])
async def test_metrics_count_the_call_its_latency_and_its_barge_in(workers: int) -> None:
    args = ["--provider", "echo", "--log-level", "debug", "--workers", str(workers)]
    with serving(*args) as gateway:
        before, during, (later, after, counted), report = await scrape_during_and_after(gateway)

    assert report.clears == 1
    # Call ids are unique across workers: call-PID-N there, call-N in a single process.
    pattern = r"call-\d+-1: counted" if workers > 1 else r"call-1: counted"
    assert re.search(pattern, counted), counted
    assert value(before, "omnivoice_active_calls") == 0
    assert value(before, "omnivoice_calls_total") == 0

    assert value(during, "omnivoice_active_calls") == 1
    assert value(during, "omnivoice_response_latency_seconds_count", **LABELS) == 1
    assert value(during, "omnivoice_gateway_onset_seconds_count", **LABELS) == 1
    # (The barge-in comes 0.1 s into the first reply: it may be counted by this scrape
    # already; only before the call is it surely not.)
    assert value(before, "omnivoice_barge_ins_total", **LABELS) == 0

    assert value(later, "omnivoice_barge_ins_total", **LABELS) == 1
    assert value(later, "omnivoice_barge_in_latency_seconds_count", **LABELS) == 1
    assert value(later, "omnivoice_response_latency_seconds_count", **LABELS) == 2

    assert value(after, "omnivoice_active_calls") == 0
    assert value(after, "omnivoice_calls_total", **LABELS, outcome="completed") == 1
    assert value(after, "omnivoice_calls_total") == 1
    assert value(after, "omnivoice_call_duration_seconds_count", **LABELS) == 1
    assert value(after, "omnivoice_barge_ins_total", **LABELS) == 1
    # The echo answers 0.6 s after the caller's speech ends (its pause detector's wait).
    latency_sum = value(after, "omnivoice_response_latency_seconds_sum", **LABELS)
    assert 2 * 0.5 < latency_sum < 2 * 5
    # Every sample of a histogram is in its +Inf bucket: counts agree across workers.
    inf = value(after, "omnivoice_response_latency_seconds_bucket", **LABELS, le="+Inf")
    assert inf == 2
    # One sample per serving process.
    workers_up = [k for k in after if k[0] == "omnivoice_worker_up"]
    assert len(workers_up) == workers
    assert value(after, "omnivoice_worker_up") == workers


async def test_metrics_port_serves_the_metrics_and_the_main_port_does_not() -> None:
    with serving("--provider", "echo", "--metrics-port", "0") as gateway:
        assert gateway.metrics_url != f"{gateway.url}/metrics"
        found = await gateway.scrape()
        async with httpx.AsyncClient() as client:
            main = await client.get(f"{gateway.url}/metrics")
            health = await client.get(f"{gateway.url}/healthz")
    assert ("omnivoice_active_calls", ()) in found
    assert main.status_code == 404
    assert health.status_code == 200
