"""The shared media-stream state machine: bad-input policy, counters, limits, failure."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from omnivoice.audio import AudioFormat, Encoding
from omnivoice.telephony import (
    DEFAULT_MAX_FRAME_SIZE,
    Media,
    ProtocolError,
    Reason,
    Start,
    StreamProtocol,
    StreamState,
    WireFormat,
)
from omnivoice_telnyx import TelnyxProtocol
from omnivoice_twilio import TwilioProtocol


class AcmeProtocol(StreamProtocol):
    """A third carrier spelled differently: the base class needs nothing else."""

    wire = WireFormat(
        carrier="acme",
        stream_id="sid",
        sequence_number="seq",
        call_id="call",
        account_id="account",
        custom_parameters="params",
        media_format="format",
        sample_rate="rate",
        encodings={"ulaw": Encoding.MULAW},
        outbound_stream_id=True,
    )


START = {
    "event": "start",
    "sid": "S1",
    "start": {"call": "C1", "format": {"encoding": "ulaw", "rate": 8000}, "region": "eu"},
}


def media(payload: Any = "AAEC", **changes: Any) -> str:
    message: dict[str, Any] = {
        "event": "media",
        "seq": "3",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "20", "payload": payload},
    }
    message["media"].update(changes)
    return json.dumps(message)


@pytest.fixture
def protocol() -> AcmeProtocol:
    protocol = AcmeProtocol()
    protocol.receive(json.dumps(START))
    return protocol


def test_a_wire_format_is_all_a_carrier_supplies(protocol: AcmeProtocol) -> None:
    assert protocol.started == Start(
        stream_id="S1",
        call_id="C1",
        account_id=None,
        custom_parameters={},
        media_format=AudioFormat(Encoding.MULAW, 8000),
        extra={"region": "eu"},
    )
    assert protocol.receive(media()) == Media(b"\x00\x01\x02", 20, 3, 1, "inbound")
    assert json.loads(protocol.clear()) == {"event": "clear", "sid": "S1"}


def test_channels_default_to_one(protocol: AcmeProtocol) -> None:
    assert protocol.started is not None
    assert protocol.started.media_format.channels == 1


def test_numbers_may_be_json_numbers(protocol: AcmeProtocol) -> None:
    media = {"track": "inbound", "chunk": 2, "timestamp": 40, "payload": ""}
    event = protocol.receive(json.dumps({"event": "media", "seq": 7, "media": media}))
    assert event == Media(b"", 40, 7, 2, "inbound")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", Reason.MALFORMED_JSON),
        (b"\xff\xfe\x00garbage", Reason.MALFORMED_JSON),
        ("[1, 2]", Reason.MALFORMED_JSON),
        ('"media"', Reason.MALFORMED_JSON),
        ("[" * 100_000, Reason.MALFORMED_JSON),  # nesting deeper than the parser recurses
        ('{"no_event": 1}', Reason.MISSING_FIELD),
        ('{"event": 5}', Reason.MISSING_FIELD),
        ('{"event": "media", "seq": "3"}', Reason.MISSING_FIELD),
        ('{"event": "media", "seq": "3", "media": []}', Reason.INVALID_FIELD),
        (media(payload="not base64!"), Reason.INVALID_BASE64),
        (media(payload="AAE"), Reason.INVALID_BASE64),  # padding missing
        (media(payload="AA-_"), Reason.INVALID_BASE64),  # URL-safe alphabet
        (media(payload="\u00e9\u00e9\u00e9\u00e9"), Reason.INVALID_BASE64),
        (media(payload=5), Reason.INVALID_FIELD),
        (media(chunk=None), Reason.INVALID_FIELD),
        (media(chunk="1.5"), Reason.INVALID_FIELD),
        (media(chunk=1.0), Reason.INVALID_FIELD),
        (media(chunk=True), Reason.INVALID_FIELD),
        (media(chunk="-1"), Reason.INVALID_FIELD),
        (media(timestamp="9" * 5000), Reason.INVALID_FIELD),
        (media(track=["inbound"]), Reason.INVALID_FIELD),
        ('{"event": "mark", "mark": {}}', Reason.MISSING_FIELD),
        ('{"event": "mark", "mark": {"name": 7}}', Reason.INVALID_FIELD),
        ('{"event": "dtmf", "dtmf": {"track": "inbound_track"}}', Reason.MISSING_FIELD),
        ('{"event": "dtmf", "dtmf": {"digit": "1", "track": 1}}', Reason.INVALID_FIELD),
        ('{"event": "connected", "version": 1}', Reason.INVALID_FIELD),
    ],
)
def test_frame_defects_skip_the_frame_and_are_counted(frame: str | bytes, reason: Reason) -> None:
    protocol = AcmeProtocol(max_frame_size=1_000_000)
    protocol.receive(json.dumps(START))
    assert protocol.receive(frame) is None
    assert protocol.stats == {reason: 1}
    assert protocol.state is StreamState.STREAMING
    assert isinstance(protocol.receive(media()), Media)  # the call goes on


def test_media_before_start_is_skipped() -> None:
    protocol = AcmeProtocol()
    assert protocol.receive(media()) is None
    assert protocol.stats == {Reason.MEDIA_BEFORE_START: 1}
    assert protocol.state is StreamState.AWAITING_START
    assert protocol.receive(json.dumps(START)) is not None


def test_unknown_events_are_counted_and_ignored(protocol: AcmeProtocol) -> None:
    assert protocol.receive('{"event": "heartbeat"}') is None
    assert protocol.receive('{"event": "error"}') is None  # acme sends no error frames
    assert protocol.stats == {Reason.UNKNOWN_EVENT: 2}


def test_frames_after_stop_are_ignored(protocol: AcmeProtocol) -> None:
    protocol.receive('{"event": "stop"}')
    assert protocol.state is StreamState.STOPPED
    assert protocol.receive(media()) is None
    assert protocol.receive("garbage") is None
    assert protocol.receive("x" * (DEFAULT_MAX_FRAME_SIZE + 1)) is None
    assert protocol.stats == {Reason.AFTER_STOP: 3}


def test_stop_before_start_ends_the_stream() -> None:
    protocol = AcmeProtocol()
    protocol.receive('{"event": "stop"}')
    assert protocol.state is StreamState.STOPPED
    assert protocol.receive(json.dumps(START)) is None


def test_oversize_frame_closes_the_call(protocol: AcmeProtocol) -> None:
    frame = media(payload=base64.b64encode(bytes(DEFAULT_MAX_FRAME_SIZE)).decode())
    with pytest.raises(
        ProtocolError, match=r"acme stream S1: a frame of \d+ characters exceeds"
    ) as info:
        protocol.receive(frame)
    assert info.value.reason is Reason.FRAME_TOO_LARGE
    assert info.value.close_code == 1009
    assert protocol.stats == {Reason.FRAME_TOO_LARGE: 1}


def test_frame_size_limit_is_configurable() -> None:
    frame = media(payload="A" * 100)
    protocol = AcmeProtocol(max_frame_size=len(frame))
    protocol.receive(json.dumps(START))
    assert protocol.receive(frame) is not None  # exactly at the limit
    with pytest.raises(ProtocolError):
        protocol.receive(frame + " ")
    with pytest.raises(ProtocolError, match="bytes exceeds"):
        AcmeProtocol(max_frame_size=10).receive(b"{" * 11)


def test_a_failed_stream_keeps_failing(protocol: AcmeProtocol) -> None:
    with pytest.raises(ProtocolError):
        protocol.receive(json.dumps(START))
    assert protocol.state is StreamState.FAILED
    with pytest.raises(ProtocolError, match="second start") as info:
        protocol.receive(media())
    assert info.value.reason is Reason.DUPLICATE_START
    assert info.value.close_code == 1008


@pytest.mark.parametrize(
    ("change", "reason", "message"),
    [
        (lambda m: m.pop("start"), Reason.MISSING_FIELD, "missing field start"),
        (lambda m: m.update(start=[]), Reason.INVALID_FIELD, "start is not an object"),
        (lambda m: m.pop("sid"), Reason.MISSING_FIELD, "missing field sid"),
        (lambda m: m.update(sid=""), Reason.INVALID_FIELD, "empty stream or call id"),
        (lambda m: m["start"].pop("call"), Reason.MISSING_FIELD, "start.call"),
        (lambda m: m["start"].update(account=1), Reason.INVALID_FIELD, "start.account"),
        (lambda m: m["start"].update(params={"a": 1}), Reason.INVALID_FIELD, "start.params"),
        (lambda m: m["start"].update(params=[]), Reason.INVALID_FIELD, "start.params"),
        (lambda m: m["start"].update(tracks="inbound"), Reason.INVALID_FIELD, "tracks"),
        (lambda m: m["start"].pop("format"), Reason.MISSING_FIELD, "start.format"),
        (lambda m: m["start"]["format"].pop("encoding"), Reason.MISSING_FIELD, "encoding"),
        (lambda m: m["start"]["format"].update(rate="fast"), Reason.INVALID_FIELD, "rate"),
        (lambda m: m["start"]["format"].update(rate=0), Reason.INVALID_FIELD, "zero"),
        (lambda m: m["start"]["format"].update(channels=0), Reason.INVALID_FIELD, "zero"),
        (lambda m: m["start"]["format"].update(encoding="opus"), Reason.UNSUPPORTED_FORMAT, "opus"),
    ],
)
def test_an_invalid_start_closes_the_call(change: Any, reason: Reason, message: str) -> None:
    start = json.loads(json.dumps(START))
    change(start)
    protocol = AcmeProtocol()
    with pytest.raises(ProtocolError, match=message) as info:
        protocol.receive(json.dumps(start))
    assert str(info.value).startswith("acme stream (not started): invalid start frame: ")
    assert info.value.reason is reason
    assert protocol.stats == {reason: 1}
    assert protocol.state is StreamState.FAILED


def test_consecutive_bad_frames_close_the_call(protocol: AcmeProtocol) -> None:
    for _ in range(49):
        protocol.receive("garbage")
    assert protocol.receive(media()) is not None  # a good frame resets the run
    for _ in range(49):
        protocol.receive(media(payload="!"))
    with pytest.raises(ProtocolError, match="50 bad frames in a row, the last: invalid_base64"):
        protocol.receive(media(payload="!"))
    assert protocol.stats == {
        Reason.MALFORMED_JSON: 49,
        Reason.INVALID_BASE64: 50,
        Reason.TOO_MANY_BAD_FRAMES: 1,
    }


def test_unknown_events_do_not_count_as_bad(protocol: AcmeProtocol) -> None:
    for _ in range(200):
        protocol.receive('{"event": "heartbeat"}')
    assert protocol.state is StreamState.STREAMING


def test_the_bad_frame_limit_can_be_lifted() -> None:
    protocol = AcmeProtocol(max_consecutive_bad_frames=None)
    for _ in range(500):
        protocol.receive("garbage")
    assert protocol.stats == {Reason.MALFORMED_JSON: 500}


def test_constructor_checks_its_limits() -> None:
    with pytest.raises(ValueError, match="max_frame_size"):
        AcmeProtocol(max_frame_size=0)
    with pytest.raises(ValueError, match="max_consecutive_bad_frames"):
        AcmeProtocol(max_consecutive_bad_frames=0)
    with pytest.raises(TypeError, match="must set the class attribute 'wire'"):
        StreamProtocol()


def test_big_endian_encodings_must_be_pcm16() -> None:
    with pytest.raises(ValueError, match=r"must map to Encoding\.PCM16"):
        WireFormat(
            carrier="x",
            stream_id="s",
            sequence_number="n",
            call_id="c",
            account_id="a",
            custom_parameters="p",
            media_format="f",
            sample_rate="r",
            encodings={"PCMU": Encoding.MULAW},
            big_endian=frozenset({"PCMU"}),
        )


def test_first_defect_of_a_kind_warns_then_debug(
    protocol: AcmeProtocol, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="omnivoice.telephony.protocol")
    protocol.receive("garbage")
    protocol.receive("garbage")
    protocol.receive('{"event": "heartbeat"}')
    malformed = "acme stream S1: ignored a frame (malformed_json): the frame is not valid JSON"
    unknown = "acme stream S1: ignored a frame (unknown_event): unknown event 'heartbeat'"
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, malformed),
        (logging.DEBUG, malformed),
        (logging.WARNING, unknown),
    ]


@pytest.mark.parametrize("carrier", [TwilioProtocol, TelnyxProtocol])
def test_both_carriers_share_the_policy(carrier: type[StreamProtocol]) -> None:
    protocol = carrier()
    assert protocol.receive("{") is None
    assert protocol.receive('{"event": "media", "media": {}}') is None
    assert protocol.stats == {Reason.MALFORMED_JSON: 1, Reason.MEDIA_BEFORE_START: 1}
