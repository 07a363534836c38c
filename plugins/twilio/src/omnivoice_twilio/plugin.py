"""Hook implementations of omnivoice-twilio."""

from __future__ import annotations

from omnivoice import hookimpl
from omnivoice.audio import TWILIO
from omnivoice.registration import Capability, Register
from omnivoice_twilio.transport import TwilioTransport


@hookimpl
def register_transports(register: Register) -> None:
    register(
        "twilio",
        TwilioTransport,
        accepts=[TWILIO],
        produces=[TWILIO],
        capabilities=[Capability.HANGUP],
        env_vars=["TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID", "TWILIO_API_URL"],
        description="Twilio Media Streams, bidirectional (<Connect><Stream>)",
    )
