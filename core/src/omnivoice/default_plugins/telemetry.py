"""Built-in plugin: Prometheus metrics and OpenTelemetry spans of every call.

An observer like any other (``call_started``, ``call_event``, ``call_ended``,
``stream_ended``): each call's events go through a :class:`~omnivoice.telemetry.timeline.
Timeline`, and its facts feed the metrics (:mod:`omnivoice.telemetry.metrics`) and the
spans (:mod:`omnivoice.telemetry.tracing`). The state of a call lives in its
:class:`~omnivoice.telemetry.context.CallScope`, so nothing outlives the call; outside a
call's scope the hooks do nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from omnivoice.calls import CallInfo
from omnivoice.errors import ConnectionFailedError, OmnivoiceError
from omnivoice.hookspecs import hookimpl
from omnivoice.telemetry import timeline as t
from omnivoice.telemetry.context import current_call
from omnivoice.telemetry.metrics import GatewayMetrics, gateway_metrics
from omnivoice.telemetry.tracing import CallTrace

log = logging.getLogger(__name__)


class _CallTelemetry:
    """One call's timeline, its metric labels and its spans."""

    def __init__(self, call: CallInfo) -> None:
        self.call = call
        self.timeline = t.Timeline()
        self.metrics: GatewayMetrics = gateway_metrics()
        self.labels = self.metrics.labels(transport=call.transport, provider=call.provider)
        self.trace = CallTrace.start(call)
        self.last_time = 0.0
        self.metrics.active_calls.inc()
        self.active = True

    def feed(self, event: Any) -> None:
        self.last_time = event.time
        for fact in self.timeline.feed(event):
            self._count(fact)
            if self.trace is not None:
                self.trace.on(fact)

    def _count(self, fact: t.Fact) -> None:
        m, labels = self.metrics, self.labels
        if isinstance(fact, t.ResponseStarted):
            if fact.latency_s is not None:
                m.response_latency.labels(**labels).observe(fact.latency_s)
            if fact.onset_s is not None:
                m.onset.labels(**labels).observe(fact.onset_s)
        elif isinstance(fact, t.BargeIn):
            m.barge_ins.labels(**labels).inc()
            m.barge_in_latency.labels(**labels).observe(fact.latency_s)
        elif isinstance(fact, t.StageTimings):
            for stage, seconds in (
                ("stt_final", fact.stt_final_s),
                ("llm_first_token", fact.llm_first_token_s),
                ("tts_first_audio", fact.tts_first_audio_s),
            ):
                if seconds is not None:
                    m.pipeline_stage.labels(stage=stage).observe(seconds)
        elif isinstance(fact, t.ProviderFailed):
            self._provider_error(fact.error, fact.fatal)
        elif isinstance(fact, t.ProviderSwitch):
            m.provider_switches.labels(
                **m.labels(previous=fact.previous, current=fact.current)
            ).inc()

    def _provider_error(self, error: str, fatal: bool) -> None:
        m = self.metrics
        labels = m.labels(provider=self.call.provider, error=error)
        m.provider_errors.labels(**labels, fatal="true" if fatal else "false").inc()

    def ended(self, duration_s: float) -> None:
        if not self.active:
            return
        self.active = False
        self.metrics.active_calls.dec()
        self.metrics.call_duration.labels(**self.labels).observe(max(0.0, duration_s))
        for fact in self.timeline.close(self.last_time):
            if self.trace is not None:
                self.trace.on(fact)

    def closed(self, error: BaseException | None) -> None:
        self.ended(0.0)  # in case call_ended was not reached
        outcome = call_outcome(error, self.timeline)
        if isinstance(error, ConnectionFailedError):
            self._provider_error(type(error).__name__, True)
        self.metrics.calls.labels(**self.labels, outcome=outcome).inc()
        log.debug("%s: counted as %s", self.call.call_id, outcome)
        if self.trace is not None:
            self.trace.end(outcome, error)
            self.trace.detach()


def call_outcome(error: BaseException | None, timeline: t.Timeline) -> str:
    """How a call ended: ``completed``, ``provider_error`` (its session failed),
    ``provider_unavailable`` (no provider connected), ``carrier_error`` (the carrier broke
    the protocol), ``error``, ``internal_error`` or ``shutdown``."""
    from omnivoice.telephony.protocol import ProtocolError

    if error is None:
        return "provider_error" if timeline.fatal_error else "completed"
    if isinstance(error, ProtocolError):
        return "carrier_error"
    if isinstance(error, ConnectionFailedError):
        return "provider_unavailable"
    if isinstance(error, OmnivoiceError):
        return "provider_error" if timeline.fatal_error else "error"
    if not isinstance(error, Exception):
        return "shutdown"
    return "internal_error"


def _state() -> _CallTelemetry | None:
    scope = current_call()
    state = scope.observer if scope is not None else None
    return state if isinstance(state, _CallTelemetry) else None


@hookimpl
def call_started(call: CallInfo) -> None:
    scope = current_call()
    if scope is None or scope.call_id != call.call_id:
        return
    state = _CallTelemetry(call)
    scope.observer = state
    scope.trace = state.trace


@hookimpl
def call_event(call: CallInfo, event: Any) -> None:
    state = _state()
    if state is not None and state.call.call_id == call.call_id:
        state.feed(event)


@hookimpl
def call_ended(call: CallInfo, transcript: Any, metrics: Any) -> None:
    state = _state()
    if state is not None and state.call.call_id == call.call_id:
        duration = metrics.get("duration_s", 0.0) if isinstance(metrics, Mapping) else 0.0
        state.ended(float(duration or 0.0))


@hookimpl
def stream_ended(
    transport: str,
    call: CallInfo | None,
    error: BaseException | None,
    bad_frames: Mapping[str, int],
) -> None:
    gateway_metrics().count_bad_frames(transport, bad_frames)
    state = _state()
    if state is not None:
        state.closed(error)
