"""The WebSocket client (`omnivoice.net.connect`) over real localhost sockets.

Most tests talk to `omnivoice.net.serve`; the `raw_server` helper below speaks the protocol
with websockets' Sans-I/O layer and hand-made frames, for what `serve` cannot be made to
do (fragments, invalid UTF-8, silence), and one test talks to websockets' own asyncio server.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol

from omnivoice.errors import OmnivoiceError
from omnivoice.net import (
    ConnectError,
    ConnectionClosed,
    HandshakeError,
    HandshakeRequest,
    ServerWebSocket,
    WebSocket,
    WebSocketError,
    connect,
    serve,
)

pytestmark = pytest.mark.anyio

# Generous: only a hung test ever reaches it.
TIMEOUT = 10


async def echo(ws: ServerWebSocket) -> None:
    async for message in ws:
        await ws.send(message)


RawScript = Callable[[anyio.abc.SocketStream], Awaitable[None]]


@asynccontextmanager
async def raw_server(script: RawScript, *, handshake: bool = True) -> AsyncIterator[str]:
    """A server that accepts the handshake (with websockets' Sans-I/O protocol) and then
    runs ``script`` on the raw TCP stream; yields its ``ws://`` URL."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            if handshake:
                protocol = ServerProtocol()
                while not (events := protocol.events_received()):
                    protocol.receive_data(await stream.receive())
                request = events[0]
                assert not isinstance(request, Frame)
                protocol.send_response(protocol.accept(request))  # type: ignore[arg-type]
                for chunk in protocol.data_to_send():
                    await stream.send(chunk)
            await script(stream)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as task_group:
        task_group.start_soon(listener.serve, handle, task_group)
        try:
            yield f"ws://127.0.0.1:{port}"
        finally:
            task_group.cancel_scope.cancel()


async def until_client_closes(stream: anyio.abc.SocketStream) -> None:
    """Wait for the client's next bytes (its close frame) or its end of stream; the raw
    server then closes the TCP connection, which completes the client's closing handshake."""
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        await stream.receive()


def frame(opcode: Opcode, data: bytes, *, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=False)


# --- messages -------------------------------------------------------------------------


async def test_text_and_binary_round_trip() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo) as server, connect(server.url) as ws:
            await ws.send("héllo")
            assert await ws.receive() == "héllo"
            await ws.send(b"\x00\x01\xff")
            assert await ws.receive() == b"\x00\x01\xff"
            await ws.send("")
            assert await ws.receive() == ""
            await ws.send(b"")
            assert await ws.receive() == b""


async def test_large_messages_round_trip() -> None:
    binary = bytes(range(256)) * 4096  # 1 MiB
    text = "voix " * 200_000  # 1 MB
    with anyio.fail_after(TIMEOUT):
        async with serve(echo) as server, connect(server.url) as ws:
            await ws.send(binary)
            assert await ws.receive() == binary
            await ws.send(text)
            assert await ws.receive() == text


async def test_fragmented_messages_are_reassembled() -> None:
    async def script(stream: anyio.abc.SocketStream) -> None:
        await stream.send(
            frame(Opcode.TEXT, b"fra", fin=False)
            + frame(Opcode.PING, b"in between")  # control frames may interleave
            + frame(Opcode.CONT, "gmé".encode()[:-1], fin=False)  # splits a UTF-8 sequence
            + frame(Opcode.CONT, "gmé".encode()[-1:] + b"nt")
        )
        await stream.send(frame(Opcode.BINARY, b"\x01", fin=False))
        await stream.send(frame(Opcode.CONT, b"\x02", fin=False))
        await stream.send(frame(Opcode.CONT, b"\x03"))
        await until_client_closes(stream)

    with anyio.fail_after(TIMEOUT):
        async with raw_server(script) as url, connect(url) as ws:
            assert await ws.receive() == "fragmént"
            assert await ws.receive() == b"\x01\x02\x03"


async def test_burst_of_messages_in_one_read() -> None:
    async def script(stream: anyio.abc.SocketStream) -> None:
        await stream.send(b"".join(frame(Opcode.TEXT, str(i).encode()) for i in range(100)))
        await until_client_closes(stream)

    with anyio.fail_after(TIMEOUT):
        async with raw_server(script) as url, connect(url) as ws:
            assert [await ws.receive() for _ in range(100)] == [str(i) for i in range(100)]


