"""The gateway's configuration, in the seed's words: ``Config``, ``RealtimeConfig``,
``TextConfig``.

``omnivoice serve module:config`` serves a :class:`Config` (or a function returning one)::

    config = Config(
        mode=PipelineMode.REALTIME,
        realtime=RealtimeConfig(provider="openai", voice="marin", instructions="..."),
    )

    config = Config(
        mode=PipelineMode.TEXT,
        stt_provider="deepgram", llm_provider="openai", tts_provider="elevenlabs",
        text=TextConfig(instructions="...", voice="rachel"),
    )
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from omnivoice.realtime.provider import Provider
from omnivoice.realtime.types import (
    FunctionCallHandler,
    FunctionDeclaration,
    ProcessConfig,
    _functions,
)

if TYPE_CHECKING:
    from omnivoice.pipeline.contracts import LanguageModel, SpeechToText, TextToSpeech

__all__ = ["Config", "PipelineMode", "RealtimeConfig", "TextConfig"]


class PipelineMode(enum.Enum):
    """How calls are served."""

    REALTIME = "realtime"
    """A voice-to-voice provider."""
    TEXT = "text"
    """Speech-to-text, an LLM and text-to-speech."""


def _providers(values: Iterable[str | Provider]) -> tuple[str | Provider, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class _Conversation:
    """What each call's ProcessConfig is made of, in both modes."""

    instructions: str | None = None
    voice: str | None = None
    functions: tuple[FunctionDeclaration, ...] = attrs.field(default=(), converter=_functions)
    on_function_call: FunctionCallHandler | None = attrs.field(default=None, eq=False)
    temperature: float | None = None

    def process_config(self) -> ProcessConfig:
        return ProcessConfig(
            instructions=self.instructions,
            voice=self.voice,
            functions=self.functions,
            on_function_call=self.on_function_call,
            temperature=self.temperature,
        )


@attrs.frozen
class RealtimeConfig(_Conversation):
    """A voice-to-voice provider and how it talks.

    ``provider`` is a registered name (``"openai"``, ``"echo"``...) or a Provider object;
    ``fallbacks`` are tried in order when it fails (see :class:`omnivoice.realtime.Client`).
    ``api_key``, ``model`` and ``voice`` are passed to a named provider's factory when set,
    with ``options``; ``voice`` and the rest also go into each call's ProcessConfig.
    """

    provider: str | Provider = "echo"
    api_key: str | None = None
    model: str | None = None
    fallbacks: tuple[str | Provider, ...] = attrs.field(default=(), converter=_providers)
    options: Mapping[str, Any] = attrs.field(factory=dict)
    """More keyword arguments for a named provider's factory."""

    def factory_options(self) -> dict[str, Any]:
        given = {"api_key": self.api_key, "model": self.model, "voice": self.voice}
        return {**{k: v for k, v in given.items() if v is not None}, **self.options}


@attrs.frozen
class TextConfig(_Conversation):
    """How the text pipeline (``mode=PipelineMode.TEXT``) talks.

    Its three providers are chosen on :class:`Config`; ``stt_options``, ``llm_options``
    and ``tts_options`` are passed to the factories of named ones (``api_key``,
    ``model``...). ``instructions``, ``voice`` (the synthesis voice), the functions and
    ``temperature`` go into each call's ProcessConfig; ``options`` are keyword options
    of :class:`omnivoice.pipeline.TextPipeline` (``end_silence_ms``, ``max_turn_s``,
    ``max_tool_rounds``...).
    """

    stt_options: Mapping[str, Any] = attrs.field(factory=dict)
    llm_options: Mapping[str, Any] = attrs.field(factory=dict)
    tts_options: Mapping[str, Any] = attrs.field(factory=dict)
    options: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Config:
    """Everything ``omnivoice serve`` needs to serve calls.

    ``mode=PipelineMode.REALTIME`` serves calls with ``realtime``'s provider;
    ``PipelineMode.TEXT`` with a text pipeline of ``stt_provider``, ``llm_provider`` and
    ``tts_provider`` (each a registered name or a provider object, all three required),
    set up by ``text``.
    """

    mode: PipelineMode = PipelineMode.REALTIME
    realtime: RealtimeConfig = attrs.field(factory=RealtimeConfig)
    public_url: str | None = None
    """The https:// address carriers reach the gateway at."""
    transports: tuple[str, ...] | None = None
    """Transports to mount (default: every installed one)."""
    records: str | Path | None = None
    """Write a call record per call into this directory."""
    lead_ms: int = 100
    mark_every: int = 5
    stt_provider: str | SpeechToText | None = None
    llm_provider: str | LanguageModel | None = None
    tts_provider: str | TextToSpeech | None = None
    text: TextConfig = attrs.field(factory=TextConfig)

    def __attrs_post_init__(self) -> None:
        if self.mode is PipelineMode.TEXT:
            missing = [
                name
                for name in ("stt_provider", "llm_provider", "tts_provider")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"PipelineMode.TEXT needs {', '.join(missing)}")
