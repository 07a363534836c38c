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


class Capability(enum.Flag):
    """What an implementation can do, as flags the core reads (combine them with ``|``).

    Providers declare theirs as the class attribute ``capabilities``; the registry reads it
    from the factory unless the registration gives its own. The bridge and the fallback
    client act on them (see ``docs/providers/contract.md``); ``omnivoice plugins`` shows
    them.
    """

    NONE = 0
    FUNCTION_CALLING = enum.auto()
    """Runs ``ProcessConfig`` functions (realtime) or asks for tool calls (LLM)."""
    USER_TRANSCRIPTS = enum.auto()
    """Transcribes the caller's speech."""
    AGENT_TRANSCRIPTS = enum.auto()
    """Gives the text of the agent's speech."""
    TRANSCRIPTS = USER_TRANSCRIPTS | AGENT_TRANSCRIPTS
    SPEECH_EVENTS = enum.auto()
    """Reports when the caller starts and stops speaking (its own turn detection). Without
    it, the bridge detects barge-in itself with an energy detector on the caller's audio."""
    INTERRUPTION = enum.auto()
    """``interrupt()`` stops the response in progress. Without it, the bridge still silences
    the line and drops the rest of the response, but does not call ``interrupt()``."""
    TRUNCATION = enum.auto()
    """Keeps only what the caller heard of an interrupted reply in its own context."""
    HISTORY = enum.auto()
    """Takes ``ProcessConfig.history``: can take over a call that another session began."""
    STREAMING = enum.auto()
    """Produces output incrementally (partial transcripts, tokens, audio as it is made)."""
    INPUT_STREAMING = enum.auto()
    """A text-to-speech provider that takes each response's text as it is written
    (``TextToSpeech.open_stream``): the text pipeline streams the model's words into it
    instead of calling ``synthesize`` once per sentence."""
    WORD_TIMINGS = enum.auto()
    """Gives the timing of each word within its audio: the words the caller heard of an
    interrupted reply are known exactly, not estimated from its length."""
    HANGUP = enum.auto()
    """A transport that can end calls through the carrier's API."""

    @property
    def names(self) -> list[str]:
        """The single flags set, in lower case (``["interruption", "streaming"]``)."""
        return [flag.name.lower() for flag in self if flag.name]

    @classmethod
    def parse(cls, values: Capability | Iterable[Capability | str]) -> Capability:
        """Flags from a flag, or from flags and names (``"function_calling"``)."""
        if isinstance(values, Capability):
            return values
        if isinstance(values, str):
            values = [values]
        result = cls.NONE
        for value in values:
            if isinstance(value, Capability):
                result |= value
                continue
            name = str(value).strip().upper().replace("-", "_")
            if name not in cls.__members__:
                known = ", ".join(name.lower() for name in cls.__members__)
                raise ValueError(f"unknown capability {value!r}; known: {known}")
            result |= cls[name]
        return result


def _capabilities(values: Capability | Iterable[Capability | str]) -> Capability:
    return Capability.parse(values)


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
    capabilities: Capability = attrs.field(default=Capability.NONE, converter=_capabilities)
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
            "capabilities": self.capabilities.names,
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
        accepts: Iterable[AudioFormat] | None = None,
        produces: Iterable[AudioFormat] | None = None,
        capabilities: Capability | Iterable[Capability | str] | None = None,
        env_vars: Iterable[str] = (),
        aliases: Iterable[str] = (),
        priority: int = 0,
        description: str = "",
    ) -> None: ...
