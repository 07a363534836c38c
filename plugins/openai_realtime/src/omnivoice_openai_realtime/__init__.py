"""omnivoice plugin: the OpenAI Realtime voice-to-voice provider.

``OpenAIRealtimeProvider()`` (also ``Provider``) reads ``OPENAI_API_KEY`` (and
``OPENAI_REALTIME_URL``, ``OPENAI_REALTIME_MODEL``, ``OPENAI_REALTIME_API``); the registry
knows it as ``openai-realtime`` and ``openai``. See ``docs/providers/openai-realtime.md``.
"""

from omnivoice_openai_realtime.protocol import OpenAIRealtimeError
from omnivoice_openai_realtime.provider import FORMATS, OpenAIRealtimeProvider, Provider

__all__ = ["FORMATS", "OpenAIRealtimeError", "OpenAIRealtimeProvider", "Provider"]
