"""The text pipeline: speech-to-text, an LLM and text-to-speech as one realtime provider.

:class:`TextPipeline` (built from objects, or from registered names with
:func:`build_pipeline`) is a :class:`~omnivoice.realtime.provider.Provider`; the
contracts its three parts implement are in :mod:`omnivoice.pipeline.contracts`. See
``docs/pipeline.md``.
"""

from typing import TYPE_CHECKING, Any

from omnivoice.pipeline.contracts import (
    EagerEndOfTurn,
    Flush,
    LanguageModel,
    Message,
    SpeechAudio,
    SpeechStream,
    SpeechToText,
    STTEvent,
    TextDelta,
    TextToSpeech,
    ToolCall,
    TurnResumed,
    WordTiming,
)
from omnivoice.pipeline.sentences import SentenceSplitter

if TYPE_CHECKING:
    from omnivoice.pipeline.text import TextPipeline, build_pipeline


def __getattr__(name: str) -> Any:
    # Plugins import the contracts when they load; the pipeline itself (numpy, the
    # converters) is imported only by those who build one.
    if name in ("TextPipeline", "build_pipeline"):
        from omnivoice.pipeline import text

        return getattr(text, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EagerEndOfTurn",
    "Flush",
    "LanguageModel",
    "Message",
    "STTEvent",
    "SentenceSplitter",
    "SpeechAudio",
    "SpeechStream",
    "SpeechToText",
    "TextDelta",
    "TextPipeline",
    "TextToSpeech",
    "ToolCall",
    "TurnResumed",
    "WordTiming",
    "build_pipeline",
]
