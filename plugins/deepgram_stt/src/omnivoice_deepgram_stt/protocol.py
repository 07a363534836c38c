"""Deepgram's live transcription wire protocol, sans I/O: what goes in the URL, the client's
control messages, the server's messages as typed values, and the errors they mean.

Two protocols share it: Nova and the other ``/v1/listen`` models (``Results``,
``SpeechStarted``, ``UtteranceEnd``, ``Metadata``; ``KeepAlive``, ``Finalize``,
``CloseStream``) and Flux on ``/v2/listen`` (``Connected``, ``TurnInfo``; ``ForceEndTurn``,
``CloseStream``). Audio goes as binary frames, control messages as JSON text frames.
:func:`parse` never raises: a frame it cannot read is a :class:`Malformed`, a type it does
not know an :class:`Unknown`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias
from urllib.parse import urlencode

import attrs

from omnivoice.audio.format import AudioFormat, Encoding
from omnivoice.errors import (
    AuthFailedError,
    ConfigurationError,
    ConnectionFailedError,
    RateLimitedError,
)

__all__ = [
    "CLOSE_STREAM",
    "DEFAULT_URL",
    "FINALIZE",
    "FLUX_URL",
    "FORCE_END_TURN",
    "KEEP_ALIVE",
    "Connected",
    "Malformed",
    "Metadata",
    "ParamValue",
    "Results",
    "ServerError",
    "ServerMessage",
    "ServerWarning",
    "SpeechStartedMessage",
    "TurnInfo",
    "Unknown",
    "UtteranceEnd",
    "Word",
    "close_error",
    "encoding_name",
    "handshake_error",
    "is_flux",
    "parse",
    "query_string",
    "recoverable_close",
]

DEFAULT_URL = "wss://api.deepgram.com/v1/listen"
FLUX_URL = "wss://api.deepgram.com/v2/listen"

KEEP_ALIVE = json.dumps({"type": "KeepAlive"})
FINALIZE = json.dumps({"type": "Finalize"})
CLOSE_STREAM = json.dumps({"type": "CloseStream"})
FORCE_END_TURN = json.dumps({"type": "ForceEndTurn"})

_ENCODINGS = {Encoding.MULAW: "mulaw", Encoding.ALAW: "alaw", Encoding.PCM16: "linear16"}

ParamValue: TypeAlias = str | int | float | bool | Sequence[str]
"""A query parameter's value: booleans are sent ``true``/``false``, a sequence as the
parameter repeated (``keyterm=a&keyterm=b``)."""


def is_flux(model: str) -> bool:
    """Flux models speak the ``/v2/listen`` protocol."""
    return model.startswith("flux-")


def encoding_name(audio_format: AudioFormat) -> str:
    """Deepgram's ``encoding`` for one of our formats."""
    return _ENCODINGS[audio_format.encoding]


def query_string(params: Mapping[str, ParamValue | None]) -> str:
    """The query string of ``params`` as Deepgram reads them (``None`` values left out)."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif isinstance(value, str | int | float):
            pairs.append((name, _number(value) if not isinstance(value, str) else value))
        else:
            pairs.extend((name, str(item)) for item in value)
    return urlencode(pairs)


def _number(value: int | float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


# --- server messages ---------------------------------------------------------------------


@attrs.frozen
class Word:
    """A word and its times in the stream, in seconds (Flux may leave them out)."""

    word: str
    start: float | None
    end: float | None


@attrs.frozen
class Results:
    """A ``Results`` message (``/v1``): the transcript of ``[start, start + duration)``."""

    transcript: str
    start: float
    duration: float
    is_final: bool
    speech_final: bool
    from_finalize: bool
    words: tuple[Word, ...] = ()

    @property
    def end(self) -> float:
        return self.start + self.duration


@attrs.frozen
class SpeechStartedMessage:
    """``SpeechStarted`` (``vad_events=true``): speech began at ``timestamp`` seconds."""

    timestamp: float


@attrs.frozen
class UtteranceEnd:
    """``UtteranceEnd``: a gap of ``utterance_end_ms`` followed the word ending at
    ``last_word_end``."""

    last_word_end: float


@attrs.frozen
class Metadata:
    """``Metadata``: the stream's summary, sent after ``CloseStream``."""

    request_id: str
    duration: float


