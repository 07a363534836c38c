"""What observers are told about a call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["CallInfo"]


@attrs.frozen
class CallInfo:
    """Identity of one call through the gateway."""

    call_id: str
    """omnivoice's own id for the call, unique within the process."""
    transport: str
    """The transport that carries it, for example ``twilio``."""
    provider: str = ""
    """The provider that serves it (the first one, for a fallback client)."""
    carrier_call_id: str = ""
    """The carrier's id of the call (Twilio ``CallSid``, Telnyx ``call_control_id``)."""
    stream_id: str = ""
    """The carrier's id of the media stream."""
    started_at: float = 0.0
    """Wall-clock start, seconds since the epoch."""
    parameters: Mapping[str, Any] = attrs.field(factory=dict)
    """Custom parameters the carrier passed with the stream."""
