"""The text pipeline: speech-to-text, an LLM and text-to-speech as one realtime provider.

:class:`TextPipeline` (built from objects, or from registered names with
:func:`build_pipeline`) is a :class:`~omnivoice.realtime.provider.Provider`; the
contracts its three parts implement are in :mod:`omnivoice.pipeline.contracts`. See
``docs/pipeline.md``.
"""

from omnivoice.pipeline.contracts import (
    LanguageModel,
    Message,
    SpeechToText,
    STTEvent,
    TextDelta,
    TextToSpeech,
    ToolCall,
)
from omnivoice.pipeline.sentences import SentenceSplitter
from omnivoice.pipeline.text import TextPipeline, build_pipeline

__all__ = [
    "LanguageModel",
    "Message",
    "STTEvent",
    "SentenceSplitter",
    "SpeechToText",
    "TextDelta",
    "TextPipeline",
    "TextToSpeech",
    "ToolCall",
    "build_pipeline",
]
