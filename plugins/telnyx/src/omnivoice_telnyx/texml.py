"""The TeXML answer to Telnyx's voice webhook: connect the call to our media stream."""

from __future__ import annotations

from collections.abc import Mapping

from omnivoice.telephony import connect_stream_document

__all__ = ["CODECS", "SAMPLING_RATES", "connect_stream"]

CODECS = ("PCMU", "PCMA", "L16")
"""The codecs :class:`omnivoice_telnyx.TelnyxProtocol` decodes."""
SAMPLING_RATES = (8000, 16000, 24000)
"""The bidirectional sampling rates Telnyx offers."""


def connect_stream(
    url: str,
    *,
    codec: str = "PCMU",
    sampling_rate: int = 8000,
    parameters: Mapping[str, str] | None = None,
    name: str | None = None,
    status_callback: str | None = None,
    status_callback_method: str | None = None,
) -> str:
    """``<Response><Connect><Stream .../></Connect></Response>``: a bidirectional RTP stream.

    ``codec`` is used both ways (``codec`` and ``bidirectionalCodec``), at
    ``sampling_rate`` for the audio sent back (``bidirectionalSamplingRate``); L16 at
    16000 Hz gives wideband audio. ``parameters`` come back as
    :attr:`omnivoice.telephony.Start.custom_parameters`.
    """
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, not {codec!r}")
    if sampling_rate not in SAMPLING_RATES:
        raise ValueError(f"sampling_rate must be one of {SAMPLING_RATES}, not {sampling_rate}")
    return connect_stream_document(
        url,
        {
            "name": name,
            "codec": codec,
            "bidirectionalMode": "rtp",
            "bidirectionalCodec": codec,
            "bidirectionalSamplingRate": str(sampling_rate),
            "statusCallback": status_callback,
            "statusCallbackMethod": status_callback_method,
        },
        parameters,
    )
