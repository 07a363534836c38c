"""The ``deepgram`` speech-to-text provider: the I/O shell around the sans-IO protocol.

One recognition stream runs in one task group: the caller's audio (into a
:class:`~omnivoice.realtime.CallerAudio` that keeps what Deepgram has not answered for
yet), and per WebSocket connection a receive loop, the ``KeepAlive`` timer and the close at
the end. A connection that drops is replaced with the same parameters, and the replacement
hears again the audio no final result covered. Flux streams get silence while the line is
quiet, so that their turns always end. See ``docs/providers/deepgram.md``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from omnivoice.audio import g711
from omnivoice.audio.format import AudioFormat, Encoding
from omnivoice.errors import (
    AuthFailedError,
    ConfigurationError,
    ConnectionFailedError,
    OmnivoiceError,
    UnsupportedFormatError,
    describe_error,
    unwrap_error,
)
from omnivoice.net import ConnectError, ConnectionClosed, HandshakeError, WebSocket, connect
from omnivoice.pipeline.contracts import SpeechToText, STTEvent
from omnivoice.realtime import CallerAudio, Overflow, serve_session
from omnivoice.registration import Capability
from omnivoice_deepgram_stt import protocol as p
from omnivoice_deepgram_stt.turns import Recognition

__all__ = ["FORMATS", "DeepgramSTT"]

log = logging.getLogger(__name__)

FORMATS: tuple[AudioFormat, ...] = (
    AudioFormat(Encoding.MULAW, 8000),
    AudioFormat(Encoding.ALAW, 8000),
    AudioFormat(Encoding.PCM16, 8000),
    AudioFormat(Encoding.PCM16, 16000),
    AudioFormat(Encoding.PCM16, 24000),
    AudioFormat(Encoding.PCM16, 48000),
)
"""The carrier's G.711 first (sent as it comes), then PCM16 (``linear16``)."""

_EVENTS = 64
"""Events waiting for the pipeline."""
_STABLE_S = 5.0
"""A connection that lasts less than this counts towards giving up."""
_MAX_SHORT_LIVED = 3
_FILL_AFTER_S = 0.3
"""Flux: the caller's audio has stopped this long: silence goes instead."""
_FILL_MS = 100
_CLOSE_NOW_S = 1.0
"""Leaving a stream early: the longest wait to send ``CloseStream``."""
_LOGGED_PER_KIND = 3
"""Unknown or malformed messages logged as warnings per kind and stream; then debug."""


def _default_url(model: str) -> str:
    return p.FLUX_URL if p.is_flux(model) else p.DEFAULT_URL


def _flux_threshold(name: str, value: float | None, low: float, high: float) -> float | None:
    if value is not None and not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


@attrs.frozen
class _Options:
    api_key: str | None
    model: str
    language: str | None
    url: str
    endpointing_ms: int | None
    utterance_end_ms: int | None
    interim_results: bool
    vad_events: bool
    smart_format: bool
    punctuate: bool
    keyterms: tuple[str, ...]
    eot_threshold: float | None
    eager_eot_threshold: float | None
    eot_timeout_ms: int | None
    params: Mapping[str, p.ParamValue]
    keepalive_s: float
    connect_timeout: float
    close_timeout: float
    replay_ms: int
    reconnect_delays: tuple[float, ...]

    @property
    def flux(self) -> bool:
        return p.is_flux(self.model)

    def query(self, audio_format: AudioFormat) -> dict[str, p.ParamValue | None]:
        """The query parameters of a stream in ``audio_format``, as Deepgram names them."""
        common: dict[str, p.ParamValue | None] = {
            "model": self.model,
            "encoding": p.encoding_name(audio_format),
            "sample_rate": audio_format.sample_rate,
        }
        if self.flux:
            params: dict[str, p.ParamValue | None] = {
                **common,
                "eot_threshold": self.eot_threshold,
                "eager_eot_threshold": self.eager_eot_threshold,
                "eot_timeout_ms": self.eot_timeout_ms,
                "language_hint": self.language,
                "keyterm": self.keyterms or None,
            }
        else:
            params = {
                **common,
                "channels": audio_format.channels,
                "language": self.language,
                "interim_results": self.interim_results,
                "endpointing": self.endpointing_ms if self.endpointing_ms is not None else False,
                "utterance_end_ms": self.utterance_end_ms,
                "vad_events": self.vad_events,
                "smart_format": self.smart_format,
                "punctuate": self.punctuate,
                "keyterm": self.keyterms or None,
            }
        params.update(self.params)
        return params

    def endpoint(self, audio_format: AudioFormat) -> str:
        separator = "&" if "?" in self.url else "?"
        return self.url + separator + p.query_string(self.query(audio_format))


