"""WebSocket client and server on anyio, over the ``websockets`` library's Sans-I/O layer.

``websockets`` parses and serialises the protocol (handshake, frames, masking, the closing
handshake, size limits); this module only moves bytes between it and an anyio byte stream.
It runs on every anyio backend (asyncio and trio).

A client reads on demand, in the manner of httpcore over h11: the network is read only while
some task waits for something from it (:meth:`WebSocket.receive`, ``async for``,
:meth:`WebSocket.ping`, :meth:`WebSocket.aclose`, the handshake). No task runs behind the
caller's back, so nothing outlives ``async with connect(...)``; in exchange, control frames
(pings, the peer's close) are answered while a task is receiving, which every long-lived
client does anyway. A server, which owns a task group, also keeps one reading task per
connection, so that fakes answer pings and closes whatever their handler is doing.

See ``docs/websocket.md`` for the contract, the error mapping and how test fakes use
:func:`serve`.
"""

from __future__ import annotations

import inspect
import logging
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.tls import TLSListener, TLSStream
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeaderValue, InvalidStatus, InvalidURI, ProtocolError
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event, Protocol, State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from omnivoice.concurrency import fast_lock
from omnivoice.errors import OmnivoiceError

__all__ = [
    "ConnectError",
    "ConnectionClosed",
    "HandshakeError",
    "HandshakeRequest",
    "Server",
    "ServerWebSocket",
    "WebSocket",
    "WebSocketError",
    "connect",
    "serve",
]

_logger = logging.getLogger(__name__)

_DEFAULT_MAX_MESSAGE_SIZE = 16 * 2**20
_DEFAULT_OPEN_TIMEOUT = 10.0
_DEFAULT_CLOSE_TIMEOUT = 5.0
# Large enough that a burst of 20 ms audio frames is parsed in one pass.
_READ_SIZE = 65536
# A rejection body is for a human or a log line, not a payload.
_MAX_ERROR_BODY = 4096
# Close codes that end ``async for`` quietly: a normal closure, an endpoint going away,
# and a close frame without a code.
_NORMAL_CLOSE_CODES = frozenset({1000, 1001, 1005})

_BINARY_TYPES = (bytes, bytearray, memoryview)

_HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]
# What process_request returns to refuse a handshake: (status, headers, body).
_Rejection = tuple[int, _HeadersLike, str | bytes]
_ProcessRequest = Callable[["HandshakeRequest"], Awaitable[_Rejection | None] | _Rejection | None]


# --- errors ---------------------------------------------------------------------------


class WebSocketError(OmnivoiceError):
    """Base class of the errors this module raises."""


class ConnectError(WebSocketError):
    """The connection could not be opened, and the server gave no HTTP status to say why.

    Refused connection, DNS failure, TLS failure, ``open_timeout`` elapsed, or an answer
    that is not a valid WebSocket handshake. The underlying error is chained
    (``__cause__``).
    """


class HandshakeError(WebSocketError):
    """The server answered the opening handshake with an HTTP status other than 101.

    ``status_code`` is the exact status, ``body`` the response body decoded as UTF-8
    (invalid bytes replaced, truncated to 4096 characters) and ``headers`` the response
    headers (a case-insensitive :class:`websockets.datastructures.Headers`).
    """

    def __init__(self, status_code: int, body: str = "", headers: Headers | None = None) -> None:
        message = f"WebSocket handshake rejected with HTTP {status_code}"
        if body:
            summary = " ".join(body.split())
            message += f": {summary[:200]}"
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.headers = headers if headers is not None else Headers()


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code`` and ``reason`` say how.

    They are those of the peer's close frame; if none arrived, those of the close frame
    this side sent (for example 1009 after an oversized message); 1006 with an empty
    reason when neither side sent one (the TCP connection dropped).
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket connection closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


# --- the connection -------------------------------------------------------------------


