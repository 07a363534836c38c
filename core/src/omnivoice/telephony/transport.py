"""The Transport contract: what a carrier plugin gives the gateway.

The gateway mounts every installed transport under its name: the carrier's voice webhook
at ``/NAME/voice`` (answered with :meth:`Transport.answer`) and its media WebSocket at
``/NAME/media`` (spoken with :meth:`Transport.new_protocol`). Requests are checked with
:meth:`Transport.verify_webhook` and :meth:`Transport.verify_media` before anything else
happens.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import attrs
import httpx

from omnivoice.audio.format import AudioFormat
from omnivoice.errors import CarrierAPIError
from omnivoice.telephony.events import Start
from omnivoice.telephony.protocol import DEFAULT_MAX_FRAME_SIZE, StreamProtocol

__all__ = ["IncomingRequest", "Transport", "WebhookAnswer", "post_to_carrier"]


@attrs.frozen
class IncomingRequest:
    """An HTTP request from the carrier, as signature checks need it."""

    url: str
    """The full URL the carrier requested (scheme, host, path, query), as it was public."""
    method: str
    headers: Mapping[str, str]
    """Header names in lower case."""
    body: bytes = b""
    form: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    """Form fields of a form-encoded POST, each with all its values in order."""


@attrs.frozen
class WebhookAnswer:
    """The body of the answer to a voice webhook."""

    body: str
    media_type: str = "application/xml"


class Transport(abc.ABC):
    """A carrier's media-stream protocol, its webhooks and its call-control API."""

    name: str = "transport"
    """The name it is registered and mounted under."""
    formats: tuple[AudioFormat, ...] = ()
    """The audio formats the carrier's streams can carry."""

    def __init__(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size

    @abc.abstractmethod
    def new_protocol(self) -> StreamProtocol:
        """The sans-IO protocol state of one new media stream."""

    @abc.abstractmethod
    def answer(self, media_url: str, request: IncomingRequest) -> WebhookAnswer:
        """The answer to the voice webhook: connect the call to ``media_url`` (``wss://``)."""

    def verify_webhook(self, request: IncomingRequest) -> bool:
        """Whether a voice webhook really comes from the carrier.

        The default accepts everything; transports check signatures when their secret is
        configured. A refused request is answered 403 and not processed.
        """
        return True

    def verify_media(self, request: IncomingRequest) -> bool:
        """Whether a media WebSocket upgrade really comes from the carrier (as above)."""
        return True

    def signed_headers(self, url: str, secret: str) -> dict[str, str]:
        """Headers a genuine carrier would send to open a media stream at ``url``, given the
        secret :meth:`verify_media` checks (for the simulated phone and tests)."""
        return {}

    async def hangup(self, start: Start) -> None:
        """End the call through the carrier's API (not only its media stream).

        Raises :class:`~omnivoice.errors.CarrierAPIError` if the carrier refuses.
        """
        raise CarrierAPIError(f"{self.name} cannot hang up calls")


async def post_to_carrier(
    url: str,
    *,
    carrier: str,
    ok: tuple[int, ...] = (200, 201, 202, 204),
    http_timeout: float = 10.0,
    **request: Any,
) -> httpx.Response:
    """POST to a carrier's REST API; raise :class:`CarrierAPIError` unless the status is ``ok``.

    ``request`` is passed to :meth:`httpx.AsyncClient.post` (``data``, ``json``, ``auth``,
    ``headers``).
    """
    try:
        async with httpx.AsyncClient(timeout=http_timeout) as client:
            response = await client.post(url, **request)
    except httpx.HTTPError as exc:
        raise CarrierAPIError(f"{carrier} API unreachable at {url}: {exc}") from exc
    if response.status_code not in ok:
        raise CarrierAPIError(
            f"{carrier} API answered {response.status_code} to POST {url}: {response.text[:300]}"
        )
    return response
