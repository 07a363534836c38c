"""The event types and the shared XML answer builder."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import attrs
import pytest

from omnivoice.audio import TWILIO
from omnivoice.telephony import (
    CarrierError,
    Connected,
    Dtmf,
    Mark,
    Media,
    Start,
    Stop,
    connect_stream_document,
)


def test_events_are_frozen_values() -> None:
    media = Media(b"\x00", 20, 2, 1, "inbound")
    assert media == Media(b"\x00", 20, 2, 1, "inbound")
    assert media != Media(b"\x00", 40, 3, 2, "inbound")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        media.payload = b""  # type: ignore[misc]
    assert Stop() == Stop()
    assert Dtmf("5") == Dtmf("5", None)
    assert CarrierError("1") == CarrierError("1", "", "")
    assert Connected(None, "1.0.0") != Connected("Call", "1.0.0")
    assert Mark("a") != Mark("b")


def test_start_defaults() -> None:
    start = Start("S", "C", None, {}, TWILIO)
    assert start.tracks == ()
    assert start.extra == {}


def test_document_escapes_attribute_values() -> None:
    tricky = 'a&b<c>"d"\'e\n\tf'
    document = connect_stream_document(
        "wss://h/x?a=1&b=2", {"track": tricky, "skipped": None}, {tricky: tricky}
    )
    [connect] = ET.fromstring(document)
    [stream] = connect
    assert stream.attrib == {"url": "wss://h/x?a=1&b=2", "track": tricky}
    [parameter] = stream
    assert parameter.attrib == {"name": tricky, "value": tricky}


@pytest.mark.parametrize("bad", ["\x00", "\x1b", "\ufffe", "\ud800"])
def test_document_rejects_what_xml_cannot_carry(bad: str) -> None:
    with pytest.raises(ValueError, match="'value'"):
        connect_stream_document("wss://h/x", parameters={"p": f"x{bad}"})
    with pytest.raises(ValueError, match="'url'"):
        connect_stream_document(f"wss://h/{bad}")
