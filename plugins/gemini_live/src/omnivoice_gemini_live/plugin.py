"""Hook implementations of omnivoice-gemini-live."""

from __future__ import annotations

from omnivoice import hookimpl
from omnivoice.registration import Register
from omnivoice_gemini_live.provider import GeminiLiveProvider


@hookimpl
def register_realtime_providers(register: Register) -> None:
    register(
        "gemini-live",
        GeminiLiveProvider,
        aliases=["gemini"],
        env_vars=[
            "GEMINI_API_KEY",
            "GOOGLE_API_KEY",
            "GEMINI_LIVE_URL",
            "GEMINI_LIVE_MODEL",
            "GOOGLE_GENAI_USE_VERTEXAI",
            "GOOGLE_CLOUD_PROJECT",
            "GOOGLE_CLOUD_LOCATION",
            "GEMINI_LIVE_ACCESS_TOKEN",
        ],
        description="Gemini Live (Gemini API or Vertex AI): speech to speech over WebSocket, "
        "transcripts both ways, function calls (blocking and non-blocking) with cancellation, "
        "seamless goAway and session resumption",
    )