class WebSocket:
    """An open WebSocket connection; :func:`connect` yields one for a client.

    Messages are whole: :meth:`receive` reassembles fragments and returns :class:`str`
    for text, :class:`bytes` for binary. Several tasks may :meth:`send` at once; frames
    never interleave. Receive from one task at a time (several receivers are safe, but
    which one gets which message is arbitrary). A client handles control frames while a
    task is receiving, pinging or closing: pings are answered, the peer's close frame is
    echoed and its code reported by :class:`ConnectionClosed`.

    Cancelling :meth:`receive` loses nothing. A cancellation that lands while a frame is
    being written (in :meth:`send`, or in :meth:`receive` answering a ping) leaves part
    of a frame on the wire, so the connection is then cut (the peer sees 1006).
    """

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        protocol: Protocol,
        *,
        close_timeout: float = _DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        # Built by connect() and serve(), not by applications.
        self._stream = stream
        self._protocol = protocol
        self._close_timeout = close_timeout
        self._close_deadline: float | None = None
        self._stream_closed = False
        self._can_half_close = not isinstance(stream, TLSStream)
        # Writes are serialised so that frames from concurrent senders never interleave,
        # and the protocol's output is drained under the same lock so it goes out in order.
        self._send_lock = fast_lock()
        # Whoever holds the read lock reads the network on behalf of every waiter.
        self._read_lock = fast_lock()
        self._eof = False
        """The network stream has ended (the protocol has been told so)."""
        self._messages: deque[str | bytes] = deque()
        self._fragments: list[bytes | bytearray | memoryview] = []
        self._fragments_are_text = False
        # Ping payload -> time sent, oldest first.
        self._pings: dict[bytes, float] = {}
        self._ping_count = 0
        self._handshake_request: Request | None = None
        self._handshake_response: Response | None = None

    # -- public API --

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol agreed in the handshake, or ``None``."""
        return self._protocol.subprotocol

    @property
    def response_headers(self) -> Headers:
        """Headers of the handshake's 101 response (received by a client, sent by a server)."""
        response = self._handshake_response
        return response.headers if response is not None else Headers()

    @property
    def close_code(self) -> int | None:
        """How the connection closed (see :class:`ConnectionClosed`); ``None`` while open."""
        if self._protocol.state is not State.CLOSED:
            return None
        return self._close_status()[0]

    @property
    def close_reason(self) -> str | None:
        """The reason that goes with :attr:`close_code`; ``None`` while open."""
        if self._protocol.state is not State.CLOSED:
            return None
        return self._close_status()[1]

    async def send(self, message: str | bytes) -> None:
        """Send a text frame for :class:`str`, a binary frame for :class:`bytes`.

        Returns once the frame is handed to the network. Raises :class:`ConnectionClosed`
        if the connection is closing or closed.
        """
        protocol = self._protocol
        if protocol.state is not State.OPEN:
            raise self._closed_error()
        if isinstance(message, str):
            protocol.send_text(message.encode())
        elif isinstance(message, _BINARY_TYPES):
            protocol.send_binary(message)
        else:
            raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")
        if not await self._flush():
            raise self._closed_error()

    async def receive(self) -> str | bytes:
        """The next whole message: :class:`str` for text, :class:`bytes` for binary.

        Raises :class:`ConnectionClosed` once the connection is closed and every message
        received before the close has been returned.
        """
        messages = self._messages
        if messages:
            # Messages parsed from one read are queued; still give other tasks a turn.
            await anyio.lowlevel.checkpoint()
        else:
            await self._pump_until(self._has_message)
            if not messages:
                raise self._closed_error()
        return messages.popleft()

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        """Iteration ends quietly on a 1000, 1001 or 1005 close, raises otherwise."""
        try:
            return await self.receive()
        except ConnectionClosed as exc:
            if exc.code in _NORMAL_CLOSE_CODES:
                raise StopAsyncIteration from None
            raise

    async def ping(self) -> float:
        """Send a ping, wait for its pong and return the round trip in seconds.

        Raises :class:`ConnectionClosed` if the connection closes first.
        """
        protocol = self._protocol
        if protocol.state is not State.OPEN:
            raise self._closed_error()
        self._ping_count += 1
        payload = self._ping_count.to_bytes(8, "big")
        sent_at = anyio.current_time()
        self._pings[payload] = sent_at
        protocol.send_ping(payload)
        if not await self._flush():
            raise self._closed_error()
        await self._pump_until(lambda: payload not in self._pings)
        if payload in self._pings:
            del self._pings[payload]
            raise self._closed_error()
        return anyio.current_time() - sent_at

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection: send a close frame, wait for the peer's, then close TCP.

        Waits at most the close timeout (5 s unless configured) for the peer before
        cutting the connection. Idempotent. Messages that arrive meanwhile are still
        returned by :meth:`receive` before it raises :class:`ConnectionClosed`.
        """
        if self._protocol.state is State.OPEN:
            try:
                self._protocol.send_close(code, reason)
            except ProtocolError as exc:
                raise ValueError(f"cannot close with code {code}: {exc}") from exc
        self._start_close_timer()
        assert self._close_deadline is not None
        try:
            # Bounded as a whole: even the write may wait on a peer that stopped reading.
            with anyio.CancelScope(deadline=self._close_deadline):
                await self._flush()
                await self._pump_until(self._is_closed)
        finally:
            await self._close_stream()

    async def abort(self) -> None:
        """Cut the TCP connection without a closing handshake; the peer sees 1006."""
        await self._close_stream()

    # -- the event pump, shared by both sides and the handshakes --

    def _is_closed(self) -> bool:
        return self._eof or self._protocol.state is State.CLOSED

    def _has_message(self) -> bool:
        return bool(self._messages)

    async def _pump_until(self, done: Callable[[], bool]) -> None:
        """Read the network until ``done()`` or the connection is closed.

        Several tasks may wait at once: one reads while holding the read lock, the others
        queue on the lock (which is fair) and recheck their condition when they get it.
        """
        while not done() and not self._is_closed():
            async with self._read_lock:
                if not done() and not self._is_closed():
                    await self._read_once()

    async def _read_once(self) -> None:
        """Read one chunk, feed it to the protocol, act on its events and write its output."""
        protocol = self._protocol
        data = await self._receive_chunk()
        if self._eof:
            return  # the stream was closed while this read waited (by a failed write)
        if data is None:
            # The stream is over: nothing may be fed to the protocol after this.
            self._eof = True
            protocol.receive_eof()
        else:
            protocol.receive_data(data)
        self._handle_events(protocol.events_received())
        # Pongs, the echo of a close frame, the end of the stream: the protocol's replies.
        await self._flush()
        if protocol.state is State.CLOSED:
            await self._close_stream()
        elif protocol.close_expected():
            self._start_close_timer()

    async def _receive_chunk(self) -> bytes | None:
        """The next bytes from the network; ``None`` at its end or when the close timer ran out."""
        try:
            if self._close_deadline is None:
                return await self._stream.receive(_READ_SIZE)
            with anyio.CancelScope(deadline=self._close_deadline):
                return await self._stream.receive(_READ_SIZE)
            return None
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return None

    def _handle_events(self, events: list[Event]) -> None:
        protocol = self._protocol
        for event in events:
            if not isinstance(event, Frame):
                if isinstance(event, Response):
                    self._handshake_response = event
                else:
                    self._handshake_request = event
                continue
            opcode = event.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if event.fin:
                    data: bytes | bytearray | memoryview = event.data
                else:
                    # The protocol guarantees continuation frames follow until FIN.
                    self._fragments.append(event.data)
                    self._fragments_are_text = opcode is Opcode.TEXT
                    continue
                is_text = opcode is Opcode.TEXT
            elif opcode is Opcode.CONT:
                self._fragments.append(event.data)
                if not event.fin:
                    continue
                data = b"".join(self._fragments)
                self._fragments.clear()
                is_text = self._fragments_are_text
            elif opcode is Opcode.PONG:
                self._acknowledge_pings(bytes(event.data))
                continue
            else:
                # The protocol answers pings and tracks close frames itself.
                continue
            if is_text:
                try:
                    self._messages.append(str(data, "utf-8"))
                except UnicodeDecodeError as exc:
                    protocol.fail(CloseCode.INVALID_DATA, f"invalid UTF-8 at byte {exc.start}")
                    return
            else:
                self._messages.append(bytes(data))

    def _acknowledge_pings(self, payload: bytes) -> None:
        if payload not in self._pings:
            return  # an unsolicited pong
        # A pong may answer only the latest of several pings: it acknowledges them all.
        for pending in list(self._pings):
            del self._pings[pending]
            if pending == payload:
                break

    async def _flush(self) -> bool:
        """Write the protocol's pending output, in order; ``False`` if the stream is gone."""
        close_after = False
        async with self._send_lock:
            chunks = self._protocol.data_to_send()
            if self._stream_closed:
                return False
            try:
                for chunk in chunks:
                    if chunk:
                        await self._stream.send(chunk)
                    elif self._can_half_close:
                        await self._stream.send_eof()
                    else:
                        # TLS cannot half-close: closing is the only way to say "done".
                        close_after = True
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                close_after = True  # the peer is gone
            except BaseException:
                # Interrupted (usually cancelled) while writing: the stream may now hold
                # part of a frame, after which nothing else can be written on it.
                await self._close_stream()
                raise
        if close_after:
            await self._close_stream()
            return False
        return True

    async def _close_stream(self) -> None:
        """Close the byte stream (idempotent); the connection is CLOSED from then on."""
        # An end of stream moves the protocol to CLOSED, keeping whatever close frames
        # were exchanged. It comes first so that tasks running during the await below
        # already see the connection as closed.
        self._eof = True
        self._protocol.receive_eof()
        if not self._stream_closed:
            self._stream_closed = True
            try:
                await anyio.aclose_forcefully(self._stream)
            except (OSError, ssl.SSLError, anyio.BrokenResourceError) as exc:
                # A TLS stream broken mid-record cannot say goodbye (anyio before 4.16
                # still tries): it is being dropped either way.
                _logger.debug("closing the byte stream failed: %r", exc)

    def _start_close_timer(self) -> None:
        if self._close_deadline is None:
            self._close_deadline = anyio.current_time() + self._close_timeout

    def _close_status(self) -> tuple[int, str]:
        protocol = self._protocol
        close = protocol.close_rcvd or protocol.close_sent
        if close is None:
            return CloseCode.ABNORMAL_CLOSURE, ""
        return int(close.code), close.reason

    def _closed_error(self) -> ConnectionClosed:
        code, reason = self._close_status()
        error = ConnectionClosed(code, reason)
        # A protocol error or an oversized message, for instance.
        error.__cause__ = self._protocol.parser_exc
        return error

    async def _close_after(self, exc: BaseException | None) -> None:
        """Close on leaving the connection's context, as befits how the context ended."""
        if exc is None:
            await self.aclose()
        elif isinstance(exc, Exception):
            await self.aclose(CloseCode.INTERNAL_ERROR)
        else:
            # Cancelled: no waiting for the peer, but tell it, if that can be done at once.
            with anyio.CancelScope(shield=True) as scope:
                scope.deadline = anyio.current_time() + self._close_timeout
                try:
                    if self._protocol.state is State.OPEN:
                        self._protocol.send_close(CloseCode.GOING_AWAY)
                        await self._flush()
                finally:
                    await self._close_stream()


