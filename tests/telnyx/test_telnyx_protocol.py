"""Telnyx media streaming: the documented example messages, both directions, L16 byte order,
and the TeXML."""

from __future__ import annotations

import base64
import json
import struct
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from omnivoice.audio import TELNYX, TELNYX_L16_16K, AudioFormat, Encoding
from omnivoice.telephony import (
    CarrierError,
    Connected,
    Dtmf,
    Mark,
    Media,
    ProtocolError,
    Reason,
    Start,
    Stop,
    StreamState,
)
from omnivoice_telnyx import TelnyxProtocol, connect_stream

STREAM_ID = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
CALL_ID = "v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"
AUDIO = bytes([0x7E]) * 160
PAYLOAD = base64.b64encode(AUDIO).decode()

# The messages Telnyx sends, as documented.
CONNECTED = {"event": "connected", "version": "1.0.0"}
START = {
    "event": "start",
    "sequence_number": "1",
    "stream_id": STREAM_ID,
    "start": {
        "user_id": "3E6F995F-85F7-4705-9741-53B116D28237",
        "call_control_id": CALL_ID,
        "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f",
        "from": "+13122010094",
        "to": "+13122123456",
        "tags": ["TAG1", "TAG2"],
        "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
        "custom_parameters": {"customer_id": "customer_123"},
        "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
    },
}
MEDIA = {
    "event": "media",
    "sequence_number": "4",
    "stream_id": STREAM_ID,
    "media": {"track": "inbound", "chunk": "2", "timestamp": "40", "payload": PAYLOAD},
}
DTMF = {
    "event": "dtmf",
    "sequence_number": "9",
    "stream_id": STREAM_ID,
    "occurred_at": "2024-01-01T00:00:00Z",
    "dtmf": {"digit": "1"},
}
MARK = {"event": "mark", "sequence_number": "10", "stream_id": STREAM_ID, "mark": {"name": "utt-7"}}
ERROR = {
    "event": "error",
    "sequence_number": "11",
    "stream_id": STREAM_ID,
    "payload": {"code": 100003, "title": "malformed_frame", "detail": "Unable to parse frame"},
}
STOP = {
    "event": "stop",
    "sequence_number": "12",
    "stream_id": STREAM_ID,
    "stop": {"user_id": "3E6F995F-85F7-4705-9741-53B116D28237", "call_control_id": CALL_ID},
}


def start_with(encoding: str, sample_rate: int) -> str:
    start: dict[str, Any] = json.loads(json.dumps(START))
    start["start"]["media_format"] = {
        "encoding": encoding,
        "sample_rate": sample_rate,
        "channels": 1,
    }
    return json.dumps(start)


def media_with(payload: bytes) -> str:
    media: dict[str, Any] = json.loads(json.dumps(MEDIA))
    media["media"]["payload"] = base64.b64encode(payload).decode()
    return json.dumps(media)


def test_documented_inbound_messages_become_events() -> None:
    protocol = TelnyxProtocol()
    assert protocol.receive(json.dumps(CONNECTED)) == Connected(protocol=None, version="1.0.0")
    assert protocol.receive(json.dumps(START)) == Start(
        stream_id=STREAM_ID,
        call_id=CALL_ID,
        account_id="3E6F995F-85F7-4705-9741-53B116D28237",
        # The caller's and the called numbers are call parameters, as on Twilio.
        custom_parameters={
            "from": "+13122010094",
            "to": "+13122123456",
            "customer_id": "customer_123",
        },
        media_format=AudioFormat(Encoding.MULAW, 8000),
        tracks=(),
        extra={
            "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f",
            "from": "+13122010094",
            "to": "+13122123456",
            "tags": ["TAG1", "TAG2"],
            "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
        },
    )
    assert protocol.state is StreamState.STREAMING
    assert protocol.receive(json.dumps(MEDIA)) == Media(
        payload=AUDIO, timestamp_ms=40, sequence_number=4, chunk=2, track="inbound"
    )
    assert protocol.receive(json.dumps(DTMF)) == Dtmf(digit="1", track=None)
    assert protocol.receive(json.dumps(MARK)) == Mark(name="utt-7")
    assert protocol.receive(json.dumps(ERROR)) == CarrierError(
        code="100003", title="malformed_frame", detail="Unable to parse frame"
    )
    assert protocol.receive(json.dumps(STOP)) == Stop()
    assert protocol.state is StreamState.STOPPED
    assert protocol.stats == {}


def test_a_custom_parameter_named_like_a_start_field_wins() -> None:
    start: dict[str, Any] = json.loads(json.dumps(START))
    start["start"]["custom_parameters"] = {"from": "custom"}
    event = TelnyxProtocol().receive(json.dumps(start))
    assert isinstance(event, Start)
    assert event.custom_parameters == {"from": "custom", "to": "+13122123456"}


def test_error_frame_before_start_is_reported() -> None:
    protocol = TelnyxProtocol()
    event = protocol.receive('{"event":"error","payload":{"code":"100002","title":"t"}}')
    assert event == CarrierError(code="100002", title="t", detail="")


