"""One call's multi-context WebSocket: the I/O shell around :class:`~.protocol.MultiStream`.

Tasks, in the stream's task group: the connection (it opens the socket, receives from it
and routes each context's audio to its response, and opens a new socket when one drops)
and the keep-alive; each response adds one task that feeds its text. Every message goes
out under one lock, so that a new socket's resumption never interleaves with a response's
text.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Literal

import anyio
import anyio.abc
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from omnivoice.concurrency import fast_lock
from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    OmnivoiceError,
    unwrap_error,
)
from omnivoice.net import ConnectError, ConnectionClosed, HandshakeError, WebSocket, connect
from omnivoice.pipeline.contracts import Flush, SpeechAudio, SpeechStream
from omnivoice_elevenlabs_tts import protocol as p

__all__ = ["CallStream", "StreamOptions"]

log = logging.getLogger(__name__)

_ROUTE = 256
"""Messages of one response waiting for its reader."""
_SEND_WITHIN = 5.0
"""Seconds a message may take to go out (a message is never cut by a cancellation)."""


@attrs.frozen
class StreamOptions:
    """How one call's stream connects and behaves."""

    url: str
    headers: Sequence[tuple[str, str]] = attrs.field(repr=False)
    voice_id: str
    model: str
    connect_timeout: float
    keepalive_s: float
    """Quiet on the socket after which a keep-alive goes out."""
    context_close_timeout: float
    """How long a new response waits for old contexts to end before the socket is replaced."""
    reconnect_delays: tuple[float, ...]
    """Delays before each attempt to replace a dropped socket; then the stream gives up
    until the next response asks again."""


Outcome = Literal["dropped", "rotate", "fatal"]