@dataclass(frozen=True, slots=True)
class HandshakeRequest:
    """The client's opening handshake, as a server sees it."""

    path: str
    """The request path, without the query string (``/v1/realtime``)."""
    query: str
    """The raw query string, without ``?`` (``model=x&lang=en``); empty if none."""
    headers: Headers
    """The request headers, case-insensitive (``headers["authorization"]``)."""

    @property
    def params(self) -> dict[str, str]:
        """The query string decoded into a dict; the last value wins for repeated names."""
        return dict(parse_qsl(self.query, keep_blank_values=True))


class ServerWebSocket(WebSocket):
    """The server's side of a connection, given to the handler of :func:`serve`.

    The same API as :class:`WebSocket`, plus :attr:`request`. :meth:`abort` cuts the TCP
    connection without a close frame, so the client sees 1006. The server reads the
    connection all the time: pings and closes are answered even while the handler does
    something else, and messages wait in memory until it calls :meth:`receive`.
    """

    _request: HandshakeRequest | None = None

    @property
    def request(self) -> HandshakeRequest:
        """The client's handshake request: path, query string and headers."""
        if self._request is None:
            request = self._handshake_request
            if request is None:  # pragma: no cover - handlers only run after the handshake
                raise RuntimeError("the handshake has not been received")
            path, _, query = request.path.partition("?")
            self._request = HandshakeRequest(path=path, query=query, headers=request.headers)
        return self._request

    async def _accept(self, process_request: _ProcessRequest | None) -> bool:
        """Run the opening handshake; ``True`` if the connection is open."""
        protocol = self._protocol
        assert isinstance(protocol, ServerProtocol)
        with anyio.move_on_after(_DEFAULT_OPEN_TIMEOUT):
            await self._pump_until(lambda: self._handshake_request is not None)
        request = self._handshake_request
        if request is None:
            return False  # no valid request (the protocol answered any malformed one)
        response: Response | None = None
        if process_request is not None:
            try:
                result = process_request(self.request)
                if inspect.isawaitable(result):
                    result = await result
                if result is not None:
                    response = _rejection_response(*result)
            except Exception:
                _logger.exception("process_request failed for %s", request.path)
                response = protocol.reject(
                    HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error\n"
                )
        if response is None:
            response = protocol.accept(request)
        protocol.send_response(response)
        if response.status_code == 101:
            self._handshake_response = response
        return await self._flush() and response.status_code == 101


