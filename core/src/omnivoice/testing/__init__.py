"""Testing omnivoice providers and applications: fakes, contract checkers, conformance suites.

Installed with the core. The fakes and checkers need nothing but the core; the conformance
suites (``RealtimeProviderConformance`` and friends, imported from here on first use) need
pytest and anyio's pytest plugin. The ``omnivoice`` pytest plugin (registered through the
``pytest11`` entry point) adds fixtures; see ``docs/testing.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omnivoice.testing.audio import silence, tone
from omnivoice.testing.carrier import FakeCarrierSocket, FakeClock, FakePlayback
from omnivoice.testing.checker import (
    CheckedSession,
    ContractViolation,
    SessionChecker,
    check_llm_item,
    check_stt_event,
    check_tts_audio,
)
from omnivoice.testing.probe import SessionProbe, open_probe
from omnivoice.testing.provider import ScriptedProvider, ScriptedSession
from omnivoice.testing.server import FakeServer, Rejection

if TYPE_CHECKING:
    from omnivoice.testing.conformance import (
        LanguageModelConformance,
        LLMDriver,
        RealtimeDriver,
        RealtimeProviderConformance,
        SpeechToTextConformance,
        STTDriver,
        TextToSpeechConformance,
        TransportConformance,
        TransportDriver,
        TTSDriver,
    )

__all__ = [
    "CheckedSession",
    "ContractViolation",
    "FakeCarrierSocket",
    "FakeClock",
    "FakePlayback",
    "FakeServer",
    "LLMDriver",
    "LanguageModelConformance",
    "RealtimeDriver",
    "RealtimeProviderConformance",
    "Rejection",
    "STTDriver",
    "ScriptedProvider",
    "ScriptedSession",
    "SessionChecker",
    "SessionProbe",
    "SpeechToTextConformance",
    "TTSDriver",
    "TextToSpeechConformance",
    "TransportConformance",
    "TransportDriver",
    "check_llm_item",
    "check_stt_event",
    "check_tts_audio",
    "open_probe",
    "silence",
    "tone",
]

_CONFORMANCE = {
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
}


def __getattr__(name: str) -> Any:
    # The suites import pytest: only when asked for.
    if name in _CONFORMANCE:
        from omnivoice.testing import conformance

        return getattr(conformance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
