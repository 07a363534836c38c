"""Conformance suites: the provider and transport contracts as test classes to subclass.

These import pytest; the rest of :mod:`omnivoice.testing` does not.
"""

from omnivoice.testing.conformance.realtime import RealtimeDriver, RealtimeProviderConformance
from omnivoice.testing.conformance.text import (
    LanguageModelConformance,
    LLMDriver,
    SpeechToTextConformance,
    STTDriver,
    TextToSpeechConformance,
    TTSDriver,
)
from omnivoice.testing.conformance.transport import TransportConformance, TransportDriver

__all__ = [
    "LLMDriver",
    "LanguageModelConformance",
    "RealtimeDriver",
    "RealtimeProviderConformance",
    "STTDriver",
    "SpeechToTextConformance",
    "TTSDriver",
    "TextToSpeechConformance",
    "TransportConformance",
    "TransportDriver",
]
