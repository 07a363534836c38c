"""The telephony transport conformance suite: a carrier's stream, both ways, and its webhook.

The carrier is played by :class:`~omnivoice.telephony.carrier.CarrierSide` in the
transport's own spelling (its :class:`~omnivoice.telephony.WireFormat`), so the suite
checks that what the transport parses and builds is what that carrier sends and reads.
"""

from __future__ import annotations

import pytest

from omnivoice.audio.format import AudioFormat
from omnivoice.telephony.carrier import CarrierSide, ClearRequest, MarkRequest, PlayRequest
from omnivoice.telephony.events import Connected, Dtmf, Mark, Media, Start, Stop
from omnivoice.telephony.transport import IncomingRequest, Transport, WebhookAnswer
from omnivoice.testing.audio import tone

__all__ = ["TransportConformance", "TransportDriver"]


class TransportDriver:
    """What the suite needs of one transport: the transport, and a webhook request its
    carrier would send (:meth:`webhook`)."""

    media_url = "wss://gateway.example.com/carrier/media"

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def webhook(self) -> IncomingRequest:
        """A voice webhook as the carrier posts it for a new call."""
        return IncomingRequest(
            url="https://gateway.example.com/carrier/voice",
            method="POST",
            headers={"content-type": "application/x-www-form-urlencoded"},
            body=b"From=%2B15550100&To=%2B15550199",
            form={"From": ("+15550100",), "To": ("+15550199",)},
        )


class TransportConformance:
    """The contract of a telephony transport. Subclass it and define ``driver``."""

    @pytest.fixture
    def driver(self) -> TransportDriver:
        raise NotImplementedError("define a `driver` fixture that returns a TransportDriver")

    def test_it_declares_its_name_and_formats(self, driver: TransportDriver) -> None:
        transport = driver.transport
        assert isinstance(transport.name, str)
        assert transport.name
        assert transport.formats
        assert all(isinstance(f, AudioFormat) for f in transport.formats)

    def test_a_stream_goes_both_ways_in_every_declared_format(
        self, driver: TransportDriver
    ) -> None:
        for fmt in driver.transport.formats:
            protocol = driver.transport.new_protocol()
            carrier = CarrierSide(protocol.wire, fmt)
            assert isinstance(protocol.receive(carrier.connected()), Connected)
            start = protocol.receive(carrier.start())
            assert isinstance(start, Start)
            assert start.media_format == fmt
            assert (start.stream_id, start.call_id) == (carrier.stream_id, carrier.call_id)
            audio = tone(20, fmt)
            media = protocol.receive(carrier.media(audio, timestamp_ms=0))
            assert isinstance(media, Media)
            assert media.payload == audio
            # What the gateway sends, read as the carrier reads it.
            assert carrier.receive(protocol.media(audio)) == PlayRequest(audio)
            assert carrier.receive(protocol.mark("m1")) == MarkRequest("m1")
            assert carrier.receive(protocol.clear()) == ClearRequest()
            assert protocol.receive(carrier.mark("m1")) == Mark("m1")
            dtmf = protocol.receive(carrier.dtmf("5"))
            assert isinstance(dtmf, Dtmf)
            assert dtmf.digit == "5"
            assert isinstance(protocol.receive(carrier.stop()), Stop)
            assert not protocol.stats, protocol.stats

    def test_bad_frames_are_counted_not_raised(self, driver: TransportDriver) -> None:
        protocol = driver.transport.new_protocol()
        carrier = CarrierSide(protocol.wire, driver.transport.formats[0])
        protocol.receive(carrier.connected())
        protocol.receive(carrier.start())
        for frame in ("not json", "[]", '{"event": "no-such-event"}', '{"event": "media"}'):
            assert protocol.receive(frame) is None
        assert sum(protocol.stats.values()) == 4

    def test_the_webhook_is_answered_with_the_media_url(self, driver: TransportDriver) -> None:
        answer = driver.transport.answer(driver.media_url, driver.webhook())
        assert isinstance(answer, WebhookAnswer)
        assert driver.media_url in answer.body
        assert answer.media_type