class DeepgramSTT(SpeechToText):
    """Deepgram live transcription (Nova on ``/v1/listen``, Flux on ``/v2/listen``).

    The key comes from ``api_key`` or ``DEEPGRAM_API_KEY`` (sent as ``Authorization: Token
    <key>``); the endpoint is ``url``, else ``DEEPGRAM_URL``, else Deepgram's own for the
    model (``wss://api.deepgram.com/v1/listen``, or ``/v2/listen`` for a ``flux-`` model),
    used whole. The carrier's mu-law goes to Deepgram unchanged
    (``encoding=mulaw&sample_rate=8000``).

    Nova options, sent as the query parameters of the same names: ``endpointing_ms``
    (``endpointing``; ``None`` sends ``false``), ``utterance_end_ms`` (``None``: not sent;
    needs ``interim_results``), ``interim_results``, ``vad_events`` (``SpeechStarted``, the
    early barge-in signal), ``smart_format``, ``punctuate``, ``language``, ``keyterms``
    (one ``keyterm`` each). Flux options (``model="flux-general-en"`` or
    ``"flux-general-multi"``): ``eot_threshold``, ``eager_eot_threshold`` (speculative ends
    of turns, off unless set), ``eot_timeout_ms``, ``keyterms``, ``language`` (sent as
    ``language_hint``). ``params`` adds any other documented parameter as it is
    (``{"numerals": True, "tag": ["support"]}``).

    ``keepalive_s``: a ``KeepAlive`` goes after this long without anything sent (Deepgram
    closes a silent stream after 10 s). ``replay_ms`` bounds the audio kept for a
    replacement connection (the part not answered for yet) and the audio held while none
    is open. ``reconnect_delays``: the waits before each attempt to replace a dropped
    connection; when all fail, the stream ends with the last error.
    """

    name = "deepgram"
    accepts = FORMATS
    capabilities = Capability.USER_TRANSCRIPTS | Capability.SPEECH_EVENTS | Capability.STREAMING

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str = "nova-3",
        language: str | None = None,
        url: str | None = None,
        endpointing_ms: int | None = 300,
        utterance_end_ms: int | None = 1000,
        interim_results: bool = True,
        vad_events: bool = True,
        smart_format: bool = False,
        punctuate: bool = True,
        keyterms: Sequence[str] = (),
        eot_threshold: float | None = None,
        eager_eot_threshold: float | None = None,
        eot_timeout_ms: int | None = None,
        params: Mapping[str, p.ParamValue] | None = None,
        keepalive_s: float = 3.0,
        connect_timeout: float = 10.0,
        close_timeout: float = 5.0,
        replay_ms: int = 30_000,
        reconnect_delays: Sequence[float] = (0.0, 0.5, 2.0),
    ) -> None:
        if isinstance(keyterms, str):
            raise TypeError("keyterms is a sequence of terms, not one string")
        if utterance_end_ms is not None and not interim_results and not p.is_flux(model):
            raise ValueError("utterance_end_ms needs interim_results=True")
        if not 0 < keepalive_s < 10:
            raise ValueError(f"keepalive_s must be between 0 and 10 (exclusive), got {keepalive_s}")
        if replay_ms < 0 or connect_timeout <= 0 or close_timeout <= 0:
            raise ValueError("replay_ms must not be negative, the timeouts must be positive")
        eot = _flux_threshold("eot_threshold", eot_threshold, 0.5, 1.0)
        eager = _flux_threshold("eager_eot_threshold", eager_eot_threshold, 0.3, 0.9)
        if eager is not None and eager > (eot if eot is not None else 0.7):
            raise ValueError("eager_eot_threshold must not exceed eot_threshold (default 0.7)")
        env = os.environ
        self._options = _Options(
            api_key=api_key or env.get("DEEPGRAM_API_KEY") or None,
            model=model,
            language=language,
            url=url or env.get("DEEPGRAM_URL") or _default_url(model),
            endpointing_ms=endpointing_ms,
            utterance_end_ms=utterance_end_ms,
            interim_results=interim_results,
            vad_events=vad_events,
            smart_format=smart_format,
            punctuate=punctuate,
            keyterms=tuple(keyterms),
            eot_threshold=eot,
            eager_eot_threshold=eager,
            eot_timeout_ms=eot_timeout_ms,
            params=dict(params or {}),
            keepalive_s=keepalive_s,
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            replay_ms=replay_ms,
            reconnect_delays=tuple(reconnect_delays) or (0.0,),
        )
        flux = self._options.flux
        capabilities = Capability.USER_TRANSCRIPTS
        if flux or endpointing_ms is not None or utterance_end_ms is not None:
            capabilities |= Capability.SPEECH_EVENTS
        if flux or interim_results:
            capabilities |= Capability.STREAMING
        self.capabilities = capabilities
        self.stats: Counter[str] = Counter()
        """Totals over the streams that have ended (see the stream's ``stats``)."""

    @property
    def model(self) -> str:
        return self._options.model

    @property
    def url(self) -> str:
        return self._options.url

    def endpoint(self, audio_format: AudioFormat) -> str:
        """The URL a stream in ``audio_format`` connects to, query parameters included."""
        return self._options.endpoint(audio_format)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model} at {self.url}>"

    @asynccontextmanager
    async def transcribe(
        self, audio_in: AsyncIterable[bytes], *, audio_format: AudioFormat
    ) -> AsyncIterator[AsyncIterator[STTEvent]]:
        """Stream ``audio_in`` to Deepgram; yield its transcripts and turns.

        Raises on entry: ``UnsupportedFormatError`` for a format not in :attr:`accepts`,
        ``AuthFailedError`` without a key or for one Deepgram refuses (401/403/402),
        ``ConfigurationError`` naming the parameter Deepgram refused (400),
        ``RateLimitedError`` (429), ``ConnectionFailedError`` for anything else. A stream
        that fails for good later raises from its iteration.
        """
        if audio_format not in self.accepts:
            accepted = ", ".join(str(f) for f in self.accepts)
            raise UnsupportedFormatError(f"Deepgram takes {accepted}; not {audio_format}")
        if not self._options.api_key:
            raise AuthFailedError(
                "no Deepgram API key: pass api_key= to the provider or set DEEPGRAM_API_KEY"
            )
        stream = _Stream(self._options, audio_in, audio_format, self.capabilities)
        try:
            async with serve_session(stream, stream.run, name=self.name) as served:
                yield served
        finally:
            stream.discard()
            self.stats.update(stream.stats)

    async def finalize(self, stream: AsyncIterator[STTEvent]) -> None:
        """``Finalize`` (Flux: ``ForceEndTurn``) on one of this provider's streams."""
        if isinstance(stream, _Stream):
            await stream.finalize()


