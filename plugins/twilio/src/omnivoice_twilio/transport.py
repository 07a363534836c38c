"""The Twilio transport: Media Streams for the gateway, signatures, and hang-up."""

from __future__ import annotations

import os

from omnivoice.audio import TWILIO
from omnivoice.telephony import (
    DEFAULT_MAX_FRAME_SIZE,
    IncomingRequest,
    Start,
    Transport,
    WebhookAnswer,
    post_to_carrier,
)
from omnivoice_twilio.protocol import TwilioProtocol
from omnivoice_twilio.signature import compute_signature, validate_signature
from omnivoice_twilio.twiml import connect_stream

__all__ = ["TwilioTransport"]

DEFAULT_API_URL = "https://api.twilio.com"

# Webhook fields handed on to the media stream as <Parameter>s (they arrive in Start).
_FORWARDED = {"From": "from", "To": "to", "CallSid": "call_sid", "Direction": "direction"}


class TwilioTransport(Transport):
    """Twilio Media Streams, bidirectional (``<Connect><Stream>``).

    ``auth_token`` (default ``TWILIO_AUTH_TOKEN``), when set, makes every webhook and
    media upgrade carry a valid ``X-Twilio-Signature``. ``account_sid`` (default
    ``TWILIO_ACCOUNT_SID``, else the stream's own) and the auth token authenticate
    hang-ups at ``api_url`` (default ``TWILIO_API_URL``, else Twilio's).
    """

    name = "twilio"
    formats = (TWILIO,)

    def __init__(
        self,
        *,
        auth_token: str | None = None,
        account_sid: str | None = None,
        api_url: str | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        super().__init__(max_frame_size=max_frame_size)
        self.auth_token = auth_token or os.environ.get("TWILIO_AUTH_TOKEN") or None
        self.account_sid = account_sid or os.environ.get("TWILIO_ACCOUNT_SID") or None
        self.api_url = (api_url or os.environ.get("TWILIO_API_URL") or DEFAULT_API_URL).rstrip("/")

    def new_protocol(self) -> TwilioProtocol:
        return TwilioProtocol(max_frame_size=self.max_frame_size)

    def answer(self, media_url: str, request: IncomingRequest) -> WebhookAnswer:
        fields = request.form or {}
        parameters = {
            name: fields[field][0] for field, name in _FORWARDED.items() if fields.get(field)
        }
        return WebhookAnswer(connect_stream(media_url, parameters=parameters))

    def verify_webhook(self, request: IncomingRequest) -> bool:
        return self._verify(request)

    def verify_media(self, request: IncomingRequest) -> bool:
        return self._verify(request)

    def _verify(self, request: IncomingRequest) -> bool:
        if self.auth_token is None:
            return True
        signature = request.headers.get("x-twilio-signature", "")
        params = request.form if request.method == "POST" else None
        return validate_signature(request.url, params, signature, self.auth_token)

    def signed_headers(self, url: str, secret: str) -> dict[str, str]:
        return {"X-Twilio-Signature": compute_signature(url, None, secret)}

    async def hangup(self, start: Start) -> None:
        """Complete the call: ``POST .../Calls/{CallSid}.json`` with ``Status=completed``."""
        account = self.account_sid or start.account_id or ""
        url = f"{self.api_url}/2010-04-01/Accounts/{account}/Calls/{start.call_id}.json"
        await post_to_carrier(
            url,
            carrier="Twilio",
            data={"Status": "completed"},
            auth=(account, self.auth_token or ""),
        )
