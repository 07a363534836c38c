"""Built-in plugin: the ``serve`` and ``call`` commands.

The gateway and its server are imported when a command runs, not when plugins load, so
``omnivoice plugins`` and every registry load stay quick.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from typing import TYPE_CHECKING, Any

from omnivoice.hookspecs import hookimpl

if TYPE_CHECKING:
    from omnivoice.gateway.server import Gateway

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


@hookimpl
def register_commands(subparsers: Subparsers) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the gateway: carriers' webhooks and media streams to a provider",
        description="Serve phone calls. Every installed transport is mounted under its name: "
        "/twilio/voice and /twilio/media, /telnyx/voice and /telnyx/media, ...",
    )
    serve.add_argument(
        "app",
        nargs="?",
        help="module:attribute naming a gateway Config (or a Gateway), or a function "
        "that returns one",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    serve.add_argument(
        "--public-url", help="the https:// address carriers reach this server at (for TwiML)"
    )
    serve.add_argument("--provider", default="echo", help="realtime provider (default: echo)")
    serve.add_argument("--instructions", help="the agent's instructions (system prompt)")
    serve.add_argument("--voice", help="the provider's voice")
    serve.add_argument(
        "--lead-ms", type=int, default=100, help="how far ahead of the line audio is sent"
    )
    serve.add_argument(
        "--mark-every", type=int, default=5, help="frames between playback marks (1: exact)"
    )
    serve.add_argument("--records", metavar="DIR", help="write a call record per call here")
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="json: one JSON object per line, with the call's ids",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway processes sharing the port; each call lives in one (default 1)",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics on this port (0 picks one) instead of the main port",
    )
    serve.set_defaults(handler=_serve)

    call = subparsers.add_parser(
        "call",
        help="call a gateway from a simulated phone, as the carrier would",
        description="Play IN.wav to the gateway through the carrier's real media-stream "
        "protocol, paced like a phone line; record what the caller heard to OUT.wav.",
    )
    call.add_argument("url", help="the gateway (http://HOST:PORT) or its media WebSocket URL")
    call.add_argument("--transport", default="twilio", help="the carrier to play")
    call.add_argument("--wav", required=True, help="the caller's speech (any rate, mono or stereo)")
    call.add_argument("--out", help="write what the caller heard here (WAV)")
    call.add_argument("--sign-with", metavar="SECRET", help="sign the stream as the carrier does")
    call.add_argument(
        "--linger", type=float, default=3.0, help="seconds to stay on the line after speaking"
    )
    call.add_argument("--json", action="store_true", help="print the report as JSON")
    call.set_defaults(handler=_call)


def _serve(args: argparse.Namespace) -> int:
    from omnivoice.telemetry.logs import configure_logging

    configure_logging(args.log_level, args.log_format)
    if args.workers < 1:
        raise SystemExit(f"omnivoice: --workers must be at least 1, not {args.workers}")
    if args.workers > 1:
        from omnivoice.gateway.workers import Supervisor

        target = functools.partial(_worker, args)
        announce = functools.partial(print, flush=True)
        supervisor = Supervisor(
            target,
            args.workers,
            args.host,
            args.port,
            metrics_port=args.metrics_port,
            announce=announce,
        )
        return supervisor.run()
    import anyio

    from omnivoice.telemetry.metrics import gateway_metrics, serve_metrics

    gateway = _gateway(args)
    gateway_metrics()  # this process serves: it counts as a worker
    stop_metrics = None
    extra = ""
    if args.metrics_port is not None:
        bound, stop_metrics = serve_metrics(args.host, args.metrics_port)
        extra = f"; metrics on http://{args.host}:{bound}/metrics"

    def ready(url: str) -> None:
        print(f"omnivoice: serving on {url} ({_mounts(gateway)}){extra}", flush=True)

    try:
        anyio.run(functools.partial(gateway.serve, args.host, args.port, on_ready=ready))
    finally:
        if stop_metrics is not None:
            stop_metrics()
    return 0


def _worker(args: argparse.Namespace, listener: Any, ready: Any) -> None:
    """One process of ``serve --workers N``: the same gateway, on the shared socket."""
    import anyio

    from omnivoice.telemetry.logs import configure_logging
    from omnivoice.telemetry.metrics import gateway_metrics

    configure_logging(args.log_level, args.log_format)
    gateway = _gateway(args)
    gateway_metrics()

    def serving(url: str) -> None:
        ready.send(_mounts(gateway))

    anyio.run(functools.partial(gateway.serve, sockets=[listener], on_ready=serving))


def _gateway(args: argparse.Namespace) -> Gateway:
    from omnivoice.gateway.call import CallSettings
    from omnivoice.gateway.server import Gateway
    from omnivoice.plugins import get_registry
    from omnivoice.realtime.types import ProcessConfig
    from omnivoice.registration import Kind

    settings = CallSettings(lead_ms=args.lead_ms, mark_every=args.mark_every)
    if args.app:
        gateway = _load_app(args.app)
    else:
        registry = get_registry()
        provider = registry.create(Kind.REALTIME, args.provider)
        config = ProcessConfig(instructions=args.instructions, voice=args.voice)
        gateway = Gateway.for_provider(
            provider, config, registry=registry, public_url=args.public_url, settings=settings
        )
    if args.public_url:
        gateway.public_url = args.public_url
    if args.records:
        gateway.write_records(args.records)
    if args.metrics_port is not None:
        gateway.metrics_path = None  # only on the metrics port
    return gateway


def _mounts(gateway: Gateway) -> str:
    mounts = ", ".join(f"/{name}/voice /{name}/media" for name in gateway.transports)
    return mounts or "no transport installed"


def _load_app(spec: str) -> Gateway:
    from omnivoice.gateway.config import Config
    from omnivoice.gateway.server import Gateway

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"omnivoice: APP must look like module:attribute, not {spec!r}")
    sys.path.insert(0, "")
    target: Any = getattr(importlib.import_module(module_name), attribute)
    app = target() if callable(target) and not isinstance(target, (Gateway, Config)) else target
    if isinstance(app, Config):
        return Gateway.from_config(app)
    if not isinstance(app, Gateway):
        raise SystemExit(f"omnivoice: {spec} is a {type(app).__name__}, not a Config or Gateway")
    return app


def _call(args: argparse.Namespace) -> int:
    import json

    import anyio
    import attrs

    from omnivoice.audio.wav import read_wav, voiced_frames, write_wav
    from omnivoice.plugins import get_registry
    from omnivoice.registration import Kind
    from omnivoice.telephony.phone import SimulatedPhone

    transport = get_registry().create(Kind.TRANSPORT, args.transport)
    media_format = transport.formats[0]
    speech, speech_format = read_wav(args.wav)
    url = _media_url(args.url, args.transport)
    phone = SimulatedPhone(
        url,
        transport,
        _convert(speech, speech_format, media_format),
        media_format,
        voiced=voiced_frames(speech, speech_format),
        headers=transport.signed_headers(url, args.sign_with) if args.sign_with else None,
        linger_s=args.linger,
    )
    report = anyio.run(phone.run)
    if args.out:
        write_wav(args.out, bytes(phone.heard), media_format)
    if args.json:
        document = attrs.asdict(report, filter=lambda field, _: field.name != "received")
        print(json.dumps(document, indent=2))
    else:
        print(_summary(report))
    return 0 if report.close_code in (None, 1000, 1001) else 1


def _convert(audio: bytes, src: Any, dst: Any) -> bytes:
    from omnivoice.audio.converter import Converter

    return Converter().convert(audio, src, dst)


def _media_url(url: str, transport: str) -> str:
    for plain, secure in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(plain):
            url = secure + url[len(plain) :]
    if not url.rstrip("/").endswith("/media"):
        url = f"{url.rstrip('/')}/{transport}/media"
    return url


def _summary(report: Any) -> str:
    latencies = report.latencies_ms
    latency = (
        f"{min(latencies):.0f}-{max(latencies):.0f} ms over {len(latencies)} replies"
        if latencies
        else "no reply"
    )
    return "\n".join(
        [
            f"frames sent {report.frames_sent}, received {report.frames_received}",
            f"marks received {report.marks_received}, acknowledged {report.marks_acknowledged}",
            f"clears {report.clears}, agent audio heard {report.heard_ms} ms, "
            f"dropped {report.dropped_ms} ms",
            f"round-trip latency {latency}",
            f"closed {report.close_code} {report.close_reason or ''}".rstrip(),
        ]
    )
