"""Hook implementations of omnivoice-telnyx."""

from __future__ import annotations

from omnivoice import hookimpl
from omnivoice.registration import Capability, Register
from omnivoice_telnyx.transport import FORMATS, TelnyxTransport


@hookimpl
def register_transports(register: Register) -> None:
    register(
        "telnyx",
        TelnyxTransport,
        accepts=FORMATS,
        produces=FORMATS,
        capabilities=[Capability.HANGUP],
        env_vars=[
            "TELNYX_PUBLIC_KEY",
            "TELNYX_STREAM_AUTH_TOKEN",
            "TELNYX_API_KEY",
            "TELNYX_API_URL",
            "TELNYX_CODEC",
        ],
        description="Telnyx media streaming, bidirectional RTP (PCMU, PCMA, L16)",
    )
