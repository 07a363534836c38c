"""The events a carrier's media stream produces, the same for every carrier.

A transport's protocol layer turns each inbound WebSocket text frame into at most one of
these; the gateway consumes them without knowing which carrier sent them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import attrs

from omnivoice.audio import AudioFormat

__all__ = [
    "CarrierError",
    "Connected",
    "Dtmf",
    "Event",
    "Mark",
    "Media",
    "Start",
    "Stop",
]


@attrs.frozen
class Connected:
    """The carrier opened the stream (its first frame, before :class:`Start`)."""

    protocol: str | None
    """Twilio says ``"Call"``; Telnyx sends no protocol name."""
    version: str
    """The carrier's protocol version (``"1.0.0"``); empty if it sent none."""


@attrs.frozen
class Start:
    """The stream's identity and audio format; media follows."""

    stream_id: str
    """Twilio ``streamSid``, Telnyx ``stream_id``."""
    call_id: str
    """Twilio ``callSid``, Telnyx ``call_control_id``: the id the carrier's REST API takes."""
    account_id: str | None
    """Twilio ``accountSid``, Telnyx ``user_id``."""
    custom_parameters: Mapping[str, str]
    """The ``<Parameter>`` values of the TwiML/TeXML answer (or Call Control's)."""
    media_format: AudioFormat
    """What the payload of every :class:`Media` event of this stream is, as omnivoice
    formats are defined: PCM16 is little-endian whatever the wire carries."""
    tracks: tuple[str, ...] = ()
    """The tracks the carrier streams, if it says (Twilio: ``("inbound",)``)."""
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    """Carrier-specific fields of the start frame, unchanged (Telnyx ``from``, ``to``,
    ``client_state``, ``call_session_id``, ``tags``...)."""


@attrs.frozen
class Media:
    """One chunk of the caller's audio, normally 20 ms."""

    payload: bytes
    """Decoded audio in :attr:`Start.media_format`."""
    timestamp_ms: int
    """Milliseconds since the stream started."""
    sequence_number: int
    """The frame's position among all frames of the stream (Telnyx does not guarantee order)."""
    chunk: int
    """The chunk's position among the media frames of its track."""
    track: str
    """``"inbound"`` (the caller) or ``"outbound"``."""


@attrs.frozen
class Mark:
    """The audio sent before the mark of this name has played, or was cleared."""

    name: str


@attrs.frozen
class Dtmf:
    """The caller pressed a key."""

    digit: str
    """``"0"``-``"9"``, ``"*"``, ``"#"`` (and ``"A"``-``"D"`` where the network carries them)."""
    track: str | None = None
    """Twilio says ``"inbound_track"``; Telnyx sends no track."""


@attrs.frozen
class Stop:
    """The carrier ended the stream; it closes the WebSocket next."""


@attrs.frozen
class CarrierError:
    """The carrier reports an error on the stream (Telnyx ``error`` frames)."""

    code: str
    """The carrier's error code as text (Telnyx: ``"100003"``); empty if it sent none."""
    title: str = ""
    detail: str = ""


Event: TypeAlias = Connected | Start | Media | Mark | Dtmf | Stop | CarrierError
"""Anything :meth:`omnivoice.telephony.StreamProtocol.receive` returns."""