def _never() -> bool:
    return False


def _rejection_response(status: int, headers: _HeadersLike, body: str | bytes) -> Response:
    if not 200 <= status <= 599:
        raise ValueError(f"a handshake rejection needs an HTTP status 200-599, not {status}")
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    payload = body.encode() if isinstance(body, str) else bytes(body)
    response_headers = Headers(headers)
    if payload and "Content-Type" not in response_headers:
        response_headers["Content-Type"] = (
            "text/plain; charset=utf-8" if isinstance(body, str) else "application/octet-stream"
        )
    for name in ("Content-Length", "Connection"):
        if name in response_headers:
            del response_headers[name]
    response_headers["Content-Length"] = str(len(payload))
    response_headers["Connection"] = "close"
    return Response(status, reason, response_headers, payload)


# --- client ---------------------------------------------------------------------------


@asynccontextmanager
async def connect(
    url: str,
    *,
    headers: _HeadersLike = (),
    subprotocols: Sequence[str] = (),
    open_timeout: float = _DEFAULT_OPEN_TIMEOUT,
    max_message_size: int | None = _DEFAULT_MAX_MESSAGE_SIZE,
    ssl_context: ssl.SSLContext | None = None,
    close_timeout: float = _DEFAULT_CLOSE_TIMEOUT,
) -> AsyncIterator[WebSocket]:
    """Open a client connection to a ``ws://`` or ``wss://`` URL.

    ``async with connect(url) as ws:`` yields an open :class:`WebSocket`; leaving the block
    closes it with 1000 (1011 if the block raised, 1001 without waiting if cancelled).

    Args:
        url: ``ws://`` or ``wss://`` URL; its path and query string are sent as given.
        headers: Extra request headers (``Authorization``, ``OpenAI-Beta``, ...).
        subprotocols: Subprotocols to offer, in order of preference.
        open_timeout: Seconds allowed for TCP, TLS and the handshake together.
        max_message_size: Largest message accepted, in bytes (``None``: no limit). A
            larger one closes the connection with 1009.
        ssl_context: TLS settings for ``wss://``; default: the system's trusted CAs with
            host name checking (:func:`ssl.create_default_context`).
        close_timeout: Seconds to wait for the peer during the closing handshake.

    Raises:
        HandshakeError: The server answered with an HTTP status other than 101.
        ConnectError: Anything else that prevents opening the connection.
        ValueError: ``url`` is not a WebSocket URL, or a header value is invalid.
    """
    ws = await _open(
        url,
        headers=headers,
        subprotocols=subprotocols,
        open_timeout=open_timeout,
        max_message_size=max_message_size,
        ssl_context=ssl_context,
        close_timeout=close_timeout,
    )
    try:
        yield ws
    except BaseException as exc:
        await ws._close_after(exc)
        raise
    await ws._close_after(None)


