"""The WebSocket server (`omnivoice.net.serve`) over real localhost sockets.

Besides `omnivoice.net.connect`, clients here are a raw one built on websockets' Sans-I/O
`ClientProtocol` (to send fragments and read frames as they are) and, on asyncio,
websockets' own asyncio client.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Event
from websockets.uri import parse_uri

from omnivoice.net import (
    ConnectionClosed,
    HandshakeError,
    HandshakeRequest,
    Server,
    ServerWebSocket,
    connect,
    serve,
)

pytestmark = pytest.mark.anyio

# Generous: only a hung test ever reaches it.
TIMEOUT = 10


async def echo(ws: ServerWebSocket) -> None:
    async for message in ws:
        await ws.send(message)


class RawClient:
    """A client that speaks through websockets' Sans-I/O protocol, frame by frame."""

    def __init__(self, stream: anyio.abc.SocketStream, protocol: ClientProtocol) -> None:
        self.stream = stream
        self.protocol = protocol

    async def exchange(self) -> list[Event]:
        """Write what the protocol has to send, then read until it produces events."""
        for chunk in self.protocol.data_to_send():
            if chunk:
                await self.stream.send(chunk)
        while not (events := self.protocol.events_received()):
            try:
                self.protocol.receive_data(await self.stream.receive())
            except anyio.EndOfStream:
                self.protocol.receive_eof()
                return self.protocol.events_received()
        return events


@contextlib.asynccontextmanager
async def raw_client(url: str) -> AsyncIterator[RawClient]:
    uri = parse_uri(url)
    async with await anyio.connect_tcp(uri.host, uri.port) as stream:
        client = RawClient(stream, ClientProtocol(uri))
        client.protocol.send_request(client.protocol.connect())
        (response,) = await client.exchange()
        assert isinstance(response, Response)
        assert response.status_code == 101
        yield client


# --- the server -----------------------------------------------------------------------


async def test_server_reports_where_it_listens() -> None:
    async with serve(echo) as server:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        assert server.url == f"ws://127.0.0.1:{server.port}"
    assert Server("::1", 8765).url == "ws://[::1]:8765"
    assert Server("localhost", 443, secure=True).url == "wss://localhost:443"


async def test_request_path_query_and_headers() -> None:
    async def handler(ws: ServerWebSocket) -> None:
        request = ws.request
        await ws.send(
            json.dumps(
                {
                    "path": request.path,
                    "query": request.query,
                    "params": request.params,
                    "auth": request.headers.get("authorization"),
                    "repeated": request.headers.get_all("x-repeated"),
                }
            )
        )

    headers = [("Authorization", "Bearer k"), ("X-Repeated", "1"), ("X-Repeated", "2")]
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(handler) as server,
            connect(f"{server.url}/media?callSid=CA1&a=&a=2", headers=headers) as ws,
        ):
            message = await ws.receive()
    assert isinstance(message, str)
    assert json.loads(message) == {
        "path": "/media",
        "query": "callSid=CA1&a=&a=2",
        "params": {"callSid": "CA1", "a": "2"},
        "auth": "Bearer k",
        "repeated": ["1", "2"],
    }


async def test_process_request_inspects_and_rejects() -> None:
    seen: list[HandshakeRequest] = []

    async def check_key(request: HandshakeRequest) -> tuple[int, dict[str, str], str] | None:
        seen.append(request)
        if request.headers.get("xi-api-key") != "good":
            body = json.dumps({"detail": {"status": "invalid_api_key"}})
            return 401, {"Content-Type": "application/json"}, body
        return None

    with anyio.fail_after(TIMEOUT):
        async with serve(echo, process_request=check_key) as server:
            with pytest.raises(HandshakeError) as rejected:
                async with connect(server.url + "/v1/tts?x=1", headers={"xi-api-key": "bad"}):
                    pass
            async with connect(server.url, headers={"xi-api-key": "good"}) as ws:
                await ws.send("accepted")
                assert await ws.receive() == "accepted"
    error = rejected.value
    assert error.status_code == 401
    assert json.loads(error.body) == {"detail": {"status": "invalid_api_key"}}
    assert error.headers["content-type"] == "application/json"
    assert [(r.path, r.query) for r in seen] == [("/v1/tts", "x=1"), ("/", "")]


