"""omnivoice plugin: Twilio Media Streams telephony transport.

:class:`TwilioProtocol` is the sans-IO protocol layer of one call's media stream,
:func:`connect_stream` the TwiML that starts it, :func:`validate_signature` the check of
``X-Twilio-Signature``.
"""

from omnivoice_twilio.protocol import TWILIO_WIRE, TwilioProtocol
from omnivoice_twilio.signature import compute_signature, validate_signature
from omnivoice_twilio.transport import TwilioTransport
from omnivoice_twilio.twiml import connect_stream

__all__ = [
    "TWILIO_WIRE",
    "TwilioProtocol",
    "TwilioTransport",
    "compute_signature",
    "connect_stream",
    "validate_signature",
]
