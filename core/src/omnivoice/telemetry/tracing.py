"""OpenTelemetry traces: a span per call, per turn and per provider operation.

Only the OpenTelemetry *API* is used (``pip install omnivoice-core[otel]``); nothing is
recorded or exported unless the application configures an SDK, by the standard ``OTEL_*``
environment variables (``opentelemetry-instrument omnivoice serve ...``) or in its own
code. Without the API installed every function here does nothing.

Spans (``docs/operations.md`` lists their attributes):

- ``omnivoice.call``: the whole call, with its ids; events for provider errors and switches.
- ``omnivoice.turn``: one exchange, with the response latency, the onset the gateway
  added, the pipeline's stage latencies; a ``barge_in`` event when the caller cut in.
- ``omnivoice.provider.connect``, ``omnivoice.stt.segment``, ``omnivoice.llm.request``,
  ``omnivoice.tts.synthesis``, ``omnivoice.tool_call``: the provider's operations, each
  under the turn it served (or the call, outside a turn).
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from omnivoice import __version__
from omnivoice.telemetry import timeline as t
from omnivoice.telemetry.context import current_call
from omnivoice.telemetry.redact import redact

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from omnivoice.calls import CallInfo

__all__ = ["CallTrace", "operation", "record_operation", "use_tracer_provider"]

_INSTRUMENTATION = "omnivoice"
_RECENT_TURNS = 8
_provider: TracerProvider | None = None


@functools.cache
def _api() -> Any:
    """The ``opentelemetry.trace`` module, or ``None`` when the API is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace


def _tracer() -> Tracer | None:
    api = _api()
    if api is None:
        return None
    if _provider is not None:
        return _provider.get_tracer(_INSTRUMENTATION, __version__)
    tracer: Tracer = api.get_tracer(_INSTRUMENTATION, __version__)
    return tracer


@contextmanager
def use_tracer_provider(provider: TracerProvider | None) -> Iterator[None]:
    """Trace with ``provider`` instead of the global one inside the block (for tests and
    applications that keep their own provider)."""
    global _provider
    previous, _provider = _provider, provider
    try:
        yield
    finally:
        _provider = previous


def _epoch_ns(moment: float, now: float) -> int:
    """``moment`` of a clock that reads ``now`` as OpenTelemetry's nanoseconds since the epoch."""
    return time.time_ns() - int((now - moment) * 1e9)


