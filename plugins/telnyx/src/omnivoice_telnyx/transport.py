"""The Telnyx transport: media streaming (RTP mode) for the gateway, signatures, hang-up."""

from __future__ import annotations

import hmac
import os

from omnivoice.audio import TELNYX, TELNYX_L16_16K, AudioFormat, Encoding
from omnivoice.telephony import (
    DEFAULT_MAX_FRAME_SIZE,
    IncomingRequest,
    Start,
    Transport,
    WebhookAnswer,
    post_to_carrier,
)
from omnivoice_telnyx.protocol import TelnyxProtocol
from omnivoice_telnyx.signature import DEFAULT_TOLERANCE, load_public_key, verify_signature
from omnivoice_telnyx.texml import connect_stream

__all__ = ["TelnyxTransport"]

DEFAULT_API_URL = "https://api.telnyx.com"
FORMATS = (TELNYX, AudioFormat(Encoding.ALAW, 8000), TELNYX_L16_16K)


class TelnyxTransport(Transport):
    """Telnyx media streaming, bidirectional in RTP mode: PCMU, PCMA or L16.

    ``codec`` and ``sampling_rate`` (defaults ``TELNYX_CODEC`` or PCMU, and 8000; L16 at
    16000 gives wideband audio) go into the TeXML answer. ``public_key`` (default
    ``TELNYX_PUBLIC_KEY``), when set, makes webhooks carry a valid Ed25519 signature no
    older than ``tolerance`` seconds. ``stream_token`` (default
    ``TELNYX_STREAM_AUTH_TOKEN``), when set, must arrive as the
    ``x-telnyx-streaming-auth-token`` header of media upgrades. Hang-ups use ``api_key``
    (default ``TELNYX_API_KEY``) at ``api_url`` (default ``TELNYX_API_URL``, else Telnyx's).
    """

    name = "telnyx"
    formats = FORMATS

    def __init__(
        self,
        *,
        codec: str | None = None,
        sampling_rate: int | None = None,
        public_key: str | None = None,
        stream_token: str | None = None,
        api_key: str | None = None,
        api_url: str | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        super().__init__(max_frame_size=max_frame_size)
        self.codec = codec or os.environ.get("TELNYX_CODEC") or "PCMU"
        self.sampling_rate = sampling_rate or (16000 if self.codec == "L16" else 8000)
        key = public_key or os.environ.get("TELNYX_PUBLIC_KEY") or None
        # Loaded now, so that a bad key is reported at start-up, not as refused webhooks.
        self.public_key = load_public_key(key) if key else None
        self.stream_token = stream_token or os.environ.get("TELNYX_STREAM_AUTH_TOKEN") or None
        self.api_key = api_key or os.environ.get("TELNYX_API_KEY") or None
        self.api_url = (api_url or os.environ.get("TELNYX_API_URL") or DEFAULT_API_URL).rstrip("/")
        self.tolerance = tolerance
        connect_stream("wss://check.invalid", codec=self.codec, sampling_rate=self.sampling_rate)

    def new_protocol(self) -> TelnyxProtocol:
        return TelnyxProtocol(max_frame_size=self.max_frame_size)

    def answer(self, media_url: str, request: IncomingRequest) -> WebhookAnswer:
        return WebhookAnswer(
            connect_stream(media_url, codec=self.codec, sampling_rate=self.sampling_rate)
        )

    def verify_webhook(self, request: IncomingRequest) -> bool:
        if self.public_key is None:
            return True
        return verify_signature(
            request.body,
            request.headers.get("telnyx-signature-ed25519"),
            request.headers.get("telnyx-timestamp"),
            self.public_key,
            tolerance=self.tolerance,
        )

    def verify_media(self, request: IncomingRequest) -> bool:
        if self.stream_token is None:
            return True
        given = request.headers.get("x-telnyx-streaming-auth-token", "")
        return hmac.compare_digest(given.encode(), self.stream_token.encode())

    def signed_headers(self, url: str, secret: str) -> dict[str, str]:
        return {"x-telnyx-streaming-auth-token": secret}

    async def hangup(self, start: Start) -> None:
        """``POST /v2/calls/{call_control_id}/actions/hangup``; 422 (already ended) is fine."""
        url = f"{self.api_url}/v2/calls/{start.call_id}/actions/hangup"
        await post_to_carrier(
            url,
            carrier="Telnyx",
            ok=(200, 201, 202, 204, 422),
            json={},
            headers={"Authorization": f"Bearer {self.api_key or ''}"},
        )