async def test_process_request_error_answers_500_and_the_server_carries_on() -> None:
    def broken(request: HandshakeRequest) -> None:
        if request.path == "/broken":
            raise RuntimeError("bug in a fake")

    with anyio.fail_after(TIMEOUT):
        async with serve(echo, process_request=broken) as server:
            with pytest.raises(HandshakeError) as rejected:
                async with connect(server.url + "/broken"):
                    pass
            async with connect(server.url) as ws:
                await ws.send("fine")
                assert await ws.receive() == "fine"
    assert rejected.value.status_code == 500


async def test_plain_http_request_gets_an_http_error() -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo) as server,
            await anyio.connect_tcp("127.0.0.1", server.port) as stream,
        ):
            await stream.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            with contextlib.suppress(anyio.EndOfStream):
                while True:
                    answer += await stream.receive()
    assert answer.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")


async def test_handler_error_closes_that_connection_with_1011_only() -> None:
    async def handler(ws: ServerWebSocket) -> None:
        if ws.request.path == "/boom":
            await ws.receive()
            raise RuntimeError("handler bug")
        await echo(ws)

    with anyio.fail_after(TIMEOUT):
        async with (
            serve(handler) as server,
            connect(server.url + "/ok") as healthy,
            connect(server.url + "/boom") as doomed,
        ):
            await healthy.send("before")
            assert await healthy.receive() == "before"
            await doomed.send("trigger")
            with pytest.raises(ConnectionClosed) as closed:
                await doomed.receive()
            assert closed.value.code == 1011
            await healthy.send("after")
            assert await healthy.receive() == "after"
            # The server still accepts new connections too.
            async with connect(server.url + "/ok") as fresh:
                await fresh.send("new")
                assert await fresh.receive() == "new"


async def test_server_exit_cancels_handlers() -> None:
    started = anyio.Event()
    cancelled = anyio.Event()

    async def handler(ws: ServerWebSocket) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with anyio.fail_after(TIMEOUT):
        async with contextlib.AsyncExitStack() as client_stack:
            server_stack = contextlib.AsyncExitStack()
            server = await server_stack.enter_async_context(serve(handler))
            ws = await client_stack.enter_async_context(connect(server.url))
            await started.wait()
            await server_stack.aclose()
            assert cancelled.is_set()
            with pytest.raises(ConnectionClosed) as closed:
                await ws.receive()
            assert closed.value.code == 1001


async def test_error_in_the_serve_block_propagates_unwrapped() -> None:
    async def failing_test_body() -> None:
        async with serve(echo) as server, connect(server.url) as ws:
            await ws.send("x")
            raise LookupError("from the test")

    # Not wrapped in an exception group by the server's task group.
    with anyio.fail_after(TIMEOUT), pytest.raises(LookupError, match="from the test"):
        await failing_test_body()


async def test_fragmented_messages_are_reassembled() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo) as server, raw_client(server.url) as client:
            protocol = client.protocol
            protocol.send_text(b"ab", fin=False)
            protocol.send_ping(b"meanwhile")
            protocol.send_continuation("cé".encode()[:-1], fin=False)
            protocol.send_continuation("cé".encode()[-1:], fin=True)
            events = await client.exchange()
            while not any(e.opcode is Opcode.TEXT for e in events if isinstance(e, Frame)):
                events += await client.exchange()
            assert [(e.opcode, bytes(e.data)) for e in events if isinstance(e, Frame)] == [
                (Opcode.PONG, b"meanwhile"),
                (Opcode.TEXT, "abcé".encode()),
            ]
            protocol.send_binary(b"\x00", fin=False)
            protocol.send_continuation(b"\x01", fin=False)
            protocol.send_continuation(b"\x02", fin=True)
            (echoed,) = await client.exchange()
            assert isinstance(echoed, Frame)
            assert (echoed.opcode, bytes(echoed.data)) == (Opcode.BINARY, b"\x00\x01\x02")
            protocol.send_close(1000)
            (close,) = await client.exchange()
            assert isinstance(close, Frame)
            assert Close.parse(close.data).code == 1000


async def test_message_size_limit_counts_every_fragment() -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, max_message_size=10) as server,
            raw_client(server.url) as client,
        ):
            client.protocol.send_binary(b"12345", fin=False)
            client.protocol.send_continuation(b"67890", fin=False)
            client.protocol.send_continuation(b"!", fin=True)
            (close,) = await client.exchange()
            assert isinstance(close, Frame)
            assert close.opcode is Opcode.CLOSE
            assert Close.parse(close.data).code == 1009


