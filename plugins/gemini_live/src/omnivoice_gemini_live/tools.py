"""The model's function calls: run through the core's runner, answered, cancelled.

Each call of a ``toolCall`` runs in its own task of the session's task group (never on the
receive loop) through :func:`omnivoice.realtime.run_function_call`. The calls of one
message that are blocking are answered together, in one ``toolResponse``, once all of
them have finished; a non-blocking call (``behavior: NON_BLOCKING``) is answered as soon
as it finishes, with its ``scheduling``. Where the answer goes is the session's business
(``deliver``): the connection that serves the call, or a later one.

Cancellation: ``toolCallCancellation`` (the caller interrupted) cancels those calls unless
their declaration is ``must_complete``, and nothing is answered for them; the consumer's
``interrupt()`` cancels the calls of the turn it cut short the same way, but they are
answered (``{"error": "cancelled: ..."}``), since the model did not cancel them itself
and waits for their answers. At most ``max_running`` calls run at once; more are answered
with an error at once.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import anyio.abc
import attrs

from omnivoice.realtime import (
    FunctionCall,
    FunctionOutcome,
    ProcessConfig,
    ProviderError,
    must_complete,
    run_function_call,
)
from omnivoice_gemini_live import protocol as p
from omnivoice_gemini_live.errors import FunctionCallCancelledError, GeminiLiveError

__all__ = ["Call", "FunctionCalls"]

log = logging.getLogger(__name__)

CANCELLED = "cancelled: the caller interrupted"
TOO_MANY = "refused: too many function calls are running"


@attrs.define(eq=False)
class Call:
    """One function call of the model, from its arrival to its answer."""

    call_id: str
    """The server's id (or a local one, when the server gave none)."""
    server_id: str
    """The id to answer under (empty when the server gave none)."""
    name: str
    arguments: Mapping[str, Any]
    turn: int
    """The turn it was made in (what a local interruption cancels)."""
    origin: object
    """The connection it arrived on."""
    epoch: int
    """The server session (a fresh one starts a new epoch; resumptions keep it)."""
    seq: int
    """The resumption handles issued before it arrived."""
    scheduling: str | None
    """Its answer's scheduling, for a non-blocking function; ``None``: blocking."""
    must_complete: bool
    batch: list[Call] = attrs.field(factory=list, repr=False)
    """The blocking calls of its ``toolCall``, answered together (empty if non-blocking)."""
    scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope, repr=False)
    refused: bool = False
    cancelled_by_server: bool = False
    cancelled_locally: bool = False
    done: bool = False
    finished: anyio.Event = attrs.field(factory=anyio.Event, repr=False)
    result: p.FunctionResult | None = None
    """Its answer, once it has one (``None`` if the server cancelled it: no answer)."""

    @property
    def blocking(self) -> bool:
        return self.scheduling is None

    def note(self) -> str:
        """Its answer as words for the model, for a session that cannot take it as a
        ``toolResponse`` (a fresh session, or a call the server cancelled)."""
        result = self.result
        assert result is not None
        if result.error is not None:
            return f"[The function {self.name} failed: {result.error}]"
        return f"[The function {self.name} returned: {json.dumps(result.output)}]"


Deliver = Callable[[list[Call]], Awaitable[None]]


