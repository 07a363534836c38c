"""The Provider contract: what every voice-to-voice provider implements.

A provider is configured once (API key, model, endpoint) and serves many calls. For each
call, :meth:`Provider.process_audio_stream` opens a session: it consumes the caller's audio
from ``audio_in`` and yields, in order, what the model produces::

    stream = provider.process_audio_stream(audio_in, config, input_format=a, output_format=b)
    async with stream as session:
        async for event in session:
            ...  # AudioChunk, Transcript, SpeechStarted, FunctionCall, Usage, ProviderError

The session ends when ``audio_in`` is exhausted and the provider has said everything, when
the provider's connection ends, or when the ``async with`` block is left (which cancels its
work). Everything a session starts lives inside that block.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeAlias

import attrs

from omnivoice.audio.format import AudioFormat
from omnivoice.errors import OmnivoiceError
from omnivoice.realtime.types import AudioChunk, ProcessConfig, Transcript

__all__ = [
    "FunctionCall",
    "Provider",
    "ProviderError",
    "ProviderEvent",
    "ProviderSwitched",
    "RealtimeSession",
    "SpeechStarted",
    "SpeechStopped",
    "Usage",
]


@attrs.frozen
class SpeechStarted:
    """The caller started speaking. During agent audio this is a barge-in."""


@attrs.frozen
class SpeechStopped:
    """The caller stopped speaking (the end of the user's turn, as the provider sees it)."""

    trailing_silence_ms: int = 0
    """How long ago the speech really ended: a detector reports the end of speech only
    after some silence. Response latency is measured from the real end."""


@attrs.frozen
class FunctionCall:
    """The model called a function; the provider runs ``ProcessConfig.on_function_call``.

    Reported so the bridge can count and log calls; the result goes back to the model
    inside the provider.
    """

    call_id: str
    name: str
    arguments: Mapping[str, Any]


@attrs.frozen
class Usage:
    """Tokens (or seconds) a response used, as the provider reports them."""

    input_tokens: int = 0
    output_tokens: int = 0
    details: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ProviderError:
    """An error the provider reported. ``fatal`` errors end the session."""

    error: OmnivoiceError
    fatal: bool = False


@attrs.frozen
class ProviderSwitched:
    """The call moved to another provider session (a fallback client's failover)."""

    previous: str
    current: str
    reason: str


ProviderEvent: TypeAlias = (
    AudioChunk
    | Transcript
    | SpeechStarted
    | SpeechStopped
    | FunctionCall
    | Usage
    | ProviderError
    | ProviderSwitched
)
"""What a session yields. ``AudioChunk.is_final`` marks the end of one response's audio."""


class RealtimeSession(Protocol):
    """One call's conversation with a provider: an async iterator of :data:`ProviderEvent`."""

    def __aiter__(self) -> AsyncIterator[ProviderEvent]: ...

    async def interrupt(self, heard_ms: int) -> None:
        """Stop the response in progress, if any: the caller heard its first ``heard_ms`` ms.

        The bridge calls this on barge-in, after it has silenced the caller's line, with
        the playback position measured from the carrier's acknowledgements. Providers that
        keep a conversation history keep only what was heard (OpenAI: truncate the item).
        """
        ...


class Provider(abc.ABC):
    """A voice-to-voice provider: audio in, audio and transcripts out."""

    name: str = "provider"
    """The name it is registered under."""
    accepts: tuple[AudioFormat, ...] = ()
    """Input formats, preferred first. The bridge sends the carrier's format unchanged
    when it is listed (G.711 passthrough), else converts to the first one."""
    produces: tuple[AudioFormat, ...] = ()
    """Output formats, preferred first (the bridge asks for the carrier's when listed)."""

    @abc.abstractmethod
    def process_audio_stream(
        self,
        audio_in: AsyncIterable[bytes],
        config: ProcessConfig,
        *,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> AbstractAsyncContextManager[RealtimeSession]:
        """Open a session for one call.

        ``audio_in`` yields the caller's audio in ``input_format`` (one of :attr:`accepts`);
        the session yields audio in ``output_format`` (one of :attr:`produces`). Raises
        :class:`~omnivoice.errors.ConnectionFailedError` or one of its subclasses
        (``AuthFailedError``, ``RateLimitedError``, ``ModelUnavailableError``) on entry if
        the session cannot be opened.
        """

    async def aclose(self) -> None:  # noqa: B027 - most providers hold nothing between calls
        """Release what the provider holds between calls (pooled connections, clients)."""
