"""What a plugin declares when it registers an implementation.

A plugin's hook receives a ``register`` callable bound to one kind (see
:mod:`omnivoice.hookspecs`); every call records a :class:`Registration` with the
metadata users and the pipeline builder rely on: which audio formats it takes and
gives, what it can do, and which environment variables it reads.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import attrs

from omnivoice.audio.format import AudioFormat

__all__ = ["Capability", "Kind", "Register", "Registration"]


class Kind(enum.Enum):
    """The extension points that take named implementations."""

    REALTIME = "realtime"
    """A voice-to-voice provider (audio in, audio and transcripts out)."""
    STT = "stt"
    """A speech-to-text provider."""
    LLM = "llm"
    """A language-model provider for the text pipeline."""
    TTS = "tts"
    """A text-to-speech provider."""
    CODEC = "codec"
    """An audio converter (format conversion and resampling)."""
    TRANSPORT = "transport"
    """A telephony transport (a carrier's media-stream protocol)."""

    @property
    def label(self) -> str:
        """How messages name one implementation of this kind."""
        return _LABELS[self]


_LABELS = {
    Kind.REALTIME: "realtime provider",
    Kind.STT: "speech-to-text provider",
    Kind.LLM: "LLM provider",
    Kind.TTS: "text-to-speech provider",
    Kind.CODEC: "codec",
    Kind.TRANSPORT: "telephony transport",
}


class Capability(enum.StrEnum):
    """Well-known capabilities. Plugins may declare other strings too."""

    FUNCTION_CALLING = "function_calling"
    TRANSCRIPTS = "transcripts"
    """Produces transcripts of the user's and/or the agent's speech."""
    INTERRUPTION = "interruption"
    """Detects barge-in and stops the response in progress."""
    TRUNCATION = "truncation"
    """Can be told how much of its response the caller heard."""
    STREAMING = "streaming"
    """Produces output incrementally (partial transcripts, token or audio streaming)."""
    HANGUP = "hangup"
    """A transport that can end the call through the carrier's API."""


def _strings(values: Iterable[str]) -> frozenset[str]:
    return frozenset(str(v.value if isinstance(v, enum.Enum) else v) for v in values)


def _formats(values: Iterable[AudioFormat]) -> tuple[AudioFormat, ...]:
    return tuple(values)


def _names(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen
class Registration:
    """One named implementation of one kind, with its metadata."""

    kind: Kind
    name: str
    factory: Callable[..., Any] = attrs.field(eq=False, repr=False)
    """Builds the implementation. Its arguments depend on the kind (see the hook)."""
    plugin: str = ""
    """The plugin that registered it (an entry point name, or a built-in's name)."""
    distribution: str = ""
    """The distribution that provides the plugin, for example ``omnivoice-twilio``."""
    accepts: tuple[AudioFormat, ...] = attrs.field(default=(), converter=_formats)
    """Audio formats it takes as input, preferred first."""
    produces: tuple[AudioFormat, ...] = attrs.field(default=(), converter=_formats)
    """Audio formats it gives as output, preferred first."""
    capabilities: frozenset[str] = attrs.field(default=frozenset(), converter=_strings)
    env_vars: tuple[str, ...] = attrs.field(default=(), converter=_names)
    """Environment variables it reads (API keys, endpoints)."""
    aliases: tuple[str, ...] = attrs.field(default=(), converter=_names)
    """Other names it answers to."""
    priority: int = 0
    """When two plugins register one name, the higher priority wins; a tie is an error."""
    description: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (everything but the factory)."""
        return {
            "kind": self.kind.value,
            "name": self.name,
            "aliases": list(self.aliases),
            "description": self.description,
            "accepts": [str(f) for f in self.accepts],
            "produces": [str(f) for f in self.produces],
            "capabilities": sorted(self.capabilities),
            "env_vars": list(self.env_vars),
            "priority": self.priority,
        }


class Register(Protocol):
    """The ``register`` callable a registration hook receives."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        accepts: Iterable[AudioFormat] = (),
        produces: Iterable[AudioFormat] = (),
        capabilities: Iterable[str] = (),
        env_vars: Iterable[str] = (),
        aliases: Iterable[str] = (),
        priority: int = 0,
        description: str = "",
    ) -> None: ...