async def _open(
    url: str,
    *,
    headers: _HeadersLike,
    subprotocols: Sequence[str],
    open_timeout: float,
    max_message_size: int | None,
    ssl_context: ssl.SSLContext | None,
    close_timeout: float,
) -> WebSocket:
    try:
        uri = parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(str(exc)) from None
    protocol = ClientProtocol(
        uri,
        subprotocols=[Subprotocol(name) for name in subprotocols] or None,
        max_size=max_message_size,
    )
    request = protocol.connect()
    try:
        request.headers.update(Headers(headers))
    except InvalidHeaderValue as exc:
        raise ValueError(f"invalid request header: {exc}") from None

    try:
        with anyio.fail_after(open_timeout):
            if uri.secure:
                stream: anyio.abc.ByteStream = await anyio.connect_tcp(
                    uri.host, uri.port, ssl_context=ssl_context, tls=True, tls_hostname=uri.host
                )
            else:
                stream = await anyio.connect_tcp(uri.host, uri.port)
            ws = WebSocket(stream, protocol, close_timeout=close_timeout)
            try:
                protocol.send_request(request)
                await ws._flush()
                await ws._pump_until(lambda: ws._handshake_response is not None)
            except BaseException:
                await ws._close_stream()
                raise
    except TimeoutError as exc:
        raise ConnectError(f"timed out after {open_timeout} s opening {url}") from exc
    except (OSError, anyio.BrokenResourceError) as exc:
        raise ConnectError(f"cannot connect to {url}: {exc or type(exc).__name__}") from exc

    response = ws._handshake_response
    failure = protocol.handshake_exc
    if failure is None and response is not None:
        # Open, or already closed by frames that came with the response: either way the
        # handshake succeeded and receive() reports what happened next.
        return ws
    await ws._close_stream()
    if isinstance(failure, InvalidStatus):
        rejected = failure.response
        body = bytes(rejected.body).decode("utf-8", "replace")[:_MAX_ERROR_BODY]
        raise HandshakeError(rejected.status_code, body, rejected.headers)
    if failure is None:  # the peer closed before answering
        raise ConnectError(f"{url} closed the connection during the handshake")
    detail = f"HTTP {response.status_code}: " if response is not None else ""
    raise ConnectError(f"invalid WebSocket handshake from {url}: {detail}{failure}") from failure


