"""The fallback client: several providers behind one, so that a call survives an outage.

``Client(primary, *fallbacks)`` is itself a :class:`~omnivoice.realtime.provider.Provider`.
Opening a session tries the providers in order and skips those that cannot connect
(``ConnectionFailedError`` and its subclasses). When the serving session dies in the middle
of a call, the client opens another (once more with the same provider, then the next ones)
and gives it the conversation so far as ``ProcessConfig.history``; the caller's audio of
the gap is buffered and sent first. Each move is reported as a ``ProviderSwitched`` event.
See ``docs/fallback.md``.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager

import anyio
import attrs
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectSendStream

from omnivoice.audio.converter import DEFAULT_CODEC, StreamConverter
from omnivoice.audio.format import AudioFormat, choose_format
from omnivoice.concurrency import aclose_now
from omnivoice.errors import (
    ConnectionFailedError,
    OmnivoiceError,
    SessionClosedError,
    describe_error,
    unwrap_error,
)
from omnivoice.realtime.caller_audio import CallerAudio, Overflow
from omnivoice.realtime.conversation import ConversationLog
from omnivoice.realtime.provider import (
    Provider,
    ProviderError,
    ProviderEvent,
    ProviderSwitched,
    RealtimeSession,
)
from omnivoice.realtime.session import EventChannel, serve_session
from omnivoice.realtime.types import AudioChunk, HeardResponse, ProcessConfig, Transcript
from omnivoice.registration import Capability

__all__ = ["Client", "FallbackProvider", "FallbackSession"]

log = logging.getLogger(__name__)

_EVENT_BUFFER = 16
"""Events queued for the session's reader before the client stops reading the provider."""


