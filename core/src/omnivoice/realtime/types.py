"""The realtime layer's data: what a call is configured with and what a provider yields."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal, TypeAlias, TypeVar

import attrs

__all__ = [
    "AudioChunk",
    "ConversationItem",
    "FunctionCallHandler",
    "FunctionDeclaration",
    "HeardResponse",
    "ProcessConfig",
    "Transcript",
    "WordTiming",
    "with_extensions",
]

T = TypeVar("T", bound=attrs.AttrsInstance)

FunctionCallHandler: TypeAlias = Callable[[str, str, Mapping[str, Any]], Any | Awaitable[Any]]
"""``handler(call_id, name, arguments)``, plain or async; returns any JSON value."""


@attrs.frozen
class FunctionDeclaration:
    """A function (tool) the model may call."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = attrs.field(
        factory=lambda: {"type": "object", "properties": {}}
    )
    """The arguments, as a JSON-schema object."""
    must_complete: bool = False
    """Run to the end even if the caller interrupts the response that called it (for
    functions with side effects, like placing an order). Others are cancelled."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }


@attrs.frozen
class ConversationItem:
    """One earlier utterance of the conversation, given to a new session as context."""

    role: Literal["user", "agent"]
    text: str


def _functions(values: Iterable[FunctionDeclaration]) -> tuple[FunctionDeclaration, ...]:
    return tuple(values)


def _history(values: Iterable[ConversationItem]) -> tuple[ConversationItem, ...]:
    return tuple(values)


@attrs.frozen
class ProcessConfig:
    """How one call's conversation is set up. Values left ``None`` keep provider defaults."""

    instructions: str | None = None
    """The system prompt."""
    voice: str | None = None
    functions: tuple[FunctionDeclaration, ...] = attrs.field(default=(), converter=_functions)
    on_function_call: FunctionCallHandler | None = attrs.field(default=None, eq=False)
    """Runs each function call; see :data:`FunctionCallHandler`."""
    temperature: float | None = None
    function_timeout: float = 10.0
    """Seconds one function call may take; then the model is told it timed out."""
    extensions: Mapping[str, Any] = attrs.field(factory=dict)
    """Provider-specific settings, keyed by option name."""
    history: tuple[ConversationItem, ...] = attrs.field(default=(), converter=_history)
    """The conversation so far, for a session that takes over a call (failover, renewal):
    providers replay it as context before the caller's next words."""


@attrs.frozen
class WordTiming:
    """One spoken word and where it lies in its response's audio."""

    text: str
    start_ms: float
    """When its audio begins, in milliseconds from the start of the response's audio."""
    end_ms: float
    """When its audio ends, on the same clock."""


def _words(values: Iterable[WordTiming]) -> tuple[WordTiming, ...]:
    return tuple(values)


@attrs.frozen
class AudioChunk:
    """Audio from a provider, in the format the provider declared it produces."""

    audio: bytes
    is_final: bool = False
    """The last chunk of one response."""
    response_id: str | None = None
    """The response it belongs to, in the provider's own terms (a vendor's response id),
    so that :meth:`RealtimeSession.interrupt` can say how much of each one was heard.
    Optional: untagged chunks are numbered by the order of their responses."""
    words: tuple[WordTiming, ...] = attrs.field(default=(), converter=_words)
    """Words whose audio is complete with this chunk (it is in this chunk or an earlier
    one of the response), in order, for a provider that knows them (``WORD_TIMINGS``):
    the bridge then records exactly which words the caller heard of an interrupted reply."""


@attrs.frozen
class HeardResponse:
    """How much of one interrupted response the caller heard."""

    response_id: str | None
    """The id its audio chunks carried (``None`` if they carried none)."""
    heard_ms: int
    """Milliseconds of its audio the caller heard (0: none; it was queued behind another)."""
    produced_ms: int
    """Milliseconds of its audio the provider had produced when it was interrupted."""


@attrs.frozen
class Transcript:
    """Text of what was said, by the user (``is_input``) or the agent."""

    text: str
    is_input: bool
    """True for the caller's speech, False for the agent's."""
    is_final: bool = False
    """False for a partial (delta) transcript, True for a turn's complete text."""


def with_extensions(options: T, config: ProcessConfig) -> T:
    """A provider's settings (an attrs instance) for one call: the fields that
    ``config.extensions`` names replaced by its values. Keys that are not fields are
    ignored, so that one configuration can serve several providers."""
    names = {field.name for field in attrs.fields(type(options))}
    overrides = {k: v for k, v in config.extensions.items() if k in names}
    return attrs.evolve(options, **overrides) if overrides else options  # type: ignore[misc]
