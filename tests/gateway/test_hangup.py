"""Hanging up through the carriers' REST APIs, against a local stand-in server."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

import pytest
from support.fake_http import Request, fake_http_server

from omnivoice.audio import TWILIO
from omnivoice.errors import CarrierAPIError
from omnivoice.telephony import Start
from omnivoice_telnyx import TelnyxTransport
from omnivoice_twilio import TwilioTransport

pytestmark = pytest.mark.anyio

START = Start(
    stream_id="MZ1", call_id="CA42", account_id="AC7", custom_parameters={}, media_format=TWILIO
)


async def test_twilio_completes_the_call() -> None:
    async with fake_http_server(lambda request: (200, b'{"status": "completed"}')) as api:
        transport = TwilioTransport(auth_token="tok", api_url=api.url)
        await transport.hangup(START)
    (request,) = api.requests
    assert (request.method, request.target) == ("POST", "/2010-04-01/Accounts/AC7/Calls/CA42.json")
    assert parse_qs(request.body.decode()) == {"Status": ["completed"]}
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"AC7:tok").decode()


async def test_twilio_refusal_is_an_error_naming_the_status() -> None:
    async with fake_http_server(lambda request: (401, b'{"message": "Authenticate"}')) as api:
        with pytest.raises(CarrierAPIError, match="401"):
            await TwilioTransport(auth_token="bad", api_url=api.url).hangup(START)


@pytest.mark.parametrize("status", [200, 422])  # 422: the call had already ended
async def test_telnyx_hangs_up(status: int) -> None:
    def answer(request: Request) -> tuple[int, bytes]:
        return status, b"{}"

    async with fake_http_server(answer) as api:
        await TelnyxTransport(api_key="KEY1", api_url=api.url).hangup(START)
    (request,) = api.requests
    assert request.target == "/v2/calls/CA42/actions/hangup"
    assert request.headers["authorization"] == "Bearer KEY1"


async def test_an_unreachable_api_is_an_error() -> None:
    async with fake_http_server(lambda request: (200, b"")) as api:
        url = api.url
    with pytest.raises(CarrierAPIError, match="unreachable"):
        await TelnyxTransport(api_key="k", api_url=url).hangup(START)


def test_the_api_urls_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_API_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("TELNYX_API_URL", "http://127.0.0.1:10")
    assert TwilioTransport().api_url == "http://127.0.0.1:9"
    assert TelnyxTransport().api_url == "http://127.0.0.1:10"