async def test_concurrent_sends_arrive_intact() -> None:
    received: list[str | bytes] = []
    done = anyio.Event()
    tasks, per_task = 8, 50

    async def collect(ws: ServerWebSocket) -> None:
        while len(received) < tasks * per_task:
            received.append(await ws.receive())
        done.set()

    async def sender(ws: WebSocket, task: int) -> None:
        for i in range(per_task):
            # Sizes vary so that some frames need several writes.
            await ws.send(f"{task}:{i}:" + "x" * (i * 997 % 70_000))

    with anyio.fail_after(TIMEOUT):
        async with serve(collect) as server, connect(server.url) as client:
            async with anyio.create_task_group() as task_group:
                for task in range(tasks):
                    task_group.start_soon(sender, client, task)
            await done.wait()

    by_task: dict[int, list[int]] = {}
    for message in received:
        assert isinstance(message, str)
        sender_id, index, padding = message.split(":")
        assert padding == "x" * (int(index) * 997 % 70_000)
        by_task.setdefault(int(sender_id), []).append(int(index))
    assert by_task == {task: list(range(per_task)) for task in range(tasks)}


async def test_cancelled_receive_loses_nothing() -> None:
    go = anyio.Event()

    async def handler(ws: ServerWebSocket) -> None:
        await ws.receive()
        await ws.send("after the cancellation")

    with anyio.fail_after(TIMEOUT):
        async with serve(handler) as server, connect(server.url) as ws:
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as task_group:

                    async def cancel_when_receiving() -> None:
                        await go.wait()
                        scope.cancel()

                    task_group.start_soon(cancel_when_receiving)
                    go.set()
                    await ws.receive()
            assert scope.cancelled_caught
            await ws.send("go on")
            assert await ws.receive() == "after the cancellation"


async def test_invalid_utf8_closes_with_1007() -> None:
    async def script(stream: anyio.abc.SocketStream) -> None:
        await stream.send(frame(Opcode.TEXT, b"\xff\xfe"))
        await stream.receive()  # the client's close frame

    with anyio.fail_after(TIMEOUT):
        async with raw_server(script) as url, connect(url) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.receive()
    assert closed.value.code == 1007


# --- the handshake --------------------------------------------------------------------


async def test_path_query_and_headers_reach_the_server() -> None:
    seen: list[HandshakeRequest] = []

    async def handler(ws: ServerWebSocket) -> None:
        seen.append(ws.request)
        await ws.send("ok")

    headers = {"Authorization": "Bearer sk-test", "OpenAI-Beta": "realtime=v1"}
    url_path = "/v1/realtime?model=gpt-realtime&voice=alloy%20two"
    with anyio.fail_after(TIMEOUT):
        async with serve(handler) as server:
            async with connect(server.url + url_path, headers=headers) as ws:
                assert await ws.receive() == "ok"
                assert ws.response_headers["upgrade"].lower() == "websocket"
            async with connect(server.url, headers=[("xi-api-key", "k1")]) as ws:
                assert await ws.receive() == "ok"

    first, second = seen
    assert first.path == "/v1/realtime"
    assert first.query == "model=gpt-realtime&voice=alloy%20two"
    assert first.params == {"model": "gpt-realtime", "voice": "alloy two"}
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.headers["OPENAI-BETA"] == "realtime=v1"
    assert (second.path, second.query, second.params) == ("/", "", {})
    assert second.headers["XI-API-KEY"] == "k1"


