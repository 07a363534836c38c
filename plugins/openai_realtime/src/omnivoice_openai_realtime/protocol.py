"""The OpenAI Realtime wire protocol, sans-IO: client events out, typed server events in.

Two interfaces share one socket protocol. The GA interface (no extra header) nests the
audio settings under ``session.audio`` and names events ``response.output_audio.*``; the
beta interface (header ``OpenAI-Beta: realtime=v1``) keeps a flat session with
``input_audio_format`` strings and names them ``response.audio.*``. Builders take the
interface; the :class:`Parser` accepts both spellings, so a compatible server that mixes
them still works.

Nothing here touches a socket: :func:`session_update` and friends return the text frame
to send, :meth:`Parser.parse` turns a received frame into one of the events below (or
``None`` for events a voice call does not need). The audio paths (``input_audio_buffer.append``
out, ``response.output_audio.delta`` in, 50 times a second each way) cost one base64
conversion and one string concatenation or ``json.loads``.
"""

from __future__ import annotations

import binascii
import collections
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

import attrs

from omnivoice.audio.format import AudioFormat, Encoding
from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    OmnivoiceError,
    RateLimitedError,
    error_message,
    refusal,
)
from omnivoice.realtime.types import FunctionDeclaration

__all__ = [
    "DEFAULT_URL",
    "SEMANTIC_VAD",
    "SERVER_VAD",
    "Api",
    "AudioDelta",
    "AudioDone",
    "FunctionCallDone",
    "InputCommitted",
    "InputTranscriptDelta",
    "InputTranscriptDone",
    "InputTranscriptFailed",
    "ItemAcknowledged",
    "Malformed",
    "OpenAIRealtimeError",
    "OutputItemAdded",
    "Parser",
    "ResponseCreated",
    "ResponseDone",
    "ServerError",
    "ServerEvent",
    "SessionCreated",
    "SessionSettings",
    "SessionUpdated",
    "SpeechStarted",
    "SpeechStopped",
    "TextDelta",
    "TextDone",
    "error_for",
    "function_call_output",
    "handshake_error",
    "input_audio_append",
    "item_delete",
    "item_truncate",
    "message_item",
    "response_cancel",
    "response_create",
    "session_update",
]

log = logging.getLogger(__name__)

Api: TypeAlias = Literal["ga", "beta"]
"""Which interface to speak: ``"ga"`` (current) or ``"beta"`` (``OpenAI-Beta: realtime=v1``)."""

DEFAULT_URL = "wss://api.openai.com/v1/realtime"

SERVER_VAD: Mapping[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "create_response": True,
    "interrupt_response": True,
}
"""Server VAD with the vendor's documented defaults, spelled out (the GA server's own
default silence is shorter than a phone caller's pauses)."""

SEMANTIC_VAD: Mapping[str, Any] = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}
"""Semantic VAD: the model decides when the caller has finished."""


# --- errors -----------------------------------------------------------------------------


