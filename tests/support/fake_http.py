"""A tiny real HTTP/1.1 server on anyio (h11), standing in for a carrier's REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import attrs
import h11
from anyio.abc import SocketStream


@attrs.frozen
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Request], tuple[int, bytes]]


@attrs.define
class FakeHTTPServer:
    url: str
    requests: list[Request] = attrs.field(factory=list)


@asynccontextmanager
async def fake_http_server(handler: Handler) -> AsyncIterator[FakeHTTPServer]:
    """Serve ``handler(request) -> (status, body)`` on 127.0.0.1; record every request."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    server = FakeHTTPServer(f"http://127.0.0.1:{port}")

    async def serve(stream: SocketStream) -> None:
        async with stream:
            connection = h11.Connection(h11.SERVER)
            request: h11.Request | None = None
            body = b""
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive()
                    connection.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage) and request is not None:
                    recorded = Request(
                        request.method.decode(),
                        request.target.decode(),
                        {k.decode().lower(): v.decode() for k, v in request.headers},
                        body,
                    )
                    server.requests.append(recorded)
                    status, payload = handler(recorded)
                    headers = [("content-length", str(len(payload))), ("connection", "close")]
                    await stream.send(
                        connection.send(h11.Response(status_code=status, headers=headers))
                    )
                    await stream.send(connection.send(h11.Data(data=payload)))
                    await stream.send(connection.send(h11.EndOfMessage()))
                    return
                else:
                    return

    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, serve)
        yield server
        tasks.cancel_scope.cancel()
