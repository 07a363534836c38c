"""Twilio Media Streams, bidirectional (``<Connect><Stream>``): the sans-IO protocol layer.

Twilio spells the shared media-stream protocol in camelCase, streams mu-law 8 kHz only,
and requires ``streamSid`` on every frame sent to it. Everything else lives in
:class:`omnivoice.telephony.StreamProtocol`.
"""

from __future__ import annotations

from omnivoice.audio import Encoding
from omnivoice.telephony import StreamProtocol, WireFormat

__all__ = ["TWILIO_WIRE", "TwilioProtocol"]

TWILIO_WIRE = WireFormat(
    carrier="twilio",
    stream_id="streamSid",
    sequence_number="sequenceNumber",
    call_id="callSid",
    account_id="accountSid",
    custom_parameters="customParameters",
    media_format="mediaFormat",
    sample_rate="sampleRate",
    encodings={"audio/x-mulaw": Encoding.MULAW},
    outbound_stream_id=True,
    connected_protocol="Call",
)
"""Twilio's field names and encodings."""


class TwilioProtocol(StreamProtocol):
    """One Twilio media stream: ``receive`` inbound frames, build ``media``/``mark``/``clear``."""

    wire = TWILIO_WIRE
