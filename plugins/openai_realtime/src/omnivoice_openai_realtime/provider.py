"""The OpenAI Realtime provider: one call's session over the project's WebSocket client.

A session runs in one task group: a receive loop per WebSocket connection, one task that
forwards the caller's audio, one task per running function call, and the renewal of the
server session before its time limit. Events reach the consumer through a bounded memory
stream, so a slow consumer slows the receive loop down and nothing is ever dropped.

See ``docs/providers/openai-realtime.md`` for the options, the event mapping, the error
mapping and how interruptions, function calls and long calls are handled.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import anyio.abc
import attrs

from omnivoice.audio.format import OPENAI, TWILIO, AudioFormat, Encoding
from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    OmnivoiceError,
    RateLimitedError,
)
from omnivoice.net import ConnectError, ConnectionClosed, HandshakeError, WebSocket, connect
from omnivoice.realtime import (
    AudioChunk,
    CallerAudio,
    Capability,
    ConversationLog,
    EventChannel,
    FunctionCall,
    HeardResponse,
    ProcessConfig,
    ProviderError,
    ProviderEvent,
    ProviderSwitched,
    RealtimeSession,
    SpeechStarted,
    SpeechStopped,
    Transcript,
    Usage,
    must_complete,
    run_function_call,
    serve_session,
    with_extensions,
)
from omnivoice.realtime.provider import Provider as _ProviderBase
from omnivoice_openai_realtime import protocol as p

__all__ = ["FORMATS", "OpenAIRealtimeProvider", "Provider"]

log = logging.getLogger(__name__)

FORMATS: tuple[AudioFormat, ...] = (TWILIO, AudioFormat(Encoding.ALAW, 8000), OPENAI)
"""G.711 mu-law and A-law at 8 kHz (passed straight through from a phone line) and PCM16
at 24 kHz, both ways."""

_DEFAULT_MODEL = "gpt-realtime"
_DEFAULT_TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe"
# Close codes after which the server session can be resumed in a new one (the same set
# the vendor's own SDK reconnects on); any other close ends the call.
_RECOVERABLE_CLOSE = frozenset({1001, 1005, 1006, 1011, 1012, 1013, 1015})
# Races the client cannot avoid (cancelling a response the server just finished, asking
# for one just as the server started its own): logged, never reported as call errors.
_BENIGN_CODES = frozenset(
    {"response_cancel_not_active", "conversation_already_has_active_response"}
)
_CANCELLED_OUTPUT = json.dumps({"error": "cancelled: the caller interrupted"})
_PREROLL_MS = 500
"""Caller audio replayed to a new session at a switch: more than the server VAD's onset
latency, so speech that began just before the switch reaches the new session whole."""
_HOLD_S = 10.0
"""Caller audio held while no session can take it; beyond that the audio input waits."""
_RECONNECT_DELAYS = (0.0, 0.5, 2.0)
"""Delays before each attempt to open a replacement session."""
_RETRY_RENEWAL_S = 30.0
_SHORT_LIVED_S = 5.0
"""A session that closes sooner than this after opening counts towards giving up."""
_DRAIN_TIMEOUT_S = 10.0
"""After the caller's audio ends: the longest wait for the agent to finish speaking."""
_MAX_ENTRIES = 1000
"""Utterances remembered for a renewal's context (far more than ``history_limit`` holds)."""
_RECENT_RESPONSES = 16
"""Responses whose audio items an interruption can still truncate."""


def _api(value: str) -> p.Api:
    if value not in ("ga", "beta"):
        raise ValueError(f"api must be 'ga' or 'beta', not {value!r}")
    return cast(p.Api, value)