class OpenAIRealtimeError(OmnivoiceError):
    """An ``error`` event (or a failed response) from the server that has no more specific
    omnivoice class. ``type``, ``code``, ``param`` and ``event_id`` are the server's."""

    def __init__(
        self,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        event_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.type = type
        self.code = code
        self.param = param
        self.event_id = event_id


_AUTH_CODES = frozenset({"invalid_api_key", "invalid_authentication", "authentication_error"})
_MODEL_CODES = frozenset({"model_not_found", "invalid_model", "model_not_available"})
_RATE_CODES = frozenset({"rate_limit_exceeded", "insufficient_quota", "rate_limit_error"})


def error_for(error: ServerError) -> tuple[OmnivoiceError, bool]:
    """The omnivoice error for a server error, and whether it ends the session.

    Credentials and model errors are fatal: every later request would fail the same way.
    Everything else (rate limits on one response included) is reported and the call goes on.
    """
    code, kind = error.code or "", error.type or ""
    text = f"OpenAI Realtime: {error.message or code or kind}"
    if code and code not in text:
        text += f" ({code})"
    if code in _AUTH_CODES or kind == "authentication_error":
        return AuthFailedError(text), True
    if code in _MODEL_CODES:
        return ModelUnavailableError(text), True
    if code in _RATE_CODES or kind in _RATE_CODES:
        return RateLimitedError(text), False
    return (
        OpenAIRealtimeError(
            text, type=error.type, code=error.code, param=error.param, event_id=error.event_id
        ),
        False,
    )


def handshake_error(
    status: int, body: str, retry_after: str | None = None
) -> ConnectionFailedError:
    """The error for a WebSocket handshake the server answered with HTTP ``status``."""
    hints = {
        401: "check OPENAI_API_KEY",
        403: "check OPENAI_API_KEY",
        404: "check the model name and the endpoint",
    }
    if retry_after:
        hints[429] = f"retry after {retry_after} s"
    return refusal("OpenAI Realtime", status, error_message(body), hints=hints)


# --- client events ------------------------------------------------------------------------


@attrs.frozen
class SessionSettings:
    """Everything one ``session.update`` says. ``None`` leaves the server's default."""

    api: Api
    input_format: AudioFormat
    output_format: AudioFormat
    instructions: str | None = None
    voice: str | None = None
    turn_detection: Mapping[str, Any] | None = SERVER_VAD
    """``None`` turns automatic turn detection off (the client would commit turns)."""
    transcription: Mapping[str, Any] | None = None
    """``{"model": ..., "language": ...}``; ``None``: no transcript of the caller."""
    noise_reduction: str | None = None
    """``"near_field"`` or ``"far_field"``."""
    tools: tuple[FunctionDeclaration, ...] = ()
    temperature: float | None = None
    """Beta only: the GA interface has no temperature."""
    speed: float | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    """More session fields, merged last (nested objects merge key by key)."""


def _format(api: Api, fmt: AudioFormat) -> Any:
    if fmt.channels != 1:
        raise ValueError(f"OpenAI Realtime takes mono audio, not {fmt}")
    if fmt.encoding is Encoding.MULAW and fmt.sample_rate == 8000:
        return {"type": "audio/pcmu"} if api == "ga" else "g711_ulaw"
    if fmt.encoding is Encoding.ALAW and fmt.sample_rate == 8000:
        return {"type": "audio/pcma"} if api == "ga" else "g711_alaw"
    if fmt.encoding is Encoding.PCM16 and fmt.sample_rate == 24000:
        return {"type": "audio/pcm", "rate": 24000} if api == "ga" else "pcm16"
    raise ValueError(f"OpenAI Realtime takes G.711 at 8 kHz or PCM16 at 24 kHz, not {fmt}")


def _tool(function: FunctionDeclaration) -> dict[str, Any]:
    return {"type": "function", **function.to_dict()}


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        current = base.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            base[key] = _merge(dict(current), value)
        else:
            base[key] = value
    return base


def session_update(settings: SessionSettings) -> str:
    """The ``session.update`` that configures a session (the model is in the URL: the
    server does not let a session change it)."""
    api = settings.api
    tools = [_tool(f) for f in settings.tools]
    session: dict[str, Any]
    if api == "ga":
        audio_in: dict[str, Any] = {"format": _format(api, settings.input_format)}
        if settings.transcription is not None:
            audio_in["transcription"] = dict(settings.transcription)
        if settings.noise_reduction is not None:
            audio_in["noise_reduction"] = {"type": settings.noise_reduction}
        audio_in["turn_detection"] = _maybe_dict(settings.turn_detection)
        audio_out: dict[str, Any] = {"format": _format(api, settings.output_format)}
        if settings.voice is not None:
            audio_out["voice"] = settings.voice
        if settings.speed is not None:
            audio_out["speed"] = settings.speed
        session = {
            "type": "realtime",
            "output_modalities": ["audio"],
            "audio": {"input": audio_in, "output": audio_out},
        }
    else:
        session = {
            "modalities": ["text", "audio"],
            "input_audio_format": _format(api, settings.input_format),
            "output_audio_format": _format(api, settings.output_format),
            "turn_detection": _maybe_dict(settings.turn_detection),
        }
        if settings.voice is not None:
            session["voice"] = settings.voice
        if settings.transcription is not None:
            session["input_audio_transcription"] = dict(settings.transcription)
        if settings.noise_reduction is not None:
            session["input_audio_noise_reduction"] = {"type": settings.noise_reduction}
        if settings.temperature is not None:
            session["temperature"] = settings.temperature
        if settings.speed is not None:
            session["speed"] = settings.speed
    if settings.instructions is not None:
        session["instructions"] = settings.instructions
    session["tools"] = tools
    if tools:
        session["tool_choice"] = "auto"
    _merge(session, settings.extra)
    return json.dumps({"type": "session.update", "session": session})


def _maybe_dict(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


_APPEND_PREFIX = '{"type":"input_audio_buffer.append","audio":"'


def input_audio_append(audio: bytes) -> str:
    """``input_audio_buffer.append`` with ``audio`` (in the session's input format)."""
    return _APPEND_PREFIX + binascii.b2a_base64(audio, newline=False).decode("ascii") + '"}'


def response_create() -> str:
    """Ask for a response (after function outputs: they do not trigger one by themselves)."""
    return '{"type":"response.create"}'


def response_cancel(response_id: str | None = None) -> str:
    """Cancel the response in progress (``response_id`` names it, when known)."""
    if response_id is None:
        return '{"type":"response.cancel"}'
    return json.dumps({"type": "response.cancel", "response_id": response_id})


def item_truncate(item_id: str, audio_end_ms: int) -> str:
    """Keep only the first ``audio_end_ms`` (> 0) of an assistant item's audio; the server
    drops the transcript of the rest."""
    if audio_end_ms <= 0:
        raise ValueError("the server cannot truncate an item to nothing: delete it instead")
    return json.dumps(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": audio_end_ms,
        }
    )


def item_delete(item_id: str) -> str:
    """Remove an item from the conversation (an answer the caller never heard)."""
    return json.dumps({"type": "conversation.item.delete", "item_id": item_id})


def function_call_output(call_id: str, output: str) -> str:
    """The answer to one function call (JSON text); ``response.create`` follows separately."""
    return json.dumps(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": call_id, "output": output},
        }
    )


