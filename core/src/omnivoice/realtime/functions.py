"""Running the model's function calls through ``ProcessConfig.on_function_call``.

Every provider runs calls the same way: the handler may be plain or async; a plain one
runs in a worker thread so it never blocks the audio; its result (any JSON value) or its
exception goes back to the model as JSON text; ``ProcessConfig.function_timeout`` bounds
each call. Providers decide when to start a call and whether an interruption cancels it
(:func:`must_complete`).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.to_thread
import attrs

from omnivoice.realtime.types import ProcessConfig
from omnivoice.telemetry import tracing
from omnivoice.telemetry.metrics import gateway_metrics

__all__ = ["FunctionOutcome", "must_complete", "run_function_call"]

log = logging.getLogger(__name__)

_TIMED_OUT = "timed out after"


@attrs.frozen
class FunctionOutcome:
    """The answer to one function call, ready for the model."""

    call_id: str
    name: str
    output: str
    """JSON text: the handler's result, or ``{"error": "..."}``."""
    ok: bool

    @property
    def error(self) -> str | None:
        return None if self.ok else str(json.loads(self.output)["error"])


def must_complete(config: ProcessConfig, name: str) -> bool:
    """Whether calls of ``name`` run to the end even when the caller interrupts."""
    return any(f.name == name and f.must_complete for f in config.functions)


async def run_function_call(
    config: ProcessConfig, call_id: str, name: str, arguments: str | Mapping[str, Any]
) -> FunctionOutcome:
    """Run one call; never raises, except for cancellation.

    ``arguments`` is the model's JSON text (or already parsed). Invalid arguments, a
    missing handler, an exception, a result that is not JSON, or a timeout each give an
    outcome with ``ok=False`` whose output tells the model what went wrong. Each call is
    a ``omnivoice.tool_call`` span and counted in ``omnivoice_function_calls_total``.
    """
    result = "cancelled"
    try:
        with tracing.operation("omnivoice.tool_call", **{"omnivoice.function": name}) as span:
            outcome = await _run(config, call_id, name, arguments)
            result = "ok" if outcome.ok else "error"
            if not outcome.ok:
                if (outcome.error or "").startswith(_TIMED_OUT):
                    result = "timeout"
                span.fail(result)
            span.set("omnivoice.function.outcome", result)
            return outcome
    finally:
        gateway_metrics().count_function_call(result)


async def _run(
    config: ProcessConfig, call_id: str, name: str, arguments: str | Mapping[str, Any]
) -> FunctionOutcome:

    def failed(message: str) -> FunctionOutcome:
        log.warning("function call %s (%s) failed: %s", call_id, name, message)
        return FunctionOutcome(call_id, name, json.dumps({"error": message}), ok=False)

    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            return failed(f"the arguments are not valid JSON: {exc}")
    else:
        parsed = dict(arguments)
    if not isinstance(parsed, dict):
        return failed("the arguments must be a JSON object")
    handler = config.on_function_call
    if handler is None:
        return failed(f"no handler is configured for function {name!r}")
    try:
        with anyio.fail_after(config.function_timeout):
            if inspect.iscoroutinefunction(handler):
                result = await handler(call_id, name, parsed)
            else:
                # A plain function may block: a worker thread keeps the audio flowing.
                call = functools.partial(handler, call_id, name, parsed)
                result = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
                if inspect.isawaitable(result):
                    result = await result
    except TimeoutError:
        return failed(f"{_TIMED_OUT} {config.function_timeout:g} s")
    except Exception as exc:
        return failed(f"{type(exc).__name__}: {exc}")
    try:
        output = json.dumps(result)
    except (TypeError, ValueError) as exc:
        return failed(f"the result is not JSON: {exc}")
    return FunctionOutcome(call_id, name, output, ok=True)
