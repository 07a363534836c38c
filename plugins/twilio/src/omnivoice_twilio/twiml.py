"""The TwiML answer to Twilio's voice webhook: connect the call to our media stream."""

from __future__ import annotations

from collections.abc import Mapping

from omnivoice.telephony import connect_stream_document

__all__ = ["connect_stream"]


def connect_stream(
    url: str,
    *,
    parameters: Mapping[str, str] | None = None,
    name: str | None = None,
    status_callback: str | None = None,
    status_callback_method: str | None = None,
) -> str:
    """``<Response><Connect><Stream url=.../></Connect></Response>``: a bidirectional stream.

    ``url`` is the ``wss://`` address of the media endpoint (Twilio drops query strings:
    pass per-call data as ``parameters``, which come back as
    :attr:`omnivoice.telephony.Start.custom_parameters`). ``status_callback`` receives
    Twilio's stream status webhooks.
    """
    return connect_stream_document(
        url,
        {
            "name": name,
            "statusCallback": status_callback,
            "statusCallbackMethod": status_callback_method,
        },
        parameters,
    )
