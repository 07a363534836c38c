"""omnivoice plugin: ElevenLabs streaming text-to-speech.

:class:`ElevenLabsTTS` is registered as the text-to-speech provider ``elevenlabs``: one
``multi-stream-input`` WebSocket per call, the model's text streamed in as it is written,
mu-law out for a phone line, and word timings for an exact record of what the caller
heard. See ``docs/providers/elevenlabs.md``.
"""

from omnivoice_elevenlabs_tts.protocol import FORMATS
from omnivoice_elevenlabs_tts.provider import DEFAULT_MODEL, DEFAULT_URL, ElevenLabsTTS

__all__ = ["DEFAULT_MODEL", "DEFAULT_URL", "FORMATS", "ElevenLabsTTS"]