class Client(Provider):
    """A provider that falls back to others, at connect time and in the middle of a call.

    ``primary`` is tried first, then each of ``fallbacks`` in order. The client presents
    the primary's :attr:`name` (unless ``name`` is given) and the primary's
    :attr:`accepts` and :attr:`produces`, so a call served by the primary keeps G.711
    passthrough; when another provider takes over and does not list the session's formats,
    the client converts with ``codec``.

    Options: ``reconnect_same`` reconnections to a provider whose session died before
    moving on (counted since its last complete response); ``connect_timeout`` seconds per
    connection attempt (``None``: no limit); ``history_items`` and ``history_chars`` bound
    the conversation given to a session that takes over; ``buffer_ms`` of the caller's
    audio are kept while reconnecting (older audio is dropped, counted and reported).
    """

    def __init__(
        self,
        primary: Provider,
        *fallbacks: Provider,
        reconnect_same: int = 1,
        connect_timeout: float | None = 5.0,
        history_items: int = 20,
        history_chars: int = 4000,
        buffer_ms: int = 1000,
        codec: str = DEFAULT_CODEC,
        name: str | None = None,
    ) -> None:
        for option, value in [
            ("reconnect_same", reconnect_same),
            ("history_items", history_items),
            ("history_chars", history_chars),
            ("buffer_ms", buffer_ms),
        ]:
            if value < 0:
                raise ValueError(f"{option} must not be negative, got {value}")
        if connect_timeout is not None and connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be positive, got {connect_timeout}")
        self.providers: tuple[Provider, ...] = (primary, *fallbacks)
        self.name = primary.name if name is None else name
        self.accepts = primary.accepts
        self.produces = primary.produces
        # What the call can count on, whichever provider serves it.
        self.capabilities = functools.reduce(
            Capability.__and__, (p.capabilities for p in self.providers)
        )
        for provider in fallbacks:
            if not provider.capabilities & Capability.HISTORY:
                log.info(
                    "%s does not take a conversation's history: a call it takes over starts afresh",
                    provider.name,
                )
        self.reconnect_same = reconnect_same
        self.connect_timeout = connect_timeout
        self.history_items = history_items
        self.history_chars = history_chars
        self.buffer_ms = buffer_ms
        self.codec = codec

    def open_session(
        self,
        audio_in: AsyncIterable[bytes],
        config: ProcessConfig,
        *,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> AbstractAsyncContextManager[FallbackSession]:
        """Open a session with the first provider that connects.

        Raises :class:`~omnivoice.errors.ConnectionFailedError` naming every provider and
        its error when none connects; any other error of a provider propagates at once.
        """
        session = FallbackSession(self, config, input_format, output_format)
        run = functools.partial(session.run, audio_in)
        return serve_session(session, run, events=session.events, name=self.name)

    async def aclose(self) -> None:
        """Close every wrapped provider; the first error is raised after all were closed."""
        errors: list[Exception] = []
        for provider in _unique(self.providers):
            try:
                await provider.aclose()
            except Exception as exc:
                log.warning("closing %s failed: %s", provider.name, describe_error(exc))
                errors.append(exc)
        if errors:
            raise errors[0]


class FallbackSession:
    """One call through a :class:`Client`: a :class:`RealtimeSession` across provider sessions.

    It reads the caller's audio itself and forwards it to the session serving the call;
    its events are that session's, plus ``ProviderSwitched`` when another one takes over.
    """

    def __init__(
        self,
        client: Client,
        config: ProcessConfig,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> None:
        self._client = client
        self._config = config
        # Plan every provider's formats now: a conversion no codec supports is found when
        # the call starts, not when an outage strikes.
        self._routes = [
            _Route(provider, input_format, output_format, client.codec)
            for provider in client.providers
        ]
        self._caller = CallerAudio(
            input_format, hold_ms=client.buffer_ms, overflow=Overflow.DROP_OLDEST
        )
        self._conversation = ConversationLog(
            config.history, max_items=max(1, client.history_items), max_chars=client.history_chars
        )
        self._inner: RealtimeSession | None = None
        self._active: int | None = None
        self._retries_left = client.reconnect_same
        self._responding = False
        """The serving session is in the middle of a response (its final chunk is due)."""
        self._dropped_reported = 0
        self._task_status: TaskStatus[None] | None = None
        self.events = EventChannel(_EVENT_BUFFER)

    @property
    def provider(self) -> str | None:
        """The name of the provider serving the call; ``None`` while reconnecting."""
        if self._inner is None or self._active is None:
            return None
        return self._client.providers[self._active].name

    @property
    def dropped_audio_ms(self) -> int:
        """Caller audio dropped because a reconnection outlasted the buffer."""
        return self._caller.dropped_ms

    # --- the RealtimeSession contract -----------------------------------------------------

    def __aiter__(self) -> AsyncIterator[ProviderEvent]:
        # Closing this iterator (as the bridge does when it stops) ends the call.
        return aiter(self.events)

    async def interrupt(self, heard_ms: int, *, responses: Sequence[HeardResponse] = ()) -> None:
        """Pass the interruption to the serving session (while reconnecting there is none:
        the response in progress was already ended)."""
        self._conversation.interrupted(responses)
        inner = self._inner
        if inner is None:
            return
        try:
            await inner.interrupt(heard_ms, responses=responses)
        except Exception as exc:
            # A session that cannot take it is dying: its events tell the client so.
            log.warning("interrupting %s failed: %s", self.provider, describe_error(exc))

    # --- the call -------------------------------------------------------------------------

    async def run(self, audio_in: AsyncIterable[bytes], *, task_status: TaskStatus[None]) -> None:
        """Read the caller's audio and keep a provider session serving the call."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._caller.pump, audio_in)
            await self._keep_serving(task_status)
            tasks.cancel_scope.cancel()

    async def _keep_serving(self, task_status: TaskStatus[None]) -> None:
        """Keep a provider session serving the call until the call or the providers end."""
        self._task_status = task_status
        providers = self._client.providers
        plan = list(range(len(providers)))
        switches: list[ProviderSwitched] = []
        """The moves to report once a session takes the call."""
        failures: list[str] = []
        """Each failed attempt since the call last had a session, for the final error."""
        last_error: Exception | None = None
        leaving: str | None = None
        why = lost = ""
        while plan:
            index = plan.pop(0)
            provider = providers[index]
            if leaving is not None:
                switches.append(ProviderSwitched(leaving, provider.name, why))
            config = self._config if self._active is None else self._takeover_config(provider)
            outcome = await self._serve(index, config, switches)
            if self.events.consumer_gone:
                return
            if not outcome.connected:
                error = outcome.error
                assert error is not None
                if self._starting and not isinstance(unwrap_error(error), ConnectionFailedError):
                    raise error
                log.warning("%s did not connect: %s", provider.name, describe_error(error))
                failures.append(f"{provider.name}: {describe_error(error)}")
                last_error = error
                leaving, why = provider.name, f"connection failed: {describe_error(error)}"
                continue
            switches, failures, last_error = [], [], None
            if outcome.error is None:
                return  # the call ended, and the session with it
            if self._caller.finished:  # nobody is left to talk to
                await self.events.emit(ProviderError(_omnivoice_error(outcome.error), fatal=True))
                return
            log.warning("%s session failed: %s", provider.name, describe_error(outcome.error))
            self._conversation.end_reply()
            lost = f"{provider.name} session failed: {describe_error(outcome.error)}"
            leaving, why = provider.name, f"session failed: {describe_error(outcome.error)}"
            # Once more with the same provider (unless its budget is spent), then the
            # ones after it; those before it have failed already or never served.
            plan = [index] * self._retries_left + list(range(index + 1, len(providers)))
            self._retries_left = 0
        tried = "; ".join(failures) or "no provider left to try"
        if self._starting:
            message = f"no provider could take the call: {tried}"
            raise ConnectionFailedError(message) from last_error
        error = ConnectionFailedError(f"no provider could take over the call ({lost}): {tried}")
        error.__cause__ = last_error
        await self.events.emit(ProviderError(error, fatal=True))

    @property
    def _starting(self) -> bool:
        """No session has taken the call yet (connection errors are raised, not reported)."""
        return self._task_status is not None

    async def _serve(
        self, index: int, config: ProcessConfig, switches: list[ProviderSwitched]
    ) -> _Outcome:
        """Connect to one provider and, if it connects, let its session serve the call."""
        provider = self._client.providers[index]
        route = self._routes[index]
        inbound, outbound = route.converters()
        timeout = self._client.connect_timeout
        deadline = math.inf if timeout is None else anyio.current_time() + timeout
        connected = False
        error: Exception | None = None
        link_tx, link_rx = anyio.create_memory_object_stream[bytes](0)
        with link_tx, link_rx:
            try:
                # A deadline on the whole block, lifted once connected: a cancel scope
                # around the entry alone would close inside the provider's own scopes.
                with anyio.CancelScope(deadline=deadline) as connecting:
                    stream = provider.process_audio_stream(
                        link_rx,
                        config,
                        input_format=route.input_format,
                        output_format=route.output_format,
                    )
                    async with stream as inner:
                        connected = True
                        connecting.deadline = math.inf
                        error = await self._take_call(
                            index, inner, link_tx, inbound, outbound, switches
                        )
            except Exception as exc:
                if not connected:
                    return _Outcome(connected=False, error=exc)
                if error is None:
                    error = exc
                else:  # the session was already lost; this is how its closing went
                    log.debug("%s closed with %s", provider.name, describe_error(exc))
        if connecting.cancelled_caught:  # the deadline passed, maybe as the session came up
            failure = ConnectionFailedError(f"no session within {timeout} s")
            if not connected:
                return _Outcome(connected=False, error=failure)
            error = error or failure
        if self._responding and not self.events.consumer_gone:
            # The bridge counts responses by their final chunk: end the one cut short.
            self._responding = False
            tail = outbound.flush() if outbound is not None else b""
            await self.events.emit(AudioChunk(tail, is_final=True))
        return _Outcome(connected=True, error=error)

    async def _take_call(
        self,
        index: int,
        inner: RealtimeSession,
        link_tx: MemoryObjectSendStream[bytes],
        inbound: StreamConverter | None,
        outbound: StreamConverter | None,
        switches: list[ProviderSwitched],
    ) -> Exception | None:
        """A session is up: feed it the caller's audio, pass its events on until it ends."""
        if index != self._active:
            self._retries_left = self._client.reconnect_same
        self._active, self._inner = index, inner
        sink = _LinkSink(link_tx, inbound)
        try:
            async with anyio.create_task_group() as feeding:
                # The caller's audio first, the news after: the gap stays short.
                feeding.start_soon(self._feed, sink, link_tx, inbound)
                if self._task_status is not None:
                    self._task_status.started()
                    self._task_status = None
                for switch in switches:
                    log.warning("%s -> %s: %s", switch.previous, switch.current, switch.reason)
                    await self.events.emit(switch)
                dropped = self._drop_report()
                if dropped is not None:
                    await self.events.emit(dropped)
                error = await self._relay(inner, outbound)
                feeding.cancel_scope.cancel()
        finally:
            self._inner = None
            # A chunk the dying session is being offered stays held for the next one
            # once its stream closes (if it took it at this very moment, both get it).
            self._caller.detach(sink)
        return error

    async def _feed(
        self,
        sink: _LinkSink,
        link: MemoryObjectSendStream[bytes],
        convert: StreamConverter | None,
    ) -> None:
        """Send the caller's audio to one session until it ends, then end the session's."""
        if not await self._caller.attach(sink):
            return  # the session has gone; what it did not take is held for the next
        await self._caller.wait_ended()
        with link:  # closing it ends the session's audio
            tail = convert.flush() if convert is not None else b""
            if tail:
                try:
                    await link.send(tail)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return

    async def _relay(
        self, inner: RealtimeSession, outbound: StreamConverter | None
    ) -> Exception | None:
        """Pass the session's events on; return why it failed (``None``: it ended with the
        call, or the reader of this session has gone)."""
        events = aiter(inner)
        try:
            async for event in events:
                if isinstance(event, ProviderError) and event.fatal:
                    return event.error
                if isinstance(event, AudioChunk):
                    event = self._agent_audio(event, outbound)
                elif isinstance(event, Transcript):
                    self._conversation.add(event)
                if not await self.events.emit(event):
                    return None
        except Exception as exc:
            return exc
        finally:
            await aclose_now(events)
        if self._caller.finished:
            return None
        return SessionClosedError("the session ended before the call did")

    def _agent_audio(self, chunk: AudioChunk, outbound: StreamConverter | None) -> AudioChunk:
        self._responding = not chunk.is_final
        if chunk.is_final:
            # A complete response: the provider works, and may be reconnected to again.
            self._retries_left = self._client.reconnect_same
        if outbound is None:
            return chunk
        return attrs.evolve(chunk, audio=outbound.convert(chunk.audio))

    def _takeover_config(self, provider: Provider) -> ProcessConfig:
        if not provider.capabilities & Capability.HISTORY:
            return self._config  # it could not use the conversation: it starts afresh
        return attrs.evolve(self._config, history=self._conversation.history())

    def _drop_report(self) -> ProviderError | None:
        """A (non-fatal) error for the caller's audio dropped since the last report."""
        dropped = self._caller.dropped_bytes - self._dropped_reported
        if not dropped:
            return None
        self._dropped_reported = self._caller.dropped_bytes
        ms = round(self._caller.format.duration(dropped) * 1000)
        error = OmnivoiceError(
            f"{ms} ms of the caller's audio was dropped while connecting "
            f"(the buffer keeps {self._client.buffer_ms} ms)"
        )
        return ProviderError(error, fatal=False)


class _LinkSink:
    """Sends the caller's audio into one session's ``audio_in``, converted for it."""

    def __init__(self, link: MemoryObjectSendStream[bytes], convert: StreamConverter | None):
        self._link = link
        self._convert = convert

    async def __call__(self, chunk: bytes) -> bool:
        data = self._convert.convert(chunk) if self._convert is not None else chunk
        if not data:
            return True
        try:
            await self._link.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True


@attrs.frozen
class _Outcome:
    """How one attempt with a provider ended."""

    connected: bool
    error: Exception | None
    """Why it did not connect, or why its session failed (``None``: it ended with the call)."""


class _Route:
    """The formats one provider is asked for in a call, and the conversions they need."""

    def __init__(
        self, provider: Provider, input_format: AudioFormat, output_format: AudioFormat, codec: str
    ) -> None:
        self._session_input = input_format
        self._session_output = output_format
        self._codec = codec
        self.input_format = choose_format(provider.accepts, input_format, who=provider.name)
        self.output_format = choose_format(provider.produces, output_format, who=provider.name)
        self.converters()  # fail now if a conversion is not supported

    def converters(self) -> tuple[StreamConverter | None, StreamConverter | None]:
        """Fresh converters for one session: caller to provider, provider to caller."""
        inbound = outbound = None
        if self.input_format != self._session_input:
            inbound = StreamConverter(self._session_input, self.input_format, self._codec)
        if self.output_format != self._session_output:
            outbound = StreamConverter(self.output_format, self._session_output, self._codec)
        return inbound, outbound


def _unique(providers: Iterable[Provider]) -> list[Provider]:
    """Each provider once, by identity (one may serve as primary and fallback)."""
    seen: dict[int, Provider] = {}
    for provider in providers:
        seen.setdefault(id(provider), provider)
    return list(seen.values())


def _omnivoice_error(error: Exception) -> OmnivoiceError:
    leaf = unwrap_error(error)
    if isinstance(leaf, OmnivoiceError):
        return leaf
    wrapped = OmnivoiceError(describe_error(error))
    wrapped.__cause__ = error
    return wrapped


FallbackProvider = Client
"""The fallback :class:`Client`, by a name that says what it is."""