async def test_concurrent_sends_from_handler_tasks() -> None:
    tasks, per_task = 6, 40

    async def handler(ws: ServerWebSocket) -> None:
        async def sender(task: int) -> None:
            for i in range(per_task):
                await ws.send(bytes([task, i]) * (1 + i * 311))

        async with anyio.create_task_group() as task_group:
            for task in range(tasks):
                task_group.start_soon(sender, task)
        async for _ in ws:  # until the client has read everything and closes
            pass

    received: dict[int, list[int]] = {}
    with anyio.fail_after(TIMEOUT):
        async with serve(handler) as server, connect(server.url) as ws:
            for _ in range(tasks * per_task):
                message = await ws.receive()
                assert isinstance(message, bytes)
                task, i = message[0], message[1]
                assert message == bytes([task, i]) * (1 + i * 311)
                received.setdefault(task, []).append(i)
    assert received == {task: list(range(per_task)) for task in range(tasks)}


async def test_server_answers_the_client_while_the_handler_is_busy() -> None:
    release = anyio.Event()
    done = anyio.Event()
    codes: list[int] = []

    async def handler(ws: ServerWebSocket) -> None:
        await release.wait()  # not receiving
        try:
            await ws.send("too late")
        except ConnectionClosed as exc:
            codes.append(exc.code)
        done.set()

    with anyio.fail_after(TIMEOUT):
        async with serve(handler) as server:
            # A close timeout longer than the test's: the close must be answered, not timed out.
            async with connect(server.url, close_timeout=3600) as ws:
                assert await ws.ping() >= 0
                # More than TCP buffers hold: it only gets through if the server reads.
                for _ in range(250):
                    await ws.send(b"\x00" * 16_000)
            assert ws.close_code == 1000
            release.set()
            await done.wait()
    assert codes == [1000]


async def test_abort_cuts_the_connection() -> None:
    aborted = anyio.Event()

    async def handler(ws: ServerWebSocket) -> None:
        await ws.abort()
        assert ws.close_code == 1006
        with pytest.raises(ConnectionClosed):
            await ws.send("nothing")
        aborted.set()

    with anyio.fail_after(TIMEOUT):
        async with serve(handler) as server, connect(server.url) as ws:
            await aborted.wait()
            with pytest.raises(ConnectionClosed) as closed:
                await ws.receive()
            assert closed.value.code == 1006


# --- interoperability -----------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_websockets_asyncio_client_against_the_server(anyio_backend: str) -> None:
    from websockets.asyncio.client import connect as websockets_connect
    from websockets.exceptions import ConnectionClosedError, InvalidStatus

    closes: list[tuple[int | None, str | None]] = []
    done = anyio.Event()

    async def handler(ws: ServerWebSocket) -> None:
        if ws.request.path == "/policy":
            await ws.aclose(1008, "not allowed")
            return
        if ws.request.path == "/abort":
            await ws.abort()
            return
        await ws.send(f"{ws.subprotocol} {ws.request.headers['authorization']}")
        await echo(ws)
        closes.append((ws.close_code, ws.close_reason))
        done.set()

    def reject(request: HandshakeRequest) -> tuple[int, list[tuple[str, str]], str] | None:
        return (429, [("Retry-After", "1")], "slow down") if request.path == "/busy" else None

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, subprotocols=["realtime"], process_request=reject) as server:
            async with websockets_connect(
                server.url + "/echo",
                additional_headers={"Authorization": "Bearer t"},
                subprotocols=["realtime"],  # type: ignore[list-item]
            ) as client:
                assert client.subprotocol == "realtime"
                assert await client.recv() == "realtime Bearer t"
                await client.send("text")
                assert await client.recv() == "text"
                await client.send(b"\x00" * 200_000)
                assert await client.recv() == b"\x00" * 200_000
                await client.send(["frag", "mented"])
                assert await client.recv() == "fragmented"
                latency = await client.ping()
                await latency
            await done.wait()

            async with websockets_connect(
                server.url + "/policy",
                subprotocols=["realtime"],  # type: ignore[list-item]
            ) as client:
                with pytest.raises(ConnectionClosedError) as closed:
                    await client.recv()
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "not allowed")

            async with websockets_connect(
                server.url + "/abort",
                subprotocols=["realtime"],  # type: ignore[list-item]
            ) as client:
                with pytest.raises(ConnectionClosedError) as dropped:
                    await client.recv()
                assert dropped.value.rcvd is None

            with pytest.raises(InvalidStatus) as busy:
                async with websockets_connect(server.url + "/busy"):
                    pass
            assert busy.value.response.status_code == 429
            assert busy.value.response.body == b"slow down"
    assert closes == [(1000, "")]