# --- server ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Server:
    """A running :func:`serve`: where clients reach it."""

    host: str
    port: int
    secure: bool = False

    @property
    def url(self) -> str:
        """``ws://host:port`` (``wss://`` with TLS), for :func:`connect`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.secure else 'ws'}://{host}:{self.port}"


@asynccontextmanager
async def serve(
    handler: Callable[[ServerWebSocket], Awaitable[None]],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    process_request: _ProcessRequest | None = None,
    subprotocols: Sequence[str] = (),
    max_message_size: int | None = _DEFAULT_MAX_MESSAGE_SIZE,
    ssl_context: ssl.SSLContext | None = None,
    close_timeout: float = _DEFAULT_CLOSE_TIMEOUT,
) -> AsyncIterator[Server]:
    """Serve WebSocket connections on ``host:port`` while the context is open.

    ``await handler(ws)`` runs once per connection, in the server's task group. When it
    returns, the connection is closed with 1000; if it raises, the error is logged and
    the connection closed with 1011, and the server and other connections carry on.
    Leaving the context stops listening and cancels the handlers (their clients get 1001).

    Args:
        handler: Async function called with each open :class:`ServerWebSocket`.
        host: Address to listen on.
        port: Port to listen on; 0 picks a free one (see :attr:`Server.port`).
        process_request: Called with each :class:`HandshakeRequest` before accepting it
            (plain or async); return ``None`` to accept, or ``(status, headers, body)``
            to answer with that HTTP response instead (for example
            ``(401, {"Content-Type": "application/json"}, '{"error": "bad key"}')``).
        subprotocols: Subprotocols supported, in order of preference; a client offering
            none of them is rejected with 400.
        max_message_size: Largest message accepted, in bytes (``None``: no limit).
        ssl_context: Serve ``wss://`` with this server-side TLS context.
        close_timeout: Seconds to wait for the peer during the closing handshake.
    """
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    server = Server(
        host,
        listener.extra(anyio.abc.SocketAttribute.local_port),
        secure=ssl_context is not None,
    )

    async def serve_connection(stream: anyio.abc.ByteStream) -> None:
        protocol = ServerProtocol(
            subprotocols=[Subprotocol(name) for name in subprotocols] or None,
            max_size=max_message_size,
        )
        ws = ServerWebSocket(stream, protocol, close_timeout=close_timeout)
        try:
            if not await ws._accept(process_request):
                return
            async with anyio.create_task_group() as connection_group:
                # Unlike a client, the server reads all the time, so that pings and
                # closes are answered, and the client never blocks on a full TCP
                # window, whatever the handler is busy with; this task ends with the
                # connection.
                connection_group.start_soon(ws._pump_until, _never)
                try:
                    await handler(ws)
                except Exception as exc:
                    _logger.exception("WebSocket handler failed for %s", ws.request.path)
                    await ws._close_after(exc)
                except BaseException as exc:
                    await ws._close_after(exc)
                    raise
                else:
                    await ws._close_after(None)
        except Exception:
            # One connection's trouble never reaches the server's task group.
            _logger.exception("WebSocket connection failed")
        finally:
            await ws._close_stream()

    serving: anyio.abc.Listener[anyio.abc.SocketStream] | TLSListener = listener
    if ssl_context is not None:
        serving = TLSListener(listener, ssl_context, standard_compatible=False)
    body_error: BaseException | None = None
    async with serving, anyio.create_task_group() as task_group:
        task_group.start_soon(serving.serve, serve_connection, task_group)
        try:
            yield server
        except BaseException as exc:
            # Re-raised below, outside the task group, so that it is not wrapped
            # in an exception group.
            body_error = exc
        finally:
            task_group.cancel_scope.cancel()
    if body_error is not None:
        raise body_error
