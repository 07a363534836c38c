"""A base for fake vendor servers: a real WebSocket server on 127.0.0.1 that tests script.

A provider's tests reach its vendor only through a fake that speaks the vendor's real
protocol over a real socket. :class:`FakeServer` does the part every such fake shares:
serving, refusing handshakes on request, keeping the connections, recording the client's
protocol violations, and letting a test wait until something has happened::

    class FakeVendor(FakeServer):
        path = "/v1/listen"

        async def handle(self, ws: ServerWebSocket) -> None:
            async for message in ws:
                if not valid(message):
                    self.violation(f"bad message {message!r}")
                self.notify()

    async with FakeVendor() as fake:
        provider = VendorSTT(url=fake.url)
        ...
        await fake.wait_until(lambda: fake.messages >= 3)
        assert fake.violations == []
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Self

import anyio

from omnivoice.net import HandshakeRequest, Server, ServerWebSocket, serve

__all__ = ["FakeServer", "Rejection"]

Rejection = tuple[int, Mapping[str, str], str]
"""An HTTP answer to a handshake instead of the upgrade: status, headers, body."""


class FakeServer:
    """Serves :meth:`handle` for every WebSocket connection while the ``async with`` lasts.

    Subclasses set :attr:`path` (other paths get 404) and implement :meth:`handle`; they
    may override :meth:`check_request` to refuse handshakes as the vendor does (a bad key:
    401). Tests call :meth:`reject` to make the next handshakes fail, read
    :attr:`violations` (``assert fake.violations == []``), and :meth:`wait_until` a
    condition holds (checked after every :meth:`notify`).
    """

    path: str | None = "/"
    """The path clients connect to; others are answered 404 (``None``: any path)."""

    def __init__(self) -> None:
        self.sockets: list[ServerWebSocket] = []
        """Every connection accepted, in order."""
        self.violations: list[str] = []
        self.requests: list[HandshakeRequest] = []
        """Every handshake request, accepted or not."""
        self.rejection: Rejection | None = None
        self.rejected = 0
        self._server: Server | None = None
        self._stack = AsyncExitStack()
        self._changed = anyio.Event()

    # --- for the provider under test ------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``ws://127.0.0.1:PORT`` (once entered)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running: use it in `async with`")
        return self._server.url

    @property
    def url(self) -> str:
        """The endpoint: :attr:`base_url` and :attr:`path`."""
        return self.base_url + (self.path if self.path not in (None, "/") else "")

    # --- for the test ---------------------------------------------------------------------

    def reject(
        self, status: int | None, body: str = "", headers: Mapping[str, str] | None = None
    ) -> None:
        """Answer the next handshakes with this HTTP status (``None``: accept again)."""
        self.rejection = None if status is None else (status, dict(headers or {}), body)

    async def wait_until(self, condition: Callable[[], bool], *, within: float = 10.0) -> None:
        """Until ``condition()`` holds (at most ``within`` seconds), checked whenever the
        server :meth:`notify`-s."""
        with anyio.fail_after(within):
            while not condition():
                changed = self._changed
                await changed.wait()

    # --- for subclasses -------------------------------------------------------------------

    async def handle(self, ws: ServerWebSocket) -> None:
        """Serve one connection (the default just reads until the client closes)."""
        async for _ in ws:
            self.notify()

    def check_request(self, request: HandshakeRequest) -> Rejection | None:
        """Refuse a handshake with an HTTP answer, or ``None`` to accept it."""
        return None

    def violation(self, message: str) -> None:
        """Record something the client did that the real server would refuse."""
        self.violations.append(message)
        self.notify()

    def notify(self) -> None:
        """Something changed: wake :meth:`wait_until`."""
        self._changed.set()
        self._changed = anyio.Event()

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._server = await self._stack.enter_async_context(
            serve(self._serve, process_request=self._process_request)
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    def _process_request(self, request: HandshakeRequest) -> Rejection | None:
        self.requests.append(request)
        self.notify()  # a test may wait for a handshake, refused or not
        if self.rejection is not None:
            self.rejected += 1
            return self.rejection
        if self.path is not None and request.path != self.path:
            return 404, {}, "not found"
        return self.check_request(request)

    async def _serve(self, ws: ServerWebSocket) -> None:
        self.sockets.append(ws)
        self.notify()
        try:
            await self.handle(ws)
        finally:
            self.notify()
