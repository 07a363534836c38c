"""The ElevenLabs text-to-speech provider: configuration, and its three ways to speak.

- :meth:`ElevenLabsTTS.open_stream`: one ``multi-stream-input`` WebSocket per call, one
  context per response (:mod:`omnivoice_elevenlabs_tts.stream`), the text streamed in as
  the model writes it, word timings from the alignment;
- :meth:`ElevenLabsTTS.synthesize`, one text at a time: over the ``stream-input``
  WebSocket, or over HTTP streaming (``transport="http"``, for servers that refuse
  WebSockets; then no streamed text and no word timings).

See ``docs/providers/elevenlabs.md``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal

import anyio
import attrs
import httpx

from omnivoice.audio.format import AudioFormat
from omnivoice.concurrency import aclose_now
from omnivoice.errors import AuthFailedError, ConnectionFailedError, ModelUnavailableError
from omnivoice.net import ConnectError, ConnectionClosed, HandshakeError, connect
from omnivoice.pipeline.contracts import SpeechStream, TextToSpeech
from omnivoice.registration import Capability
from omnivoice_elevenlabs_tts import protocol as p
from omnivoice_elevenlabs_tts.stream import CallStream, StreamOptions

__all__ = ["DEFAULT_MODEL", "DEFAULT_URL", "ElevenLabsTTS"]

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.elevenlabs.io"
DEFAULT_MODEL = "eleven_flash_v2_5"
_MAX_ERROR_BODY = 4096
_CLOSE_WITHIN = 2.0

Transport = Literal["websocket", "http"]


@attrs.frozen
class _Options:
    api_key: str | None = attrs.field(repr=False)
    voice_id: str | None
    model: str
    url: str
    voice_settings: Mapping[str, Any] | None
    transport: Transport
    language_code: str | None
    chunk_length_schedule: tuple[int, ...] | None
    auto_mode: bool
    inactivity_timeout: int
    keepalive_s: float
    max_contexts: int
    context_close_timeout: float
    connect_timeout: float
    reconnect_delays: tuple[float, ...]
    apply_text_normalization: str | None
    enable_logging: bool | None
    seed: int | None
    max_sentence_chars: int

    def settings(self, audio_format: AudioFormat) -> p.Settings:
        return p.Settings(
            model=self.model,
            output_format=p.output_format(audio_format),
            voice_settings=self.voice_settings,
            chunk_length_schedule=self.chunk_length_schedule,
            language_code=self.language_code,
            auto_mode=self.auto_mode,
            inactivity_timeout=self.inactivity_timeout,
            apply_text_normalization=self.apply_text_normalization,
            enable_logging=self.enable_logging,
            seed=self.seed,
        )

    def headers(self) -> list[tuple[str, str]]:
        return [("xi-api-key", self.api_key or "")]

    def voice(self, voice: str | None) -> str:
        """The call's voice (``ProcessConfig.voice``), else the configured one."""
        chosen = voice or self.voice_id
        if not chosen:
            raise ModelUnavailableError(
                "no ElevenLabs voice: set ProcessConfig.voice (TextConfig.voice), voice_id= "
                "or ELEVENLABS_VOICE_ID"
            )
        return chosen

    def check_key(self) -> None:
        if not self.api_key:
            raise AuthFailedError(
                "no ElevenLabs API key: pass api_key= to the provider or set ELEVENLABS_API_KEY"
            )