async def test_subprotocol_negotiation() -> None:
    async def handler(ws: ServerWebSocket) -> None:
        await ws.send(ws.subprotocol or "none")

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, subprotocols=["v2", "v1"]) as server:
            async with connect(server.url, subprotocols=["v1", "v2"]) as ws:
                # The server's preference wins among those both sides support.
                assert ws.subprotocol == "v2"
                assert await ws.receive() == "v2"
            async with connect(server.url, subprotocols=["v1"]) as ws:
                assert ws.subprotocol == "v1"
            with pytest.raises(HandshakeError) as rejected:
                async with connect(server.url, subprotocols=["v9"]):
                    pass
            assert rejected.value.status_code == 400
        async with serve(handler) as server, connect(server.url) as ws:
            assert ws.subprotocol is None
            assert await ws.receive() == "none"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, '{"error": {"message": "Incorrect API key provided"}}'),
        (403, "forbidden"),
        (404, '{"error": "model_not_found"}'),
        (429, "rate limit reached"),
        (503, ""),
    ],
)
async def test_rejected_handshake_raises_handshake_error(status: int, body: str) -> None:
    def reject(request: HandshakeRequest) -> tuple[int, dict[str, str], str]:
        return status, {"Content-Type": "application/json", "Retry-After": "7"}, body

    with anyio.fail_after(TIMEOUT):
        async with serve(echo, process_request=reject) as server:
            with pytest.raises(HandshakeError) as rejected:
                async with connect(server.url):
                    pass
    error = rejected.value
    assert isinstance(error, WebSocketError)
    assert isinstance(error, OmnivoiceError)
    assert error.status_code == status
    assert error.body == body
    assert error.headers["retry-after"] == "7"
    assert str(status) in str(error)


async def test_long_rejection_body_is_truncated() -> None:
    def reject(request: HandshakeRequest) -> tuple[int, dict[str, str], bytes]:
        return 500, {}, b"e" * 100_000

    with anyio.fail_after(TIMEOUT):
        async with serve(echo, process_request=reject) as server:
            with pytest.raises(HandshakeError) as rejected:
                async with connect(server.url):
                    pass
    assert rejected.value.status_code == 500
    assert rejected.value.body == "e" * 4096
    assert len(str(rejected.value)) < 300


async def test_plain_http_answer_is_a_handshake_error() -> None:
    async def script(stream: anyio.abc.SocketStream) -> None:
        await stream.receive()
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        await until_client_closes(stream)

    with anyio.fail_after(TIMEOUT):
        async with raw_server(script, handshake=False) as url:
            with pytest.raises(HandshakeError) as rejected:
                async with connect(url):
                    pass
    assert (rejected.value.status_code, rejected.value.body) == (200, "hello")


async def test_garbage_answer_is_a_connect_error() -> None:
    async def script(stream: anyio.abc.SocketStream) -> None:
        await stream.receive()
        await stream.send(b"SSH-2.0-OpenSSH_9.6\r\n")

    with anyio.fail_after(TIMEOUT):
        async with raw_server(script, handshake=False) as url:
            with pytest.raises(ConnectError) as failed:
                async with connect(url):
                    pass
    assert failed.value.__cause__ is not None


async def test_connection_refused_is_a_connect_error() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as failed:
        async with connect(f"ws://127.0.0.1:{port}/"):
            pass
    assert isinstance(failed.value.__cause__, OSError)
    assert isinstance(failed.value, WebSocketError)


async def test_silent_server_times_out_as_connect_error() -> None:
    async def script(stream: anyio.abc.SocketStream) -> None:
        await anyio.sleep_forever()

    with anyio.fail_after(TIMEOUT):
        async with raw_server(script, handshake=False) as url:
            with pytest.raises(ConnectError) as failed:
                async with connect(url, open_timeout=0.2):
                    pass
    assert isinstance(failed.value.__cause__, TimeoutError)


async def test_invalid_url_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="ws or wss"):
        async with connect("https://example.invalid/"):
            pass


# --- closing --------------------------------------------------------------------------


async def test_server_close_code_and_reason_reach_the_client() -> None:
    async def handler(ws: ServerWebSocket) -> None:
        await ws.send("last words")
        await ws.aclose(1008, "policy violated")

    with anyio.fail_after(TIMEOUT):
        async with serve(handler) as server, connect(server.url) as ws:
            # Messages sent before the close are still delivered.
            assert await ws.receive() == "last words"
            with pytest.raises(ConnectionClosed) as closed:
                await ws.receive()
            assert (closed.value.code, closed.value.reason) == (1008, "policy violated")
            assert (ws.close_code, ws.close_reason) == (1008, "policy violated")
            with pytest.raises(ConnectionClosed):
                await ws.send("too late")
            # Iteration raises on an abnormal close...
            with pytest.raises(ConnectionClosed):
                async for _ in ws:
                    pass


