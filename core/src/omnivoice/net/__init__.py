"""Networking: the WebSocket client and server every provider and test fake uses."""

from omnivoice.net.websocket import (
    ConnectError,
    ConnectionClosed,
    HandshakeError,
    HandshakeRequest,
    Server,
    ServerWebSocket,
    WebSocket,
    WebSocketError,
    connect,
    serve,
)

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
