"""Hook implementations of omnivoice-openai-realtime."""

from __future__ import annotations

from omnivoice import hookimpl
from omnivoice.registration import Register
from omnivoice_openai_realtime.provider import OpenAIRealtimeProvider


@hookimpl
def register_realtime_providers(register: Register) -> None:
    register(
        "openai-realtime",
        OpenAIRealtimeProvider,
        aliases=["openai"],
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