async def test_iteration_ends_quietly_on_a_normal_close() -> None:
    async def handler(ws: ServerWebSocket) -> None:
        for word in ("one", "two"):
            await ws.send(word)
        # returning closes with 1000

    with anyio.fail_after(TIMEOUT):
        async with serve(handler) as server, connect(server.url) as ws:
            assert [message async for message in ws] == ["one", "two"]
            assert ws.close_code == 1000


async def test_server_abort_is_1006() -> None:
    async def handler(ws: ServerWebSocket) -> None:
        await ws.receive()
        await ws.abort()

    with anyio.fail_after(TIMEOUT):
        async with serve(handler) as server, connect(server.url) as ws:
            assert ws.close_code is None
            await ws.send("hi")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.receive()
            assert (closed.value.code, closed.value.reason) == (1006, "")
            assert ws.close_code == 1006


async def test_client_close_reaches_the_server() -> None:
    seen: list[tuple[int | None, str | None]] = []
    done = anyio.Event()

    async def handler(ws: ServerWebSocket) -> None:
        async for _ in ws:
            pass
        seen.append((ws.close_code, ws.close_reason))
        done.set()

    with anyio.fail_after(TIMEOUT):
        async with serve(handler) as server:
            async with connect(server.url) as ws:
                await ws.send("x")
            assert ws.close_code == 1000
            await done.wait()
            done = anyio.Event()
            async with connect(server.url) as ws:
                await ws.aclose(1001, "bye")
                await ws.aclose()  # idempotent
            await done.wait()
    assert seen == [(1000, ""), (1001, "bye")]


async def test_close_from_another_task_ends_the_receive_loop() -> None:
    received: list[str | bytes] = []
    echoed = anyio.Event()
    loop_ended = anyio.Event()

    async def receive_loop(ws: WebSocket) -> None:
        async for message in ws:
            received.append(message)
            echoed.set()
        loop_ended.set()

    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo) as server,
            connect(server.url, close_timeout=3600) as ws,
            anyio.create_task_group() as task_group,
        ):
            task_group.start_soon(receive_loop, ws)
            await ws.send("one")
            await echoed.wait()
            # The receive loop is blocked reading; the close is answered through it.
            await ws.aclose()
            await loop_ended.wait()
    assert received == ["one"]
    assert ws.close_code == 1000


async def test_error_in_client_block_closes_with_1011() -> None:
    seen: list[int] = []
    done = anyio.Event()

    async def handler(ws: ServerWebSocket) -> None:
        try:
            await ws.receive()
        except ConnectionClosed as exc:
            seen.append(exc.code)
            done.set()

    with anyio.fail_after(TIMEOUT):
        async with serve(handler) as server:
            with pytest.raises(KeyError):
                async with connect(server.url):
                    raise KeyError("boom")
            await done.wait()
    assert seen == [1011]


async def test_cancelled_client_says_going_away() -> None:
    seen: list[int] = []
    done = anyio.Event()

    async def handler(ws: ServerWebSocket) -> None:
        try:
            await ws.receive()
        except ConnectionClosed as exc:
            seen.append(exc.code)
            done.set()

    with anyio.fail_after(TIMEOUT):
        async with serve(handler) as server:
            with anyio.CancelScope() as scope:
                async with connect(server.url):
                    scope.cancel()
                    await anyio.sleep_forever()
            await done.wait()
    assert seen == [1001]


async def test_close_times_out_when_the_peer_does_not_answer() -> None:
    async def script(stream: anyio.abc.SocketStream) -> None:
        await anyio.sleep_forever()

    with anyio.fail_after(TIMEOUT):
        async with raw_server(script) as url:
            async with connect(url, close_timeout=0.1) as ws:
                await ws.aclose(1000, "done")
            # The close frame went out; the peer's never came.
            assert (ws.close_code, ws.close_reason) == (1000, "done")


async def test_invalid_close_code_is_a_value_error() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo) as server, connect(server.url) as ws:
            with pytest.raises(ValueError, match="1006"):
                await ws.aclose(1006)
            await ws.send("still open")
            assert await ws.receive() == "still open"


# --- limits and control frames --------------------------------------------------------


async def test_oversized_message_from_the_server_closes_with_1009() -> None:
    seen: list[int] = []
    done = anyio.Event()

    async def handler(ws: ServerWebSocket) -> None:
        await ws.send(b"x" * 2048)
        try:
            await ws.receive()
        except ConnectionClosed as exc:
            seen.append(exc.code)
            done.set()

    with anyio.fail_after(TIMEOUT):
        async with serve(handler) as server, connect(server.url, max_message_size=1024) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.receive()
            assert closed.value.code == 1009
            await done.wait()
    assert seen == [1009]


