"""The carrier's end of a media stream, sans-IO: what a carrier sends and how it reads ours.

The simulated phone (``omnivoice call``) and the tests play the carrier with it, in the
carrier's own spelling (a :class:`~omnivoice.telephony.WireFormat`), so the gateway is
exercised through exactly the frames Twilio or Telnyx would send.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from omnivoice.audio.format import AudioFormat
from omnivoice.telephony.protocol import WireFormat, _swap16

__all__ = ["CarrierSide", "ClearRequest", "MarkRequest", "PlayRequest"]


@attrs.frozen
class PlayRequest:
    """The gateway sent audio to play (in the stream's format, little-endian PCM16)."""

    payload: bytes


@attrs.frozen
class MarkRequest:
    """The gateway asks for this mark back once the audio before it has played."""

    name: str


@attrs.frozen
class ClearRequest:
    """The gateway asks to drop all queued audio (barge-in)."""


class CarrierSide:
    """Build the frames a carrier sends on one stream, and read the gateway's frames."""

    def __init__(
        self,
        wire: WireFormat,
        media_format: AudioFormat,
        *,
        stream_id: str | None = None,
        call_id: str | None = None,
        account_id: str | None = None,
        custom_parameters: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        names = [
            name for name, encoding in wire.encodings.items() if encoding is media_format.encoding
        ]
        if not names:
            raise ValueError(f"{wire.carrier} streams do not carry {media_format}")
        self.wire = wire
        self.media_format = media_format
        self.stream_id = stream_id or f"stream-{uuid.uuid4().hex}"
        self.call_id = call_id or f"call-{uuid.uuid4().hex}"
        self.account_id = account_id or "account-simulated"
        self.custom_parameters = dict(custom_parameters or {})
        self.extra = dict(extra or {})
        self._encoding = names[0]
        self._swap = self._encoding in wire.big_endian
        self._sequence = 0
        self._chunk = 0

    def _frame(self, event: str, **body: Any) -> str:
        self._sequence += 1
        frame: dict[str, Any] = {
            "event": event,
            self.wire.sequence_number: str(self._sequence),
            self.wire.stream_id: self.stream_id,
            **body,
        }
        return json.dumps(frame)

    # --- what the carrier sends ------------------------------------------------------

    def connected(self) -> str:
        frame: dict[str, str] = {"event": "connected"}
        if self.wire.connected_protocol:
            frame["protocol"] = self.wire.connected_protocol
        frame["version"] = "1.0.0"
        return json.dumps(frame)

    def start(self) -> str:
        wire = self.wire
        media_format = {
            "encoding": self._encoding,
            wire.sample_rate: self.media_format.sample_rate,
            "channels": self.media_format.channels,
        }
        body = {
            wire.account_id: self.account_id,
            wire.stream_id: self.stream_id,
            wire.call_id: self.call_id,
            "tracks": ["inbound"],
            wire.custom_parameters: self.custom_parameters,
            wire.media_format: media_format,
            **self.extra,
        }
        return self._frame("start", start=body)

    def media(self, payload: bytes, timestamp_ms: int) -> str:
        """The caller's audio, ``timestamp_ms`` after the stream started."""
        self._chunk += 1
        data = _swap16(payload) if self._swap else payload
        media = {
            "track": "inbound",
            "chunk": str(self._chunk),
            "timestamp": str(timestamp_ms),
            "payload": base64.b64encode(data).decode("ascii"),
        }
        return self._frame("media", media=media)

    def mark(self, name: str) -> str:
        """Echo a mark: the audio sent before it has played (or was cleared)."""
        return self._frame("mark", mark={"name": name})

    def dtmf(self, digit: str) -> str:
        return self._frame("dtmf", dtmf={"track": "inbound_track", "digit": digit})

    def stop(self) -> str:
        return self._frame(
            "stop", stop={self.wire.account_id: self.account_id, self.wire.call_id: self.call_id}
        )

    # --- what the gateway sends ------------------------------------------------------

    def receive(self, text: str | bytes) -> PlayRequest | MarkRequest | ClearRequest:
        """Read one frame from the gateway; :class:`ValueError` if it is not valid."""
        try:
            frame = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(frame, dict):
            raise ValueError("a frame must be a JSON object")
        if self.wire.outbound_stream_id and frame.get(self.wire.stream_id) != self.stream_id:
            raise ValueError(f"{self.wire.stream_id} missing or wrong in {frame.get('event')!r}")
        event = frame.get("event")
        if event == "media":
            try:
                data = base64.b64decode(frame["media"]["payload"], validate=True)
            except (KeyError, TypeError, binascii.Error) as exc:
                raise ValueError(f"bad media frame: {exc!r}") from None
            return PlayRequest(_swap16(data) if self._swap else data)
        if event == "mark":
            name = frame.get("mark", {}).get("name")
            if not isinstance(name, str):
                raise ValueError("a mark frame needs mark.name")
            return MarkRequest(name)
        if event == "clear":
            return ClearRequest()
        raise ValueError(f"unknown event {event!r}")
