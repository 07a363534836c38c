"""Which call the running code belongs to, through a context variable.

The gateway enters a :class:`CallScope` for each media stream it serves; every task the
call starts inherits it (anyio copies the context into each task), so log records, spans
and metrics of that call find its ids without them being passed along. The scope is
mutable because a call learns its carrier's ids only once the stream has started.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs

__all__ = ["CallScope", "call_scope", "current_call"]


@attrs.define(eq=False)
class CallScope:
    """The ids of one call, as far as they are known."""

    call_id: str
    transport: str = ""
    carrier_call_id: str = ""
    stream_id: str = ""
    provider: str = ""
    trace: Any = None
    """The call's spans (a :class:`~omnivoice.telemetry.tracing.CallTrace`), if traced."""
    observer: Any = None
    """The built-in telemetry observer's state for this call."""

    def bind(self, *, carrier_call_id: str, stream_id: str, provider: str) -> None:
        """Record the ids the carrier's ``start`` gave and the provider chosen."""
        self.carrier_call_id = carrier_call_id
        self.stream_id = stream_id
        self.provider = provider


_current: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar(
    "omnivoice_call", default=None
)


def current_call() -> CallScope | None:
    """The scope of the call the running code serves, or ``None`` outside any call."""
    return _current.get()


@contextmanager
def call_scope(call_id: str, transport: str = "") -> Iterator[CallScope]:
    """Run the block (and every task it starts) as part of call ``call_id``."""
    scope = CallScope(call_id, transport)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)