class CallTrace:
    """The spans of one call, driven by the facts of its :class:`~.timeline.Timeline`."""

    def __init__(self, tracer: Tracer, call: CallInfo) -> None:
        from opentelemetry import context, trace

        self._trace = trace
        self._context = context
        self.span: Span = tracer.start_span(
            "omnivoice.call",
            kind=trace.SpanKind.SERVER,
            attributes={
                "omnivoice.call.id": call.call_id,
                "omnivoice.transport": call.transport,
                "omnivoice.provider": call.provider,
                "omnivoice.carrier_call_id": call.carrier_call_id,
                "omnivoice.stream_id": call.stream_id,
            },
        )
        self._tracer = tracer
        self._turns: dict[int, Span] = {}
        self._open_turn: int | None = None
        self._starts: dict[int, float] = {}
        self._recent: deque[tuple[float, float, Span]] = deque(maxlen=_RECENT_TURNS)
        """Turns by their start and end on the monotonic clock, newest last, so that an
        operation reported after its turn ended still goes under it."""
        # Spans started by third-party instrumentation in the call's tasks nest under it.
        self._token: Token[Context] | None = context.attach(trace.set_span_in_context(self.span))
        self._connect: Span | None = self.child("omnivoice.provider.connect", self.span)

    @classmethod
    def start(cls, call: CallInfo) -> CallTrace | None:
        tracer = _tracer()
        return cls(tracer, call) if tracer is not None else None

    def child(
        self, name: str, parent: Span, attributes: Mapping[str, Any] | None = None, **kw: Any
    ) -> Span:
        context = self._trace.set_span_in_context(parent)
        return self._tracer.start_span(name, context=context, attributes=attributes, **kw)

    def parent(self, at: float | None = None) -> Span:
        """The span a provider operation that started at ``at`` (monotonic clock; default
        now) belongs under: the last turn started by then (the first turn, for what began
        just before it, like the recognition of its speech), else the call."""
        if at is None:
            if self._open_turn is not None and self._open_turn in self._turns:
                return self._turns[self._open_turn]
            return self.span
        turns = [(started, span) for started, _, span in self._recent]
        turns += [(self._starts[i], span) for i, span in self._turns.items() if i in self._starts]
        turns.sort(key=lambda turn: turn[0])
        earlier = [span for started, span in turns if started <= at]
        if earlier:
            return earlier[-1]
        return turns[0][1] if turns else self.span

    def on(self, fact: t.Fact) -> None:
        if isinstance(fact, t.SessionOpened):
            if self._connect is not None:
                self._connect.end()
                self._connect = None
        elif isinstance(fact, t.TurnStarted):
            self._turns[fact.turn] = self.child(
                "omnivoice.turn", self.span, {"omnivoice.turn.index": fact.turn}
            )
            self._starts[fact.turn] = time.monotonic()
            self._open_turn = fact.turn
        elif isinstance(fact, t.TurnEnded):
            span = self._turns.pop(fact.turn, None)
            started = self._starts.pop(fact.turn, None)
            if span is not None:
                if started is not None:
                    self._recent.append((started, time.monotonic(), span))
                span.set_attribute("omnivoice.turn.interrupted", fact.interrupted)
                if fact.heard_ms is not None:
                    span.set_attribute("omnivoice.turn.heard_ms", fact.heard_ms)
                span.end()
            if self._open_turn == fact.turn:
                self._open_turn = max(self._turns, default=None)
        elif isinstance(fact, t.ResponseStarted):
            self._set(fact.turn, "omnivoice.response_latency_ms", fact.latency_s)
            self._set(fact.turn, "omnivoice.onset_ms", fact.onset_s)
        elif isinstance(fact, t.BargeIn):
            latency_ms = round(fact.latency_s * 1000, 2)
            target = self._turns.get(fact.turn, self.span)
            target.add_event(
                "barge_in", {"omnivoice.barge_in_latency_ms": latency_ms, "heard_ms": fact.heard_ms}
            )
            target.set_attribute("omnivoice.barge_in_latency_ms", latency_ms)
        elif isinstance(fact, t.StageTimings):
            self._set(fact.turn, "omnivoice.stt_final_ms", fact.stt_final_s)
            self._set(fact.turn, "omnivoice.llm_first_token_ms", fact.llm_first_token_s)
            self._set(fact.turn, "omnivoice.tts_first_audio_ms", fact.tts_first_audio_s)
        elif isinstance(fact, t.ProviderFailed):
            self.span.add_event(
                "provider_error", {"omnivoice.error": fact.error, "omnivoice.fatal": fact.fatal}
            )
        elif isinstance(fact, t.ProviderSwitch):
            switched = {
                "omnivoice.previous": fact.previous,
                "omnivoice.current": fact.current,
                "omnivoice.reason": redact(fact.reason)[:200],
            }
            self.span.add_event("provider_switched", switched)

    def end(self, outcome: str, error: BaseException | None) -> None:
        """End every span still open; mark the call's outcome."""
        status = self._trace.StatusCode
        if self._connect is not None:  # the session never opened
            if error is not None:
                self._connect.set_status(status.ERROR, type(error).__name__)
            self._connect.end()
            self._connect = None
        for span in self._turns.values():
            span.end()
        self._turns.clear()
        self.span.set_attribute("omnivoice.outcome", outcome)
        if outcome != "completed":
            description = type(error).__name__ if error is not None else outcome
            self.span.set_status(status.ERROR, description)
        self.span.end()

    def detach(self) -> None:
        """Leave the call's context (in the task that started the trace)."""
        if self._token is not None:
            self._context.detach(self._token)
            self._token = None

    def _set(self, turn: int, name: str, seconds: float | None) -> None:
        span = self._turns.get(turn)
        if span is not None and seconds is not None:
            span.set_attribute(name, round(seconds * 1000, 2))


class _Operation:
    """What :func:`operation` yields: the span's attributes and events, or nothing."""

    def __init__(self, span: Span | None) -> None:
        self._span = span

    def set(self, name: str, value: Any) -> None:
        if self._span is not None and value is not None:
            self._span.set_attribute(name, value)

    def fail(self, description: str) -> None:
        if self._span is not None:
            self._span.set_status(_api().StatusCode.ERROR, description)


def _start(
    name: str,
    attributes: Mapping[str, Any],
    start_time: int | None = None,
    at: float | None = None,
) -> Span | None:
    tracer = _tracer()
    if tracer is None:
        return None
    scope = current_call()
    trace = scope.trace if scope is not None else None
    if isinstance(trace, CallTrace):
        return trace.child(name, trace.parent(at), attributes, start_time=start_time)
    return tracer.start_span(name, attributes=attributes, start_time=start_time)


@contextmanager
def operation(name: str, **attributes: Any) -> Iterator[_Operation]:
    """A span around one provider operation (a tool call, a request), under the call's
    current turn. An exception leaving the block marks the span as failed."""
    span = _start(name, {k: v for k, v in attributes.items() if v is not None})
    try:
        yield _Operation(span)
    except BaseException as exc:
        if span is not None:
            span.set_status(_api().StatusCode.ERROR, type(exc).__name__)
        raise
    finally:
        if span is not None:
            span.end()


def record_operation(
    name: str,
    start: float | None,
    end: float | None,
    *,
    now: float | None = None,
    **attributes: Any,
) -> None:
    """A span for an operation that already happened, from ``start`` to ``end`` in seconds
    of a clock that reads ``now`` at this moment (default: ``time.monotonic``). Nothing
    when either end is unknown."""
    if start is None or end is None or _api() is None:
        return
    now = time.monotonic() if now is None else now
    values = {k: v for k, v in attributes.items() if v is not None}
    at = time.monotonic() - (now - start)
    span = _start(name, values, start_time=_epoch_ns(start, now), at=at)
    if span is not None:
        span.end(end_time=_epoch_ns(max(start, end), now))
