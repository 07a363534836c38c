"""omnivoice plugin: Telnyx media streaming telephony transport.

:class:`TelnyxProtocol` is the sans-IO protocol layer of one call's media stream,
:func:`connect_stream` the TeXML that starts it, :func:`verify_signature` the check of
Telnyx's Ed25519 webhook signatures.
"""

from omnivoice_telnyx.protocol import TELNYX_WIRE, TelnyxProtocol
from omnivoice_telnyx.signature import load_public_key, verify_signature
from omnivoice_telnyx.texml import connect_stream
from omnivoice_telnyx.transport import TelnyxTransport

__all__ = [
    "TELNYX_WIRE",
    "TelnyxProtocol",
    "TelnyxTransport",
    "connect_stream",
    "load_public_key",
    "verify_signature",
]
