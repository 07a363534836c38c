"""The Twilio and Telnyx transports pass the transport conformance suite."""

from __future__ import annotations

import pytest

from omnivoice.testing import TransportConformance, TransportDriver
from omnivoice_telnyx import TelnyxTransport
from omnivoice_twilio import TwilioTransport


class TestTwilio(TransportConformance):
    @pytest.fixture
    def driver(self) -> TransportDriver:
        return TransportDriver(TwilioTransport())


class TestTelnyx(TransportConformance):
    @pytest.fixture
    def driver(self) -> TransportDriver:
        return TransportDriver(TelnyxTransport())
