"""Hook implementations of omnivoice-deepgram-stt: the ``deepgram`` speech-to-text provider."""

from __future__ import annotations

from omnivoice import hookimpl
from omnivoice.registration import Register
from omnivoice_deepgram_stt.stt import DeepgramSTT


@hookimpl
def register_stt_providers(register: Register) -> None:
    register(
        "deepgram",
        DeepgramSTT,
        env_vars=["DEEPGRAM_API_KEY", "DEEPGRAM_URL"],
        description="Deepgram live transcription: Nova (endpointing, G.711 as it comes), Flux",
    )