class CallStream(SpeechStream):
    """The call's :class:`~omnivoice.pipeline.contracts.SpeechStream` on one
    ``multi-stream-input`` socket: each :meth:`speak` is one context. Use :meth:`open`."""

    def __init__(self, options: StreamOptions, protocol: p.MultiStream) -> None:
        self._options = options
        self._protocol = protocol
        self._lock = fast_lock()
        self._ws: WebSocket | None = None
        """The socket messages go to (``None`` while one is being opened)."""
        self._routes: dict[str, MemoryObjectSendStream[p.SpeechPiece | p.ContextEnded]] = {}
        self._failure: OmnivoiceError | None = None
        self._fatal = False
        self._failures = 0
        self._wanted = anyio.Event()
        """A response wants a socket again after the stream gave up."""
        self._receiving: anyio.CancelScope | None = None
        self._rotation = False
        self._spoke = False
        """Audio came on the current socket."""
        self._changed = anyio.Event()
        self._last_sent = 0.0
        self.sockets = 0
        """Sockets opened so far."""

    @property
    def stats(self) -> p.Stats:
        """What the vendor sent that could not be used (and audio of responses left early,
        dropped), counted."""
        return self._protocol.stats

    # --- lifecycle --------------------------------------------------------------------------

    @asynccontextmanager
    async def open(self) -> AsyncIterator[CallStream]:
        """Connect (a refused connection is raised as its typed error), serve the call,
        and close the socket on leaving."""
        failure: BaseException | None = None
        try:
            async with anyio.create_task_group() as tasks:
                await tasks.start(self._connections)
                tasks.start_soon(self._keep_alive)
                try:
                    yield self
                except BaseException as exc:
                    failure = exc  # the caller's own: it leaves as itself
                finally:
                    tasks.cancel_scope.cancel()  # the connection says goodbye
        except BaseException as exc:
            failure = failure or unwrap_error(exc)
        if failure is not None:
            raise failure

    async def _connections(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Open the socket, serve it until it drops, open the next; give up after the
        configured attempts (until a response asks again) or at a permanent error."""
        started = False
        attempt = 0
        while True:
            outcome: Outcome
            try:
                async with connect(
                    self._options.url,
                    headers=list(self._options.headers),
                    open_timeout=self._options.connect_timeout,
                ) as ws:
                    try:
                        await self._attach(ws)
                        if not started:
                            started = True
                            task_status.started()
                        self._spoke = False
                        outcome, error = await self._receive(ws)
                        if self._spoke:  # it worked: a later drop gets every attempt again
                            attempt = 0
                        await self._detach(ws, outcome)
                    except BaseException:
                        await _goodbye(ws)  # the call is over (cancelled), or this failed
                        raise
            except HandshakeError as exc:
                outcome, error = "dropped", self._handshake_error(exc)
            except ConnectError as exc:
                outcome = "dropped"
                error = ConnectionFailedError(f"cannot reach ElevenLabs: {exc}")
            if not started:
                assert error is not None
                raise error
            if outcome == "rotate":
                continue
            assert error is not None
            if _permanent(error):
                self._fail(error, fatal=True)
                return
            if attempt < len(self._options.reconnect_delays):
                log.warning("ElevenLabs socket lost (%s); opening another", error)
                await anyio.sleep(self._options.reconnect_delays[attempt])
                attempt += 1
                continue
            log.warning("ElevenLabs is unreachable: %s", error)
            self._fail(error, fatal=False)
            await self._wanted.wait()
            self._wanted = anyio.Event()
            attempt = 0

    async def _attach(self, ws: WebSocket) -> None:
        """A new socket: the responses in progress go on on it."""
        async with self._lock:
            self._ws = ws
            self._rotation = False
            self._last_sent = anyio.current_time()
            self.sockets += 1
            resumed = self._protocol.replaced() if self.sockets > 1 else []
            await self._send_now(resumed)
        if self._failure is not None and not self._fatal:
            self._failure = None
        self._notify()

    async def _detach(self, ws: WebSocket, outcome: Outcome) -> None:
        async with self._lock:
            self._ws = None
            if outcome == "rotate":
                await _goodbye(ws)

    def _fail(self, error: OmnivoiceError, *, fatal: bool) -> None:
        """The stream cannot go on now: the responses in progress end with ``error``."""
        self._failure, self._fatal = error, fatal
        self._failures += 1
        for context_id, route in list(self._routes.items()):
            self._protocol.forget(context_id)
            route.close()  # its reader raises the failure
        self._notify()

    def _handshake_error(self, exc: HandshakeError) -> OmnivoiceError:
        return p.handshake_error(
            exc.status_code,
            exc.body,
            voice_id=self._options.voice_id,
            model=self._options.model,
            retry_after=exc.headers.get("retry-after"),
        )

    # --- receiving ------------------------------------------------------------------------

    async def _receive(self, ws: WebSocket) -> tuple[Outcome, OmnivoiceError | None]:
        """Route the socket's messages until it closes (or is to be replaced)."""
        last_error: p.ErrorMessage | None = None
        stats = self._protocol.stats
        with anyio.CancelScope() as scope:
            self._receiving = scope
            if self._rotation:
                scope.cancel()
            while True:
                try:
                    message = await ws.receive()
                except ConnectionClosed as closed:
                    error = p.close_error(
                        closed.code,
                        closed.reason,
                        last_error,
                        voice_id=self._options.voice_id,
                        model=self._options.model,
                    )
                    return ("fatal" if _permanent(error) else "dropped"), error
                before = (stats.malformed, stats.unknown)
                for event in self._protocol.receive(message):
                    if isinstance(event, p.VendorError):
                        last_error = event.message
                        log.warning("ElevenLabs: %s %s", event.message.error, event.message.message)
                    else:
                        await self._route(event)
                if (stats.malformed, stats.unknown) != before:
                    log.warning("ElevenLabs sent a message it does not document: %.200r", message)
        self._receiving = None
        self._rotation = False
        return "rotate", None

    async def _route(self, event: p.SpeechPiece | p.ContextEnded) -> None:
        self._spoke = self._spoke or isinstance(event, p.SpeechPiece)
        route = self._routes.get(event.context_id)
        if route is not None:
            # A reader that has left is closing its context: what comes for it is dropped.
            with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await route.send(event)
        if isinstance(event, p.ContextEnded):
            self._notify()

    # --- sending --------------------------------------------------------------------------

    async def _send(self, messages: Sequence[str]) -> None:
        async with self._lock:
            await self._send_now(messages)

    async def _send_now(self, messages: Sequence[str]) -> None:
        """Send on the current socket; with none, the protocol's state keeps what the next
        one must be told (a response resumes from its unspoken text)."""
        ws = self._ws
        if ws is None or not messages:
            return
        with anyio.move_on_after(_SEND_WITHIN, shield=True):
            try:
                for message in messages:
                    await ws.send(message)
            except ConnectionClosed:
                return  # the receiving task sees it too, and a new socket resumes
        self._last_sent = anyio.current_time()

    async def _keep_alive(self) -> None:
        """Keep the socket and the contexts alive across the call's silences."""
        interval = self._options.keepalive_s
        while True:
            await anyio.sleep_until(self._last_sent + interval)
            if anyio.current_time() - self._last_sent >= interval and self._ws is not None:
                async with self._lock:
                    await self._send_now(self._protocol.keep_alive())
                if anyio.current_time() - self._last_sent >= interval:
                    self._last_sent = anyio.current_time()  # no socket now: try later

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # --- responses ------------------------------------------------------------------------

    def speak(
        self, text: AsyncIterable[str | Flush]
    ) -> AbstractAsyncContextManager[AsyncIterator[SpeechAudio]]:
        return self._speak(text)

    @asynccontextmanager
    async def _speak(self, text: AsyncIterable[str | Flush]) -> AsyncIterator[_Pieces]:
        context_id = await self._open_context()
        tx, rx = anyio.create_memory_object_stream[p.SpeechPiece | p.ContextEnded](_ROUTE)
        self._routes[context_id] = tx
        pieces = _Pieces(self, rx)
        failure: BaseException | None = None
        try:
            with rx:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._feed, context_id, text)
                    try:
                        yield pieces
                    except BaseException as exc:
                        failure = exc  # the reader's own: it leaves as itself
                    finally:
                        tasks.cancel_scope.cancel()
        except BaseException as exc:
            failure = failure or unwrap_error(exc)
        finally:
            self._routes.pop(context_id, None)
            tx.close()
            # Left early: the context is closed now, and its late audio dropped (a
            # context said to its end is gone already: nothing to send).
            with anyio.move_on_after(_SEND_WITHIN, shield=True):
                await self._send(self._protocol.close(context_id))
        if failure is not None:
            raise failure

    async def _open_context(self) -> str:
        """A new context, once the socket can take one: old contexts' ends are awaited
        (at most ``context_close_timeout``), then the socket is replaced rather than the
        vendor's limit hit. A stream that gave up tries once more to reach the vendor."""
        options = self._options
        now = anyio.current_time()
        close_by = now + options.context_close_timeout
        give_up_at = close_by + options.connect_timeout + sum(options.reconnect_delays)
        asked: int | None = None
        rotated = False
        while True:
            if self._failure is not None:
                if self._fatal or (asked is not None and self._failures > asked):
                    raise self._failure
                if asked is None:
                    asked = self._failures
                    self._wanted.set()
            changed = self._changed
            async with self._lock:
                if self._ws is not None and self._protocol.can_open():
                    context_id, messages = self._protocol.open()
                    await self._send_now(messages)
                    return context_id
            now = anyio.current_time()
            if now >= give_up_at:
                raise self._failure or ConnectionFailedError(
                    "ElevenLabs: no connection to speak on (timed out)"
                )
            wake_at = give_up_at
            if not self._protocol.can_open() and not rotated:
                if now >= close_by:
                    log.info(
                        "ElevenLabs: %d contexts still closing; replacing the socket",
                        self._protocol.open_contexts,
                    )
                    self._rotate()
                    rotated = True
                else:
                    wake_at = close_by
            with anyio.CancelScope(deadline=wake_at):
                await changed.wait()

    def _rotate(self) -> None:
        """Replace the socket (its contexts left early go with it)."""
        self._rotation = True
        if self._receiving is not None:
            self._receiving.cancel()

    async def _feed(self, context_id: str, text: AsyncIterable[str | Flush]) -> None:
        protocol = self._protocol
        async for item in text:
            if isinstance(item, Flush):
                await self._send(protocol.flush(context_id))
            elif item:
                await self._send(protocol.text(context_id, item))
        await self._send(protocol.end(context_id))