def test_documented_outbound_messages_carry_no_stream_id() -> None:
    protocol = TelnyxProtocol()
    protocol.receive(json.dumps(START))
    assert json.loads(protocol.media(AUDIO)) == {"event": "media", "media": {"payload": PAYLOAD}}
    assert json.loads(protocol.mark("utt-7")) == {"event": "mark", "mark": {"name": "utt-7"}}
    assert json.loads(protocol.clear()) == {"event": "clear"}


@pytest.mark.parametrize(
    ("encoding", "rate", "expected"),
    [
        ("PCMU", 8000, TELNYX),
        ("PCMA", 8000, AudioFormat(Encoding.ALAW, 8000)),
        ("L16", 16000, TELNYX_L16_16K),
        ("L16", 8000, AudioFormat(Encoding.PCM16, 8000)),
    ],
)
def test_encodings(encoding: str, rate: int, expected: AudioFormat) -> None:
    event = TelnyxProtocol().receive(start_with(encoding, rate))
    assert isinstance(event, Start)
    assert event.media_format == expected


@pytest.mark.parametrize("encoding", ["G722", "OPUS", "AMR-WB", "pcmu"])
def test_other_encodings_close_the_call(encoding: str) -> None:
    with pytest.raises(ProtocolError, match="use PCMU, PCMA, L16") as info:
        TelnyxProtocol().receive(start_with(encoding, 8000))
    assert info.value.reason is Reason.UNSUPPORTED_FORMAT


def test_l16_inbound_big_endian_becomes_little_endian() -> None:
    protocol = TelnyxProtocol()
    protocol.receive(start_with("L16", 16000))
    samples = (0x0102, -2, 32767, -32768)
    event = protocol.receive(media_with(struct.pack(">4h", *samples)))
    assert isinstance(event, Media)
    assert event.payload == struct.pack("<4h", *samples)


def test_l16_outbound_little_endian_goes_big_endian() -> None:
    protocol = TelnyxProtocol()
    protocol.receive(start_with("L16", 16000))
    samples = (0x0102, -2, 32767, -32768)
    sent = json.loads(protocol.media(struct.pack("<4h", *samples)))["media"]["payload"]
    assert base64.b64decode(sent) == struct.pack(">4h", *samples)


def test_l16_odd_length_payloads() -> None:
    protocol = TelnyxProtocol()
    protocol.receive(start_with("L16", 16000))
    assert protocol.receive(media_with(b"\x01\x02\x03")) is None
    assert protocol.stats == {Reason.INVALID_FIELD: 1}
    with pytest.raises(ValueError, match="even number of bytes"):
        protocol.media(b"\x01\x02\x03")


def test_g711_payloads_are_not_swapped() -> None:
    protocol = TelnyxProtocol()
    protocol.receive(start_with("PCMA", 8000))
    event = protocol.receive(media_with(b"\x01\x02\x03"))
    assert isinstance(event, Media)
    assert event.payload == b"\x01\x02\x03"
    assert base64.b64decode(json.loads(protocol.media(b"\x01\x02"))["media"]["payload"]) == (
        b"\x01\x02"
    )


def test_texml_connect_stream_defaults_to_pcmu_rtp() -> None:
    root = ET.fromstring(connect_stream("wss://gw.example.com/telnyx/media"))
    [connect] = root
    [stream] = connect
    assert (root.tag, connect.tag, stream.tag) == ("Response", "Connect", "Stream")
    assert stream.attrib == {
        "url": "wss://gw.example.com/telnyx/media",
        "codec": "PCMU",
        "bidirectionalMode": "rtp",
        "bidirectionalCodec": "PCMU",
        "bidirectionalSamplingRate": "8000",
    }
    assert list(stream) == []


def test_texml_l16_wideband_with_parameters() -> None:
    document = connect_stream(
        "wss://gw.example.com/telnyx/media?a=1&b=2",
        codec="L16",
        sampling_rate=16000,
        parameters={"tenant": "acme"},
        name="agent",
    )
    [connect] = ET.fromstring(document)
    [stream] = connect
    assert stream.attrib["url"] == "wss://gw.example.com/telnyx/media?a=1&b=2"
    assert stream.attrib["codec"] == stream.attrib["bidirectionalCodec"] == "L16"
    assert stream.attrib["bidirectionalSamplingRate"] == "16000"
    assert stream.attrib["name"] == "agent"
    assert [(p.tag, p.attrib) for p in stream] == [
        ("Parameter", {"name": "tenant", "value": "acme"})
    ]


@pytest.mark.parametrize(("codec", "rate"), [("G722", 8000), ("OPUS", 8000), ("PCMU", 44100)])
def test_texml_rejects_what_the_protocol_cannot_decode(codec: str, rate: int) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        connect_stream("wss://gw.example.com/telnyx/media", codec=codec, sampling_rate=rate)
