"""Telnyx media streaming, bidirectional RTP mode: the sans-IO protocol layer.

Telnyx spells the shared media-stream protocol in snake_case, reports stream errors in
``error`` frames, and needs no stream id on frames sent to it. PCMU, PCMA and L16 are
decoded. L16 is linear PCM in network byte order (big-endian, as RTP carries it); this
layer swaps it both ways, so :class:`omnivoice.telephony.Media` payloads and the audio given
to :meth:`~omnivoice.telephony.StreamProtocol.media` are little-endian PCM16, like every
omnivoice PCM16 format. Everything else lives in :class:`omnivoice.telephony.StreamProtocol`.
"""

from __future__ import annotations

from omnivoice.audio import Encoding
from omnivoice.telephony import StreamProtocol, WireFormat

__all__ = ["TELNYX_WIRE", "TelnyxProtocol"]

TELNYX_WIRE = WireFormat(
    carrier="telnyx",
    stream_id="stream_id",
    sequence_number="sequence_number",
    call_id="call_control_id",
    account_id="user_id",
    custom_parameters="custom_parameters",
    media_format="media_format",
    sample_rate="sample_rate",
    encodings={"PCMU": Encoding.MULAW, "PCMA": Encoding.ALAW, "L16": Encoding.PCM16},
    big_endian=frozenset({"L16"}),
    error_event=True,
    start_parameters={"from": "from", "to": "to"},
)
"""Telnyx's field names and the encodings this layer decodes."""


class TelnyxProtocol(StreamProtocol):
    """One Telnyx media stream: ``receive`` inbound frames, build ``media``/``mark``/``clear``."""

    wire = TELNYX_WIRE
