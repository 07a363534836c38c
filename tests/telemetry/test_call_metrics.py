"""What the telemetry observer counts for calls that end badly, through the call driver."""

from __future__ import annotations

import anyio
import pytest
from prometheus_client import REGISTRY

from omnivoice.audio import TWILIO
from omnivoice.errors import AuthFailedError
from omnivoice.gateway.call import run_call
from omnivoice.plugins import PLUGINS_ENV_VAR, Registry
from omnivoice.realtime import ProcessConfig
from omnivoice.realtime.provider import Provider
from omnivoice.telemetry.metrics import gateway_metrics
from omnivoice.telephony import Start
from omnivoice.telephony.carrier import CarrierSide
from omnivoice.testing import FakeCarrierSocket, ScriptedProvider
from omnivoice_twilio import TwilioTransport

pytestmark = pytest.mark.anyio


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def total(name: str) -> float:
    """The sum of every sample called ``name``, whatever its labels."""
    return sum(s.value for m in REGISTRY.collect() for s in m.samples if s.name == name)


async def serve(socket: FakeCarrierSocket, provider: Provider) -> None:
    async def sessions(start: Start) -> tuple[Provider, ProcessConfig]:
        return provider, ProcessConfig()

    registry = Registry.load(environ={PLUGINS_ENV_VAR: ""})
    with anyio.fail_after(5):
        await run_call(socket, TwilioTransport(), sessions, registry=registry)


async def test_a_stream_that_never_starts_still_counts_its_bad_frames() -> None:
    gateway_metrics()
    labels = {"transport": "twilio", "reason": "malformed_json"}
    bad_before = sample("omnivoice_carrier_bad_frames_total", **labels)
    calls_before = sample(
        "omnivoice_calls_total", transport="twilio", provider="fake", outcome="carrier_error"
    )
    socket = FakeCarrierSocket()
    for frame in ("{not json", "[1, 2]", '{"event": "start"}'):  # then an invalid start
        await socket.inbound_tx.send(frame)
    await serve(socket, ScriptedProvider("fake"))
    assert sample("omnivoice_carrier_bad_frames_total", **labels) == bad_before + 2
    # No call started: none is counted, and nothing is left active.
    assert (
        sample(
            "omnivoice_calls_total", transport="twilio", provider="fake", outcome="carrier_error"
        )
        == calls_before
    )
    assert sample("omnivoice_active_calls") == 0


async def test_a_provider_that_refuses_the_key_is_counted_by_its_error_class() -> None:
    gateway_metrics()
    calls = {"transport": "twilio", "provider": "fake", "outcome": "provider_unavailable"}
    errors = {"provider": "fake", "error": "AuthFailedError", "fatal": "true"}
    calls_before = sample("omnivoice_calls_total", **calls)
    errors_before = sample("omnivoice_provider_errors_total", **errors)
    socket = FakeCarrierSocket()
    side = CarrierSide(TwilioTransport().new_protocol().wire, TWILIO)
    await socket.inbound_tx.send(side.connected())
    await socket.inbound_tx.send(side.start())
    await serve(socket, ScriptedProvider("fake", connect_error=AuthFailedError("bad key")))
    assert sample("omnivoice_calls_total", **calls) == calls_before + 1
    assert sample("omnivoice_provider_errors_total", **errors) == errors_before + 1
    assert sample("omnivoice_active_calls") == 0