# --- one recognition stream ------------------------------------------------------------------


@attrs.frozen
class _Failure:
    error: OmnivoiceError


@attrs.define(eq=False)
class _Connection:
    """One WebSocket serving the stream."""

    ws: WebSocket
    opened_at: float
    last_sent: float
    scope: anyio.CancelScope = attrs.Factory(anyio.CancelScope)
    attached: anyio.Event = attrs.Factory(anyio.Event)
    ended: anyio.Event = attrs.Factory(anyio.Event)
    accepts_audio: bool = True
    close_sent: bool = False
    finished: bool = False
    """It ended as a stream should: Deepgram closed it after our ``CloseStream``."""
    error: ConnectionFailedError | None = None
    recoverable: bool = True


class _Stamped:
    """The caller's audio, noting when its last chunk came (an iterator, not a generator:
    nothing to finalise when the stream is left early)."""

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self._source = aiter(source)
        self.last = anyio.current_time()

    def __aiter__(self) -> _Stamped:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self._source)
        self.last = anyio.current_time()
        return chunk


class _Stream:
    """One recognition stream: an async iterator of events (what ``transcribe`` yields)."""

    def __init__(
        self,
        options: _Options,
        audio_in: AsyncIterable[bytes],
        audio_format: AudioFormat,
        capabilities: Capability,
    ) -> None:
        self._options = options
        self._format = audio_format
        self._audio = _Stamped(audio_in)
        self._url = options.endpoint(audio_format)
        self._headers = [("Authorization", f"Token {options.api_key}")]
        query = options.query(audio_format)
        self._param_names = [name for name, value in query.items() if value is not None]
        self._out_tx: MemoryObjectSendStream[STTEvent | _Failure]
        self._out_rx: MemoryObjectReceiveStream[STTEvent | _Failure]
        self._out_tx, self._out_rx = anyio.create_memory_object_stream[STTEvent | _Failure](_EVENTS)
        # Held while no connection takes it; kept until answered for, for a replacement.
        self._caller = CallerAudio(
            audio_format,
            hold_ms=options.replay_ms,
            retain_ms=options.replay_ms,
            overflow=Overflow.DROP_OLDEST,
        )
        self._recognition = Recognition(
            speech_events=bool(capabilities & Capability.SPEECH_EVENTS),
            endpointing_ms=options.endpointing_ms,
            utterance_end_ms=options.utterance_end_ms,
        )
        self._conn: _Connection | None = None
        self._short_lived = 0
        self._logged: Counter[str] = Counter()
        self.reconnects = 0
        self.keepalives = 0
        self.filled_bytes = 0
        """Flux: silence sent while the caller's audio had stopped."""
        self.request_ids: list[str] = []

    # --- what the pipeline sees ----------------------------------------------------------

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> STTEvent:
        try:
            item = await self._out_rx.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        if isinstance(item, _Failure):
            raise item.error
        return item

    async def aclose(self) -> None:
        self._out_rx.close()

    def discard(self) -> None:
        """The stream is over: drop what the pipeline did not read."""
        self._out_tx.close()
        self._out_rx.close()

    async def finalize(self) -> None:
        conn = self._conn
        if conn is None or not conn.accepts_audio or conn.close_sent:
            return
        self._recognition.finalize_sent()
        await self._send_text(conn, p.FORCE_END_TURN if self._options.flux else p.FINALIZE)

    @property
    def stats(self) -> dict[str, int]:
        """Counters: reconnections, keep-alives, unknown/malformed/error messages, audio."""
        recognition, caller = self._recognition, self._caller
        return {
            "reconnects": self.reconnects,
            "keepalives": self.keepalives,
            "unknown_messages": sum(recognition.unknown.values()),
            "malformed_messages": recognition.malformed,
            "error_messages": recognition.errors,
            "sent_bytes": caller.delivered_bytes,
            "filled_bytes": self.filled_bytes,
            "dropped_bytes": caller.dropped_bytes + caller.unanswered_dropped_bytes,
        }

    # --- the stream's life ---------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Open the first connection (its failure is raised as itself), report started,
        then serve until Deepgram has answered for all the audio, or fail for good."""
        started = False
        try:
            async with anyio.create_task_group() as tasks:
                conn = await tasks.start(self._connection)
                tasks.start_soon(self._caller.pump, self._audio)
                if self._options.flux:
                    tasks.start_soon(self._fill_silence)
                await self._attach(conn)
                task_status.started()
                started = True
                await self._serve(tasks, conn)
                tasks.cancel_scope.cancel()
        except Exception as exc:
            if not started:
                raise
            error = unwrap_error(exc)
            log.exception("the Deepgram stream failed")
            if not isinstance(error, OmnivoiceError):
                error = OmnivoiceError(f"the Deepgram stream failed: {describe_error(error)}")
            await self._fail(error)
        finally:
            self._out_tx.close()

    async def _serve(self, tasks: anyio.abc.TaskGroup, conn: _Connection) -> None:
        while True:
            await conn.ended.wait()
            if conn.finished:
                return
            lived = anyio.current_time() - conn.opened_at
            self._short_lived = self._short_lived + 1 if lived < _STABLE_S else 0
            error = conn.error or ConnectionFailedError("the Deepgram connection ended")
            if not conn.recoverable or self._short_lived > _MAX_SHORT_LIVED:
                await self._fail(error)
                return
            log.warning("Deepgram connection lost (%s); reconnecting", error)
            replacement = await self._reconnect(tasks, error)
            if isinstance(replacement, ConnectionFailedError):
                await self._fail(replacement)
                return
            conn = replacement
            await self._attach(conn)

    async def _reconnect(
        self, tasks: anyio.abc.TaskGroup, failure: ConnectionFailedError
    ) -> _Connection | ConnectionFailedError:
        for delay in self._options.reconnect_delays:
            await anyio.sleep(delay)
            try:
                conn: _Connection = await tasks.start(self._connection)
            except ConnectionFailedError as exc:
                failure = exc
                log.warning("reconnecting to Deepgram failed: %s", exc)
                if isinstance(exc, AuthFailedError | ConfigurationError):
                    break  # trying again cannot help
            else:
                self.reconnects += 1
                return conn
        return failure

    async def _attach(self, conn: _Connection) -> None:
        """Make ``conn`` the stream's connection: the unanswered audio first, then the rest."""

        async def before() -> None:
            # Its clock starts where the audio it hears again starts.
            self._conn = conn
            self._recognition.connection_opened(self._seconds(self._caller.answered_bytes))

        sink = functools.partial(self._deliver, conn)
        if await self._caller.attach(sink, replay_unanswered=True, before=before):
            conn.attached.set()

    async def _fail(self, error: OmnivoiceError) -> None:
        log.error("Deepgram stream failed: %s", error)
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._out_tx.send(_Failure(error))  # unless nobody listens any more

    # --- one connection ------------------------------------------------------------------

    async def _connection(self, *, task_status: anyio.abc.TaskStatus[_Connection]) -> None:
        """Open one connection, report it, serve it until it ends (never raises then)."""
        options = self._options
        try:
            async with connect(
                self._url, headers=self._headers, open_timeout=options.connect_timeout
            ) as ws:
                now = anyio.current_time()
                conn = _Connection(ws, opened_at=now, last_sent=now)
                request_id = ws.response_headers.get("dg-request-id")
                if request_id:
                    self.request_ids.append(request_id)
                task_status.started(conn)
                try:
                    with conn.scope:
                        async with anyio.create_task_group() as tasks:
                            if not options.flux:
                                tasks.start_soon(self._keep_alive, conn)
                            tasks.start_soon(self._close_when_done, conn)
                            await self._receive(conn)
                            tasks.cancel_scope.cancel()
                finally:
                    conn.accepts_audio = False
                    conn.ended.set()
                    if not conn.close_sent and ws.close_code is None:
                        await _close_stream_now(ws)
        except HandshakeError as exc:
            raise p.handshake_error(
                exc.status_code, exc.headers, exc.body, self._param_names
            ) from exc
        except ConnectError as exc:
            raise ConnectionFailedError(f"cannot reach Deepgram at {options.url}: {exc}") from exc

    async def _receive(self, conn: _Connection) -> None:
        recognition = self._recognition
        try:
            async for message in conn.ws:
                if not isinstance(message, str):
                    recognition.receive(p.Unknown("binary frame"))
                    self._note(p.Unknown("binary frame"))
                    continue
                parsed = p.parse(message)
                self._note(parsed)
                answered = recognition.answered
                for event in recognition.receive(parsed):
                    await self._emit(event)
                if recognition.answered != answered:
                    self._caller.acknowledge(round(recognition.answered * self._bytes_per_s))
            code, reason = conn.ws.close_code or 1000, conn.ws.close_reason or ""
        except ConnectionClosed as exc:
            code, reason = exc.code, exc.reason
        conn.accepts_audio = False
        if conn.close_sent and code == 1000:
            conn.finished = True
            return
        conn.error = p.close_error(code, reason)
        conn.recoverable = p.recoverable_close(code, reason)

    async def _keep_alive(self, conn: _Connection) -> None:
        """``KeepAlive`` whenever nothing has been sent for ``keepalive_s``."""
        interval = self._options.keepalive_s
        while not conn.close_sent:
            due = conn.last_sent + interval
            now = anyio.current_time()
            if now < due:
                await anyio.sleep(due - now)
                continue
            if not await self._send_text(conn, p.KEEP_ALIVE):
                return
            self.keepalives += 1

    async def _close_when_done(self, conn: _Connection) -> None:
        """Once the caller's audio is over and all of it went out: ``CloseStream``, then at
        most ``close_timeout`` for the last results (and ``Metadata``) and Deepgram's close."""
        await conn.attached.wait()
        await self._caller.wait_ended()
        if not self._caller.finished or not conn.accepts_audio:
            return  # this connection is going: the next one closes the stream
        conn.close_sent = True
        await self._send_text(conn, p.CLOSE_STREAM)
        with anyio.move_on_after(self._options.close_timeout):
            await conn.ended.wait()
            return
        log.warning(
            "Deepgram did not close the stream within %g s of CloseStream",
            self._options.close_timeout,
        )
        conn.finished = True
        conn.scope.cancel()

    async def _fill_silence(self) -> None:
        """Flux: while the caller's audio has stopped (a held call), silence in real time."""
        frame = _silence(self._format, _FILL_MS)
        while not self._caller.ended:
            quiet_from = self._audio.last + _FILL_AFTER_S
            now = anyio.current_time()
            if now < quiet_from:
                await anyio.sleep(quiet_from - now)
                continue
            await self._caller.send(frame)
            self.filled_bytes += len(frame)
            await anyio.sleep(_FILL_MS / 1000)

    # --- helpers -------------------------------------------------------------------------

    @property
    def _bytes_per_s(self) -> int:
        return self._format.bytes_per_second

    def _seconds(self, n_bytes: int) -> float:
        return n_bytes / self._bytes_per_s

    async def _deliver(self, conn: _Connection, chunk: bytes) -> bool:
        """The caller's audio to ``conn``; ``False`` once it takes no more (then held)."""
        if not conn.accepts_audio:
            return False
        try:
            await conn.ws.send(chunk)
        except ConnectionClosed:
            conn.accepts_audio = False
            return False
        conn.last_sent = anyio.current_time()
        return True

    async def _send_text(self, conn: _Connection, message: str) -> bool:
        try:
            await conn.ws.send(message)
        except ConnectionClosed:
            conn.accepts_audio = False
            return False  # its receive loop sees the close
        conn.last_sent = anyio.current_time()
        return True

    async def _emit(self, event: STTEvent) -> None:
        # If the pipeline stopped listening, leaving the block ends the stream.
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._out_tx.send(event)

    def _note(self, message: p.ServerMessage) -> None:
        """Log what Deepgram sent that is not a result (each kind a few times loudly)."""
        if isinstance(message, p.ServerError | p.ServerWarning):
            log.warning("Deepgram: %s %s", message.code, message.description)
        elif isinstance(message, p.Unknown | p.Malformed):
            kind = message.type if isinstance(message, p.Unknown) else "malformed"
            self._logged[kind] += 1
            level = logging.WARNING if self._logged[kind] <= _LOGGED_PER_KIND else logging.DEBUG
            log.log(level, "Deepgram sent an unexpected message (%s): %s", kind, message)
        elif isinstance(message, p.Metadata):
            log.debug("Deepgram stream %s: %.2f s of audio", message.request_id, message.duration)


async def _close_stream_now(ws: WebSocket) -> None:
    """Leaving early (the call hung up): tell Deepgram the stream is over, even while
    cancelled, without waiting for its last results."""
    with anyio.move_on_after(_CLOSE_NOW_S, shield=True), contextlib.suppress(ConnectionClosed):
        await ws.send(p.CLOSE_STREAM)


def _silence(audio_format: AudioFormat, ms: int) -> bytes:
    pcm = bytes(audio_format.bytes_per_frame(ms) // audio_format.encoding.sample_width * 2)
    if audio_format.encoding is Encoding.PCM16:
        return pcm
    return g711.encode(pcm, audio_format.encoding)
