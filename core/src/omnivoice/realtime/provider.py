"""The Provider contract: what every voice-to-voice provider implements.

A provider is configured once (API key, model, endpoint) and serves many calls. For each
call, :meth:`Provider.process_audio_stream` opens a session: it consumes the caller's audio
from ``audio_in`` and yields, in order, what the model produces::

    async with provider.process_audio_stream(audio_in, config) as session:
        async for event in session:
            ...  # AudioChunk, Transcript, SpeechStarted, FunctionCall, Usage, ProviderError

The session ends when ``audio_in`` is exhausted and the provider has said everything, when
the provider's connection ends, or when the ``async with`` block is left (which cancels its
work). Everything a session starts lives inside that block. The grammar of the events, what
``interrupt`` must do and which errors may escape are written in
``docs/providers/contract.md`` and checked by :mod:`omnivoice.testing`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeAlias

import attrs

from omnivoice.audio.format import AudioFormat, choose_format
from omnivoice.errors import OmnivoiceError, UnsupportedFormatError
from omnivoice.realtime.types import AudioChunk, HeardResponse, ProcessConfig, Transcript
from omnivoice.registration import Capability

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
    """An error the provider reported. A ``fatal`` error is the session's last event."""

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

    async def interrupt(self, heard_ms: int, *, responses: Sequence[HeardResponse] = ()) -> None:
        """Stop the response in progress, if any: the caller heard its first ``heard_ms`` ms.

        The bridge calls this on barge-in, after it has silenced the caller's line, with
        the playback position measured from the carrier's acknowledgements: ``heard_ms``
        for the oldest response still playing, and ``responses`` for every response the
        barge-in cut short, oldest first (a second response queued behind the first was
        heard for 0 ms). The session ends each open response with its final chunk; one
        that keeps a conversation history keeps only what was heard (OpenAI: truncate
        each item). Never raises for a session that is ending.
        """
        ...


class Provider(abc.ABC):
    """A voice-to-voice provider: audio in, audio and transcripts out.

    Subclasses declare :attr:`name`, :attr:`accepts`, :attr:`produces` and
    :attr:`capabilities`, and implement :meth:`open_session`; callers use
    :meth:`process_audio_stream`.
    """

    name: str = "provider"
    """The name it is registered under."""
    accepts: tuple[AudioFormat, ...] = ()
    """Input formats, preferred first. The bridge sends the carrier's format unchanged
    when it is listed (G.711 passthrough), else converts to the first one."""
    produces: tuple[AudioFormat, ...] = ()
    """Output formats, preferred first (the bridge asks for the carrier's when listed)."""
    capabilities: Capability = Capability.NONE
    """What its sessions do (see :class:`~omnivoice.registration.Capability`)."""

    def process_audio_stream(
        self,
        audio_in: AsyncIterable[bytes],
        config: ProcessConfig | None = None,
        *,
        input_format: AudioFormat | None = None,
        output_format: AudioFormat | None = None,
    ) -> AbstractAsyncContextManager[RealtimeSession]:
        """Open a session for one call: ``async with`` it to get the session.

        ``audio_in`` yields the caller's audio in ``input_format`` (one of :attr:`accepts`;
        by default the first); the session yields audio in ``output_format`` (one of
        :attr:`produces`; by default the first). A format the provider does not declare
        raises :class:`~omnivoice.errors.UnsupportedFormatError` at once. Entering raises
        :class:`~omnivoice.errors.ConnectionFailedError` or one of its subclasses
        (``AuthFailedError``, ``RateLimitedError``, ``ModelUnavailableError``) if the
        session cannot be opened.
        """
        try:
            input_format = _declared(self, input_format, self.accepts, "input")
            output_format = _declared(self, output_format, self.produces, "output")
        except UnsupportedFormatError as exc:
            return _Refused(exc)  # raised on entry, like every other reason not to open
        return self.open_session(
            audio_in,
            config if config is not None else ProcessConfig(),
            input_format=input_format,
            output_format=output_format,
        )

    def supports(self, audio_format: AudioFormat, role: str) -> bool:
        """Whether a session can be opened with ``audio_format`` as its ``role``
        (``"input"`` or ``"output"``) format: by default, when it is declared. A provider
        that converts other formats itself says so here, and still declares only its
        preferred ones (what the bridge chooses from)."""
        return audio_format in (self.accepts if role == "input" else self.produces)

    @abc.abstractmethod
    def open_session(
        self,
        audio_in: AsyncIterable[bytes],
        config: ProcessConfig,
        *,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> AbstractAsyncContextManager[RealtimeSession]:
        """Open a session in formats already checked against :attr:`accepts` and
        :attr:`produces` (what :meth:`process_audio_stream` calls; see it for the rules).

        :func:`omnivoice.realtime.serve_session` does the hard part of the usual shape
        (run the vendor connection in a task group, yield once it is up, raise a failed
        start as itself).
        """

    async def aclose(self) -> None:  # noqa: B027 - most providers hold nothing between calls
        """Release what the provider holds between calls (pooled connections, clients)."""


class _Refused:
    """A session that cannot open: entering raises why."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    async def __aenter__(self) -> RealtimeSession:
        raise self._error

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def _declared(
    provider: Provider,
    given: AudioFormat | None,
    offered: tuple[AudioFormat, ...],
    role: str,
) -> AudioFormat:
    if given is None:
        return choose_format(offered, who=f"{provider.name} ({role})")
    if not provider.supports(given, role):
        listed = ", ".join(map(str, offered)) or "none"
        raise UnsupportedFormatError(
            f"{provider.name} does not take {given} as its {role} format (it declares {listed})"
        )
    return given
