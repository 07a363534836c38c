"""Telephony: the carrier-neutral events of a call's media stream and the sans-IO protocol
layer the carrier transports share. Pure code: no sockets, no tasks.

See ``docs/telephony.md`` for the event model and each carrier's mapping.
"""

from omnivoice.telephony.events import (
    CarrierError,
    Connected,
    Dtmf,
    Event,
    Mark,
    Media,
    Start,
    Stop,
)
from omnivoice.telephony.markup import connect_stream_document
from omnivoice.telephony.protocol import (
    DEFAULT_MAX_CONSECUTIVE_BAD_FRAMES,
    DEFAULT_MAX_FRAME_SIZE,
    ProtocolError,
    Reason,
    StreamProtocol,
    StreamState,
    WireFormat,
)
from omnivoice.telephony.transport import (
    IncomingRequest,
    Transport,
    WebhookAnswer,
    post_to_carrier,
)

__all__ = [
    "DEFAULT_MAX_CONSECUTIVE_BAD_FRAMES",
    "DEFAULT_MAX_FRAME_SIZE",
    "CarrierError",
    "Connected",
    "Dtmf",
    "Event",
    "IncomingRequest",
    "Mark",
    "Media",
    "ProtocolError",
    "Reason",
    "Start",
    "Stop",
    "StreamProtocol",
    "StreamState",
    "Transport",
    "WebhookAnswer",
    "WireFormat",
    "connect_stream_document",
    "post_to_carrier",
]