class FunctionCalls:
    """The function calls of one call, running or waiting for an answer to be sent."""

    def __init__(
        self, config: ProcessConfig, non_blocking: Mapping[str, str], *, max_running: int = 16
    ) -> None:
        self.config = config
        self.non_blocking = dict(non_blocking)
        self.max_running = max_running
        self._running: dict[str, Call] = {}
        self._local_ids = itertools.count(1)
        self.refused = 0
        """Calls answered with an error because too many were running."""
        self.cancelled = 0
        self.unknown_cancellations = 0
        """Cancelled ids that named no running call (already answered, or never made)."""

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def blocking_running(self) -> bool:
        """A blocking call is running: the model waits for its answer."""
        return any(call.blocking and not call.done for call in self._running.values())

    def start(
        self,
        tasks: anyio.abc.TaskGroup,
        request: p.ToolCall,
        deliver: Deliver,
        *,
        turn: int,
        origin: object,
        epoch: int,
        seq: int,
    ) -> list[FunctionCall | ProviderError]:
        """Run the calls of one ``toolCall``; the events to report them (and a non-fatal
        error for those refused)."""
        events: list[FunctionCall | ProviderError] = []
        refused: list[str] = []
        batch: list[Call] = []
        """The blocking calls: answered together."""
        started: list[Call] = []
        for wanted in request.calls:
            call_id = wanted.call_id or f"call-{next(self._local_ids)}"
            while call_id in self._running:  # a repeated id: ours must stay unique
                call_id = f"{wanted.call_id}-{next(self._local_ids)}"
            scheduling = self.non_blocking.get(wanted.name)
            call = Call(
                call_id=call_id,
                server_id=wanted.call_id,
                name=wanted.name,
                arguments=wanted.arguments,
                turn=turn,
                origin=origin,
                epoch=epoch,
                seq=seq,
                scheduling=scheduling,
                must_complete=must_complete(self.config, wanted.name),
            )
            if scheduling is None:
                call.batch = batch
                batch.append(call)
            started.append(call)
            events.append(FunctionCall(call_id, wanted.name, dict(wanted.arguments)))
            if len(self._running) >= self.max_running:
                call.refused = True
                self.refused += 1
                refused.append(call.name)
                log.warning("function call %s (%s) refused: %s", call_id, call.name, TOO_MANY)
            self._running[call_id] = call
        for call in started:
            tasks.start_soon(self._run, call, deliver)
        if refused:
            error = GeminiLiveError(
                f"{len(refused)} function call(s) refused ({', '.join(refused)}): "
                f"{self.max_running} are running already"
            )
            events.append(ProviderError(error, fatal=False))
        return events

    def cancel_from_server(self, call_ids: tuple[str, ...]) -> ProviderError | None:
        """``toolCallCancellation``: cancel those calls (``must_complete`` ones run on);
        the report, if any call was known."""
        cancelled: list[Call] = []
        for server_id in call_ids:
            calls = [c for c in self._running.values() if c.server_id == server_id and server_id]
            if not calls:
                self.unknown_cancellations += 1
                log.debug("cancellation of an unknown function call %r", server_id)
            for call in calls:
                call.cancelled_by_server = True
                if not call.must_complete:
                    call.scope.cancel()
                cancelled.append(call)
        if not cancelled:
            return None
        self.cancelled += len(cancelled)
        kept = sum(1 for call in cancelled if call.must_complete)
        names = ", ".join(call.name for call in cancelled)
        message = f"the model cancelled function calls ({names}): the caller interrupted"
        if kept:
            message += f"; {kept} must complete and run on"
        error = FunctionCallCancelledError(
            message,
            call_ids=tuple(call.call_id for call in cancelled),
            names=tuple(call.name for call in cancelled),
            kept=kept,
        )
        return ProviderError(error, fatal=False)

    def cancel_turn(self, turn: int) -> int:
        """The consumer interrupted turn ``turn``: cancel its calls (not ``must_complete``
        ones); they are answered as cancelled. Returns how many."""
        count = 0
        for call in list(self._running.values()):
            if call.turn == turn and not call.must_complete and not call.cancelled_by_server:
                call.cancelled_locally = True
                call.scope.cancel()
                count += 1
        self.cancelled += count
        return count

    def cancel_all(self) -> None:
        """The call is ending: stop what need not complete (answered as cancelled)."""
        for call in list(self._running.values()):
            if not call.must_complete:
                call.cancelled_locally = True
                call.scope.cancel()

    async def wait_idle(self) -> None:
        """Until no call is running."""
        while self._running:
            await next(iter(self._running.values())).finished.wait()

    # --- running one call -----------------------------------------------------------------

    async def _run(self, call: Call, deliver: Deliver) -> None:
        outcome: FunctionOutcome | None = None
        if not call.refused:
            with call.scope:
                outcome = await run_function_call(
                    self.config, call.call_id, call.name, call.arguments
                )
        call.result = self._result(call, outcome)
        call.done = True
        self._running.pop(call.call_id, None)
        call.finished.set()
        if call.scheduling is not None:
            if call.result is not None:
                await deliver([call])
        elif all(c.done for c in call.batch):
            answered = [c for c in call.batch if c.result is not None]
            if answered:
                await deliver(answered)

    def _result(self, call: Call, outcome: FunctionOutcome | None) -> p.FunctionResult | None:
        scheduling = call.scheduling
        if outcome is not None:
            if outcome.ok:
                output = json.loads(outcome.output)
                return p.FunctionResult(
                    call.server_id, call.name, output=output, scheduling=scheduling
                )
            return p.FunctionResult(
                call.server_id, call.name, error=outcome.error, scheduling=scheduling
            )
        if call.refused:
            return p.FunctionResult(
                call.server_id, call.name, error=TOO_MANY, scheduling=scheduling
            )
        if call.cancelled_by_server:
            return None  # the model does not want it any more
        # Cancelled by an interruption the model did not see: it still waits for an
        # answer; a non-blocking one says it quietly.
        return p.FunctionResult(
            call.server_id,
            call.name,
            error=CANCELLED,
            scheduling="SILENT" if scheduling is not None else None,
        )