class ElevenLabsTTS(TextToSpeech):
    """ElevenLabs speech synthesis, streaming both ways.

    Works from the environment alone: ``ELEVENLABS_API_KEY`` (sent as ``xi-api-key``),
    ``ELEVENLABS_API_URL`` (default ``https://api.elevenlabs.io``; the WebSocket address is
    derived from it), ``ELEVENLABS_VOICE_ID`` (a call's ``ProcessConfig.voice`` comes
    first, then ``voice_id``). The first of :attr:`produces` is mu-law at 8 kHz, handed to
    a mu-law carrier unchanged.

    Args:
        api_key: The API key.
        voice_id: The voice, unless the call names one.
        model: The model (``eleven_flash_v2_5``: the lowest latency).
        url: The API base (proxies, compatible servers, tests).
        voice_settings: ``stability``, ``similarity_boost``, ``style``,
            ``use_speaker_boost``, ``speed``.
        transport: ``"websocket"`` (the default: streamed text, word timings) or
            ``"http"`` (HTTP streaming, a sentence at a time, for servers that refuse
            WebSockets).
        language_code: ISO 639-1 code, for the models that take one.
        chunk_length_schedule: Characters buffered before each generation (the vendor's
            default: 120, 160, 250, 290); each sentence is flushed as it ends anyway.
        auto_mode: The vendor's ``auto_mode`` (no chunk schedule; for whole sentences).
        inactivity_timeout: Seconds the vendor keeps an idle socket (1-180).
        keepalive_s: Seconds of quiet on the socket after which a keep-alive goes out.
        max_contexts: Contexts open on one socket at most (the vendor allows 5).
        context_close_timeout: How long a response waits for old contexts to close
            before the socket is replaced.
        connect_timeout: Seconds to open a connection.
        reconnect_delays: Delays before each attempt to replace a dropped socket.
        apply_text_normalization: ``"auto"``, ``"on"`` or ``"off"``.
        enable_logging: ``False`` for the vendor's zero-retention mode.
        seed: For (best-effort) deterministic speech.
        max_sentence_chars: Text sent without a sentence end before a flush anyway.
    """

    name = "elevenlabs"
    produces = tuple(p.FORMATS)
    capabilities = Capability.STREAMING | Capability.INPUT_STREAMING | Capability.WORD_TIMINGS

    def __init__(
        self,
        api_key: str | None = None,
        *,
        voice_id: str | None = None,
        model: str = DEFAULT_MODEL,
        url: str | None = None,
        voice_settings: Mapping[str, Any] | None = None,
        transport: Transport = "websocket",
        language_code: str | None = None,
        chunk_length_schedule: Sequence[int] | None = None,
        auto_mode: bool = False,
        inactivity_timeout: int = 180,
        keepalive_s: float = 15.0,
        max_contexts: int = p.MAX_CONTEXTS,
        context_close_timeout: float = 2.0,
        connect_timeout: float = 10.0,
        reconnect_delays: Sequence[float] = (0.0, 0.5, 2.0),
        apply_text_normalization: Literal["auto", "on", "off"] | None = None,
        enable_logging: bool | None = None,
        seed: int | None = None,
        max_sentence_chars: int = 250,
    ) -> None:
        env = os.environ
        if transport not in ("websocket", "http"):
            raise ValueError(f"transport must be 'websocket' or 'http', not {transport!r}")
        if not 1 <= max_contexts <= p.MAX_CONTEXTS:
            raise ValueError(f"max_contexts must be 1-{p.MAX_CONTEXTS}, got {max_contexts}")
        if keepalive_s <= 0 or keepalive_s >= inactivity_timeout:
            raise ValueError("keepalive_s must be positive and less than inactivity_timeout")
        base = url or env.get("ELEVENLABS_API_URL") or DEFAULT_URL
        p.websocket_base(base)  # a bad address fails now, not at the first call
        self._options = _Options(
            api_key=api_key or env.get("ELEVENLABS_API_KEY") or None,
            voice_id=voice_id or env.get("ELEVENLABS_VOICE_ID") or None,
            model=model,
            url=base.rstrip("/"),
            voice_settings=dict(voice_settings) if voice_settings is not None else None,
            transport=transport,
            language_code=language_code,
            chunk_length_schedule=tuple(chunk_length_schedule)
            if chunk_length_schedule is not None
            else None,
            auto_mode=auto_mode,
            inactivity_timeout=inactivity_timeout,
            keepalive_s=keepalive_s,
            max_contexts=max_contexts,
            context_close_timeout=context_close_timeout,
            connect_timeout=connect_timeout,
            reconnect_delays=tuple(reconnect_delays),
            apply_text_normalization=apply_text_normalization,
            enable_logging=enable_logging,
            seed=seed,
            max_sentence_chars=max_sentence_chars,
        )
        p.Settings(  # and so do bad settings
            model=model,
            output_format="ulaw_8000",
            chunk_length_schedule=self._options.chunk_length_schedule,
            inactivity_timeout=inactivity_timeout,
        )
        if transport == "http":  # no WebSocket: a sentence at a time, untimed
            self.capabilities = Capability.STREAMING
        self._http: httpx.AsyncClient | None = None

    @property
    def model(self) -> str:
        return self._options.model

    @property
    def url(self) -> str:
        """The API base."""
        return self._options.url

    @property
    def transport(self) -> Transport:
        return self._options.transport

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model} ({self.transport}) at {self.url}>"

    # --- one stream per call ----------------------------------------------------------------

    @asynccontextmanager
    async def _open_stream(
        self, audio_format: AudioFormat, voice: str | None
    ) -> AsyncIterator[CallStream]:
        options = self._options
        if options.transport != "websocket":
            raise NotImplementedError("streamed text needs the WebSocket transport")
        settings = options.settings(audio_format)
        options.check_key()
        voice_id = options.voice(voice)
        stream_options = StreamOptions(
            url=p.multi_stream_input_url(options.url, voice_id, settings),
            headers=options.headers(),
            voice_id=voice_id,
            model=options.model,
            connect_timeout=options.connect_timeout,
            keepalive_s=options.keepalive_s,
            context_close_timeout=options.context_close_timeout,
            reconnect_delays=options.reconnect_delays,
        )
        protocol = p.MultiStream(
            settings,
            audio_format,
            max_contexts=options.max_contexts,
            max_sentence_chars=options.max_sentence_chars,
        )
        async with CallStream(stream_options, protocol).open() as stream:
            yield stream

    def open_stream(
        self, *, audio_format: AudioFormat, voice: str | None = None
    ) -> AbstractAsyncContextManager[SpeechStream]:
        """One call's ``multi-stream-input`` socket (see :class:`~.stream.CallStream`)."""
        return self._open_stream(audio_format, voice)

    # --- one text at a time -----------------------------------------------------------------

    def synthesize(
        self, text: str, *, audio_format: AudioFormat, voice: str | None = None
    ) -> AsyncIterator[bytes]:
        """Speak ``text``: over a ``stream-input`` socket of its own, or over HTTP
        streaming (``transport="http"``). Raises the typed errors of the contract."""
        return self._synthesize(text, audio_format, voice)

    async def _synthesize(
        self, text: str, audio_format: AudioFormat, voice: str | None
    ) -> AsyncIterator[bytes]:
        options = self._options
        settings = options.settings(audio_format)  # an undeclared format fails here
        if not text.strip():
            return
        options.check_key()
        voice_id = options.voice(voice)
        over = self._over_http if options.transport == "http" else self._over_websocket
        pieces = over(text, settings, voice_id)
        try:
            async for piece in pieces:
                yield piece
        finally:
            await aclose_now(pieces)

    async def _over_websocket(
        self, text: str, settings: p.Settings, voice_id: str
    ) -> AsyncIterator[bytes]:
        options = self._options
        url = p.stream_input_url(options.url, voice_id, settings)
        last_error: p.ErrorMessage | None = None
        try:
            async with connect(
                url, headers=options.headers(), open_timeout=options.connect_timeout
            ) as ws:
                for message in p.single_messages(settings, text):
                    await ws.send(message)
                while True:
                    try:
                        received = await ws.receive()
                    except ConnectionClosed as closed:
                        raise p.close_error(
                            closed.code,
                            closed.reason,
                            last_error,
                            voice_id=voice_id,
                            model=options.model,
                        ) from None
                    try:
                        parsed = p.parse_message(received)
                    except p.MalformedMessage as exc:
                        log.warning("ElevenLabs: %s", exc)
                        continue
                    for item in parsed:
                        if isinstance(item, p.AudioMessage):
                            yield item.audio
                        elif isinstance(item, p.FinalMessage):
                            return
                        elif isinstance(item, p.ErrorMessage):
                            last_error = item
        except HandshakeError as exc:
            raise p.handshake_error(
                exc.status_code,
                exc.body,
                voice_id=voice_id,
                model=options.model,
                retry_after=exc.headers.get("retry-after"),
            ) from exc
        except ConnectError as exc:
            raise ConnectionFailedError(f"cannot reach ElevenLabs at {url}: {exc}") from exc

    async def _over_http(
        self, text: str, settings: p.Settings, voice_id: str
    ) -> AsyncIterator[bytes]:
        options = self._options
        url = p.http_stream_url(options.url, voice_id, settings)
        headers = {"xi-api-key": options.api_key or "", "accept": "audio/*"}
        body = p.http_stream_body(text.strip(), settings)
        try:
            async with self._client().stream("POST", url, json=body, headers=headers) as response:
                if response.status_code != 200:
                    content = bytearray()
                    pieces = response.aiter_raw()
                    async for piece in pieces:
                        content += piece
                        if len(content) >= _MAX_ERROR_BODY:
                            break
                    await _abandon(response, pieces)
                    raise p.http_error(
                        response.status_code,
                        bytes(content[:_MAX_ERROR_BODY]).decode("utf-8", "replace"),
                        voice_id=voice_id,
                        model=options.model,
                        retry_after=response.headers.get("retry-after"),
                    )
                pieces = response.aiter_raw()
                try:
                    async for piece in pieces:
                        if piece:
                            yield piece
                finally:
                    await _abandon(response, pieces)
        except httpx.HTTPError as exc:
            raise ConnectionFailedError(f"ElevenLabs at {url} failed: {exc!r}") from exc

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            timeout = httpx.Timeout(self._options.connect_timeout, read=30.0)
            self._http = httpx.AsyncClient(timeout=timeout)
        return self._http

    async def aclose(self) -> None:
        """Close the HTTP connection pool (sockets belong to their calls)."""
        client, self._http = self._http, None
        if client is not None:
            with anyio.CancelScope(shield=True):
                await client.aclose()


async def _abandon(response: httpx.Response, pieces: AsyncIterator[bytes]) -> None:
    """Stop reading a response now: its connection is closed, and its body's iterators
    (httpx's chain of async generators) run to their end on the closed connection rather
    than being left for the garbage collector."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_WITHIN):
        await response.aclose()
        with contextlib.suppress(httpx.HTTPError, anyio.ClosedResourceError):
            async for _ in pieces:
                pass
