"""One call on Gemini Live: its connections, and the moves between them.

A call may outlive several WebSocket connections: the service ends each after about ten
minutes (saying ``goAway`` first), and a network can drop one at any time. The session
keeps the call going across them:

- it always asks for session resumption and keeps the latest resumable handle;
- on ``goAway`` it moves to a new connection at the first turn boundary, or, if none comes
  in time, just before the server's deadline (a timer: the server may go quiet): it closes
  the old connection first, then resumes the session on a new one with the handle, and
  never re-sends the history over a resumed session;
- a connection lost mid-call is resumed the same way; when resumption is refused, or no
  handle exists, a fresh session is opened with the conversation so far (the heard part of
  interrupted replies); when that fails too, a fatal ``ConnectionFailedError`` ends the
  stream (so a fallback ``Client`` can take the call);
- while moving nothing is lost: the caller's audio is held (:class:`CallerAudio`) and sent
  on the new connection, function answers wait in an outbox and go there too.

Everything runs in one task group: a receive loop per connection, the caller's audio,
one task per function call, the move in progress. Events reach the consumer through a
bounded :class:`EventChannel`; :class:`~omnivoice_gemini_live.turns.Turns` decides which.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Any

import anyio
import anyio.abc

from omnivoice.audio.format import AudioFormat
from omnivoice.audio.vad import EnergyVAD
from omnivoice.concurrency import fast_lock
from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    OmnivoiceError,
    RateLimitedError,
    describe_error,
)
from omnivoice.net import ConnectError, ConnectionClosed, HandshakeError, connect
from omnivoice.realtime import (
    CallerAudio,
    ConversationItem,
    ConversationLog,
    EventChannel,
    HeardResponse,
    ProcessConfig,
    ProviderError,
    ProviderEvent,
    ProviderSwitched,
    Usage,
)
from omnivoice_gemini_live import protocol as p
from omnivoice_gemini_live.answers import Answers
from omnivoice_gemini_live.connection import Connection, is_retired, keepalive, set_up
from omnivoice_gemini_live.errors import (
    GeminiLiveError,
    ResumptionRefusedError,
    close_error,
    handshake_error,
)
from omnivoice_gemini_live.options import Options
from omnivoice_gemini_live.resumption import Handles
from omnivoice_gemini_live.tools import Call, FunctionCalls
from omnivoice_gemini_live.turns import Turns

__all__ = ["Session"]

log = logging.getLogger(__name__)

_RECONNECT_DELAYS = (0.0, 0.5, 2.0)
"""Delays before each attempt to open a replacement connection."""
_SHORT_LIVED_S = 5.0
_MAX_SHORT_LIVED = 3
"""Connections in a row that die this soon after opening before the call gives up."""
_CLOSE_WITHIN_S = 2.0
"""The longest wait for the server to answer our close of a connection being replaced."""
_MAX_LOG_ITEMS = 1000

_FINAL_ERRORS = (AuthFailedError, ModelUnavailableError, RateLimitedError)
"""Failures that another connection would meet too: they end the call."""


class Session:
    """One call: implements :class:`~omnivoice.realtime.RealtimeSession`."""

    def __init__(
        self,
        name: str,
        options: Options,
        config: ProcessConfig,
        audio_in: AsyncIterable[bytes],
        input_format: AudioFormat,
    ) -> None:
        self._name = name
        self._options = options
        self._config = config
        self._audio_in = audio_in
        self._rate = input_format.sample_rate
        self._info = options.info
        self._url = options.endpoint()
        self._headers = options.headers()
        self.events = EventChannel(options.event_buffer)
        self._parser = p.Parser()
        self._log = ConversationLog(
            config.history, max_items=_MAX_LOG_ITEMS, max_chars=options.history_limit
        )
        self._turns = Turns(
            silence_ms=options.silence_duration_ms or 0,
            max_text=options.history_limit,
            log=self._log,
        )
        non_blocking = {n: s for n, s in options.non_blocking.items() if _declared(config, n)}
        self._calls = FunctionCalls(config, non_blocking, max_running=options.max_function_calls)
        self._caller = CallerAudio(input_format, hold_ms=options.hold_ms)
        self._vad = None if options.automatic_activity_detection else EnergyVAD(input_format)
        self._emit_lock = fast_lock()
        self._answers = Answers(self._report, limit=4 * options.max_function_calls)
        self._handles = Handles()
        self._tasks: anyio.abc.TaskGroup | None = None
        self._current: Connection | None = None
        self._numbers = 0
        self._epoch = 0
        self._turn_number = 0
        self._moving = False
        self._interrupting = False
        self._short_lived = 0
        self._input_ended = False
        self._ended = False
        self._changed_event = anyio.Event()
        self.resumptions = 0
        """Connections that resumed the server session."""
        self.fresh_sessions = 0
        """New server sessions opened mid-call with the conversation so far."""

    # --- the RealtimeSession contract ----------------------------------------------------

    def __aiter__(self) -> AsyncIterator[ProviderEvent]:
        return aiter(self.events)

    async def interrupt(self, heard_ms: int, *, responses: Sequence[HeardResponse] = ()) -> None:
        """Barge-in: end the response in progress; the conversation keeps only what was
        heard of each reply cut short. Gemini has no truncation: its own context keeps what
        it generated, and a fresh session later gets the heard words."""
        for response in responses:
            if response.response_id is not None and self._log.get(response.response_id):
                self._log.cut_short(
                    response.heard_ms, response.produced_ms, key=response.response_id
                )
        unnamed = [r for r in responses if self._log.get(r.response_id or "") is None]
        if unnamed:
            self._log.interrupted(unnamed)
        tasks = self._tasks
        if self._ended or tasks is None or self._interrupting:
            return
        if not (self._turns.response_open or self._turns.in_turn):
            return
        target = self._turns.open_response
        named = {r.response_id for r in responses if r.response_id}
        if target is not None and named and target not in named:
            target = None  # it began after what the consumer cut short: it plays on
        self._interrupting = True
        try:
            # Not here: the consumer calling this may be the one the events wait for.
            tasks.start_soon(
                self._finish_interrupt, self._turn_number, self._turns.interrupted_turn, target
            )
        except RuntimeError:  # the session's task group has closed: nothing to stop
            self._interrupting = False

    async def _finish_interrupt(
        self, turn: int, seen_by_server: bool, response_id: str | None
    ) -> None:
        self._interrupting = False
        if self._turn_number != turn:
            return  # that turn is over (and what came since is not what was interrupted)
        await self._apply(self._turns.local_interrupt, response_id)
        if not seen_by_server:
            # The model did not cut its turn short itself: its calls are cancelled here
            # (and answered as such, since it waits for them).
            cancelled = self._calls.cancel_turn(turn)
            if cancelled:
                log.info("%s: %d function call(s) cancelled", self._name, cancelled)
        self._changed()

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: what the parser skipped, moves between connections, dropped audio."""
        return {
            "unknown_fields": dict(self._parser.unknown),
            "skipped_parts": dict(self._parser.skipped),
            "malformed_messages": self._parser.malformed,
            "resumptions": self.resumptions,
            "fresh_sessions": self.fresh_sessions,
            "dropped_audio_bytes": self._turns.dropped_audio_bytes,
            "dropped_transcript_pieces": self._turns.dropped_text,
            "held_caller_audio_bytes": self._caller.held_bytes,
            "refused_function_calls": self._calls.refused,
            "cancelled_function_calls": self._calls.cancelled,
            "dropped_function_answers": self._answers.dropped,
        }

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Open the first connection, report started, then serve the call (a failed start
        leaves as itself: see :func:`~omnivoice.realtime.serve_session`)."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            history = self._log.history() if self._config.history else ()
            conn = await tasks.start(self._connection, None, history)
            await self._take(conn, previous=None, reason="")
            tasks.start_soon(self._forward_audio)
            task_status.started()
        self.events.close()

    def _stop(self) -> None:
        """End the call: the consumer gets what is queued, then its iteration stops."""
        if self._ended:
            return
        self._ended = True
        self.events.close()
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()

    async def _finish(self) -> None:
        """End the call normally: close what is open first (no response is left open)."""
        if self._ended:
            return
        await self._apply(self._turns.connection_lost)
        self._stop()

    async def _fail(self, error: OmnivoiceError) -> None:
        if self._ended:
            return
        log.error("%s: the call cannot go on: %s", self._name, error)
        async with self._emit_lock:  # nothing of another step after it
            await self.events.emit(ProviderError(error, fatal=True))
            self._stop()

    def _is_over(self) -> bool:
        # A method, not the attribute: type checkers take it as unchanged across awaits.
        return self._ended

    def _changed(self) -> None:
        self._changed_event.set()
        self._changed_event = anyio.Event()

    async def _wait_change(self, deadline: float | None = None) -> None:
        changed = self._changed_event
        with anyio.CancelScope(deadline=deadline if deadline is not None else float("inf")):
            await changed.wait()

    async def _apply(
        self,
        step: Callable[..., Sequence[ProviderEvent]],
        *args: Any,
        source: Connection | None = None,
    ) -> None:
        """Run one step of the turn state and pass its events on, in order, as one: no
        other step's events come in between. A step for what ``source`` said is skipped
        once it is retired (its replacement has taken the call)."""
        async with self._emit_lock:
            if source is not None and source.retired:
                return
            for event in step(*args):
                await self._emit(event)

    async def _emit(self, event: ProviderEvent) -> None:
        if not await self.events.emit(event):
            self._stop()  # the consumer is gone: so is the call

    async def _report(self, event: ProviderEvent) -> None:
        """Pass on one event that belongs to no step of the turns."""
        async with self._emit_lock:
            await self._emit(event)

    # --- connections ------------------------------------------------------------------------

    async def _connection(
        self,
        handle: str | None,
        history: tuple[ConversationItem, ...],
        *,
        task_status: anyio.abc.TaskStatus[Connection],
    ) -> None:
        """Open one connection and set it up (resuming ``handle``, or fresh with
        ``history``), report it, then receive from it until it closes."""
        options = self._options
        seed_in_setup = bool(history) and self._info.history_seed == "history_config"
        setup = options.setup(self._config, handle=handle, initial_history=seed_in_setup)
        try:
            async with connect(
                self._url,
                headers=self._headers,
                open_timeout=options.connect_timeout,
                close_timeout=_CLOSE_WITHIN_S,
            ) as ws:
                self._numbers += 1
                conn = await set_up(
                    ws,
                    self._parser,
                    setup,
                    history,
                    within=options.connect_timeout,
                    number=self._numbers,
                    epoch=self._epoch if handle is not None else self._epoch + 1,
                    resumed_seq=self._handles.number if handle is not None else None,
                )
                task_status.started(conn)
                await conn.ready.wait()
                async with anyio.create_task_group() as tasks:
                    if options.ping_interval:
                        tasks.start_soon(
                            functools.partial(
                                keepalive,
                                conn,
                                interval=options.ping_interval,
                                pong_within=options.ping_timeout,
                            )
                        )
                    await self._receive(conn)
                    tasks.cancel_scope.cancel()
        except HandshakeError as exc:
            raise handshake_error(exc.status_code, exc.body) from exc
        except ConnectError as exc:
            raise ConnectionFailedError(f"cannot reach Gemini Live at {self._url}: {exc}") from exc

    async def _take(self, conn: Connection, *, previous: Connection | None, reason: str) -> None:
        """Make ``conn`` serve the call: the answers that waited first, then the caller's
        audio held meanwhile, then its receive loop runs."""
        async with self._answers.lock:
            self._current = conn
            if not conn.resumed:
                if previous is not None:
                    self.fresh_sessions += 1
                self._epoch = conn.epoch
                self._handles.forget()
            else:
                self.resumptions += 1
            if previous is not None:
                how = "resumed" if conn.resumed_seq is not None else "a new session"
                switch = ProviderSwitched(
                    previous=f"{self._name}/{previous.label}",
                    current=f"{self._name}/{conn.label}",
                    reason=f"{reason} ({how})",
                )
                log.info("%s -> %s: %s", switch.previous, switch.current, switch.reason)
                await self._report(switch)
            await self._answers.flush(conn)
        conn.sink = functools.partial(self._send_audio, conn)
        await self._caller.attach(conn.sink, before=functools.partial(self._resume_activity, conn))
        conn.ready.set()
        self._changed()

    async def _receive(self, conn: Connection) -> None:
        """The receive loop: the only reader of this connection."""
        try:
            for event in conn.leftover:
                await self._on_event(conn, event)
            while not conn.retired:
                message = await conn.ws.receive()
                for event in self._parser.parse(message):
                    if is_retired(conn):
                        break
                    await self._on_event(conn, event)
        except ConnectionClosed as exc:
            conn.close = (exc.code, exc.reason)
        except Exception as exc:  # a bug must end the call with a report, not hang it
            log.exception("%s: the receive loop failed", self._name)
            conn.fatal = GeminiLiveError(f"{type(exc).__name__}: {exc}")
        conn.alive = conn.accepts = False
        await self._lost(conn)

    async def _lost(self, conn: Connection) -> None:
        """A connection closed: move the call to a new one, end it, or fail it."""
        self._changed()
        if conn.retired or conn is not self._current or self._ended:
            return
        code, reason = conn.close
        if conn.fatal is not None:
            await self._fail(conn.fatal)
            return
        if self._input_ended:
            await self._finish()
            return
        error = close_error(code, reason)
        if isinstance(error, _FINAL_ERRORS):
            await self._fail(error)
            return
        if anyio.current_time() - conn.opened_at < _SHORT_LIVED_S:
            self._short_lived += 1
            if self._short_lived >= _MAX_SHORT_LIVED:
                await self._fail(
                    ConnectionFailedError(f"{error}: the last {self._short_lived} did not last")
                )
                return
        else:
            self._short_lived = 0
        log.warning("%s: %s: moving the call to a new connection", self._name, error)
        conn.move_reason = f"the connection closed ({code} {reason})".replace(" )", ")")
        self._start_move(conn)

    # --- moving to a new connection ------------------------------------------------------------

    def _start_move(self, conn: Connection) -> None:
        if self._moving or self._ended or self._tasks is None:
            self._changed()  # a move in progress sees the news
            return
        self._moving = True
        self._tasks.start_soon(self._move, conn)

    async def _move(self, old: Connection) -> None:
        try:
            if old.alive and old.go_away_at is not None:
                await self._turn_boundary(old, old.go_away_at)
            if self._is_over():
                return
            async with self._answers.lock:
                old.accepts = False  # its answers and audio wait for the next one
            if old.sink is not None:
                self._caller.detach(old.sink)
            old.retired = True
            await self._apply(self._turns.connection_lost)
            if old.alive:
                # A resumption while another connection of the session is open is refused.
                with anyio.move_on_after(_CLOSE_WITHIN_S + 1):
                    await old.ws.aclose()
            new = await self._replacement()
            await self._take(new, previous=old, reason=old.move_reason)
        except ConnectionFailedError as exc:
            await self._fail(exc)
        finally:
            self._moving = False
            self._changed()
            current = self._current
            if (
                current is not None
                and not current.retired
                and (not current.alive or current.go_away_at is not None)
                and not self._ended
            ):
                self._start_move(current)  # news of the new one while this move ran

    async def _turn_boundary(self, conn: Connection, deadline: float) -> None:
        """Until a turn boundary (nobody speaks, the model waits for no answer, the latest
        handle covers everything said), ``conn`` is lost, or ``deadline`` passes."""
        while conn.alive and not self._is_over() and anyio.current_time() < deadline:
            if (
                self._turns.idle
                and not self._turns.speaking
                and not self._calls.blocking_running
                and (self._handles.handle is None or self._handles.fresh)
            ):
                return
            await self._wait_change(deadline)

    async def _replacement(self) -> Connection:
        """A new connection: the session resumed if it can be, else a fresh session with
        the conversation so far; a few attempts, then the last failure."""
        assert self._tasks is not None
        failure: ConnectionFailedError | None = None
        for delay in _RECONNECT_DELAYS:
            if delay:
                await anyio.sleep(delay)
            handle = self._handles.usable
            if handle is not None:
                try:
                    conn: Connection = await self._tasks.start(self._connection, handle, ())
                except ResumptionRefusedError as exc:
                    log.warning("%s: %s: starting a new session", self._name, exc)
                    self._handles.refused = True
                    failure = exc
                except _FINAL_ERRORS:
                    raise
                except ConnectionFailedError as exc:
                    log.warning("%s: resuming failed: %s", self._name, exc)
                    failure = exc
                    continue
                else:
                    return conn
            try:
                conn = await self._tasks.start(self._connection, None, self._log.history())
            except _FINAL_ERRORS:
                raise
            except ConnectionFailedError as exc:
                log.warning("%s: a new session failed: %s", self._name, exc)
                failure = exc
            else:
                return conn
        raise ConnectionFailedError(
            f"Gemini Live: no new connection could take the call ({describe_error(failure)})"
            if failure is not None
            else "Gemini Live: no new connection could take the call"
        ) from failure

    # --- the caller's audio --------------------------------------------------------------

    async def _forward_audio(self) -> None:
        await self._caller.pump(self._audio_in)
        log.debug("%s: the caller's audio ended", self._name)
        self._input_ended = True
        conn = self._current
        if conn is not None and conn.accepts:
            end = p.audio_stream_end() if self._vad is None else p.activity_end()
            if self._vad is None or self._vad.speaking:
                await self._send(conn, end)
        self._calls.cancel_all()
        with anyio.move_on_after(self._options.drain_timeout):
            while self._turns.response_open or self._calls.running:
                await self._wait_change()
        await self._finish()

    async def _send_audio(self, conn: Connection, chunk: bytes) -> bool:
        """The sink of ``conn``: ``False`` once it takes no more (being replaced, closed):
        the chunk is then held for the next connection."""
        if not conn.accepts:
            return False
        try:
            changes = self._vad.process(chunk) if self._vad is not None else ()
            starts = [c for c in changes if c.speaking]
            if starts:
                await conn.ws.send(p.activity_start())
                await self._apply(self._turns.voice_activity, True)
            await conn.ws.send(p.audio_message(chunk, self._rate))
            if any(not c.speaking for c in changes):
                await conn.ws.send(p.activity_end())
                await self._apply(self._turns.voice_activity, False)
        except ConnectionClosed:
            conn.accepts = False
            return False
        return True

    async def _resume_activity(self, conn: Connection) -> None:
        """A new connection while the caller speaks (client-marked activity): say so first."""
        if self._vad is not None and self._vad.speaking:
            await self._send(conn, p.activity_start())

    # --- server events ---------------------------------------------------------------------

    async def _on_event(self, conn: Connection, event: p.ServerEvent) -> None:
        turns = self._turns
        if type(event) is p.ModelAudio:
            self._handles.activity()
            await self._apply(turns.audio, event.audio, source=conn)
        elif type(event) is p.OutputTranscription:
            await self._apply(turns.output_text, event.text, event.finished, source=conn)
        elif type(event) is p.InputTranscription:
            self._handles.activity()
            await self._apply(turns.input_text, event.text, event.finished, source=conn)
        elif isinstance(event, p.GenerationComplete):
            await self._apply(turns.generation_complete, source=conn)
            self._changed()
        elif isinstance(event, p.TurnComplete):
            await self._apply(turns.turn_complete, source=conn)
            self._turn_number += 1
            self._changed()
        elif isinstance(event, p.Interrupted):
            await self._apply(turns.interrupted, source=conn)
            self._changed()
        elif isinstance(event, p.VoiceActivity):
            await self._apply(turns.voice_activity, event.start, source=conn)
            self._changed()
        elif isinstance(event, p.ToolCall):
            self._handles.activity()
            await self._apply(self._tool_call, conn, event, source=conn)
        elif isinstance(event, p.ToolCallCancellation):
            report = self._calls.cancel_from_server(event.call_ids)
            if report is not None:
                await self._report(report)
            self._changed()
        elif isinstance(event, p.ResumptionUpdate):
            self._handles.update(event)
            self._changed()
        elif isinstance(event, p.GoAway):
            self._on_go_away(conn, event)
        elif isinstance(event, p.Usage):
            await self._report(Usage(event.input_tokens, event.output_tokens, event.details))
        elif isinstance(event, p.Malformed):
            error = GeminiLiveError(f"Gemini Live sent a malformed message: {event.detail}")
            await self._report(ProviderError(error, fatal=False))
        # A second setupComplete needs nothing.

    def _tool_call(self, conn: Connection, event: p.ToolCall) -> list[ProviderEvent]:
        assert self._tasks is not None
        events: list[ProviderEvent] = list(self._turns.tool_call())
        events += self._calls.start(
            self._tasks,
            event,
            self._deliver,
            turn=self._turn_number,
            origin=conn,
            epoch=conn.epoch,
            seq=self._handles.issued,
        )
        return events

    def _on_go_away(self, conn: Connection, event: p.GoAway) -> None:
        left = event.time_left if event.time_left is not None else 0.0
        conn.go_away_at = anyio.current_time() + max(0.0, left - self._options.go_away_margin)
        conn.move_reason = f"goAway ({left:g} s left on the connection)"
        log.info("%s: %s: %s", self._name, conn.label, conn.move_reason)
        self._start_move(conn)

    # --- function answers ------------------------------------------------------------------

    async def _deliver(self, calls: list[Call]) -> None:
        """Answers of finished calls: to the connection serving the call, or, while none
        can take them, to the outbox (sent on the next one)."""
        async with self._answers.lock:
            await self._answers.deliver(self._current, calls)
        self._changed()

    # --- helpers -----------------------------------------------------------------------------

    async def _send(self, conn: Connection, message: str) -> None:
        with contextlib.suppress(ConnectionClosed):  # its receive loop acts on the close
            await conn.ws.send(message)


def _declared(config: ProcessConfig, name: str) -> bool:
    return any(function.name == name for function in config.functions)
