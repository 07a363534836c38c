"""Twilio Media Streams: the documented example messages, both directions, and the TwiML."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest

from omnivoice.audio import TWILIO, AudioFormat, Encoding
from omnivoice.telephony import (
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
from omnivoice_twilio import TwilioProtocol, connect_stream

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
AUDIO = bytes([0x7E]) * 160  # 20 ms of mu-law 8 kHz
PAYLOAD = base64.b64encode(AUDIO).decode()

# The messages Twilio sends, as documented (sequenceNumber, chunk, timestamp are strings).
CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
START = {
    "event": "start",
    "sequenceNumber": "1",
    "streamSid": SID,
    "start": {
        "accountSid": "AC123",
        "streamSid": SID,
        "callSid": "CA123",
        "tracks": ["inbound"],
        "customParameters": {"tenant": "acme"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
}
MEDIA = {
    "event": "media",
    "sequenceNumber": "2",
    "streamSid": SID,
    "media": {"track": "inbound", "chunk": "1", "timestamp": "20", "payload": PAYLOAD},
}
DTMF = {
    "event": "dtmf",
    "sequenceNumber": "40",
    "streamSid": SID,
    "dtmf": {"track": "inbound_track", "digit": "5"},
}
MARK = {"event": "mark", "sequenceNumber": "51", "streamSid": SID, "mark": {"name": "utt-7"}}
STOP = {
    "event": "stop",
    "sequenceNumber": "99",
    "streamSid": SID,
    "stop": {"accountSid": "AC123", "callSid": "CA123"},
}


def frame(message: dict[str, Any]) -> str:
    return json.dumps(message)


@pytest.fixture
def started() -> TwilioProtocol:
    protocol = TwilioProtocol()
    protocol.receive(frame(CONNECTED))
    protocol.receive(frame(START))
    return protocol


def test_documented_inbound_messages_become_events() -> None:
    protocol = TwilioProtocol()
    expected_start = Start(
        stream_id=SID,
        call_id="CA123",
        account_id="AC123",
        custom_parameters={"tenant": "acme"},
        media_format=AudioFormat(Encoding.MULAW, 8000),
        tracks=("inbound",),
        extra={},
    )
    assert protocol.receive(frame(CONNECTED)) == Connected(protocol="Call", version="1.0.0")
    assert protocol.state is StreamState.AWAITING_START
    assert protocol.receive(frame(START)) == expected_start
    assert protocol.state is StreamState.STREAMING
    assert protocol.started == expected_start
    assert protocol.started.media_format == TWILIO
    assert protocol.receive(frame(MEDIA)) == Media(
        payload=AUDIO, timestamp_ms=20, sequence_number=2, chunk=1, track="inbound"
    )
    assert protocol.receive(frame(DTMF)) == Dtmf(digit="5", track="inbound_track")
    assert protocol.receive(frame(MARK)) == Mark(name="utt-7")
    assert protocol.receive(frame(STOP)) == Stop()
    assert protocol.state is StreamState.STOPPED
    assert protocol.stats == {}


def test_bytes_frames_are_parsed_like_text(started: TwilioProtocol) -> None:
    assert started.receive(frame(MEDIA).encode()) == started.receive(frame(MEDIA))


def test_documented_outbound_messages(started: TwilioProtocol) -> None:
    audio = bytes(range(256)) * 2
    assert json.loads(started.media(audio)) == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": base64.b64encode(audio).decode()},
    }
    assert json.loads(started.mark("utt-7")) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": "utt-7"},
    }
    assert json.loads(started.clear()) == {"event": "clear", "streamSid": SID}


def test_outbound_payload_is_standard_padded_base64(started: TwilioProtocol) -> None:
    sent = json.loads(started.media(b"\xfb\xff"))["media"]["payload"]
    assert sent == "+/8="  # not the URL-safe alphabet, padding kept


def test_mark_names_are_json_escaped(started: TwilioProtocol) -> None:
    name = 'say "hi"\\\n\u00e9'
    assert json.loads(started.mark(name))["mark"]["name"] == name


def test_outbound_before_start_raises() -> None:
    protocol = TwilioProtocol()
    builds: list[Callable[[], str]] = [
        lambda: protocol.media(AUDIO),
        lambda: protocol.mark("m"),
        protocol.clear,
    ]
    for build in builds:
        with pytest.raises(ProtocolError, match="before the start frame") as info:
            build()
        assert info.value.reason is Reason.NOT_STARTED


def test_unsupported_encoding_closes_the_call() -> None:
    start = json.loads(frame(START))
    start["start"]["mediaFormat"]["encoding"] = "audio/x-alaw"
    protocol = TwilioProtocol()
    with pytest.raises(ProtocolError, match="'audio/x-alaw' is not supported") as info:
        protocol.receive(json.dumps(start))
    assert info.value.reason is Reason.UNSUPPORTED_FORMAT


def test_stream_sid_inside_start_is_enough() -> None:
    start = json.loads(frame(START))
    del start["streamSid"]
    event = TwilioProtocol().receive(json.dumps(start))
    assert isinstance(event, Start)
    assert event.stream_id == SID


def test_twilio_sends_no_error_frames() -> None:
    protocol = TwilioProtocol()
    assert protocol.receive('{"event":"error","payload":{"code":1}}') is None
    assert protocol.stats == {Reason.UNKNOWN_EVENT: 1}


def test_twiml_connect_stream() -> None:
    document = connect_stream(
        "wss://gw.example.com/twilio/media",
        parameters={"tenant": "acme", "q": 'a&b<"c">'},
        status_callback="https://gw.example.com/twilio/stream-status",
    )
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>')
    root = ET.fromstring(document)
    assert root.tag == "Response"
    [connect] = root
    assert connect.tag == "Connect"
    [stream] = connect
    assert stream.tag == "Stream"
    assert stream.attrib == {
        "url": "wss://gw.example.com/twilio/media",
        "statusCallback": "https://gw.example.com/twilio/stream-status",
    }
    assert [(p.tag, p.attrib) for p in stream] == [
        ("Parameter", {"name": "tenant", "value": "acme"}),
        ("Parameter", {"name": "q", "value": 'a&b<"c">'}),
    ]


def test_twiml_without_parameters_is_a_bare_stream() -> None:
    assert connect_stream("wss://gw.example.com/twilio/media") == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        '<Stream url="wss://gw.example.com/twilio/media"/></Connect></Response>'
    )
