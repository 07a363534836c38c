"""Function answers on their way to the connection serving the call, across moves.

A finished call's answer goes to the connection serving the call now: as a
``toolResponse`` when the server session behind it knows the call, in words
(``realtimeInput.text``) when it does not (a fresh session, a session resumed from a handle
older than the call, a call the server cancelled). While no connection can take answers
(the call is moving), they wait in a bounded outbox and go to the next one first.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from omnivoice.concurrency import fast_lock
from omnivoice.net import ConnectionClosed
from omnivoice.realtime import ProviderError
from omnivoice_gemini_live import protocol as p
from omnivoice_gemini_live.connection import Connection
from omnivoice_gemini_live.errors import GeminiLiveError
from omnivoice_gemini_live.tools import Call

__all__ = ["Answers", "knows"]

log = logging.getLogger(__name__)

Report = Callable[[ProviderError], Awaitable[None]]


def knows(conn: Connection, call: Call) -> bool:
    """The server session behind ``conn`` has ``call``: it arrived there, or the session
    was resumed from a handle issued after it arrived."""
    if call.epoch != conn.epoch:
        return False
    return call.origin is conn or (conn.resumed_seq is not None and conn.resumed_seq > call.seq)


class Answers:
    """The answers of one call's function calls, and the outbox of those waiting.

    ``report`` is told of answers dropped because more than ``limit`` waited with no
    connection to take them (the oldest go first).
    """

    def __init__(self, report: Report, *, limit: int) -> None:
        self._report = report
        self.limit = limit
        self.lock = fast_lock()
        """Held while answers move, and while the connection serving the call changes."""
        self._outbox: list[Call] = []
        self.dropped = 0

    @property
    def waiting(self) -> int:
        return len(self._outbox)

    async def deliver(self, conn: Connection | None, calls: list[Call]) -> None:
        """Answer ``calls`` on ``conn`` (the one serving the call), or keep them for the
        next one if it takes no answers. Call it holding :attr:`lock`."""
        if conn is None or not conn.accepts:
            await self._hold(calls)
        else:
            await self._send(conn, calls)

    async def flush(self, conn: Connection) -> None:
        """Send what waited to the connection that now serves the call (holding :attr:`lock`)."""
        waiting, self._outbox = self._outbox, []
        if waiting:
            await self._send(conn, waiting)

    async def _send(self, conn: Connection, calls: list[Call]) -> None:
        direct = [c for c in calls if knows(conn, c) and not c.cancelled_by_server]
        notes = [c for c in calls if c not in direct]
        try:
            if direct:
                results = [c.result for c in direct if c.result is not None]
                await conn.ws.send(p.tool_response(results))
                direct = []
            while notes:
                await conn.ws.send(p.realtime_text(notes[0].note()))
                notes.pop(0)
        except ConnectionClosed:
            conn.accepts = False
            await self._hold(direct + notes)

    async def _hold(self, calls: list[Call]) -> None:
        self._outbox.extend(calls)
        excess = len(self._outbox) - self.limit
        if excess <= 0:
            return
        dropped, self._outbox = self._outbox[:excess], self._outbox[excess:]
        self.dropped += len(dropped)
        names = ", ".join(c.name for c in dropped)
        error = GeminiLiveError(
            f"{excess} function answer(s) dropped ({names}): no connection took them"
        )
        log.error("%s", error)
        await self._report(ProviderError(error, fatal=False))