class _Pieces:
    """The audio of one response, until its context ends (an async iterator)."""

    def __init__(
        self, stream: CallStream, rx: MemoryObjectReceiveStream[p.SpeechPiece | p.ContextEnded]
    ) -> None:
        self._stream = stream
        self._rx = rx
        self.ended = False

    def __aiter__(self) -> _Pieces:
        return self

    async def __anext__(self) -> SpeechAudio:
        if self.ended:
            raise StopAsyncIteration
        try:
            event = await self._rx.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self.ended = True  # the stream failed: nothing more comes of it
            raise self._stream._failure or ConnectionFailedError(
                "the ElevenLabs stream ended during the response"
            ) from None
        if isinstance(event, p.ContextEnded):
            self.ended = True
            raise StopAsyncIteration
        return SpeechAudio(event.audio, event.words)


async def _goodbye(ws: WebSocket) -> None:
    """Close the vendor's side of a socket politely (``close_socket``), even while being
    cancelled, before the socket itself is closed."""
    with anyio.move_on_after(_SEND_WITHIN, shield=True), suppress(ConnectionClosed):
        await ws.send(p.close_socket_message())


def _permanent(error: OmnivoiceError) -> bool:
    """A failure no new socket mends (a key, a voice or a model the vendor refuses)."""
    return isinstance(error, AuthFailedError | ModelUnavailableError)
