"""One call's events turned into what operators measure: turns, latencies, barge-ins.

Sans-IO: :meth:`Timeline.feed` takes the gateway's events (``omnivoice.gateway.Event``,
read by their ``type.value``, ``time`` and ``data``) in order and returns the facts they
imply. The metrics and the traces are both made from these facts, so both count the same.

A *turn* is one exchange: it opens when the caller starts speaking (or the agent speaks
first) and closes when the agent's answer has played to its end or was cut off. When the
caller barges in, a new turn opens at once and the interrupted one closes when the
carrier's line has been cleared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "BargeIn",
    "ProviderFailed",
    "ProviderSwitch",
    "ResponseStarted",
    "SessionOpened",
    "StageTimings",
    "Timeline",
    "TurnEnded",
    "TurnStarted",
]


@attrs.frozen
class SessionOpened:
    """The provider's session is open (the connection is made)."""

    time: float


@attrs.frozen
class TurnStarted:
    turn: int
    time: float


@attrs.frozen
class TurnEnded:
    turn: int
    time: float
    interrupted: bool = False
    heard_ms: int | None = None


@attrs.frozen
class ResponseStarted:
    """The first audio of the agent's answer went to the caller's line."""

    turn: int
    time: float
    latency_s: float | None
    """From the real end of the caller's speech (``None``: not an answer to speech)."""
    onset_s: float | None
    """Added by the gateway: the provider's first audio to the caller's line."""


@attrs.frozen
class BargeIn:
    """The caller spoke over the agent and the line was cleared."""

    turn: int
    time: float
    latency_s: float
    """From the provider's word that the caller started speaking to the carrier's ``clear``."""
    heard_ms: int


@attrs.frozen
class StageTimings:
    """The text pipeline's latencies of one answer (``None`` where a stage did not run)."""

    turn: int
    stt_final_s: float | None
    llm_first_token_s: float | None
    tts_first_audio_s: float | None


@attrs.frozen
class ProviderFailed:
    error: str
    """The error's class name (never its message: it may quote what the vendor said)."""
    fatal: bool
    time: float


@attrs.frozen
class ProviderSwitch:
    previous: str
    current: str
    reason: str
    time: float


Fact = (
    SessionOpened
    | TurnStarted
    | TurnEnded
    | ResponseStarted
    | BargeIn
    | StageTimings
    | ProviderFailed
    | ProviderSwitch
)

_STAGES = {
    "stt_final_s": "stt_final_ms",
    "llm_first_token_s": "llm_first_token_ms",
    "tts_first_audio_s": "tts_first_audio_ms",
}


@attrs.define
class _Turn:
    index: int
    agent_started: bool = False


class Timeline:
    """The facts of one call, from its events."""

    def __init__(self) -> None:
        self._turns = 0
        self._current: _Turn | None = None
        """The turn being formed: the caller speaking, or the answer to it."""
        self._playing: _Turn | None = None
        """An answer still playing after the caller started the next turn over it."""
        self._answering: int | None = None
        """The turn whose answer the provider produced last (its usage comes after)."""
        self._speech_started_at: float | None = None
        self._cut_off: list[TurnEnded] = []
        """Turns whose answer was cut off, ended once the interruption is reported."""
        self.session_opened = False
        self.fatal_error = False
        self.interrupted = False

    def feed(self, event: Any) -> list[Fact]:
        kind: str = event.type.value
        time: float = event.time
        data: Mapping[str, Any] = event.data
        facts: list[Fact] = []
        if kind == "session_started":
            self.session_opened = True
            facts.append(SessionOpened(time))
        elif kind == "user_speech_started":
            self._speech_started_at = time
            current = self._current
            if current is not None and current.agent_started:
                self._playing = current  # it ends when the line is cleared
                current = None
            if current is None:
                self._current = self._open(time, facts)
        elif kind == "agent_speech_started":
            if self._current is None:
                self._current = self._open(time, facts)  # the agent speaks first
            self._current.agent_started = True
            self._answering = self._current.index
        elif kind == "agent_audio_started":
            if self._current is None:
                self._current = self._open(time, facts)
            facts.append(
                ResponseStarted(
                    self._current.index,
                    time,
                    _seconds(data.get("latency_ms")),
                    _seconds(data.get("onset_ms")),
                )
            )
        elif kind == "interruption":
            self.interrupted = True
            # The bridge reports the answers it cut off, then the interruption itself.
            ended, self._cut_off = self._cut_off, []
            turn = ended[0].turn if ended else self._turn_index()
            if data.get("reason") == "barge-in" and self._speech_started_at is not None:
                latency = max(0.0, time - self._speech_started_at)
                facts.append(BargeIn(turn, time, latency, int(data.get("heard_ms") or 0)))
            facts.extend(ended)
        elif kind == "agent_speech_ended":
            turn_ = self._playing or self._current
            if turn_ is not None:
                if turn_ is self._playing:
                    self._playing = None
                else:
                    self._current = None
                interrupted = bool(data.get("interrupted"))
                end = TurnEnded(turn_.index, time, interrupted, _int(data.get("heard_ms")))
                if interrupted:
                    self._cut_off.append(end)
                else:
                    facts.append(end)
        elif kind == "usage":
            pipeline = (data.get("details") or {}).get("pipeline")
            if isinstance(pipeline, Mapping):
                turn_index = self._answering if self._answering is not None else self._turns
                stages = {name: _seconds(pipeline.get(key)) for name, key in _STAGES.items()}
                facts.append(StageTimings(turn_index, **stages))
        elif kind == "error":
            fatal = bool(data.get("fatal"))
            self.fatal_error = self.fatal_error or fatal
            facts.append(ProviderFailed(str(data.get("error") or "error"), fatal, time))
        elif kind == "provider_switched":
            facts.append(
                ProviderSwitch(
                    str(data.get("previous", "")),
                    str(data.get("current", "")),
                    str(data.get("reason", "")),
                    time,
                )
            )
        return facts

    def close(self, time: float) -> list[Fact]:
        """The call is over: the turns still open end now."""
        facts: list[Fact] = list(self._cut_off)
        self._cut_off = []
        for turn in (self._playing, self._current):
            if turn is not None:
                facts.append(TurnEnded(turn.index, time))
        self._playing = self._current = None
        return facts

    def _turn_index(self) -> int:
        turn = self._playing or self._current
        return turn.index if turn is not None else self._turns

    def _open(self, time: float, facts: list[Fact]) -> _Turn:
        self._turns += 1
        facts.append(TurnStarted(self._turns, time))
        return _Turn(self._turns)


def _seconds(milliseconds: object) -> float | None:
    if isinstance(milliseconds, (int, float)) and not isinstance(milliseconds, bool):
        return max(0.0, float(milliseconds) / 1000)
    return None


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
