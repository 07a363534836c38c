"""omnivoice plugin: the Gemini Live voice-to-voice provider.

``GeminiLiveProvider()`` (also ``Provider``) reads ``GEMINI_API_KEY`` (or
``GOOGLE_API_KEY``), ``GEMINI_LIVE_URL`` and ``GEMINI_LIVE_MODEL``, or for Vertex AI
``GOOGLE_GENAI_USE_VERTEXAI``, ``GOOGLE_CLOUD_PROJECT``, ``GOOGLE_CLOUD_LOCATION`` and
``GEMINI_LIVE_ACCESS_TOKEN``; the registry knows it as ``gemini-live`` and ``gemini``.
See ``docs/providers/gemini-live.md``.
"""

from omnivoice_gemini_live.errors import (
    FunctionCallCancelledError,
    GeminiLiveError,
    ResumptionRefusedError,
)
from omnivoice_gemini_live.models import DEFAULT_MODEL, MODELS, ModelInfo, model_info
from omnivoice_gemini_live.provider import GeminiLiveProvider, Provider

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "FunctionCallCancelledError",
    "GeminiLiveError",
    "GeminiLiveProvider",
    "ModelInfo",
    "Provider",
    "ResumptionRefusedError",
    "model_info",
]
