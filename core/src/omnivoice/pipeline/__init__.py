"""The text pipeline: speech-to-text, an LLM and text-to-speech as one realtime provider."""

from omnivoice.pipeline.contracts import (
    LanguageModel,
    Message,
    SpeechToText,
    STTEvent,
    TextDelta,
    TextToSpeech,
    ToolCall,
)

__all__ = [
    "LanguageModel",
    "Message",
    "STTEvent",
    "SpeechToText",
    "TextDelta",
    "TextToSpeech",
    "ToolCall",
]