@attrs.frozen
class Connected:
    """``Connected`` (``/v2``): the first message of a Flux stream."""

    request_id: str


@attrs.frozen
class TurnInfo:
    """``TurnInfo`` (``/v2``): ``event`` is ``StartOfTurn``, ``Update``, ``EagerEndOfTurn``,
    ``TurnResumed`` or ``EndOfTurn``; ``transcript`` is the turn's text so far."""

    event: str
    turn_index: int
    audio_window_start: float
    audio_window_end: float
    transcript: str
    end_of_turn_confidence: float
    words: tuple[Word, ...] = ()


@attrs.frozen
class ServerError:
    """An ``Error`` message: ``code`` (or ``variant``) and its description."""

    code: str
    description: str


@attrs.frozen
class ServerWarning:
    """A ``Warning`` (``/v2``), or an answer to a ``Configure`` that refused it."""

    code: str
    description: str


@attrs.frozen
class Unknown:
    """A message of a type this module does not know (counted, else ignored)."""

    type: str


@attrs.frozen
class Malformed:
    """A text frame that is not a message of the protocol."""

    detail: str


ServerMessage: TypeAlias = (
    Results
    | SpeechStartedMessage
    | UtteranceEnd
    | Metadata
    | Connected
    | TurnInfo
    | ServerError
    | ServerWarning
    | Unknown
    | Malformed
)

_TURN_EVENTS = frozenset({"StartOfTurn", "Update", "EagerEndOfTurn", "TurnResumed", "EndOfTurn"})


def parse(text: str) -> ServerMessage:
    """One server text frame, as a typed message; never raises."""
    try:
        document = json.loads(text)
    except ValueError:
        return Malformed(f"not JSON: {text[:80]!r}")
    if not isinstance(document, dict):
        return Malformed(f"not a JSON object: {text[:80]!r}")
    kind = document.get("type")
    if not isinstance(kind, str):
        return Malformed(f"no message type: {text[:80]!r}")
    try:
        return _PARSERS.get(kind, _unknown)(document)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return Malformed(f"{kind} without a valid {exc}: {text[:120]!r}")


def _results(document: Mapping[str, Any]) -> Results:
    alternatives = document["channel"]["alternatives"]
    best = alternatives[0] if alternatives else {"transcript": "", "words": []}
    return Results(
        transcript=_text(best["transcript"]),
        start=_seconds(document["start"]),
        duration=_seconds(document["duration"]),
        is_final=_flag(document.get("is_final")),
        speech_final=_flag(document.get("speech_final")),
        from_finalize=_flag(document.get("from_finalize")),
        words=_words(best.get("words") or ()),
    )


def _speech_started(document: Mapping[str, Any]) -> SpeechStartedMessage:
    return SpeechStartedMessage(_seconds(document["timestamp"]))


def _utterance_end(document: Mapping[str, Any]) -> UtteranceEnd:
    return UtteranceEnd(_seconds(document["last_word_end"]))


def _metadata(document: Mapping[str, Any]) -> Metadata:
    return Metadata(str(document.get("request_id", "")), _seconds(document.get("duration", 0)))


def _connected(document: Mapping[str, Any]) -> Connected:
    return Connected(str(document.get("request_id", "")))


def _turn_info(document: Mapping[str, Any]) -> TurnInfo:
    event = document["event"]
    if event not in _TURN_EVENTS:
        raise ValueError("event")
    return TurnInfo(
        event=event,
        turn_index=int(document["turn_index"]),
        audio_window_start=_seconds(document["audio_window_start"]),
        audio_window_end=_seconds(document["audio_window_end"]),
        transcript=_text(document["transcript"]),
        end_of_turn_confidence=float(document.get("end_of_turn_confidence") or 0.0),
        words=_words(document.get("words") or ()),
    )


