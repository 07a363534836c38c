"""Hook implementations of omnivoice-openai-realtime."""

from __future__ import annotations

from omnivoice import hookimpl
from omnivoice.registration import Capability, Register
from omnivoice_openai_realtime.provider import FORMATS, Provider


@hookimpl
def register_realtime_providers(register: Register) -> None:
    register(
        "openai-realtime",
        Provider,
        aliases=["openai"],
        accepts=FORMATS,
        produces=FORMATS,
        capabilities=[
            Capability.FUNCTION_CALLING,
            Capability.TRANSCRIPTS,
            Capability.INTERRUPTION,
            Capability.TRUNCATION,
            Capability.STREAMING,
        ],
        env_vars=[
            "OPENAI_API_KEY",
            "OPENAI_REALTIME_URL",
            "OPENAI_REALTIME_MODEL",
            "OPENAI_REALTIME_API",
            "OPENAI_ORG_ID",
            "OPENAI_PROJECT_ID",
        ],
        description="OpenAI Realtime (gpt-realtime): speech to speech over WebSocket, "
        "G.711 passthrough, transcripts, function calls, truncation on barge-in",
    )
