"""Known secrets fed through every path of ``omnivoice serve`` never come out.

The gateway runs with an OpenAI key and a Twilio auth token in its environment, logging
everything (``--log-level debug``, as JSON) and writing call records. Through it go: a
signed webhook, a signed call whose provider session opens with the key, and a signed
call whose provider refuses the key and quotes it back in its error (as vendors do). The
secrets (the key, the token, the signatures made with it) are then looked for in the
log, the records, what the carrier was told when the failed call closed, ``/healthz`` and
``/metrics``.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest
from support.fake_openai import FakeOpenAI
from support.served_gateway import serving

from omnivoice.audio import TWILIO
from omnivoice.telemetry.redact import REDACTED
from omnivoice.telephony.phone import CallReport, SimulatedPhone
from omnivoice_twilio import compute_signature
from omnivoice_twilio.transport import TwilioTransport

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

API_KEY = "sk-proj-0mn1v01ceTestKeyDoNotLog4242"
AUTH_TOKEN = "tw-auth-token-0mn1v01ce-secret-77"


async def signed_call(base: str, *, linger_s: float) -> tuple[CallReport, str]:
    url = base.replace("http://", "ws://") + "/twilio/media"
    transport = TwilioTransport()
    headers = transport.signed_headers(url, AUTH_TOKEN)
    audio = bytes((i * 13) % 0x7F for i in range(8 * 600))
    phone = SimulatedPhone(
        url, transport, audio, TWILIO, voiced=[True] * 30, headers=headers, linger_s=linger_s
    )
    with anyio.fail_after(30):
        report = await phone.run()
    return report, headers["X-Twilio-Signature"]


async def test_no_secret_reaches_the_log_the_records_or_an_error(tmp_path: Path) -> None:
    records = tmp_path / "records"
    refusal = json.dumps(
        {"error": {"message": f"Incorrect API key provided: {API_KEY}", "code": "invalid_api_key"}}
    )
    async with FakeOpenAI(api_key=API_KEY) as fake:
        env = {
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_REALTIME_URL": fake.url,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        }
        args = ["--provider", "openai", "--records", str(records)]
        args += ["--log-level", "debug", "--log-format", "json"]
        with serving(*args, env=env) as gateway:
            base = gateway.url
            # A signed webhook: its form and its signature pass through the server.
            form = {"CallSid": "CA0001", "From": "+15550001", "To": "+15550002"}
            webhook = f"{base}/twilio/voice"
            signature = compute_signature(webhook, form, AUTH_TOKEN)
            async with httpx.AsyncClient() as client:
                answer = await client.post(
                    webhook, data=form, headers={"X-Twilio-Signature": signature}
                )
            assert answer.status_code == 200
            # A call whose provider session opens with the key.
            opened, first_signature = await signed_call(base, linger_s=0.5)
            assert len(fake.connections) == 1
            # A call whose provider refuses the key and quotes it.
            fake.reject(401, refusal, {"content-type": "application/json"})
            refused, second_signature = await signed_call(base, linger_s=0.5)
            await gateway.wait_for_line("provider unavailable")
            async with httpx.AsyncClient() as client:
                health = (await client.get(f"{base}/healthz")).text
                metrics = (await client.get(f"{base}/metrics")).text
            await gateway.wait_for_line(r"counted as provider_unavailable")
        log = gateway.output

    assert refused.close_code == 1011
    written = "".join(path.read_text() for path in sorted(records.glob("*.jsonl")))
    assert written  # records were written
    places = {
        "log": log,
        "records": written,
        "close reasons": f"{opened.close_reason} {refused.close_reason}",
        "/healthz": health,
        "/metrics": metrics,
    }
    secrets = [API_KEY, AUTH_TOKEN, signature, first_signature, second_signature]
    for place, text in places.items():
        for secret in secrets:
            assert secret not in text, f"a secret in the {place}"
        # Nor a telling piece of one (a key cut short still gives it away).
        assert API_KEY[8:24] not in text, place
    # The refusal was logged, with the key taken out; every line is one JSON object.
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len(lines) == len([line for line in log.splitlines() if line.strip()]) - 1
    refusals = [line for line in lines if "provider unavailable" in line["message"]]
    assert refusals
    assert REDACTED in refusals[0]["message"]
    assert refusals[0]["call_id"].startswith("call-")
