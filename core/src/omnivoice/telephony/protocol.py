"""The sans-IO media-stream protocol shared by the carriers: one small object per call.

Twilio Media Streams and Telnyx media streaming speak the same JSON protocol with different
field names. :class:`StreamProtocol` holds everything they share: the state machine, the
inbound parser and the outbound builders. A carrier supplies only a :class:`WireFormat`
(its field names, its encodings, whether outbound frames name the stream)::

    class TwilioProtocol(StreamProtocol):
        wire = WireFormat(carrier="twilio", stream_id="streamSid", ...)

No sockets and no tasks: the transport feeds each inbound text frame to
:meth:`StreamProtocol.receive` and sends the strings the builders return.

Bad input policy, one rule for every case:

* A defect confined to one frame (malformed JSON, a missing or mistyped field, invalid
  base64, media before ``start``) skips that frame: ``receive`` returns ``None`` and the
  reason is counted in :attr:`StreamProtocol.stats`. Losing 20 ms of audio is better than
  losing the call.
* A defect that leaves the stream unusable raises :class:`ProtocolError`, which closes this
  one call: a frame over the size limit, an invalid ``start`` (no stream id, an unsupported
  encoding...), a second ``start``, or more consecutive skipped frames than the limit
  (a peer that speaks only garbage).
* Unknown events are counted and ignored (carriers add events over time); so is anything
  after ``stop``.
"""

from __future__ import annotations

import array
import binascii
import collections
import enum
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NoReturn

import attrs

from omnivoice.audio import AudioFormat, Encoding
from omnivoice.errors import OmnivoiceError
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