async def test_oversized_message_to_the_server_closes_with_1009() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, max_message_size=1024) as server, connect(server.url) as ws:
            await ws.send(b"x" * 1024)
            assert await ws.receive() == b"x" * 1024
            await ws.send("y" * 1025)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.receive()
            assert closed.value.code == 1009


async def test_ping_returns_when_the_pong_arrives() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo) as server, connect(server.url) as ws:
            assert await ws.ping() >= 0
            # Messages that arrive while waiting for the pong are kept for receive().
            await ws.send("kept")
            assert await ws.ping() >= 0
            assert await ws.receive() == "kept"
            # Concurrent pings from several tasks all complete.
            async with anyio.create_task_group() as task_group:
                for _ in range(5):
                    task_group.start_soon(ws.ping)


async def test_ping_on_a_closed_connection_raises() -> None:
    async def handler(ws: ServerWebSocket) -> None:
        await ws.abort()

    with anyio.fail_after(TIMEOUT):
        async with serve(handler) as server, connect(server.url) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.ping()
            assert closed.value.code == 1006


async def test_pings_from_the_server_are_answered_while_receiving() -> None:
    async def handler(ws: ServerWebSocket) -> None:
        await ws.ping()
        await ws.send("pong received")

    with anyio.fail_after(TIMEOUT):
        async with serve(handler) as server, connect(server.url) as ws:
            assert await ws.receive() == "pong received"


# --- interoperability and TLS ---------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_client_against_the_websockets_asyncio_server(anyio_backend: str) -> None:
    from websockets.asyncio.server import ServerConnection
    from websockets.asyncio.server import serve as websockets_serve

    seen: list[str] = []

    async def handler(connection: ServerConnection) -> None:
        seen.append(connection.request.path if connection.request else "")
        await connection.send(["frag", "mented"])  # a fragmented message
        pong = await connection.ping()
        await pong
        async for message in connection:
            if message == "close please":
                await connection.close(4000, "as requested")
                return
            else:
                await connection.send(message)

    with anyio.fail_after(TIMEOUT):
        async with websockets_serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/path?q=1") as ws:
                assert await ws.receive() == "fragmented"
                await ws.send("text")
                assert await ws.receive() == "text"
                await ws.send(b"\x00" * 100_000)
                assert await ws.receive() == b"\x00" * 100_000
                assert await ws.ping() >= 0
                await ws.send("close please")
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.receive()
                assert (closed.value.code, closed.value.reason) == (4000, "as requested")
    assert seen == ["/path?q=1"]


def _make_certificates(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A CA and a leaf certificate for 127.0.0.1; returns cert file, key file, CA PEM."""
    # cryptography comes with the workspace (omnivoice-telnyx needs it): TLS is always tested.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1))

    def builder(
        subject: str, issuer: str, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        builder("omnivoice test CA", "omnivoice test CA", ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        builder("127.0.0.1", "omnivoice test CA", leaf_key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, ca_cert.public_bytes(serialization.Encoding.PEM)


async def test_wss_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert_file, key_file, ca_pem = _make_certificates(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    client_context = ssl.create_default_context(cadata=ca_pem.decode())

    closed_with: list[int | None] = []
    done = anyio.Event()

    async def handler(ws: ServerWebSocket) -> None:
        await echo(ws)
        closed_with.append(ws.close_code)
        done.set()

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, ssl_context=server_context) as server:
            assert server.url.startswith("wss://127.0.0.1:")
            async with connect(server.url + "/secure", ssl_context=client_context) as ws:
                await ws.send("over TLS")
                assert await ws.receive() == "over TLS"
                await ws.send(b"\x01" * 300_000)
                assert await ws.receive() == b"\x01" * 300_000
            assert ws.close_code == 1000
            await done.wait()
            # The system's CAs do not trust this certificate.
            with pytest.raises(ConnectError) as failed:
                async with connect(server.url):
                    pass
            assert isinstance(failed.value.__cause__, ssl.SSLError)
    assert closed_with == [1000]
