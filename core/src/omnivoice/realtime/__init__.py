"""Voice-to-voice providers: the contract, the session kit for writing one, and their data.

What a provider implements (:class:`Provider`, :class:`RealtimeSession`, the events) and
what helps it do so correctly (:func:`serve_session`, :class:`EventChannel`,
:class:`ConversationLog`, :class:`CallerAudio`, :func:`run_function_call`...) are all
importable from here; ``docs/providers/contract.md`` says how they fit together.
"""

from omnivoice.audio.format import choose_format
from omnivoice.concurrency import aclose_now, fast_lock
from omnivoice.errors import (
    AuthFailedError,
    ConfigurationError,
    ConnectionFailedError,
    ModelUnavailableError,
    RateLimitedError,
    SessionClosedError,
)
from omnivoice.realtime.caller_audio import AudioSink, CallerAudio, Overflow
from omnivoice.realtime.client import Client, FallbackProvider
from omnivoice.realtime.conversation import ConversationLog, Utterance, heard_part, heard_words
from omnivoice.realtime.functions import FunctionOutcome, must_complete, run_function_call
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
from omnivoice.realtime.session import EventChannel, serve_session
from omnivoice.realtime.types import (
    AudioChunk,
    ConversationItem,
    FunctionCallHandler,
    FunctionDeclaration,
    HeardResponse,
    ProcessConfig,
    Transcript,
    WordTiming,
    with_extensions,
)
from omnivoice.registration import Capability

__all__ = [
    "AudioChunk",
    "AudioSink",
    "AuthFailedError",
    "CallerAudio",
    "Capability",
    "Client",
    "ConfigurationError",
    "ConnectionFailedError",
    "ConversationItem",
    "ConversationLog",
    "EventChannel",
    "FallbackProvider",
    "FunctionCall",
    "FunctionCallHandler",
    "FunctionDeclaration",
    "FunctionOutcome",
    "HeardResponse",
    "ModelUnavailableError",
    "Overflow",
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
    "Utterance",
    "WordTiming",
    "aclose_now",
    "choose_format",
    "fast_lock",
    "heard_part",
    "heard_words",
    "must_complete",
    "run_function_call",
    "serve_session",
    "with_extensions",
]
