"""The gateway: a phone call's audio between a carrier and a provider.

The server itself (``Gateway``, built on Starlette and uvicorn) lives in
:mod:`omnivoice.gateway.server` and is imported only by those who serve.
"""

from omnivoice.gateway.bridge import Playback, RealtimeBridge
from omnivoice.gateway.config import Config, PipelineMode, RealtimeConfig, TextConfig
from omnivoice.gateway.events import Event, EventType
from omnivoice.gateway.transcript import Turn

__all__ = [
    "Config",
    "Event",
    "EventType",
    "PipelineMode",
    "Playback",
    "RealtimeBridge",
    "RealtimeConfig",
    "TextConfig",
    "Turn",
]