__all__ = [
    "DEFAULT_MAX_CONSECUTIVE_BAD_FRAMES",
    "DEFAULT_MAX_FRAME_SIZE",
    "ProtocolError",
    "Reason",
    "StreamProtocol",
    "StreamState",
    "WireFormat",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_FRAME_SIZE = 64 * 1024
"""Largest inbound frame accepted (a 20 ms frame of L16 16 kHz is under 1 KiB of JSON)."""
DEFAULT_MAX_CONSECUTIVE_BAD_FRAMES = 50
"""Skipped frames in a row (one second of 20 ms frames) after which the call is closed."""

# array "h" is a C short: two bytes on every platform CPython supports.
assert array.array("h").itemsize == 2


class Reason(enum.StrEnum):
    """Why a frame was skipped or a stream failed: the keys of :attr:`StreamProtocol.stats`."""

    FRAME_TOO_LARGE = "frame_too_large"
    """Fatal: the frame is longer than ``max_frame_size``."""
    MALFORMED_JSON = "malformed_json"
    """Skipped: not UTF-8 JSON, or not a JSON object."""
    UNKNOWN_EVENT = "unknown_event"
    """Ignored: an ``event`` this protocol does not know."""
    MISSING_FIELD = "missing_field"
    """Skipped (fatal in ``start``): a required field is absent."""
    INVALID_FIELD = "invalid_field"
    """Skipped (fatal in ``start``): a field has the wrong type or an impossible value."""
    INVALID_BASE64 = "invalid_base64"
    """Skipped: the media payload is not standard padded base64."""
    UNSUPPORTED_FORMAT = "unsupported_format"
    """Fatal: ``start`` announces an encoding this carrier's layer cannot decode."""
    MEDIA_BEFORE_START = "media_before_start"
    """Skipped: media before ``start``, whose format it would need."""
    DUPLICATE_START = "duplicate_start"
    """Fatal: a second ``start`` on one stream."""
    AFTER_STOP = "after_stop"
    """Ignored: any frame after ``stop``."""
    TOO_MANY_BAD_FRAMES = "too_many_bad_frames"
    """Fatal: ``max_consecutive_bad_frames`` frames in a row were skipped."""
    NOT_STARTED = "not_started"
    """Raised by the outbound builders, which need ``start``: a bug of the caller, so it
    is neither counted nor does it fail the stream."""


class ProtocolError(OmnivoiceError):
    """The media stream of one call broke the protocol; close that call, and only it.

    The message says what was wrong; :attr:`reason` classifies it and
    :attr:`close_code` is the WebSocket close code to use.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def close_code(self) -> int:
        """1009 (message too big) for an oversize frame, else 1008 (policy violation)."""
        return 1009 if self.reason is Reason.FRAME_TOO_LARGE else 1008


class StreamState(enum.Enum):
    """Where a stream is in its life."""

    AWAITING_START = "awaiting_start"
    STREAMING = "streaming"
    STOPPED = "stopped"
    FAILED = "failed"
    """A :class:`ProtocolError` was raised; every later ``receive`` raises it again."""


def _check_big_endian(instance: WireFormat, attribute: Any, value: frozenset[str]) -> None:
    for name in value:
        if instance.encodings.get(name) is not Encoding.PCM16:
            raise ValueError(f"big-endian encoding {name!r} must map to Encoding.PCM16")


@attrs.frozen
class WireFormat:
    """How one carrier spells the shared media-stream protocol."""

    carrier: str
    """The carrier's name, for messages and logs."""
    stream_id: str
    """Top-level key of the stream id (also looked up inside ``start``)."""
    sequence_number: str
    """Top-level key of the frame sequence number."""
    call_id: str
    """Key of the call id inside ``start``."""
    account_id: str
    """Key of the account id inside ``start``."""
    custom_parameters: str
    """Key of the custom parameters object inside ``start``."""
    media_format: str
    """Key of the media format object inside ``start``."""
    sample_rate: str
    """Key of the sample rate inside the media format object."""
    encodings: Mapping[str, Encoding]
    """The wire encoding names this layer decodes, and what each one is."""
    big_endian: frozenset[str] = attrs.field(default=frozenset(), validator=_check_big_endian)
    """Encodings whose 16-bit samples travel big-endian (RTP L16); their payloads are
    byte-swapped both ways so that events and builders deal in little-endian PCM16."""
    outbound_stream_id: bool = False
    """Outbound frames must carry the stream id (Twilio)."""
    error_event: bool = False
    """The carrier sends ``error`` frames (Telnyx)."""
    connected_protocol: str | None = None
    """The ``protocol`` the carrier names in its ``connected`` frame (Twilio: ``"Call"``)."""
    start_parameters: Mapping[str, str] = attrs.field(factory=dict)
    """Fields of ``start`` that are call parameters, by the name they are reported under
    (Telnyx sends ``from`` and ``to`` there; Twilio's arrive as custom parameters). They
    join :attr:`Start.custom_parameters`, where a custom parameter of the same name wins."""


class _Skip(Exception):
    """A frame defect: raised by the field helpers, turned into a skip or a failure."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        self.detail = detail


_MISSING: Any = object()


def _get(obj: dict[str, Any], key: str, where: str) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        raise _Skip(Reason.MISSING_FIELD, f"missing field {where}{key}")
    return value


def _str(obj: dict[str, Any], key: str, where: str) -> str:
    value = _get(obj, key, where)
    if type(value) is not str:
        raise _Skip(Reason.INVALID_FIELD, f"{where}{key} is not a string")
    return value


def _opt_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and type(value) is not str:
        raise _Skip(Reason.INVALID_FIELD, f"{where}{key} is not a string")
    return value


def _int(obj: dict[str, Any], key: str, where: str) -> int:
    """A non-negative integer, sent as a JSON number or (as both carriers do) a string."""
    value = _get(obj, key, where)
    if type(value) is int:
        number = value
    elif type(value) is str:
        try:
            number = int(value)
        except ValueError:
            raise _Skip(Reason.INVALID_FIELD, f"{where}{key} is not an integer") from None
    else:
        raise _Skip(Reason.INVALID_FIELD, f"{where}{key} is not an integer")
    if number < 0:
        raise _Skip(Reason.INVALID_FIELD, f"{where}{key} is negative")
    return number


def _obj(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = _get(obj, key, where)
    if type(value) is not dict:
        raise _Skip(Reason.INVALID_FIELD, f"{where}{key} is not an object")
    return value


def _swap16(data: bytes) -> bytes:
    """Swap the two bytes of each 16-bit sample (big- <-> little-endian); even length only."""
    samples = array.array("h", data)
    samples.byteswap()
    return samples.tobytes()


_b64decode = binascii.a2b_base64


def _b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


class StreamProtocol:
    """The protocol state of one call's media stream. Subclasses set :attr:`wire`.

    Inbound: :meth:`receive` turns one text frame into an event. Outbound: :meth:`media`,
    :meth:`mark` and :meth:`clear` return the text frame to send; they need the stream to
    have started.
    """

    wire: ClassVar[WireFormat]
    """The carrier's spelling of the protocol."""

    def __init__(
        self,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_consecutive_bad_frames: int | None = DEFAULT_MAX_CONSECUTIVE_BAD_FRAMES,
    ) -> None:
        """``max_frame_size`` is in characters of a text frame (bytes of a binary one);
        ``max_consecutive_bad_frames=None`` never closes a call for skipped frames."""
        if not isinstance(getattr(self, "wire", None), WireFormat):
            raise TypeError(f"{type(self).__name__} must set the class attribute 'wire'")
        if max_frame_size <= 0:
            raise ValueError("max_frame_size must be positive")
        if max_consecutive_bad_frames is not None and max_consecutive_bad_frames <= 0:
            raise ValueError("max_consecutive_bad_frames must be positive or None")
        self.max_frame_size = max_frame_size
        self.max_consecutive_bad_frames = max_consecutive_bad_frames
        self.stats: collections.Counter[str] = collections.Counter()
        """Skipped, ignored and fatal frames so far, by :class:`Reason`."""
        self.started: Start | None = None
        """The :class:`Start` event, once received."""
        self._state = StreamState.AWAITING_START
        self._failure: ProtocolError | None = None
        self._bad_run = 0
        self._swap = False
        self._media_prefix = ""
        self._mark_prefix = ""
        self._clear = ""
        wire = self.wire
        self._start_keys = frozenset(
            (
                wire.stream_id,
                wire.call_id,
                wire.account_id,
                wire.custom_parameters,
                wire.media_format,
                "tracks",
            )
        )
        self._handlers: dict[str, Callable[[dict[str, Any]], Event | None]] = {
            "media": self._on_media,
            "mark": self._on_mark,
            "dtmf": self._on_dtmf,
            "start": self._on_start,
            "connected": self._on_connected,
            "stop": self._on_stop,
        }
        if wire.error_event:
            self._handlers["error"] = self._on_error

    @property
    def state(self) -> StreamState:
        return self._state

    # --- inbound ---------------------------------------------------------------------

    def receive(self, data: str | bytes) -> Event | None:
        """Parse one inbound frame into its event, or ``None`` for a frame skipped or ignored.

        Raises :class:`ProtocolError` when the stream cannot go on (see the module's policy).
        """
        if self._failure is not None:
            raise ProtocolError(self._failure.reason, str(self._failure))
        if self._state is StreamState.STOPPED:
            self._count(Reason.AFTER_STOP, "a frame after stop")
            return None
        if len(data) > self.max_frame_size:
            unit = "bytes" if isinstance(data, bytes) else "characters"
            self._fail(
                Reason.FRAME_TOO_LARGE,
                f"a frame of {len(data)} {unit} exceeds the limit of {self.max_frame_size}",
            )
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):
            self._skip(Reason.MALFORMED_JSON, "the frame is not valid JSON")
            return None
        if type(message) is not dict:
            self._skip(Reason.MALFORMED_JSON, "the frame is not a JSON object")
            return None
        event = message.get("event")
        handler = self._handlers.get(event) if type(event) is str else None
        if handler is None:
            if type(event) is not str:
                self._skip(Reason.MISSING_FIELD, "the frame has no string 'event'")
                return None
            self._count(Reason.UNKNOWN_EVENT, f"unknown event {event[:40]!r}")
            return None
        try:
            result = handler(message)
        except _Skip as skip:
            self._skip(skip.reason, f"{event} frame: {skip.detail}")
            return None
        self._bad_run = 0
        return result

    def _on_media(self, message: dict[str, Any]) -> Media:
        if self._state is not StreamState.STREAMING:
            raise _Skip(Reason.MEDIA_BEFORE_START, "media before start")
        media = _obj(message, "media", "")
        try:
            payload = _b64decode(_str(media, "payload", "media."), strict_mode=True)
        except ValueError:  # binascii.Error, or a non-ASCII string
            raise _Skip(Reason.INVALID_BASE64, "media.payload is not valid base64") from None
        if self._swap:
            if len(payload) & 1:
                raise _Skip(Reason.INVALID_FIELD, "16-bit audio payload has an odd length")
            payload = _swap16(payload)
        return Media(
            payload,
            _int(media, "timestamp", "media."),
            _int(message, self.wire.sequence_number, ""),
            _int(media, "chunk", "media."),
            _str(media, "track", "media."),
        )

    def _on_mark(self, message: dict[str, Any]) -> Mark:
        return Mark(_str(_obj(message, "mark", ""), "name", "mark."))

    def _on_dtmf(self, message: dict[str, Any]) -> Dtmf:
        dtmf = _obj(message, "dtmf", "")
        return Dtmf(_str(dtmf, "digit", "dtmf."), _opt_str(dtmf, "track", "dtmf."))

    def _on_connected(self, message: dict[str, Any]) -> Connected:
        return Connected(_opt_str(message, "protocol", ""), _opt_str(message, "version", "") or "")

    def _on_stop(self, message: dict[str, Any]) -> Stop:
        self._state = StreamState.STOPPED
        return Stop()

    def _on_error(self, message: dict[str, Any]) -> CarrierError:
        body = message.get("payload")
        if type(body) is not dict:
            body = message
        code = body.get("code")
        if code is not None and type(code) not in (int, str):
            raise _Skip(Reason.INVALID_FIELD, "payload.code is not a number or string")
        return CarrierError(
            "" if code is None else str(code),
            _opt_str(body, "title", "payload.") or "",
            _opt_str(body, "detail", "payload.") or "",
        )

    def _on_start(self, message: dict[str, Any]) -> Start:
        if self._state is StreamState.STREAMING:
            self._fail(Reason.DUPLICATE_START, "a second start frame on one stream")
        try:
            start, big_endian = self._parse_start(message)
        except _Skip as skip:
            self._fail(skip.reason, f"invalid start frame: {skip.detail}")
        self._begin(start, big_endian)
        return start

    def _parse_start(self, message: dict[str, Any]) -> tuple[Start, bool]:
        wire = self.wire
        body = _obj(message, "start", "")
        stream_id = _str(message if wire.stream_id in message else body, wire.stream_id, "")
        call_id = _str(body, wire.call_id, "start.")
        if not stream_id or not call_id:
            raise _Skip(Reason.INVALID_FIELD, "empty stream or call id")
        parameters = body.get(wire.custom_parameters, {})
        if type(parameters) is not dict or not all(
            type(value) is str for value in parameters.values()
        ):
            raise _Skip(
                Reason.INVALID_FIELD,
                f"start.{wire.custom_parameters} is not an object of strings",
            )
        promoted = {
            name: value
            for key, name in wire.start_parameters.items()
            if type(value := body.get(key)) is str
        }
        if promoted:
            parameters = {**promoted, **parameters}
        tracks = body.get("tracks", [])
        if type(tracks) is not list or not all(type(track) is str for track in tracks):
            raise _Skip(Reason.INVALID_FIELD, "start.tracks is not a list of strings")
        where = f"start.{wire.media_format}."
        media_format = _obj(body, wire.media_format, "start.")
        name = _str(media_format, "encoding", where)
        encoding = wire.encodings.get(name)
        if encoding is None:
            supported = ", ".join(wire.encodings)
            raise _Skip(
                Reason.UNSUPPORTED_FORMAT,
                f"{wire.carrier} encoding {name[:40]!r} is not supported (use {supported})",
            )
        rate = _int(media_format, wire.sample_rate, where)
        channels = _int(media_format, "channels", where) if "channels" in media_format else 1
        if rate == 0 or channels == 0:
            raise _Skip(Reason.INVALID_FIELD, "zero sample rate or channel count")
        start = Start(
            stream_id=stream_id,
            call_id=call_id,
            account_id=_opt_str(body, wire.account_id, "start."),
            custom_parameters=parameters,
            media_format=AudioFormat(encoding, rate, channels),
            tracks=tuple(tracks),
            extra={key: value for key, value in body.items() if key not in self._start_keys},
        )
        return start, name in wire.big_endian

    def _begin(self, start: Start, big_endian: bool) -> None:
        """Enter STREAMING and preformat the outbound frames for this stream."""
        self.started = start
        self._state = StreamState.STREAMING
        self._swap = big_endian
        envelope = (
            f"{json.dumps(self.wire.stream_id)}:{json.dumps(start.stream_id)},"
            if self.wire.outbound_stream_id
            else ""
        )
        self._media_prefix = '{"event":"media",' + envelope + '"media":{"payload":"'
        self._mark_prefix = '{"event":"mark",' + envelope + '"mark":{"name":'
        self._clear = '{"event":"clear"' + ("," + envelope[:-1] if envelope else "") + "}"

    # --- outbound --------------------------------------------------------------------

    def media(self, payload: bytes) -> str:
        """The frame that plays ``payload`` (audio in :attr:`Start.media_format`)."""
        if not self._media_prefix:
            self._not_started()
        if self._swap:
            if len(payload) & 1:
                raise ValueError("16-bit audio must have an even number of bytes")
            payload = _swap16(payload)
        return self._media_prefix + _b64encode(payload) + '"}}'

    def mark(self, name: str) -> str:
        """The frame that asks the carrier to echo a :class:`Mark` once the audio sent
        before it has played."""
        if not self._mark_prefix:
            self._not_started()
        return self._mark_prefix + json.dumps(name) + "}}"

    def clear(self) -> str:
        """The frame that drops the audio queued at the carrier (barge-in); pending marks
        come back."""
        if not self._clear:
            self._not_started()
        return self._clear

    # --- bad input -------------------------------------------------------------------

    def _not_started(self) -> NoReturn:
        raise ProtocolError(
            Reason.NOT_STARTED,
            f"{self.wire.carrier} stream: nothing can be sent before the start frame",
        )

    def _describe(self) -> str:
        stream_id = self.started.stream_id if self.started is not None else "(not started)"
        return f"{self.wire.carrier} stream {stream_id}"

    def _count(self, reason: Reason, detail: str) -> None:
        self.stats[reason] += 1
        # The first of each kind is worth a warning; a flood of them stays at DEBUG.
        level = logging.WARNING if self.stats[reason] == 1 else logging.DEBUG
        if logger.isEnabledFor(level):
            logger.log(level, "%s: ignored a frame (%s): %s", self._describe(), reason, detail)

    def _skip(self, reason: Reason, detail: str) -> None:
        self._count(reason, detail)
        self._bad_run += 1
        limit = self.max_consecutive_bad_frames
        if limit is not None and self._bad_run >= limit:
            self._fail(
                Reason.TOO_MANY_BAD_FRAMES,
                f"{self._bad_run} bad frames in a row, the last: {reason}: {detail}",
            )

    def _fail(self, reason: Reason, detail: str) -> NoReturn:
        self.stats[reason] += 1
        self._state = StreamState.FAILED
        error = ProtocolError(reason, f"{self._describe()}: {detail}")
        self._failure = error
        logger.warning("%s; closing the call", error)
        raise error
