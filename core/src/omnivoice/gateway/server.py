"""The gateway's HTTP and WebSocket server: an ASGI application served by uvicorn.

Every transport is mounted under its name: the voice webhook at ``/NAME/voice`` (GET and
form-encoded POST) and the media WebSocket at ``/NAME/media``. ``GET /healthz`` answers
200 while the server accepts calls; ``GET /metrics`` gives the Prometheus metrics (see
``docs/operations.md``) unless ``metrics_path`` is ``None``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
import attrs
import uvicorn
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from omnivoice.gateway.call import CallSettings, CallStats, SessionFactory, run_call
from omnivoice.gateway.config import Config, PipelineMode
from omnivoice.gateway.records import CallRecords
from omnivoice.plugins import Registry, get_registry
from omnivoice.realtime.provider import Provider
from omnivoice.realtime.types import ProcessConfig
from omnivoice.registration import Kind
from omnivoice.telemetry.redact import add_secrets_of
from omnivoice.telephony.events import Start
from omnivoice.telephony.transport import IncomingRequest, Transport

__all__ = ["Gateway"]

log = logging.getLogger(__name__)

_MAX_WEBHOOK_BODY = 64 * 1024


@attrs.define(eq=False)
class Gateway:
    """The gateway: transports, how each call gets its provider, and how calls are served.

    ``transports`` defaults to one instance of every installed transport plugin.
    ``public_url`` (``https://gw.example.com``) is the address carriers use: it builds the
    media URL of webhook answers and the URLs signatures are checked against; without
    it, they come from the request's ``Host`` and ``X-Forwarded-Proto`` headers.
    """

    sessions: SessionFactory
    registry: Registry = attrs.field(factory=get_registry)
    transports: Mapping[str, Transport] = attrs.field(
        default=attrs.Factory(lambda self: _installed_transports(self.registry), takes_self=True)
    )
    public_url: str | None = None
    settings: CallSettings = attrs.field(factory=CallSettings)
    stats: CallStats = attrs.field(factory=CallStats)
    rejected: int = 0
    """Requests refused for a missing or wrong signature."""
    accepting: bool = True
    metrics_path: str | None = "/metrics"
    """Where the Prometheus metrics are served; ``None`` serves them elsewhere or not at all
    (``omnivoice serve --metrics-port``)."""

    @classmethod
    def for_provider(cls, provider: Provider, config: ProcessConfig, **options: Any) -> Gateway:
        """A gateway that serves every call with ``provider`` and ``config``."""

        async def sessions(start: Start) -> tuple[Provider, ProcessConfig]:
            return provider, config

        return cls(sessions, **options)

    @classmethod
    def from_config(cls, config: Config, *, registry: Registry | None = None) -> Gateway:
        """The gateway a :class:`~omnivoice.gateway.config.Config` describes."""
        registry = registry if registry is not None else get_registry()
        # Keys given in code stay out of logs and records, as those in the environment do.
        for options in (
            config.realtime.factory_options(),
            config.text.stt_options,
            config.text.llm_options,
            config.text.tts_options,
        ):
            add_secrets_of(options)
        if config.mode is PipelineMode.TEXT:
            provider, process_config = _text_pipeline(registry, config)
        else:
            realtime = config.realtime
            provider = _provider(registry, realtime.provider, realtime.factory_options())
            if realtime.fallbacks:
                from omnivoice.realtime.client import Client

                fallbacks = [_provider(registry, p, {}) for p in realtime.fallbacks]
                provider = Client(provider, *fallbacks)
            process_config = realtime.process_config()
        installed = _installed_transports(registry)
        if config.transports is not None:
            missing = set(config.transports) - set(installed)
            for name in sorted(missing):
                registry.get(Kind.TRANSPORT, name)  # raises, saying what to install
            installed = {name: installed[name] for name in config.transports}
        gateway = cls.for_provider(
            provider,
            process_config,
            registry=registry,
            transports=installed,
            public_url=config.public_url,
            settings=CallSettings(lead_ms=config.lead_ms, mark_every=config.mark_every),
        )
        if config.records is not None:
            gateway.write_records(config.records)
        return gateway

    def write_records(self, directory: str | Path) -> CallRecords:
        """Write a call record for every call into ``directory`` (see :mod:`.records`)."""
        records = CallRecords(directory)
        self.registry.manager.register(records, name=f"call-records:{directory}")
        return records

    # --- the ASGI application -----------------------------------------------------------

    def app(self) -> Starlette:
        routes: list[Route | WebSocketRoute] = [Route("/healthz", self._health)]
        if self.metrics_path is not None:
            routes.append(Route(self.metrics_path, _metrics))
        for name, transport in self.transports.items():
            routes.append(
                Route(f"/{name}/voice", self._voice_endpoint(transport), methods=["GET", "POST"])
            )
            routes.append(WebSocketRoute(f"/{name}/media", self._media_endpoint(transport)))
        return Starlette(routes=routes)

    async def _health(self, request: Request) -> Response:
        document = {
            "status": "ok" if self.accepting else "stopping",
            "transports": sorted(self.transports),
            "calls": attrs.asdict(self.stats),
            "rejected_signatures": self.rejected,
        }
        return JSONResponse(document, status_code=200 if self.accepting else 503)

    def _voice_endpoint(self, transport: Transport) -> Callable[[Request], Any]:
        async def voice(request: Request) -> Response:
            body = await request.body()
            if len(body) > _MAX_WEBHOOK_BODY:
                return Response("request too large", status_code=413)
            form: dict[str, tuple[str, ...]] = {}
            if request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"
            ):
                for key, value in parse_qsl(body.decode("utf-8", "replace"), True):
                    form[key] = (*form.get(key, ()), value)
            incoming = IncomingRequest(
                url=self._public(request, websocket=False),
                method=request.method,
                headers=_headers(request),
                body=body,
                form=form,
            )
            if not transport.verify_webhook(incoming):
                self.rejected += 1
                log.warning("%s: refused a webhook with a bad signature", transport.name)
                return Response("invalid signature", status_code=403)
            media_url = self._base(request, websocket=True) + f"/{transport.name}/media"
            answer = transport.answer(media_url, incoming)
            return Response(answer.body, media_type=answer.media_type)

        return voice

    def _media_endpoint(self, transport: Transport) -> Callable[[WebSocket], Any]:
        async def media(websocket: WebSocket) -> None:
            incoming = IncomingRequest(
                url=self._public(websocket, websocket=True),
                method="GET",
                headers=_headers(websocket),
            )
            if not self.accepting or not transport.verify_media(incoming):
                self.rejected += 1
                log.warning("%s: refused a media stream with a bad signature", transport.name)
                # Closing before accepting answers the upgrade with HTTP 403.
                await websocket.close(code=1008)
                return
            await websocket.accept()
            await run_call(
                _StarletteSocket(websocket),
                transport,
                self.sessions,
                registry=self.registry,
                settings=self.settings,
                stats=self.stats,
            )

        return media

    def _base(self, connection: HTTPConnection, *, websocket: bool) -> str:
        if self.public_url:
            base = self.public_url.rstrip("/")
            secure = base.startswith(("https:", "wss:"))
            rest = base.split("://", 1)[1]
        else:
            proto = connection.headers.get("x-forwarded-proto", connection.url.scheme)
            secure = proto in ("https", "wss")
            rest = connection.headers.get("x-forwarded-host") or connection.headers.get(
                "host", connection.url.netloc
            )
        if websocket:
            return f"{'wss' if secure else 'ws'}://{rest}"
        return f"{'https' if secure else 'http'}://{rest}"

    def _public(self, connection: HTTPConnection, *, websocket: bool) -> str:
        url = self._base(connection, websocket=websocket) + connection.url.path
        return f"{url}?{connection.url.query}" if connection.url.query else url

    # --- serving --------------------------------------------------------------------------

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        on_ready: Callable[[str], None] | None = None,
        sockets: list[socket.socket] | None = None,
    ) -> None:
        """Serve until cancelled; ``on_ready(url)`` is called once the port is bound.

        ``sockets`` are listening sockets to serve instead of binding ``host:port`` (the
        workers of ``omnivoice serve --workers`` share the one their parent bound).
        """
        config = uvicorn.Config(
            self.app(),
            host=host,
            port=port,
            lifespan="off",
            log_level="warning",
            log_config=None,  # uvicorn's records go through the application's logging
            # The protocol layer counts oversize frames itself and closes that call with a
            # reason; uvicorn's own limit is only a backstop.
            ws_max_size=max(16 * self.settings_max_frame(), 1 << 20),
            ws_ping_interval=None,
            timeout_graceful_shutdown=5,
        )
        server = _Server(config, on_ready)
        stopped = anyio.Event()

        async def run() -> None:
            # Shielded: when the caller is cancelled, uvicorn is asked to stop instead, so
            # it closes its sockets and ends its calls rather than leaving them open.
            with anyio.CancelScope(shield=True):
                await server.serve(sockets)
            stopped.set()

        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(run)
                try:
                    await stopped.wait()
                finally:
                    self.accepting = False
                    server.should_exit = True
        finally:
            self.accepting = False

    def settings_max_frame(self) -> int:
        return max((t.max_frame_size for t in self.transports.values()), default=64 * 1024)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[str], None] | None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._on_ready is not None and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_ready(f"http://{host}:{port}")


class _StarletteSocket:
    """A Starlette WebSocket as a :class:`omnivoice.gateway.call.CarrierSocket`."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                message = await self._websocket.receive()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            yield text if text is not None else message.get("bytes") or b""

    async def send(self, text: str) -> None:
        await self._websocket.send_text(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._websocket.close(code, reason)


async def _metrics(request: Request) -> Response:
    from omnivoice.telemetry.metrics import exposition

    # Off the event loop: in multiprocess mode a scrape reads every worker's files.
    body, content_type = await anyio.to_thread.run_sync(exposition, request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})


def _provider(registry: Registry, provider: str | Provider, options: dict[str, Any]) -> Provider:
    if isinstance(provider, Provider):
        return provider
    created: Provider = registry.create(Kind.REALTIME, provider, **options)
    return created


def _text_pipeline(registry: Registry, config: Config) -> tuple[Provider, ProcessConfig]:
    """The text pipeline a ``PipelineMode.TEXT`` configuration describes."""
    from omnivoice.pipeline import build_pipeline

    assert config.stt_provider is not None  # Config checks all three in TEXT mode
    assert config.llm_provider is not None
    assert config.tts_provider is not None
    text = config.text
    pipeline = build_pipeline(
        registry,
        stt=config.stt_provider,
        llm=config.llm_provider,
        tts=config.tts_provider,
        stt_options=text.stt_options,
        llm_options=text.llm_options,
        tts_options=text.tts_options,
        **text.options,
    )
    return pipeline, text.process_config()


def _installed_transports(registry: Registry) -> dict[str, Transport]:
    transports = {}
    for name in registry.names(Kind.TRANSPORT):
        registration = registry.get(Kind.TRANSPORT, name)
        if registration.name == name:  # aliases would mount the same transport twice
            transports[name] = registration.factory()
    return transports


def _headers(connection: HTTPConnection) -> dict[str, str]:
    return {key.lower(): value for key, value in connection.headers.items()}
