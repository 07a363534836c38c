"""Voice-to-voice providers: configuration, the data they produce, and their errors."""

from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    RateLimitedError,
    SessionClosedError,
)
from omnivoice.realtime.client import Client
from omnivoice.realtime.provider import (
    FunctionCall,
    Provider,
    ProviderError,
    ProviderEvent,
    ProviderSwitched,
    RealtimeSession,
    SpeechStarted,
    SpeechStopped,
    Usage,
)
from omnivoice.realtime.types import (
    AudioChunk,
    ConversationItem,
    FunctionCallHandler,
    FunctionDeclaration,
    ProcessConfig,
    Transcript,
)

__all__ = [
    "AudioChunk",
    "AuthFailedError",
    "Client",
    "ConnectionFailedError",
    "ConversationItem",
    "FunctionCall",
    "FunctionCallHandler",
    "FunctionDeclaration",
    "ModelUnavailableError",
    "ProcessConfig",
    "Provider",
    "ProviderError",
    "ProviderEvent",
    "ProviderSwitched",
    "RateLimitedError",
    "RealtimeSession",
    "SessionClosedError",
    "SpeechStarted",
    "SpeechStopped",
    "Transcript",
    "Usage",
]
