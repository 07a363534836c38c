"""Voice-to-voice providers: configuration, the data they produce, and their errors."""

from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    RateLimitedError,
    SessionClosedError,
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
    "ConnectionFailedError",
    "ConversationItem",
    "FunctionCallHandler",
    "FunctionDeclaration",
    "ModelUnavailableError",
    "ProcessConfig",
    "RateLimitedError",
    "SessionClosedError",
    "Transcript",
]