def message_item(api: Api, role: Literal["user", "agent"], text: str) -> str:
    """A text message of the conversation so far, for a session that takes a call over."""
    if role == "user":
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
    else:
        kind = "output_text" if api == "ga" else "text"
        item = {"type": "message", "role": "assistant", "content": [{"type": kind, "text": text}]}
    return json.dumps({"type": "conversation.item.create", "item": item})


# --- server events ------------------------------------------------------------------------


@attrs.frozen
class SessionCreated:
    session_id: str
    expires_at: float | None
    """Epoch seconds, when the server says."""


@attrs.frozen
class SessionUpdated:
    pass


@attrs.frozen
class SpeechStarted:
    item_id: str | None
    audio_start_ms: int | None


@attrs.frozen
class SpeechStopped:
    item_id: str | None
    audio_end_ms: int | None


@attrs.frozen
class InputCommitted:
    """The caller's turn became a user item (its transcript follows, asynchronously)."""

    item_id: str


@attrs.frozen
class InputTranscriptDelta:
    item_id: str
    delta: str


@attrs.frozen
class InputTranscriptDone:
    item_id: str
    transcript: str


@attrs.frozen
class InputTranscriptFailed:
    item_id: str
    error: ServerError


@attrs.frozen
class ResponseCreated:
    response_id: str


@attrs.frozen
class OutputItemAdded:
    response_id: str
    item_id: str
    kind: str
    """``"message"``, ``"function_call"``..."""
    role: str | None


@attrs.frozen(slots=True)
class AudioDelta:
    response_id: str
    item_id: str
    audio: bytes


@attrs.frozen
class AudioDone:
    response_id: str
    item_id: str


@attrs.frozen(slots=True)
class TextDelta:
    """Agent text: the transcript of its audio (or its text, in a text-only session)."""

    response_id: str
    item_id: str
    delta: str


@attrs.frozen
class TextDone:
    response_id: str
    item_id: str
    text: str


@attrs.frozen
class FunctionCallDone:
    response_id: str
    item_id: str
    call_id: str
    name: str
    arguments: str
    """JSON text, as the model wrote it."""


@attrs.frozen
class ResponseDone:
    response_id: str
    status: str
    """``completed``, ``cancelled``, ``failed`` or ``incomplete``."""
    reason: str | None
    usage: Mapping[str, Any] | None
    error: ServerError | None


@attrs.frozen
class ItemAcknowledged:
    """The server truncated or deleted an item, as asked."""

    kind: str
    item_id: str


@attrs.frozen
class ServerError:
    type: str | None
    code: str | None
    message: str
    param: str | None = None
    event_id: str | None = None


@attrs.frozen
class Malformed:
    """A frame that is not a valid server event (counted and reported, never fatal)."""

    detail: str


ServerEvent: TypeAlias = (
    SessionCreated
    | SessionUpdated
    | SpeechStarted
    | SpeechStopped
    | InputCommitted
    | InputTranscriptDelta
    | InputTranscriptDone
    | InputTranscriptFailed
    | ResponseCreated
    | OutputItemAdded
    | AudioDelta
    | AudioDone
    | TextDelta
    | TextDone
    | FunctionCallDone
    | ResponseDone
    | ItemAcknowledged
    | ServerError
    | Malformed
)

_Event = dict[str, Any]


def _error(document: Any) -> ServerError:
    if not isinstance(document, dict):
        return ServerError(None, None, str(document))
    return ServerError(
        type=document.get("type"),
        code=document.get("code"),
        message=str(document.get("message") or ""),
        param=document.get("param"),
        event_id=document.get("event_id"),
    )


def _audio_delta(e: _Event) -> AudioDelta:
    return AudioDelta(
        e["response_id"], e["item_id"], binascii.a2b_base64(e["delta"], strict_mode=True)
    )


def _response_done(e: _Event) -> ResponseDone:
    response = e["response"]
    details = response.get("status_details") or {}
    error = details.get("error")
    return ResponseDone(
        response_id=response["id"],
        status=response.get("status") or "completed",
        reason=details.get("reason"),
        usage=response.get("usage"),
        error=_error(error) if error else None,
    )


