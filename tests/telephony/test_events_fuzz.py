"""Fuzzing receive(): whatever arrives, it returns an event or None, or raises ProtocolError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnivoice.telephony import Event, ProtocolError, StreamProtocol
from omnivoice_telnyx import TelnyxProtocol
from omnivoice_twilio import TwilioProtocol

CARRIERS = [TwilioProtocol, TelnyxProtocol]

TWILIO_START = {
    "event": "start",
    "streamSid": "MZ1",
    "start": {
        "callSid": "CA1",
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
}
TELNYX_START = {
    "event": "start",
    "stream_id": "S1",
    "start": {
        "call_control_id": "v3:1",
        "media_format": {"encoding": "L16", "sample_rate": 16000, "channels": 1},
    },
}
STARTS: dict[type[StreamProtocol], dict[str, Any]] = {
    TwilioProtocol: TWILIO_START,
    TelnyxProtocol: TELNYX_START,
}

KEYS = [
    "event", "media", "payload", "track", "chunk", "timestamp", "sequenceNumber",
    "sequence_number", "streamSid", "stream_id", "start", "mark", "name", "dtmf", "digit",
    "code", "title", "detail", "protocol", "version", "callSid", "call_control_id",
    "mediaFormat", "media_format", "encoding", "sampleRate", "sample_rate", "channels",
    "customParameters", "custom_parameters", "tracks", "stop",
]  # fmt: skip
EVENTS = ["connected", "start", "media", "mark", "dtmf", "stop", "error", "clear", "other"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from([*EVENTS, "AAEC", "AAE", "PCMU", "L16", "audio/x-mulaw", "8000", "-1"]),
)
# The deepest field the protocol reads is start.media_format.encoding: values nested two
# objects deep under the message cover every path it takes, and generate fast.
inner = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(KEYS), scalars, max_size=5),
)
json_values = st.one_of(
    inner, st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5)
)
messages = st.builds(
    lambda event, rest: {**rest, "event": event},
    st.sampled_from(EVENTS) | json_values,
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6),
)


def feed(protocol: StreamProtocol, frame: str | bytes) -> Event | None:
    try:
        return protocol.receive(frame)
    except ProtocolError:
        return None


@pytest.mark.parametrize("carrier", CARRIERS)
@given(frames=st.lists(st.one_of(st.text(max_size=200), st.binary(max_size=200)), max_size=5))
def test_arbitrary_frames(carrier: type[StreamProtocol], frames: list[str | bytes]) -> None:
    protocol = carrier()
    for frame in frames:
        feed(protocol, frame)


@pytest.mark.parametrize("carrier", CARRIERS)
@given(started=st.booleans(), batch=st.lists(messages, min_size=1, max_size=6))
def test_arbitrary_json_messages(
    carrier: type[StreamProtocol], started: bool, batch: list[dict[str, Any]]
) -> None:
    protocol = carrier(max_consecutive_bad_frames=3)
    if started:
        protocol.receive(json.dumps(STARTS[carrier]))
    for message in batch:
        feed(protocol, json.dumps(message))
        feed(protocol, json.dumps(message).encode())
    # Outbound builders either work (after a start) or refuse with ProtocolError.
    try:
        protocol.media(b"\x00\x01")
        protocol.mark("m")
        protocol.clear()
    except ProtocolError:
        assert protocol.started is None
