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

import logging
import math
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Literal

import anyio
import attrs
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from omnivoice.audio.converter import DEFAULT_CODEC, StreamConverter
from omnivoice.audio.format import AudioFormat
from omnivoice.errors import ConnectionFailedError, OmnivoiceError, SessionClosedError
from omnivoice.realtime.provider import (
    Provider,
    ProviderError,
    ProviderEvent,
    ProviderSwitched,
    RealtimeSession,
)
from omnivoice.realtime.types import AudioChunk, ConversationItem, ProcessConfig, Transcript

__all__ = ["Client", "FallbackSession"]

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
        self.reconnect_same = reconnect_same
        self.connect_timeout = connect_timeout
        self.history_items = history_items
        self.history_chars = history_chars
        self.buffer_ms = buffer_ms
        self.codec = codec

    @asynccontextmanager
    async def process_audio_stream(
        self,
        audio_in: AsyncIterable[bytes],
        config: ProcessConfig,
        *,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> AsyncIterator[FallbackSession]:
        """Open a session with the first provider that connects.

        Raises :class:`~omnivoice.errors.ConnectionFailedError` naming every provider and
        its error when none connects; any other error of a provider propagates at once.
        """
        session = FallbackSession(self, config, input_format, output_format)
        async with session._serving(audio_in):
            yield session

    async def aclose(self) -> None:
        """Close every wrapped provider; the first error is raised after all were closed."""
        errors: list[Exception] = []
        for provider in _unique(self.providers):
            try:
                await provider.aclose()
            except Exception as exc:
                log.warning("closing %s failed: %s", provider.name, _describe(exc))
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
        self._input_format = input_format
        # Plan every provider's formats now: a conversion no codec supports is found when
        # the call starts, not when an outage strikes.
        self._routes = [
            _Route(provider, input_format, output_format, client.codec)
            for provider in client.providers
        ]
        self._caller = _CallerAudio(input_format.bytes_per_second * client.buffer_ms // 1000)
        self._conversation = _Conversation(
            config.history, client.history_items, client.history_chars
        )
        self._inner: RealtimeSession | None = None
        self._active: int | None = None
        self._retries_left = client.reconnect_same
        self._responding = False
        """The serving session is in the middle of a response (its final chunk is due)."""
        self._dropped_reported = 0
        self._hung_up = False
        self._task_status: TaskStatus[None] | None = None
        self._out_tx: MemoryObjectSendStream[ProviderEvent]
        self._out_rx: MemoryObjectReceiveStream[ProviderEvent]
        self._out_tx, self._out_rx = anyio.create_memory_object_stream[ProviderEvent](_EVENT_BUFFER)

    @property
    def provider(self) -> str | None:
        """The name of the provider serving the call; ``None`` while reconnecting."""
        if self._inner is None or self._active is None:
            return None
        return self._client.providers[self._active].name

    @property
    def dropped_audio_ms(self) -> int:
        """Caller audio dropped because a reconnection outlasted the buffer."""
        return round(self._input_format.duration(self._caller.dropped) * 1000)

    # --- the RealtimeSession contract -----------------------------------------------------

    def __aiter__(self) -> AsyncIterator[ProviderEvent]:
        # Closing this iterator (as the bridge does when it stops) ends the call.
        return self._out_rx

    async def interrupt(self, heard_ms: int) -> None:
        """Pass the interruption to the serving session (while reconnecting there is none:
        the response in progress was already ended)."""
        inner = self._inner
        if inner is None:
            return
        try:
            await inner.interrupt(heard_ms)
        except Exception as exc:
            # A session that cannot take it is dying: its events tell the client so.
            log.warning("interrupting %s failed: %s", self.provider, _describe(exc))

    # --- the call -------------------------------------------------------------------------

    @asynccontextmanager
    async def _serving(self, audio_in: AsyncIterable[bytes]) -> AsyncIterator[None]:
        failure: Exception | None = None
        with self._out_tx, self._out_rx:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._caller.read, audio_in)
                try:
                    await tasks.start(self._run)
                except Exception as exc:
                    # Raised below, outside the task group, so that it is not wrapped in
                    # an exception group.
                    failure = exc
                    tasks.cancel_scope.cancel()
                else:
                    try:
                        yield
                    finally:
                        tasks.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
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
        with self._out_tx:  # when this ends, the session's events end
            while plan:
                index = plan.pop(0)
                provider = providers[index]
                if leaving is not None:
                    switches.append(ProviderSwitched(leaving, provider.name, why))
                config = self._config if self._active is None else self._takeover_config()
                outcome = await self._serve(index, config, switches)
                if self._hung_up:
                    return
                if not outcome.connected:
                    error = outcome.error
                    assert error is not None
                    if self._starting and not isinstance(_leaf(error), ConnectionFailedError):
                        raise error
                    log.warning("%s did not connect: %s", provider.name, _describe(error))
                    failures.append(f"{provider.name}: {_describe(error)}")
                    last_error = error
                    leaving, why = provider.name, f"connection failed: {_describe(error)}"
                    continue
                switches, failures, last_error = [], [], None
                if outcome.error is None:
                    return  # the call ended, and the session with it
                if self._caller.finished:  # nobody is left to talk to
                    await self._emit(ProviderError(_omnivoice_error(outcome.error), fatal=True))
                    return
                log.warning("%s session failed: %s", provider.name, _describe(outcome.error))
                self._conversation.cut()
                lost = f"{provider.name} session failed: {_describe(outcome.error)}"
                leaving, why = provider.name, f"session failed: {_describe(outcome.error)}"
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
            await self._emit(ProviderError(error, fatal=True))

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
                    log.debug("%s closed with %s", provider.name, _describe(exc))
        if connecting.cancelled_caught:  # the deadline passed, maybe as the session came up
            failure = ConnectionFailedError(f"no session within {timeout} s")
            if not connected:
                return _Outcome(connected=False, error=failure)
            error = error or failure
        if self._responding and not self._hung_up:
            # The bridge counts responses by their final chunk: end the one cut short.
            self._responding = False
            tail = outbound.flush() if outbound is not None else b""
            await self._emit(AudioChunk(tail, is_final=True))
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
        try:
            async with anyio.create_task_group() as feeding:
                # The caller's audio first, the news after: the gap stays short.
                self._caller.attach()
                feeding.start_soon(self._feed, link_tx, inbound)
                if self._task_status is not None:
                    self._task_status.started()
                    self._task_status = None
                for switch in switches:
                    log.warning("%s -> %s: %s", switch.previous, switch.current, switch.reason)
                    await self._emit(switch)
                dropped = self._drop_report()
                if dropped is not None:
                    await self._emit(dropped)
                error = await self._relay(inner, outbound)
                # The chunk the feeder is offering stays in the buffer for the next
                # session (if the dying one took it at this very moment, both get it).
                feeding.cancel_scope.cancel()
        finally:
            self._inner = None
            self._caller.detach()
        return error

    async def _feed(
        self, link: MemoryObjectSendStream[bytes], convert: StreamConverter | None
    ) -> None:
        """Send the caller's audio to one session, oldest first, as fast as it takes it."""
        with link:  # closing it ends the session's audio
            while (chunk := await self._caller.next_chunk()) is not None:
                data = convert.convert(chunk) if convert is not None else chunk
                try:
                    if data:
                        await link.send(data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return  # the session has gone; the chunk stays for the next one
                self._caller.delivered()
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
                if not await self._emit(event):
                    return None
        except Exception as exc:
            return exc
        finally:
            await _close_iterator(events)
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
        return AudioChunk(outbound.convert(chunk.audio), chunk.is_final)

    def _takeover_config(self) -> ProcessConfig:
        return attrs.evolve(self._config, history=self._conversation.history())

    def _drop_report(self) -> ProviderError | None:
        """A (non-fatal) error for the caller's audio dropped since the last report."""
        dropped = self._caller.dropped - self._dropped_reported
        if not dropped:
            return None
        self._dropped_reported = self._caller.dropped
        ms = round(self._input_format.duration(dropped) * 1000)
        error = OmnivoiceError(
            f"{ms} ms of the caller's audio was dropped while connecting "
            f"(the buffer keeps {self._client.buffer_ms} ms)"
        )
        return ProviderError(error, fatal=False)

    async def _emit(self, event: ProviderEvent) -> bool:
        """Pass an event on; ``False`` when the reader has gone (the call is over)."""
        if self._hung_up:
            return False
        try:
            await self._out_tx.send(event)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._hung_up = True
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
        self.input_format = _pick(input_format, provider.accepts)
        self.output_format = _pick(output_format, provider.produces)
        self.converters()  # fail now if a conversion is not supported

    def converters(self) -> tuple[StreamConverter | None, StreamConverter | None]:
        """Fresh converters for one session: caller to provider, provider to caller."""
        inbound = outbound = None
        if self.input_format != self._session_input:
            inbound = StreamConverter(self._session_input, self.input_format, self._codec)
        if self.output_format != self._session_output:
            outbound = StreamConverter(self.output_format, self._session_output, self._codec)
        return inbound, outbound


class _CallerAudio:
    """The caller's audio on its way from ``audio_in`` to the session serving the call.

    While a session takes audio, the reader waits for it to take each chunk, so a slow
    session slows the caller's side. While the client reconnects, the reader goes on and
    the newest ``limit`` bytes are kept (whole chunks; older ones are dropped and counted).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._attached = False
        self._changed = anyio.Event()
        self.dropped = 0
        """Bytes dropped so far."""
        self.ended = False
        """``audio_in`` is exhausted."""

    @property
    def finished(self) -> bool:
        """Every chunk of the caller's audio was delivered."""
        return self.ended and not self._chunks

    def attach(self) -> None:
        self._attached = True
        self._notify()

    def detach(self) -> None:
        self._attached = False
        self._notify()

    async def read(self, audio_in: AsyncIterable[bytes]) -> None:
        """Read the caller's audio until it ends (runs for the whole call)."""
        chunks = aiter(audio_in)
        try:
            while True:
                while self._attached and self._chunks:
                    await self._changed.wait()
                try:
                    chunk = await anext(chunks)
                except (StopAsyncIteration, anyio.EndOfStream, anyio.ClosedResourceError):
                    return
                if chunk:
                    self._append(chunk)
        finally:
            self.ended = True
            self._notify()

    async def next_chunk(self) -> bytes | None:
        """The oldest chunk not yet delivered, left in place until :meth:`delivered`;
        ``None`` once the caller's audio has ended and all of it was delivered."""
        while not self._chunks:
            if self.ended:
                return None
            await self._changed.wait()
        return self._chunks[0]

    def delivered(self) -> None:
        """The chunk :meth:`next_chunk` gave was taken by the session."""
        self._size -= len(self._chunks.popleft())
        self._notify()

    def _append(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        while self._size > self._limit and len(self._chunks) > 1:
            oldest = self._chunks.popleft()
            self._size -= len(oldest)
            self.dropped += len(oldest)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


class _Conversation:
    """The call's conversation so far, from final transcripts, for a session taking over."""

    def __init__(self, history: Iterable[ConversationItem], max_items: int, max_chars: int):
        self._items: deque[ConversationItem] = deque(history, maxlen=max_items)
        self._max_chars = max_chars
        self._agent_partial = ""
        """Agent text since its last final transcript (what was said of a response cut short)."""

    def add(self, transcript: Transcript) -> None:
        if transcript.is_input:
            if transcript.is_final:
                self._append("user", transcript.text)
        elif transcript.is_final:
            self._agent_partial = ""
            self._append("agent", transcript.text)
        else:  # bounded: a provider might never send a final transcript
            self._agent_partial = (self._agent_partial + transcript.text)[-self._max_chars :]

    def cut(self) -> None:
        """The session was lost: keep what it said of its last response."""
        self._append("agent", self._agent_partial)
        self._agent_partial = ""

    def history(self) -> tuple[ConversationItem, ...]:
        """The newest items within the character budget, oldest first."""
        chosen: list[ConversationItem] = []
        used = 0
        for item in reversed(self._items):
            if used + len(item.text) > self._max_chars:
                if not chosen and self._max_chars:  # the last words matter most
                    chosen.append(attrs.evolve(item, text=item.text[-self._max_chars :]))
                break
            chosen.append(item)
            used += len(item.text)
        return tuple(reversed(chosen))

    def _append(self, role: Literal["user", "agent"], text: str) -> None:
        text = text.strip()
        if text:
            self._items.append(ConversationItem(role, text))


def _pick(wanted: AudioFormat, offered: tuple[AudioFormat, ...]) -> AudioFormat:
    """The session's format when the provider lists it (or lists nothing), else its first."""
    return wanted if wanted in offered or not offered else offered[0]


def _unique(providers: Iterable[Provider]) -> list[Provider]:
    """Each provider once, by identity (one may serve as primary and fallback)."""
    seen: dict[int, Provider] = {}
    for provider in providers:
        seen.setdefault(id(provider), provider)
    return list(seen.values())


def _leaf(error: BaseException) -> BaseException:
    """The one exception inside nested single-exception groups (a provider's task group)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _describe(error: BaseException) -> str:
    """``Class: message`` of an error."""
    error = _leaf(error)
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _omnivoice_error(error: Exception) -> OmnivoiceError:
    leaf = _leaf(error)
    if isinstance(leaf, OmnivoiceError):
        return leaf
    wrapped = OmnivoiceError(_describe(error))
    wrapped.__cause__ = error
    return wrapped


async def _close_iterator(events: AsyncIterator[ProviderEvent]) -> None:
    """Close a session's event iterator now (an async generator's cleanup runs here)."""
    close = getattr(events, "aclose", None)
    if close is None:
        return
    with anyio.CancelScope(shield=True):
        try:
            await close()
        except Exception as exc:
            log.debug("closing a session's events failed: %s", _describe(exc))
