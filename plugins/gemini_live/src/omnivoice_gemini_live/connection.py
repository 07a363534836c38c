"""One WebSocket connection of a call: its setup handshake, its keepalive, its state.

A call's :class:`~omnivoice_gemini_live.session.Session` opens connections with
:func:`set_up` (``setup`` first, then ``setupComplete``, then a fresh session's history),
keeps each one checked with :func:`keepalive`, and tracks what it knows of each in a
:class:`Connection`. The server sessions behind the connections are kept apart by
*epochs*: a resumption continues its epoch, a fresh session starts the next.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio
import attrs

from omnivoice.errors import ConnectionFailedError, OmnivoiceError
from omnivoice.net import ConnectionClosed, WebSocket
from omnivoice.realtime import AudioSink, ConversationItem
from omnivoice_gemini_live import protocol as p
from omnivoice_gemini_live.errors import ResumptionRefusedError, close_error

__all__ = ["Connection", "keepalive", "set_up"]

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class Connection:
    """One WebSocket connection and what the session knows of it."""

    ws: WebSocket
    number: int
    label: str
    """The server's session id, else ``connection-N``."""
    epoch: int
    """The server session it serves (a fresh session is a new epoch, a resumption not)."""
    resumed_seq: int | None
    """For a resumption: the number of the handle it resumed."""
    opened_at: float
    leftover: list[p.ServerEvent] = attrs.field(factory=list)
    """Events that came in the message that completed the setup."""
    ready: anyio.Event = attrs.field(factory=anyio.Event)
    """Set once the session took it: its receive loop runs from then on."""
    sink: AudioSink | None = None
    alive: bool = True
    accepts: bool = True
    """It takes the caller's audio and function answers (not once it is being replaced)."""
    retired: bool = False
    """Replaced: whatever it still says is ignored."""
    close: tuple[int, str] = (1006, "")
    fatal: OmnivoiceError | None = None
    go_away_at: float | None = None
    """When it must be left by (the server said ``goAway``)."""
    move_reason: str = ""

    @property
    def resumed(self) -> bool:
        return self.resumed_seq is not None


def is_retired(conn: Connection) -> bool:
    # A function, not the attribute: type checkers take it as unchanged across awaits.
    return conn.retired


async def set_up(
    ws: WebSocket,
    parser: p.Parser,
    setup: p.Setup,
    history: Sequence[ConversationItem],
    *,
    within: float,
    number: int,
    epoch: int,
    resumed_seq: int | None,
) -> Connection:
    """Send ``setup``, wait for ``setupComplete``, send a fresh session's ``history``.

    Raises the contract's errors: a close before ``setupComplete`` by its code and reason
    (:func:`~omnivoice_gemini_live.errors.close_error`; for a resumption, one with no more
    specific class is :class:`~omnivoice_gemini_live.errors.ResumptionRefusedError`), no
    ``setupComplete`` within ``within`` seconds as ``ConnectionFailedError``.
    """
    resuming = setup.resumption_handle is not None
    try:
        with anyio.fail_after(within):
            await ws.send(p.setup_message(setup))
            session_id, leftover = await _setup_complete(ws, parser)
            if history:
                turns = [(_role(item), item.text) for item in history]
                # Initial history in the setup is complete with this message; otherwise
                # the turns are context, not a question to answer.
                await ws.send(p.client_content(turns, turn_complete=setup.initial_history))
    except TimeoutError:
        raise ConnectionFailedError(
            f"Gemini Live did not complete the setup within {within:g} s"
        ) from None
    except ConnectionClosed as exc:
        error = close_error(exc.code, exc.reason)
        if resuming and type(error) is ConnectionFailedError:
            raise ResumptionRefusedError(f"{error} (resuming a session)") from exc
        raise error from exc
    return Connection(
        ws,
        number=number,
        label=session_id or f"connection-{number}",
        epoch=epoch,
        resumed_seq=resumed_seq,
        opened_at=anyio.current_time(),
        leftover=leftover,
    )


async def _setup_complete(
    ws: WebSocket, parser: p.Parser
) -> tuple[str | None, list[p.ServerEvent]]:
    while True:
        events = parser.parse(await ws.receive())
        for index, event in enumerate(events):
            if isinstance(event, p.SetupComplete):
                return event.session_id, events[index + 1 :]
            log.debug("%r before setupComplete, ignored", event)


async def keepalive(conn: Connection, *, interval: float, pong_within: float) -> None:
    """Ping every ``interval`` seconds; a connection that answers no ping within
    ``pong_within`` seconds is dead (a silent network failure) and is cut, so its receive
    loop sees the loss and the call moves on. Be generous: the service has been seen to
    take many seconds to answer."""
    while not is_retired(conn):
        await anyio.sleep(interval)
        with anyio.move_on_after(pong_within) as waiting:
            try:
                await conn.ws.ping()
            except ConnectionClosed:
                return  # the receive loop sees it
        if waiting.cancelled_caught:
            log.warning("Gemini Live %s answered no ping in %g s: cut", conn.label, pong_within)
            await conn.ws.abort()
            return


def _role(item: ConversationItem) -> p.Role:
    return "user" if item.role == "user" else "model"