def _session_created(e: _Event) -> SessionCreated:
    session = e.get("session") or {}
    expires = session.get("expires_at")
    return SessionCreated(
        str(session.get("id") or ""), float(expires) if isinstance(expires, int | float) else None
    )


def _output_item_added(e: _Event) -> OutputItemAdded:
    item = e["item"]
    return OutputItemAdded(e["response_id"], item["id"], item.get("type", ""), item.get("role"))


def _text_done(e: _Event) -> TextDone:
    text = e.get("transcript")
    if text is None:
        text = e.get("text", "")
    return TextDone(e["response_id"], e["item_id"], text)


_PARSERS: dict[str, Callable[[_Event], ServerEvent]] = {
    "session.created": _session_created,
    "session.updated": lambda e: SessionUpdated(),
    "input_audio_buffer.speech_started": lambda e: SpeechStarted(
        e.get("item_id"), e.get("audio_start_ms")
    ),
    "input_audio_buffer.speech_stopped": lambda e: SpeechStopped(
        e.get("item_id"), e.get("audio_end_ms")
    ),
    "input_audio_buffer.committed": lambda e: InputCommitted(e["item_id"]),
    "conversation.item.input_audio_transcription.delta": lambda e: InputTranscriptDelta(
        e["item_id"], e["delta"]
    ),
    "conversation.item.input_audio_transcription.completed": lambda e: InputTranscriptDone(
        e["item_id"], e["transcript"]
    ),
    "conversation.item.input_audio_transcription.failed": lambda e: InputTranscriptFailed(
        e["item_id"], _error(e.get("error"))
    ),
    "response.created": lambda e: ResponseCreated(e["response"]["id"]),
    "response.output_item.added": _output_item_added,
    "response.output_audio.delta": _audio_delta,
    "response.audio.delta": _audio_delta,
    "response.output_audio.done": lambda e: AudioDone(e["response_id"], e["item_id"]),
    "response.audio.done": lambda e: AudioDone(e["response_id"], e["item_id"]),
    "response.output_audio_transcript.delta": lambda e: TextDelta(
        e["response_id"], e["item_id"], e["delta"]
    ),
    "response.audio_transcript.delta": lambda e: TextDelta(
        e["response_id"], e["item_id"], e["delta"]
    ),
    "response.output_text.delta": lambda e: TextDelta(e["response_id"], e["item_id"], e["delta"]),
    "response.text.delta": lambda e: TextDelta(e["response_id"], e["item_id"], e["delta"]),
    "response.output_audio_transcript.done": _text_done,
    "response.audio_transcript.done": _text_done,
    "response.output_text.done": _text_done,
    "response.text.done": _text_done,
    "response.function_call_arguments.done": lambda e: FunctionCallDone(
        e["response_id"], e["item_id"], e["call_id"], e["name"], e["arguments"]
    ),
    "response.done": _response_done,
    "conversation.item.truncated": lambda e: ItemAcknowledged("truncated", e["item_id"]),
    "conversation.item.deleted": lambda e: ItemAcknowledged("deleted", e["item_id"]),
    "error": lambda e: _error(e.get("error")),
}

# Events a voice call has no use for: skipped without counting them as unknown.
_IGNORED = frozenset(
    {
        "conversation.created",
        "conversation.item.added",
        "conversation.item.created",
        "conversation.item.done",
        "conversation.item.retrieved",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.cleared",
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.dtmf_event_received",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "rate_limits.updated",
        "response.content_part.added",
        "response.content_part.done",
        "response.function_call_arguments.delta",
        "response.output_item.done",
        "transcription_session.created",
        "transcription_session.updated",
    }
)


class Parser:
    """Turns server frames into events; counts what it skips.

    ``unknown`` counts event types it does not know (by type; new vendor events must never
    break a call), ``malformed`` the frames that were not valid events.
    """

    def __init__(self) -> None:
        self.unknown: collections.Counter[str] = collections.Counter()
        self.malformed = 0

    def parse(self, message: str | bytes) -> ServerEvent | None:
        """The event in one frame; ``None`` for an event that needs no action."""
        try:
            event = json.loads(message)
            kind = event["type"]
        except (ValueError, TypeError, KeyError) as exc:
            return self._malformed(f"not a JSON event ({type(exc).__name__}): {message[:80]!r}")
        parse = _PARSERS.get(kind)
        if parse is None:
            if kind not in _IGNORED:
                self.unknown[str(kind)] += 1
                log.debug("skipped an unknown server event %r", kind)
            return None
        try:
            return parse(event)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            return self._malformed(f"{kind} without a valid {exc}")

    def _malformed(self, detail: str) -> Malformed:
        self.malformed += 1
        return Malformed(detail)