def _turn_detection(value: str | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if value is None or isinstance(value, Mapping):
        return value
    if value == "server_vad":
        return p.SERVER_VAD
    if value == "semantic_vad":
        return p.SEMANTIC_VAD
    raise ValueError(
        f"turn_detection must be 'server_vad', 'semantic_vad', a dict or None, not {value!r}"
    )


@attrs.frozen
class _Options:
    """Everything a session is configured with, before the call's ProcessConfig."""

    api_key: str | None
    model: str
    voice: str | None
    instructions: str | None
    url: str
    api: p.Api = attrs.field(converter=_api)
    turn_detection: Mapping[str, Any] | None = attrs.field(converter=_turn_detection)
    transcription_model: str | None
    transcription_language: str | None
    noise_reduction: str | None
    speed: float | None
    temperature: float | None
    session_options: Mapping[str, Any]
    organization: str | None
    project: str | None
    session_limit: float
    renewal_margin: float
    history_limit: int
    connect_timeout: float
    event_buffer: int

    def endpoint(self) -> str:
        parts = urlsplit(self.url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        if not any(name == "model" for name, _ in query):
            query.append(("model", self.model))
        return urlunsplit(parts._replace(query=urlencode(query)))

    def headers(self) -> list[tuple[str, str]]:
        headers = [("Authorization", f"Bearer {self.api_key}")]
        if self.api == "beta":
            headers.append(("OpenAI-Beta", "realtime=v1"))
        if self.organization:
            headers.append(("OpenAI-Organization", self.organization))
        if self.project:
            headers.append(("OpenAI-Project", self.project))
        return headers

    def settings(
        self, config: ProcessConfig, input_format: AudioFormat, output_format: AudioFormat
    ) -> p.SessionSettings:
        transcription: dict[str, Any] | None = None
        if self.transcription_model:
            transcription = {"model": self.transcription_model}
            if self.transcription_language:
                transcription["language"] = self.transcription_language
        temperature = config.temperature if config.temperature is not None else self.temperature
        if temperature is not None and self.api == "ga":
            log.debug("the GA interface has no temperature: %s is not sent", temperature)
            temperature = None
        return p.SessionSettings(
            api=self.api,
            input_format=input_format,
            output_format=output_format,
            instructions=config.instructions
            if config.instructions is not None
            else self.instructions,
            voice=config.voice or self.voice,
            turn_detection=self.turn_detection,
            transcription=transcription,
            noise_reduction=self.noise_reduction,
            tools=config.functions,
            temperature=temperature,
            speed=self.speed,
            extra=self.session_options,
        )


class OpenAIRealtimeProvider(_ProviderBase):
    """OpenAI Realtime (``gpt-realtime`` and friends) as an omnivoice provider.

    Every argument has an environment fallback or a default, so ``OpenAIRealtimeProvider()``
    works from
    the environment alone: ``OPENAI_API_KEY``, ``OPENAI_REALTIME_URL`` (default
    ``wss://api.openai.com/v1/realtime``), ``OPENAI_REALTIME_MODEL`` (default
    ``gpt-realtime``) and ``OPENAI_REALTIME_API`` (``ga``, the default, or ``beta``).
    Options apply to every session; a call's :class:`~omnivoice.realtime.ProcessConfig`
    overrides ``instructions``, ``voice`` and ``temperature``, and its ``extensions`` may
    override any other option by name (``{"turn_detection": "semantic_vad"}``).

    Args:
        api_key: The API key (or an ephemeral ``ek_`` client secret).
        model: The realtime model, sent as the ``model`` query parameter.
        voice: The agent's voice (``alloy``, ``marin``, ``cedar``...).
        instructions: The system prompt.
        url: The WebSocket endpoint (proxies, compatible servers, tests).
        api: ``"ga"`` or ``"beta"`` (``OpenAI-Beta: realtime=v1`` and its event names).
        turn_detection: ``"server_vad"`` (default), ``"semantic_vad"``, a full
            ``turn_detection`` object, or ``None`` for no automatic turns.
        transcription_model: Model that transcribes the caller (``None``: no user
            transcripts).
        transcription_language: ISO-639-1 hint for the caller's language.
        noise_reduction: ``"near_field"`` or ``"far_field"`` input noise reduction.
        speed: The agent's speaking speed (0.25 to 1.5).
        temperature: Sampling temperature (beta interface only).
        session_options: More ``session`` fields, merged into every ``session.update``.
        organization: ``OpenAI-Organization`` header (default ``OPENAI_ORG_ID``).
        project: ``OpenAI-Project`` header (default ``OPENAI_PROJECT_ID``).
        session_limit: The server's session time limit, in seconds (60 minutes).
        renewal_margin: Renew the session this many seconds before the limit.
        history_limit: Characters of conversation replayed to a renewed session.
        connect_timeout: Seconds to open a session (connection and configuration).
        event_buffer: Events buffered for the consumer before the session waits for it.
    """

    name = "openai-realtime"
    accepts = FORMATS
    produces = FORMATS
    capabilities = (
        Capability.FUNCTION_CALLING
        | Capability.TRANSCRIPTS
        | Capability.SPEECH_EVENTS
        | Capability.INTERRUPTION
        | Capability.TRUNCATION
        | Capability.HISTORY
        | Capability.STREAMING
    )

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str | None = None,
        voice: str | None = "alloy",
        instructions: str | None = None,
        url: str | None = None,
        api: Literal["ga", "beta"] | None = None,
        turn_detection: str | Mapping[str, Any] | None = "server_vad",
        transcription_model: str | None = _DEFAULT_TRANSCRIPTION_MODEL,
        transcription_language: str | None = None,
        noise_reduction: str | None = None,
        speed: float | None = None,
        temperature: float | None = None,
        session_options: Mapping[str, Any] | None = None,
        organization: str | None = None,
        project: str | None = None,
        session_limit: float = 3600.0,
        renewal_margin: float = 300.0,
        history_limit: int = 16000,
        connect_timeout: float = 10.0,
        event_buffer: int = 256,
    ) -> None:
        env = os.environ
        if session_limit <= 0 or not 0 <= renewal_margin < session_limit:
            raise ValueError("need session_limit > 0 and 0 <= renewal_margin < session_limit")
        if event_buffer < 1:
            raise ValueError("event_buffer must be at least 1")
        self._options = _Options(
            api_key=api_key or env.get("OPENAI_API_KEY") or None,
            model=model or env.get("OPENAI_REALTIME_MODEL") or _DEFAULT_MODEL,
            voice=voice,
            instructions=instructions,
            url=url or env.get("OPENAI_REALTIME_URL") or p.DEFAULT_URL,
            api=api or env.get("OPENAI_REALTIME_API") or "ga",
            turn_detection=turn_detection,
            transcription_model=transcription_model,
            transcription_language=transcription_language,
            noise_reduction=noise_reduction,
            speed=speed,
            temperature=temperature,
            session_options=dict(session_options or {}),
            organization=organization or env.get("OPENAI_ORG_ID") or None,
            project=project or env.get("OPENAI_PROJECT_ID") or None,
            session_limit=session_limit,
            renewal_margin=renewal_margin,
            history_limit=history_limit,
            connect_timeout=connect_timeout,
            event_buffer=event_buffer,
        )
        if turn_detection is None:  # the caller's turns are the application's to take
            self.capabilities &= ~Capability.SPEECH_EVENTS

    @property
    def model(self) -> str:
        return self._options.model

    @property
    def api(self) -> p.Api:
        return self._options.api

    @property
    def endpoint(self) -> str:
        """The URL sessions connect to, model included."""
        return self._options.endpoint()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name} {self.model} ({self.api}) at {self._options.url}>"
        )

    @asynccontextmanager
    async def open_session(
        self,
        audio_in: AsyncIterable[bytes],
        config: ProcessConfig,
        *,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> AsyncIterator[RealtimeSession]:
        options = with_extensions(self._options, config)
        if not options.api_key:
            raise AuthFailedError(
                "no OpenAI API key: pass api_key= to the provider or set OPENAI_API_KEY"
            )
        session = _Session(self.name, options, config, audio_in, input_format, output_format)
        async with serve_session(session, session.run, events=session.events, name=self.name):
            yield session


Provider = OpenAIRealtimeProvider
"""The plugin's provider under the short name every provider plugin exports."""


# --- one call -------------------------------------------------------------------------------


@attrs.define(eq=False)
class _Connection:
    """One server session (one WebSocket) and what the client knows of its state."""

    ws: WebSocket
    session_id: str
    opened_at: float
    renew_at: float
    """anyio time at which to renew it (before the server's limit)."""
    alive: bool = True
    accepts_audio: bool = True
    retired: bool = False
    """Replaced by a newer session: its events are ignored."""
    expired: bool = False
    fatal: OmnivoiceError | None = None
    close: tuple[int, str] = (1006, "")
    response_id: str | None = None
    """The response in progress."""
    cancel_sent: bool = False
    user_speaking: bool = False
    awaiting_response: bool = False
    """The caller's turn ended; the server is about to respond."""
    pending_transcripts: set[str] = attrs.field(factory=set)
    deferred_continue: bool = False
    """Function answers arrived during a response: ask for another once it is done."""
    playback_end: float = 0.0
    """When the caller will have heard the agent audio received so far, if played in real
    time from its arrival: chooses when to switch sessions, never what to truncate."""


@attrs.define(eq=False)
class _Response:
    id: str
    announced: bool = False
    """Audio or text of it reached the consumer: it owes the consumer a final chunk."""
    final_sent: bool = False
    interrupted: bool = False
    open_texts: list[str] = attrs.field(factory=list)
    """Its agent items whose transcript has not finished."""


@attrs.define(eq=False)
class _AudioItem:
    """The assistant item whose audio was heard last: what an interruption truncates."""

    item_id: str
    response: _Response
    n_bytes: int = 0
    settled: bool = False


@attrs.define(eq=False)
class _CallBatch:
    """The function calls of one response: answered together with one ``response.create``."""

    conn: _Connection
    response_id: str
    pending: int = 0
    calls: int = 0
    response_done: bool = False
    interrupted: bool = False
    finished: bool = False
    scopes: dict[str, anyio.CancelScope] = attrs.field(factory=dict)
    """Cancel scopes of the calls an interruption cancels (not ``must_complete`` ones)."""

    def interrupt(self) -> None:
        self.interrupted = True
        for scope in self.scopes.values():
            scope.cancel()


class _Session:
    """One call: implements :class:`~omnivoice.realtime.provider.RealtimeSession`."""

    def __init__(
        self,
        provider_name: str,
        options: _Options,
        config: ProcessConfig,
        audio_in: AsyncIterable[bytes],
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> None:
        self._name = provider_name
        self._options = options
        self._config = config
        self._audio_in = audio_in
        self._output_format = output_format
        self._settings = options.settings(config, input_format, output_format)
        self._url = options.endpoint()
        self._headers = options.headers()
        self._auto_response = bool(
            options.turn_detection is not None
            and options.turn_detection.get("create_response", True)
        )
        self.events = EventChannel(options.event_buffer)
        self._parser = p.Parser()
        self._tasks: anyio.abc.TaskGroup | None = None
        self._current: _Connection | None = None
        # Held while no session takes it (beyond that, the caller's side waits); the last
        # moments are replayed to a session that takes over.
        self._caller = CallerAudio(
            input_format, hold_ms=round(_HOLD_S * 1000), preroll_ms=_PREROLL_MS
        )
        self._changed_event = anyio.Event()
        self._responses: dict[str, _Response] = {}
        self._finished: deque[str] = deque(maxlen=8)
        """Responses already done: a late delta of one is not a new response."""
        self._batches: dict[str, _CallBatch] = {}
        self._last_audio: _AudioItem | None = None
        self._audio_items: dict[str, list[_AudioItem]] = {}
        """Each recent response's audio items, in order (what an interruption truncates)."""
        self._log = ConversationLog(
            config.history, max_items=_MAX_ENTRIES, max_chars=options.history_limit
        )
        self._renewal_due = False
        self._renewing = False
        self._short_lived = 0
        self._input_ended = False
        self._ended = False
        self.renewals = 0
        """Server sessions opened after the first (renewals and resumptions)."""

    # --- the RealtimeSession contract ----------------------------------------------------

    def __aiter__(self) -> AsyncIterator[ProviderEvent]:
        return aiter(self.events)

    async def interrupt(self, heard_ms: int, *, responses: Sequence[HeardResponse] = ()) -> None:
        """Barge-in: cancel the response in progress and keep only what the caller heard
        of each response cut short."""
        conn = self._current
        if conn is None or not conn.alive:
            return
        response_id = conn.response_id
        if response_id is not None:
            response = self._responses.get(response_id)
            if response is not None:
                response.interrupted = True
            if not conn.cancel_sent:
                conn.cancel_sent = True
                await self._send(conn, p.response_cancel(response_id))
        for batch in list(self._batches.values()):
            if batch.conn is conn:
                batch.interrupt()
        known = [r for r in responses if r.response_id in self._audio_items]
        if not known:
            # No per-response figures for this session's responses: the latest audio heard.
            if self._last_audio is not None:
                await self._cut(conn, [self._last_audio], heard_ms)
            return
        for heard in known:
            assert heard.response_id is not None
            await self._cut(conn, self._audio_items[heard.response_id], heard.heard_ms)

    async def _cut(self, conn: _Connection, items: list[_AudioItem], heard_ms: int) -> None:
        """Keep the first ``heard_ms`` of the audio of ``items`` (one response's, in order)."""
        remaining = heard_ms
        for item in items:
            produced = self._ms(item.n_bytes)
            heard = max(0, min(remaining, produced))
            remaining -= produced
            if item.settled:
                continue
            item.settled = True
            item.response.interrupted = True
            self._log.cut_short(heard, produced, key=item.item_id)
            if heard <= 0:
                # The server refuses to truncate to nothing: an answer nobody heard goes.
                await self._send(conn, p.item_delete(item.item_id))
            elif heard < produced:
                await self._send(conn, p.item_truncate(item.item_id, heard))

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: unknown server events by type, malformed frames, renewals."""
        return {
            "unknown_events": dict(self._parser.unknown),
            "malformed_events": self._parser.malformed,
            "renewals": self.renewals,
        }

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Open the first server session, report started, then serve the call (see
        :func:`~omnivoice.realtime.serve_session`: a failed start leaves as itself)."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            conn = await tasks.start(self._connection)
            await self._switch_to(conn, previous=None)
            tasks.start_soon(self._forward_audio)
            task_status.started()
            if not conn.alive:
                await self._lost(conn)  # closed before it became the call's session
        self.events.close()

    def _end(self) -> None:
        """End the call: the consumer gets what is queued, then the iteration stops."""
        if self._ended:
            return
        self._ended = True
        self.events.close()
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()

    def _is_over(self) -> bool:
        # A method, not the attribute: type checkers would take it as unchanged by awaits.
        return self._ended

    async def _fail(self, error: OmnivoiceError) -> None:
        log.error("%s session failed: %s", self._name, error)
        await self._emit(ProviderError(error, fatal=True))
        self._end()

    async def _emit(self, event: ProviderEvent) -> None:
        if not await self.events.emit(event):
            self._end()  # the consumer is gone: so is the call

    def _changed(self) -> None:
        """State changed: wake waiters, then see if a renewal or the end is due."""
        self._changed_event.set()
        self._changed_event = anyio.Event()
        conn = self._current
        if conn is None or self._ended:
            return
        if self._input_ended and (not conn.alive or self._idle(conn)):
            self._end()
        elif self._renewal_due and conn.alive:
            # The new session opens now; the switch waits for a turn boundary.
            self._start_renewal(conn, "the session's time limit is near")

    def _idle(self, conn: _Connection) -> bool:
        """A turn boundary: nobody speaks, nothing is on its way."""
        return (
            conn.response_id is None
            and not conn.user_speaking
            and not conn.awaiting_response
            and not conn.pending_transcripts
            and not any(batch.conn is conn for batch in self._batches.values())
        )

    async def _turn_boundary(self, conn: _Connection) -> None:
        """Until ``conn`` is idle and the caller heard the last answer (or it is gone)."""
        while conn.alive and not conn.expired:
            wait = conn.playback_end - anyio.current_time()
            if wait <= 0 and self._idle(conn):
                return
            changed = self._changed_event
            with anyio.move_on_after(max(wait, 0.0) if self._idle(conn) else math.inf):
                await changed.wait()

    # --- server sessions ---------------------------------------------------------------------

    async def _connection(self, *, task_status: anyio.abc.TaskStatus[_Connection]) -> None:
        """Open one server session, report it, then receive from it until it closes."""
        try:
            async with connect(
                self._url, headers=self._headers, open_timeout=self._options.connect_timeout
            ) as ws:
                conn = await self._configure(ws)
                task_status.started(conn)
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._renewal_timer, conn)
                    await self._receive(conn)
                    tasks.cancel_scope.cancel()
        except HandshakeError as exc:
            raise p.handshake_error(
                exc.status_code, exc.body, exc.headers.get("retry-after")
            ) from exc
        except ConnectError as exc:
            raise ConnectionFailedError(
                f"cannot reach OpenAI Realtime at {self._url}: {exc}"
            ) from exc

    async def _configure(self, ws: WebSocket) -> _Connection:
        """Wait for ``session.created``, send ``session.update``, wait for its answer."""
        try:
            with anyio.fail_after(self._options.connect_timeout):
                created = await self._expect(ws, p.SessionCreated)
                await ws.send(p.session_update(self._settings))
                await self._expect(ws, p.SessionUpdated)
        except TimeoutError:
            raise ConnectionFailedError(
                f"OpenAI Realtime did not set the session up within "
                f"{self._options.connect_timeout:g} s"
            ) from None
        except ConnectionClosed as exc:
            raise _closed_error(exc.code, exc.reason) from exc
        assert isinstance(created, p.SessionCreated)
        opened = anyio.current_time()
        limit = self._options.session_limit
        if created.expires_at is not None:
            # The server says when it ends the session: believe it when it is sooner.
            remaining = created.expires_at - time.time()
            if 0 < remaining < limit:
                limit = remaining
        renew_at = opened + max(0.0, limit - self._options.renewal_margin)
        log.debug("%s session %s opened", self._name, created.session_id)
        return _Connection(ws, created.session_id, opened, renew_at)

    async def _expect(self, ws: WebSocket, kind: type[p.ServerEvent]) -> p.ServerEvent:
        while True:
            event = self._parser.parse(await ws.receive())
            if isinstance(event, kind):
                return event
            if isinstance(event, p.ServerError):
                error, _ = p.error_for(event)
                if isinstance(error, ConnectionFailedError):
                    raise error
                raise ConnectionFailedError(
                    f"OpenAI Realtime refused the session: {error}"
                ) from error

    async def _receive(self, conn: _Connection) -> None:
        """The receive loop: the only reader of this connection."""
        parse, handle = self._parser.parse, self._handle
        try:
            while True:
                event = parse(await conn.ws.receive())
                if event is not None and not conn.retired:
                    await handle(conn, event)
        except ConnectionClosed as exc:
            conn.close = (exc.code, exc.reason)
        except Exception as exc:  # a bug must end the call with a report, not hang it
            log.exception("%s receive loop failed", self._name)
            conn.fatal = OmnivoiceError(f"{type(exc).__name__}: {exc}")
            conn.close = (1011, "client error")
        conn.alive = conn.accepts_audio = False
        await self._lost(conn)

    async def _lost(self, conn: _Connection) -> None:
        """A connection closed: resume the call in a new session, end it, or fail it."""
        self._changed()
        if conn.retired or conn is not self._current or self._ended:
            return
        await self._abandon(conn)
        code, reason = conn.close
        if conn.fatal is not None:
            await self._fail(conn.fatal)
        elif self._input_ended:
            self._end()
        elif conn.expired or code in _RECOVERABLE_CLOSE:
            if anyio.current_time() - conn.opened_at < _SHORT_LIVED_S:
                self._short_lived += 1
            else:
                self._short_lived = 0
            if self._short_lived > len(_RECONNECT_DELAYS):
                await self._fail(_closed_error(code, reason))
                return
            log.info(
                "%s session %s closed (%s %s): resuming it",
                self._name,
                conn.session_id,
                code,
                reason,
            )
            self._start_renewal(conn, f"the session closed ({code} {reason})".rstrip())
        elif code == 1000:
            self._end()  # the server ended the session normally
        else:
            await self._fail(_closed_error(code, reason))

    async def _abandon(self, conn: _Connection) -> None:
        """Close what a session that is gone left open (its responses, its calls)."""
        for response in list(self._responses.values()):
            await self._finish_response(response)
        self._responses.clear()
        for batch in list(self._batches.values()):
            if batch.conn is conn:
                batch.interrupt()
        if self._last_audio is not None:
            self._last_audio.settled = True  # that session cannot truncate anything now

    def _start_renewal(self, conn: _Connection, reason: str) -> None:
        if self._renewing or self._ended:
            return  # a renewal in progress switches away from a lost session at once
        self._renewing = True
        assert self._tasks is not None
        self._tasks.start_soon(self._renew, conn, reason)

    async def _renewal_timer(self, conn: _Connection) -> None:
        await anyio.sleep_until(conn.renew_at)
        if conn is self._current and conn.alive:
            log.info("%s session %s nears its time limit", self._name, conn.session_id)
            self._renewal_due = True
            self._changed()

    async def _renew(self, old: _Connection, reason: str) -> None:
        """Open a new server session and move the call to it at a turn boundary."""
        try:
            while not self._is_over():
                new = await self._open_replacement()
                if isinstance(new, ConnectionFailedError):
                    if not old.alive:
                        await self._fail(new)
                        return
                    # The old session still serves the call: report, try again later.
                    await self._emit(ProviderError(new, fatal=False))
                    with anyio.move_on_after(_RETRY_RENEWAL_S):
                        while old.alive:
                            await self._changed_event.wait()
                    continue
                # The old session hears the caller until the switch, which happens
                # between turns, or at once if the old one is gone.
                await self._turn_boundary(old)
                if self._is_over():
                    return
                await self._switch_to(new, previous=old)
                old.retired = True
                await self._abandon(old)
                log.info(
                    "%s: session %s replaced by %s (%s)",
                    self._name,
                    old.session_id,
                    new.session_id,
                    reason,
                )
                await self._emit(
                    ProviderSwitched(
                        previous=f"{self._name}/{old.session_id}",
                        current=f"{self._name}/{new.session_id}",
                        reason=reason,
                    )
                )
                if old.alive:
                    await old.ws.aclose()
                return
        finally:
            self._renewing = False
            current = self._current
            if current is not None and not current.alive and not current.retired:
                # It was lost while this renewal ran: resume it now.
                self._start_renewal(current, "the new session closed")
            self._changed()

    async def _open_replacement(self) -> _Connection | ConnectionFailedError:
        """A new server session, after a few attempts; else the last failure."""
        assert self._tasks is not None
        failure = ConnectionFailedError("no attempt was made")
        for delay in _RECONNECT_DELAYS:
            await anyio.sleep(delay)
            if self._ended:
                break
            try:
                new: _Connection = await self._tasks.start(self._connection)
            except ConnectionFailedError as exc:
                failure = exc
                log.warning("%s: opening a new session failed: %s", self._name, exc)
                if isinstance(exc, AuthFailedError | ModelUnavailableError):
                    break  # trying again cannot help
            else:
                self.renewals += 1
                return new
        return failure

    async def _switch_to(self, new: _Connection, previous: _Connection | None) -> None:
        """Make ``new`` the call's session: the conversation first, then the caller's audio
        (a replacement also hears the last moments again, in case speech had begun)."""

        async def replay_conversation() -> None:
            # No audio moves meanwhile: the items land before any of it.
            self._current = new
            try:
                for item in self._log.history():
                    await new.ws.send(p.message_item(self._settings.api, item.role, item.text))
            except ConnectionClosed:
                pass  # its receive loop reports it

        sink = functools.partial(self._deliver, new)
        await self._caller.attach(
            sink, replay_preroll=previous is not None, before=replay_conversation
        )
        self._renewal_due = False
        self._changed()

    # --- the caller's audio ------------------------------------------------------------------

    async def _forward_audio(self) -> None:
        await self._caller.pump(self._audio_in)
        log.debug("%s: the caller's audio ended", self._name)
        self._input_ended = True
        self._changed()
        await anyio.sleep(_DRAIN_TIMEOUT_S)
        self._end()

    async def _deliver(self, conn: _Connection, chunk: bytes) -> bool:
        """Send the caller's audio to ``conn``; ``False`` once it takes no more (it is
        being replaced, or closed): the audio is then held for the next session."""
        if not conn.accepts_audio:
            return False
        try:
            await conn.ws.send(p.input_audio_append(chunk))
        except ConnectionClosed:
            conn.accepts_audio = False
            return False
        return True

    # --- server events -------------------------------------------------------------------------

    async def _handle(self, conn: _Connection, event: p.ServerEvent) -> None:
        if type(event) is p.AudioDelta:
            await self._on_audio(conn, event)
        elif type(event) is p.TextDelta:
            await self._on_text(event)
        elif isinstance(event, p.SpeechStarted):
            conn.user_speaking = True
            conn.awaiting_response = False
            await self._emit(SpeechStarted())
            self._changed()
        elif isinstance(event, p.SpeechStopped):
            conn.user_speaking = False
            conn.awaiting_response = self._auto_response
            await self._emit(SpeechStopped())
            self._changed()
        elif isinstance(event, p.InputCommitted):
            if self._settings.transcription is not None:
                conn.pending_transcripts.add(event.item_id)
            self._log.utterance("user", event.item_id)
        elif isinstance(event, p.InputTranscriptDelta):
            await self._emit(Transcript(event.delta, is_input=True, is_final=False))
        elif isinstance(event, p.InputTranscriptDone):
            conn.pending_transcripts.discard(event.item_id)
            self._log.utterance("user", event.item_id).text = event.transcript
            await self._emit(Transcript(event.transcript, is_input=True, is_final=True))
            self._changed()
        elif isinstance(event, p.InputTranscriptFailed):
            conn.pending_transcripts.discard(event.item_id)
            error, _ = p.error_for(event.error)
            await self._emit(ProviderError(error, fatal=False))
            self._changed()
        elif isinstance(event, p.ResponseCreated):
            conn.response_id = event.response_id
            conn.cancel_sent = False
            conn.awaiting_response = False
            self._responses[event.response_id] = _Response(event.response_id)
            self._changed()
        elif isinstance(event, p.OutputItemAdded):
            if event.kind == "message" and event.role == "assistant":
                self._log.utterance("agent", event.item_id)
                self._response(event.response_id).open_texts.append(event.item_id)
        elif isinstance(event, p.AudioDone):
            response = self._response(event.response_id)
            if response.announced and not response.final_sent:
                response.final_sent = True
                await self._emit(AudioChunk(b"", is_final=True, response_id=response.id))
        elif isinstance(event, p.TextDone):
            response = self._response(event.response_id)
            if event.item_id in response.open_texts:
                response.open_texts.remove(event.item_id)
            self._log.utterance("agent", event.item_id).text = event.text
            if response.interrupted and not response.announced:
                return  # the consumer never saw this answer begin
            response.announced = True
            await self._emit(Transcript(event.text, is_input=False, is_final=True))
        elif isinstance(event, p.FunctionCallDone):
            await self._on_function_call(conn, event)
        elif isinstance(event, p.ResponseDone):
            await self._on_response_done(conn, event)
        elif isinstance(event, p.ServerError):
            await self._on_error(conn, event)
        elif isinstance(event, p.Malformed):
            error = p.OpenAIRealtimeError(f"OpenAI Realtime sent a malformed event: {event.detail}")
            await self._emit(ProviderError(error, fatal=False))
        elif isinstance(event, p.ItemAcknowledged):
            log.debug("%s: item %s %s", self._name, event.item_id, event.kind)
        # session.created/updated after the set-up need nothing.

    def _response(self, response_id: str) -> _Response:
        response = self._responses.get(response_id)
        if response is None:
            response = self._responses[response_id] = _Response(response_id)
        return response

    async def _on_audio(self, conn: _Connection, event: p.AudioDelta) -> None:
        if event.response_id in self._finished:
            return
        now = anyio.current_time()
        conn.playback_end = max(conn.playback_end, now) + self._output_format.duration(
            len(event.audio)
        )
        response = self._response(event.response_id)
        item = self._last_audio
        if item is None or item.item_id != event.item_id:
            item = self._last_audio = _AudioItem(event.item_id, response)
            self._audio_items.setdefault(event.response_id, []).append(item)
            while len(self._audio_items) > _RECENT_RESPONSES:
                del self._audio_items[next(iter(self._audio_items))]
        item.n_bytes += len(event.audio)
        if response.interrupted:
            return  # the consumer drops it anyway
        response.announced = True
        await self._emit(AudioChunk(event.audio, response_id=event.response_id))

    async def _on_text(self, event: p.TextDelta) -> None:
        if event.response_id in self._finished:
            return
        response = self._response(event.response_id)
        self._log.utterance("agent", event.item_id).text += event.delta
        if event.item_id not in response.open_texts:
            response.open_texts.append(event.item_id)
        if response.interrupted:
            return
        response.announced = True
        await self._emit(Transcript(event.delta, is_input=False, is_final=False))

    async def _finish_response(self, response: _Response) -> None:
        """Close what a response left open: a final transcript, then the final chunk."""
        for item_id in response.open_texts:
            entry = self._log.get(item_id)
            if entry is not None and entry.text and response.announced:
                await self._emit(Transcript(entry.text, is_input=False, is_final=True))
        response.open_texts.clear()
        if response.announced and not response.final_sent:
            response.final_sent = True
            await self._emit(AudioChunk(b"", is_final=True, response_id=response.id))

    async def _on_response_done(self, conn: _Connection, event: p.ResponseDone) -> None:
        response = self._responses.pop(event.response_id, None) or _Response(event.response_id)
        self._finished.append(event.response_id)
        if conn.response_id == event.response_id:
            conn.response_id = None
        await self._finish_response(response)
        usage = event.usage
        if usage:
            await self._emit(
                Usage(
                    input_tokens=int(usage.get("input_tokens") or 0),
                    output_tokens=int(usage.get("output_tokens") or 0),
                    details=usage,
                )
            )
        if event.status == "failed":
            error, fatal = p.error_for(
                event.error or p.ServerError("server_error", None, "the response failed")
            )
            if fatal:
                conn.fatal = error
                await self._fail(error)
                return
            await self._emit(ProviderError(error, fatal=False))
        elif event.status == "incomplete":
            log.info("%s: response %s incomplete (%s)", self._name, event.response_id, event.reason)
        batch = self._batches.get(event.response_id)
        if batch is not None:
            if event.status == "cancelled":
                batch.interrupt()
            batch.response_done = True
            await self._maybe_continue(batch)
        if conn.deferred_continue and conn.response_id is None:
            conn.deferred_continue = False
            await self._send(conn, p.response_create())
        self._changed()

    async def _on_error(self, conn: _Connection, event: p.ServerError) -> None:
        if event.code == "session_expired":
            # The server ends the session next: resume the call in a new one at once.
            log.info("%s session %s expired", self._name, conn.session_id)
            conn.expired = True
            conn.accepts_audio = False  # held from now on, for the next session
            if conn is self._current:
                self._start_renewal(conn, "the session expired")
            return
        if event.code in _BENIGN_CODES:
            log.debug("%s: %s", self._name, event.message or event.code)
            return
        error, fatal = p.error_for(event)
        if fatal:
            conn.fatal = error
            await self._fail(error)
            return
        log.warning("%s: %s", self._name, error)
        # A response the server was about to create may never come now.
        conn.awaiting_response = False
        await self._emit(ProviderError(error, fatal=False))
        self._changed()

    # --- function calls -----------------------------------------------------------------------

    async def _on_function_call(self, conn: _Connection, event: p.FunctionCallDone) -> None:
        try:
            parsed = json.loads(event.arguments) if event.arguments.strip() else {}
        except ValueError:
            parsed = None
        await self._emit(
            FunctionCall(event.call_id, event.name, parsed if isinstance(parsed, dict) else {})
        )
        batch = self._batches.get(event.response_id)
        if batch is None:
            batch = self._batches[event.response_id] = _CallBatch(conn, event.response_id)
        batch.pending += 1
        batch.calls += 1
        scope = anyio.CancelScope()
        if not must_complete(self._config, event.name):
            batch.scopes[event.call_id] = scope
            if batch.interrupted:
                scope.cancel()
        assert self._tasks is not None
        # Never in the receive loop: a handler may take seconds.
        self._tasks.start_soon(self._run_call, batch, scope, event)

    async def _run_call(
        self, batch: _CallBatch, scope: anyio.CancelScope, call: p.FunctionCallDone
    ) -> None:
        output = _CANCELLED_OUTPUT
        with scope:
            outcome = await run_function_call(self._config, call.call_id, call.name, call.arguments)
            output = outcome.output
        batch.scopes.pop(call.call_id, None)
        conn = batch.conn
        if conn is self._current and conn.alive:
            await self._send(conn, p.function_call_output(call.call_id, output))
        else:
            log.info("%s: the answer to %s has no session to go to", self._name, call.call_id)
        batch.pending -= 1
        await self._maybe_continue(batch)

    async def _maybe_continue(self, batch: _CallBatch) -> None:
        """Once every call of a finished response is answered: one ``response.create``."""
        if batch.pending or not batch.response_done or batch.finished:
            return
        batch.finished = True
        self._batches.pop(batch.response_id, None)
        conn = batch.conn
        if not batch.interrupted and batch.calls and conn is self._current and conn.alive:
            if conn.response_id is not None:
                # A response began meanwhile (the caller spoke) without the answers.
                conn.deferred_continue = True
            elif not (conn.user_speaking or conn.awaiting_response):
                await self._send(conn, p.response_create())
            # else: the caller is speaking; the response to that turn sees the answers.
        self._changed()

    # --- helpers --------------------------------------------------------------------------------

    async def _send(self, conn: _Connection, message: str) -> None:
        # A closed connection: its receive loop sees the close and acts on it.
        with contextlib.suppress(ConnectionClosed):
            await conn.ws.send(message)

    def _ms(self, n_bytes: int) -> int:
        return round(self._output_format.duration(n_bytes) * 1000)


def _closed_error(code: int, reason: str) -> ConnectionFailedError:
    """The error for a session the server closed: by its reason when it names one."""
    text = f"OpenAI Realtime closed the session: {code} {reason}".rstrip()
    if "invalid_api_key" in reason or "authentication" in reason:
        return AuthFailedError(text)
    if "model_not_found" in reason or "invalid_model" in reason:
        return ModelUnavailableError(text)
    if "rate_limit" in reason or "insufficient_quota" in reason:
        return RateLimitedError(text)
    return ConnectionFailedError(text)