def _error(document: Mapping[str, Any]) -> ServerError:
    code = document.get("code") or document.get("variant") or "error"
    description = document.get("description") or document.get("message") or ""
    return ServerError(str(code), str(description))


def _warning(document: Mapping[str, Any]) -> ServerWarning:
    code = document.get("code", document["type"])
    return ServerWarning(str(code), str(document.get("description", "")))


def _unknown(document: Mapping[str, Any]) -> Unknown:
    return Unknown(str(document["type"]))


_PARSERS: dict[str, Callable[[Mapping[str, Any]], ServerMessage]] = {
    "Results": _results,
    "SpeechStarted": _speech_started,
    "UtteranceEnd": _utterance_end,
    "Metadata": _metadata,
    "Connected": _connected,
    "TurnInfo": _turn_info,
    "Error": _error,
    "Warning": _warning,
    "ConfigureFailure": _warning,
    "ConfigureSuccess": _unknown,  # not asked for: nothing configures mid-stream
}


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("transcript")
    return value


def _flag(value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise TypeError("flag")
    return value


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("time")
    seconds = float(value)
    if not seconds >= 0:  # also NaN
        raise ValueError("time")
    return seconds


def _words(items: Iterable[Any]) -> tuple[Word, ...]:
    words = []
    for item in items:
        word = item.get("punctuated_word") or item["word"]
        start, end = item.get("start"), item.get("end")
        words.append(
            Word(
                _text(word),
                None if start is None else _seconds(start),
                None if end is None else _seconds(end),
            )
        )
    return tuple(words)


# --- errors ------------------------------------------------------------------------------


def handshake_error(
    status: int, headers: Mapping[str, str], body: str, params: Iterable[str]
) -> ConnectionFailedError:
    """The error for an upgrade Deepgram refused with HTTP ``status``.

    Deepgram says why in the ``dg-error`` header (and the body's ``err_msg``); a 400 names
    the query parameter it refused, which is matched against the ``params`` sent."""
    detail = headers.get("dg-error") or _body_message(body)
    request_id = headers.get("dg-request-id")
    text = f"Deepgram refused the connection: HTTP {status}"
    if detail:
        text += f": {detail}"
    if request_id:
        text += f" (request {request_id})"
    if status in (401, 403):
        return AuthFailedError(text + "; check DEEPGRAM_API_KEY")
    if status == 402:
        return AuthFailedError(text + "; the project has no credits left")
    if status == 429:
        return RateLimitedError(text + "; too many concurrent streams for the project")
    if status == 400:
        parameter = _refused_parameter(detail, params)
        if parameter is not None:
            text += f"; the parameter Deepgram refused: {parameter}"
        return ConfigurationError(text, parameter)
    return ConnectionFailedError(text)


def _body_message(body: str) -> str:
    try:
        document = json.loads(body)
        message = document.get("err_msg") or document.get("message")
        if isinstance(message, str):
            return message
    except (ValueError, AttributeError):
        pass
    return " ".join(body.split())[:200]


def _refused_parameter(detail: str, params: Iterable[str]) -> str | None:
    """The sent parameter an error message names: quoted first, then as a whole word."""
    names = sorted(set(params), key=len, reverse=True)
    for name in names:
        if re.search(rf"""[`'"]{re.escape(name)}[`'"]""", detail):
            return name
    for name in names:
        if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", detail):
            return name
    return None


def close_error(code: int, reason: str) -> ConnectionFailedError:
    """What a close of the stream by Deepgram means (``1011 NET-0001`` and friends)."""
    text = f"Deepgram closed the stream: {code} {reason}".rstrip()
    if reason.startswith("DATA-"):
        text += " (the audio could not be decoded in the declared encoding)"
    elif reason.startswith("NET-0001"):
        text += " (no audio or KeepAlive within its timeout)"
    return ConnectionFailedError(text)


def recoverable_close(code: int, reason: str) -> bool:
    """A close after which a new stream may go on (the network, a timeout, the service);
    bad audio (``DATA-``) or a policy close would only happen again."""
    if reason.startswith("DATA-"):
        return False
    return code not in (1002, 1003, 1007, 1008)
