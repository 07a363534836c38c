"""Hook implementations of omnivoice-elevenlabs-tts."""

from __future__ import annotations

from omnivoice import hookimpl
from omnivoice.registration import Register
from omnivoice_elevenlabs_tts.provider import ElevenLabsTTS


@hookimpl
def register_tts_providers(register: Register) -> None:
    register(
        "elevenlabs",
        ElevenLabsTTS,
        env_vars=["ELEVENLABS_API_KEY", "ELEVENLABS_API_URL", "ELEVENLABS_VOICE_ID"],
        description="ElevenLabs: one multi-context WebSocket per call, the model's text "
        "streamed in, mu-law for the phone line, word timings (HTTP streaming fallback)",
    )
