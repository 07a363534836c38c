"""The ElevenLabs text-to-speech wire protocols, sans-IO: JSON in and out, no sockets.

- ``/v1/text-to-speech/{voice_id}/multi-stream-input``, one WebSocket per call with one
  context per response: :class:`MultiStream` is its state machine (the contexts, their
  text, the audio and word timings that come back, the resumption on a new socket);
- ``/v1/text-to-speech/{voice_id}/stream-input``, one WebSocket per text:
  :func:`single_messages` and :func:`parse_message`;
- ``/v1/text-to-speech/{voice_id}/stream``, plain HTTP streaming: :func:`http_stream_url`,
  :func:`http_stream_body`, :func:`http_error`.

Client messages are as the vendor documents them (snake case: ``context_id``,
``close_context``); the server's are camel case (``contextId``, ``isFinal``,
``normalizedAlignment``, ``charStartTimesMs``), the snake-case spellings of its SDK's
types are read too. See ``docs/providers/elevenlabs.md``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import attrs

from omnivoice.audio.format import AudioFormat, Encoding
from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    OmnivoiceError,
    RateLimitedError,
    UnsupportedFormatError,
    refusal,
)
from omnivoice.pipeline.sentences import SentenceSplitter
from omnivoice.realtime.types import WordTiming

__all__ = [
    "FORMATS",
    "MAX_CONTEXTS",
    "Alignment",
    "AudioMessage",
    "ContextEnded",
    "ErrorMessage",
    "FinalMessage",
    "MalformedMessage",
    "MultiStream",
    "Settings",
    "SpeechPiece",
    "Stats",
    "TextChunker",
    "UnknownMessage",
    "VendorError",
    "WordAligner",
    "close_error",
    "handshake_error",
    "http_error",
    "http_stream_body",
    "http_stream_url",
    "multi_stream_input_url",
    "output_format",
    "parse_message",
    "single_messages",
    "stream_input_url",
    "vendor_error",
    "websocket_base",
]

FORMATS: dict[AudioFormat, str] = {
    AudioFormat(Encoding.MULAW, 8000): "ulaw_8000",
    AudioFormat(Encoding.ALAW, 8000): "alaw_8000",
    AudioFormat(Encoding.PCM16, 16000): "pcm_16000",
    AudioFormat(Encoding.PCM16, 22050): "pcm_22050",
    AudioFormat(Encoding.PCM16, 24000): "pcm_24000",
}
"""The output formats, preferred first, and their ``output_format`` names: G.711 at 8 kHz
for a phone line (no conversion at all), raw PCM16 (little-endian, no header)."""

MAX_CONTEXTS = 5
"""The vendor's limit of open contexts on one multi-context socket."""

_DEFAULT_SCHEDULE = (120, 160, 250, 290)


def output_format(audio_format: AudioFormat) -> str:
    """The ``output_format`` name of ``audio_format``."""
    name = FORMATS.get(audio_format)
    if name is None:
        offered = ", ".join(str(f) for f in FORMATS)
        raise UnsupportedFormatError(
            f"ElevenLabs does not produce {audio_format}; it produces {offered}"
        )
    return name


# --- configuration and addresses --------------------------------------------------------------


def _schedule(values: Iterable[int] | None) -> tuple[int, ...] | None:
    if values is None:
        return None
    schedule = tuple(int(v) for v in values)
    if not schedule or any(not 50 <= v <= 500 for v in schedule):
        raise ValueError(f"chunk_length_schedule needs values of 50-500 characters: {schedule}")
    return schedule


def _timeout(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= 180:
        raise ValueError(f"inactivity_timeout must be 1-180 seconds, got {value}")
    return value


@attrs.frozen
class Settings:
    """What a synthesis is set up with: the model, the output format and the voice's
    settings (fixed once a socket or a context is initialised)."""

    model: str
    output_format: str
    voice_settings: Mapping[str, Any] | None = None
    """``stability``, ``similarity_boost``, ``style``, ``use_speaker_boost``, ``speed``."""
    chunk_length_schedule: tuple[int, ...] | None = attrs.field(default=None, converter=_schedule)
    """Characters buffered before each generation (the vendor's default: 120, 160, 250,
    290); sentence ends and the pipeline's flushes generate earlier."""
    language_code: str | None = None
    auto_mode: bool = False
    inactivity_timeout: int | None = attrs.field(default=None, converter=_timeout)
    apply_text_normalization: str | None = None
    enable_logging: bool | None = None
    seed: int | None = None
    pronunciation_dictionary_locators: tuple[Mapping[str, str], ...] = attrs.field(
        default=(), converter=tuple
    )

    def query(self) -> list[tuple[str, str]]:
        """The WebSocket endpoints' query parameters (word timings always on)."""
        query = [
            ("model_id", self.model),
            ("output_format", self.output_format),
            ("sync_alignment", "true"),
        ]
        if self.auto_mode:
            query.append(("auto_mode", "true"))
        if self.inactivity_timeout is not None:
            query.append(("inactivity_timeout", str(self.inactivity_timeout)))
        query.extend(self._common_query())
        return query

    def _common_query(self) -> list[tuple[str, str]]:
        query = []
        if self.language_code:
            query.append(("language_code", self.language_code))
        if self.enable_logging is not None:
            query.append(("enable_logging", "true" if self.enable_logging else "false"))
        if self.apply_text_normalization:
            query.append(("apply_text_normalization", self.apply_text_normalization))
        if self.seed is not None:
            query.append(("seed", str(self.seed)))
        return query


def websocket_base(api_url: str) -> str:
    """The WebSocket address of an API base: ``https`` becomes ``wss``, ``http`` ``ws``."""
    parts = urlsplit(api_url)
    scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"the ElevenLabs API address must be http(s)://HOST, not {api_url!r}")
    return urlunsplit(parts._replace(scheme=scheme))


def _endpoint(base: str, path: str, query: Sequence[tuple[str, str]]) -> str:
    parts = urlsplit(base)
    full_path = parts.path.rstrip("/") + path
    extra = urlencode(list(query))
    joined = f"{parts.query}&{extra}" if parts.query and extra else parts.query or extra
    return urlunsplit(parts._replace(path=full_path, query=joined))


def _voice_path(voice_id: str, suffix: str) -> str:
    return f"/v1/text-to-speech/{quote(voice_id, safe='')}/{suffix}"


def multi_stream_input_url(api_url: str, voice_id: str, settings: Settings) -> str:
    """The multi-context WebSocket of a voice."""
    path = _voice_path(voice_id, "multi-stream-input")
    return _endpoint(websocket_base(api_url), path, settings.query())


def stream_input_url(api_url: str, voice_id: str, settings: Settings) -> str:
    """The single-context WebSocket of a voice."""
    path = _voice_path(voice_id, "stream-input")
    return _endpoint(websocket_base(api_url), path, settings.query())


def http_stream_url(api_url: str, voice_id: str, settings: Settings) -> str:
    """The HTTP streaming endpoint of a voice."""
    query = [("output_format", settings.output_format)]
    query.extend(q for q in settings._common_query() if q[0] == "enable_logging")
    return _endpoint(api_url, _voice_path(voice_id, "stream"), query)


def http_stream_body(text: str, settings: Settings) -> dict[str, Any]:
    """The JSON body of an HTTP streaming request."""
    body: dict[str, Any] = {"text": text, "model_id": settings.model}
    if settings.voice_settings is not None:
        body["voice_settings"] = dict(settings.voice_settings)
    if settings.language_code:
        body["language_code"] = settings.language_code
    if settings.seed is not None:
        body["seed"] = settings.seed
    if settings.apply_text_normalization:
        body["apply_text_normalization"] = settings.apply_text_normalization
    if settings.pronunciation_dictionary_locators:
        body["pronunciation_dictionary_locators"] = [
            dict(locator) for locator in settings.pronunciation_dictionary_locators
        ]
    return body


# --- client messages ---------------------------------------------------------------------------


def _dump(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def initialize(settings: Settings, context_id: str | None = None) -> str:
    """The first message of a socket (or of a context): a single space and the settings."""
    message: dict[str, Any] = {"text": " "}
    if settings.voice_settings is not None:
        message["voice_settings"] = dict(settings.voice_settings)
    if settings.chunk_length_schedule is not None:
        message["generation_config"] = {
            "chunk_length_schedule": list(settings.chunk_length_schedule)
        }
    if settings.pronunciation_dictionary_locators:
        message["pronunciation_dictionary_locators"] = [
            dict(locator) for locator in settings.pronunciation_dictionary_locators
        ]
    if context_id is not None:
        message["context_id"] = context_id
    return _dump(message)


def text_message(text: str, context_id: str | None = None, *, flush: bool = False) -> str:
    message: dict[str, Any] = {"text": text}
    if flush:
        message["flush"] = True
    if context_id is not None:
        message["context_id"] = context_id
    return _dump(message)


def flush_message(context_id: str) -> str:
    return _dump({"context_id": context_id, "flush": True})


def close_context_message(context_id: str) -> str:
    return _dump({"context_id": context_id, "close_context": True})


def keep_alive_message(context_id: str | None) -> str:
    """Resets the vendor's inactivity timer: of a context, or of a socket with none open."""
    return _dump({"text": ""} if context_id is None else {"text": "", "context_id": context_id})


def close_socket_message() -> str:
    return _dump({"close_socket": True})


def single_messages(settings: Settings, text: str) -> list[str]:
    """A whole text over the single-context socket: the initialisation, the text, and the
    end of input (an empty text: the server speaks the rest, says ``isFinal`` and closes)."""
    messages = [initialize(settings)]
    if text.strip():
        messages.append(text_message(_spaced(text.strip()), flush=True))
    messages.append(_dump({"text": ""}))
    return messages


def _spaced(text: str) -> str:
    """The vendor wants each text chunk to end with a single space."""
    return text.rstrip() + " "


# --- server messages ---------------------------------------------------------------------------


class MalformedMessage(OmnivoiceError):
    """A server message that is not the vendor's JSON."""


@attrs.frozen
class Alignment:
    """The timing of each character of an audio message, relative to that message."""

    chars: tuple[str, ...]
    starts_ms: tuple[float, ...]
    durations_ms: tuple[float, ...]


@attrs.frozen
class AudioMessage:
    audio: bytes
    context_id: str | None
    alignment: Alignment | None


@attrs.frozen
class FinalMessage:
    """The server has said everything of a context (or of the single-context socket)."""

    context_id: str | None


@attrs.frozen
class ErrorMessage:
    error: str
    message: str
    code: int | None = None


@attrs.frozen
class UnknownMessage:
    """Valid JSON the protocol does not know (counted, ignored)."""

    keys: tuple[str, ...]


ServerMessage: TypeAlias = AudioMessage | FinalMessage | ErrorMessage | UnknownMessage


def parse_message(message: str | bytes) -> list[ServerMessage]:
    """The server's message: its audio (with the alignment), its end, or an error. A final
    message may carry the last audio: then both come, the audio first."""
    try:
        data = json.loads(message)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"not JSON: {str(message)[:120]!r}") from exc
    if not isinstance(data, dict):
        raise MalformedMessage(f"not a JSON object: {str(message)[:120]!r}")
    context = _get(data, "contextId", "context_id")
    if context is not None and not isinstance(context, str):
        raise MalformedMessage(f"contextId is not a string: {context!r}")
    if "error" in data or ("message" in data and "audio" not in data):
        code = data.get("code")
        return [
            ErrorMessage(
                str(data.get("error") or "error"),
                str(data.get("message") or ""),
                code if isinstance(code, int) and not isinstance(code, bool) else None,
            )
        ]
    parsed: list[ServerMessage] = []
    audio = data.get("audio")
    if audio:
        if not isinstance(audio, str):
            raise MalformedMessage("audio is not base64 text")
        try:
            decoded = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedMessage("audio is not valid base64") from exc
        alignment = _alignment(data.get("alignment")) or _alignment(
            _get(data, "normalizedAlignment", "normalized_alignment")
        )
        parsed.append(AudioMessage(decoded, context, alignment))
    if _get(data, "isFinal", "is_final") is True:
        parsed.append(FinalMessage(context))
    if not parsed and audio is None:
        return [UnknownMessage(tuple(sorted(data)))]
    return parsed


def _get(data: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in data:
            return data[name]
    return None


def _numbers(values: object) -> tuple[float, ...] | None:
    if not isinstance(values, list):
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    return tuple(float(v) for v in values)


def _alignment(data: object) -> Alignment | None:
    """An alignment, or ``None`` if absent or not well formed (the audio still counts)."""
    if not isinstance(data, dict):
        return None
    chars = data.get("chars")
    starts = _numbers(_get(data, "charStartTimesMs", "char_start_times_ms"))
    durations = _numbers(_get(data, "charDurationsMs", "chars_durations_ms", "char_durations_ms"))
    if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
        return None
    if starts is None or durations is None or not len(chars) == len(starts) == len(durations):
        return None
    return Alignment(tuple(chars), starts, durations)


# --- errors ------------------------------------------------------------------------------------

_AUTH = frozenset(
    {"invalid_api_key", "auth_error", "unauthorized", "invalid_authorization", "missing_api_key"}
)
_LIMITED = frozenset(
    {
        "quota_exceeded",
        "too_many_concurrent_requests",
        "rate_limit_exceeded",
        "system_busy",
        "max_character_limit_exceeded",
    }
)


def vendor_error(error: str, message: str, *, voice_id: str, model: str) -> OmnivoiceError:
    """The typed error for an ``error`` the vendor reported (in a WebSocket message, or as
    an HTTP error's ``detail.status``)."""
    said = f"{error}: {message}" if message else error
    lowered = error.lower()
    if lowered in _AUTH or "api key" in message.lower() or "api_key" in lowered:
        return AuthFailedError(f"ElevenLabs refused the API key (ELEVENLABS_API_KEY): {said}")
    if lowered in _LIMITED or "quota" in lowered or "rate_limit" in lowered:
        return RateLimitedError(f"ElevenLabs rate or quota limit: {said}")
    if "voice" in lowered:
        return ModelUnavailableError(
            f"ElevenLabs has no voice {voice_id!r} for this account (set ProcessConfig.voice, "
            f"voice_id= or ELEVENLABS_VOICE_ID): {said}"
        )
    if "model" in lowered:
        return ModelUnavailableError(f"ElevenLabs has no model {model!r} (model=): {said}")
    return ConnectionFailedError(f"ElevenLabs: {said}")


def _detail(body: str) -> tuple[str, str]:
    """``(status, message)`` of an HTTP error body ``{"detail": {...}}`` (or its text)."""
    try:
        data = json.loads(body)
    except ValueError:
        return "", body.strip()[:300]
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, dict):
        return str(detail.get("status") or detail.get("code") or ""), str(
            detail.get("message") or ""
        )
    if isinstance(detail, list):  # a validation error: [{"loc": ..., "msg": ...}]
        messages = [str(item.get("msg", item)) for item in detail if isinstance(item, dict)]
        return "invalid_request", "; ".join(messages)[:300]
    if detail is not None:
        return "", str(detail)[:300]
    return "", body.strip()[:300]


def http_error(
    status: int, body: str, *, voice_id: str, model: str, retry_after: str | None = None
) -> OmnivoiceError:
    """The typed error for an HTTP answer other than success (a request or a handshake):
    the vendor's ``detail.status`` names a voice or a model it does not have; otherwise the
    status types it (:func:`omnivoice.errors.refusal`)."""
    code, message = _detail(body)
    if code and status not in (401, 403, 429):
        named = vendor_error(code, message, voice_id=voice_id, model=model)
        if type(named) is not ConnectionFailedError:
            return named
    detail = " ".join(part for part in (code, message) if part)
    if status == 429 and retry_after:
        detail = f"{detail} (retry after {retry_after} s)".strip()
    hints = {
        401: "check ELEVENLABS_API_KEY",
        403: "check ELEVENLABS_API_KEY",
        404: f"no voice {voice_id!r} or no model {model!r}",
    }
    return refusal("ElevenLabs", status, detail, hints=hints)


handshake_error = http_error
"""A refused WebSocket handshake is answered like an HTTP request."""


def close_error(
    code: int, reason: str, last_error: ErrorMessage | None, *, voice_id: str, model: str
) -> OmnivoiceError:
    """Why the server closed a socket: the error it sent before, else the close itself."""
    if last_error is not None:
        return vendor_error(last_error.error, last_error.message, voice_id=voice_id, model=model)
    if code == 1008 and reason:
        return vendor_error(reason, "", voice_id=voice_id, model=model)
    return ConnectionFailedError(f"ElevenLabs closed the connection: {code} {reason}".rstrip())


# --- text in -----------------------------------------------------------------------------------

_UNIT = re.compile(r"\S*\s+")


class TextChunker:
    """The model's text as the vendor takes it: whole words as soon as they are complete
    (each chunk ending with a single space), a flush after each complete sentence (so that
    it is spoken without waiting for the chunk schedule), the last part on :meth:`flush`."""

    def __init__(self, max_sentence_chars: int = 250) -> None:
        self._max = max_sentence_chars
        self._partial = ""
        self._splitter = SentenceSplitter(max_sentence_chars)

    def feed(self, text: str) -> list[tuple[str, bool]]:
        """The next piece of text; returns ``(chunk, flush)`` pairs to send now."""
        self._partial += text
        chunks: list[tuple[str, bool]] = []
        pending = ""
        end = 0
        for match in _UNIT.finditer(self._partial):
            unit = match.group()
            end = match.end()
            pending += unit
            if self._splitter.feed(unit):
                chunks.append((_spaced(pending), True))
                pending = ""
        self._partial = self._partial[end:]
        if pending.strip():
            chunks.append((_spaced(pending), False))
        return chunks

    def flush(self) -> str:
        """What is left (a word without a space after it), to send with a flush."""
        rest, self._partial = self._partial, ""
        self._splitter = SentenceSplitter(self._max)
        return _spaced(rest) if rest.strip() else ""


# --- audio and timings out ---------------------------------------------------------------------


class WordAligner:
    """Word timings from the characters' alignment of each audio message: a word is the
    characters between two spaces, timed from its first character's start to its last
    one's end, on the response's clock (``offset_ms``: where the message's audio begins)."""

    def __init__(self) -> None:
        self._word = ""
        self._start = 0.0
        self._end = 0.0
        self.spoken_chars = 0
        """Characters (other than spaces) of the words completed so far."""

    def feed(self, alignment: Alignment, offset_ms: float) -> list[WordTiming]:
        words = []
        for char, start, duration in zip(
            alignment.chars, alignment.starts_ms, alignment.durations_ms, strict=True
        ):
            if char.isspace() or not char:
                if (word := self._complete()) is not None:
                    words.append(word)
                continue
            if not self._word:
                self._start = offset_ms + start
            self._word += char
            self._end = max(self._end, offset_ms + start + max(0.0, duration), self._start)
        return words

    def finish(self) -> list[WordTiming]:
        """The response's audio is complete: its last word, if it had no space after it."""
        word = self._complete()
        return [word] if word is not None else []

    def drop_partial(self) -> None:
        """Forget a word begun (its rest is spoken again, whole, on a new socket)."""
        self._word = ""

    def _complete(self) -> WordTiming | None:
        if not self._word:
            return None
        word = WordTiming(self._word, round(self._start, 3), round(self._end, 3))
        self.spoken_chars += len(self._word)
        self._word = ""
        self._end = 0.0
        return word


# --- the multi-context socket -----------------------------------------------------------------


class _State(enum.Enum):
    OPEN = "open"
    """Taking text."""
    ENDING = "ending"
    """All its text is in: the rest of its audio, then its final message."""
    CLOSING = "closing"
    """Left early: its audio is dropped until its final message."""


@attrs.define(eq=False)
class _Context:
    id: str
    state: _State
    chunker: TextChunker
    aligner: WordAligner = attrs.Factory(WordAligner)
    sent: str = ""
    """The text sent for it so far."""
    unflushed: bool = False
    """Text was sent since the last flush."""
    audio_bytes: int = 0


@attrs.frozen
class SpeechPiece:
    """Audio of a context, with the words it completes (timed from the context's start)."""

    context_id: str
    audio: bytes
    words: tuple[WordTiming, ...]


@attrs.frozen
class ContextEnded:
    """A context was said to its end (or closed): nothing more comes for it."""

    context_id: str


@attrs.frozen
class VendorError:
    """An error the server sent (it closes the socket after it)."""

    message: ErrorMessage


Event: TypeAlias = SpeechPiece | ContextEnded | VendorError


@attrs.define
class Stats:
    """What the state machine received and could not use (each is also logged by the shell)."""

    malformed: int = 0
    unknown: int = 0
    stray: int = 0
    """Messages for a context that is not open (one left early, or never opened)."""
    dropped_audio_bytes: int = 0
    """Audio of contexts left early, dropped."""


class MultiStream:
    """The multi-context socket of one call, as a state machine.

    Each method returns the JSON texts to send, in order; :meth:`receive` turns the
    server's messages into events. A context is open from :meth:`open` until its final
    message: :attr:`open_contexts` counts them, and :meth:`can_open` keeps within the
    vendor's limit (the shell awaits old contexts' ends, or replaces the socket).
    """

    def __init__(
        self,
        settings: Settings,
        audio_format: AudioFormat,
        *,
        max_contexts: int = MAX_CONTEXTS,
        max_sentence_chars: int = 250,
    ) -> None:
        if max_contexts < 1:
            raise ValueError(f"max_contexts must be positive, got {max_contexts}")
        self.settings = settings
        self.audio_format = audio_format
        self.max_contexts = max_contexts
        self.max_sentence_chars = max_sentence_chars
        self.stats = Stats()
        self._contexts: dict[str, _Context] = {}
        self._opened = 0

    @property
    def open_contexts(self) -> int:
        return len(self._contexts)

    def can_open(self) -> bool:
        return len(self._contexts) < self.max_contexts

    def is_open(self, context_id: str) -> bool:
        context = self._contexts.get(context_id)
        return context is not None and context.state is not _State.CLOSING

    def open(self) -> tuple[str, list[str]]:
        """A new context (one response): its id, and its initialisation."""
        if not self.can_open():
            raise RuntimeError(f"{self.max_contexts} contexts are open already")
        self._opened += 1
        context_id = f"r{self._opened}"
        self._contexts[context_id] = _Context(
            context_id, _State.OPEN, TextChunker(self.max_sentence_chars)
        )
        return context_id, [initialize(self.settings, context_id)]

    def text(self, context_id: str, text: str) -> list[str]:
        """The next piece of the response's text: whole words go out now."""
        context = self._taking(context_id)
        if context is None:
            return []
        messages = []
        for chunk, flush in context.chunker.feed(text):
            context.sent += chunk
            context.unflushed = not flush
            messages.append(text_message(chunk, context_id, flush=flush))
        return messages

    def flush(self, context_id: str) -> list[str]:
        """Speak everything sent so far now (the writer paused)."""
        context = self._taking(context_id)
        if context is None:
            return []
        rest = context.chunker.flush()
        unflushed, context.unflushed = context.unflushed, False
        if rest:
            context.sent += rest
            return [text_message(rest, context_id, flush=True)]
        return [flush_message(context_id)] if unflushed else []

    def end(self, context_id: str) -> list[str]:
        """All of the response's text is in: the rest is spoken, then the context closes
        (its final message ends it)."""
        context = self._taking(context_id)
        if context is None:
            return []
        messages = self.flush(context_id)
        context.state = _State.ENDING
        messages.append(close_context_message(context_id))
        return messages

    def close(self, context_id: str) -> list[str]:
        """The response is left early (barge-in): the context is closed now, and what is
        still on its way of it is dropped."""
        context = self._contexts.get(context_id)
        if context is None or context.state is _State.CLOSING:
            return []
        already_closed = context.state is _State.ENDING
        context.state = _State.CLOSING
        return [] if already_closed else [close_context_message(context_id)]

    def keep_alive(self) -> list[str]:
        """Messages that reset the vendor's inactivity timers: one per context taking text
        (the others are busy with their audio), or one for the socket if none takes text."""
        taking = [c.id for c in self._contexts.values() if c.state is _State.OPEN]
        if not taking:
            return [keep_alive_message(None)]
        return [keep_alive_message(context_id) for context_id in taking]

    def receive(self, message: str | bytes) -> list[Event]:
        """A message from the server, as events (bad ones are counted, not raised)."""
        try:
            parsed = parse_message(message)
        except MalformedMessage:
            self.stats.malformed += 1
            return []
        events: list[Event] = []
        for item in parsed:
            if isinstance(item, ErrorMessage):
                events.append(VendorError(item))
            elif isinstance(item, UnknownMessage):
                self.stats.unknown += 1
            elif isinstance(item, AudioMessage):
                events.extend(self._audio(item))
            else:
                events.extend(self._final(item.context_id))
        return events

    def replaced(self) -> list[str]:
        """The socket was replaced by a new one (it dropped, or was rotated): contexts left
        early are gone with it; the others start again on the new one, from the first word
        whose audio had not come (a word begun is spoken again, whole)."""
        messages: list[str] = []
        for context_id, context in list(self._contexts.items()):
            if context.state is _State.CLOSING:
                del self._contexts[context_id]
                continue
            context.aligner.drop_partial()
            unspoken = _after_chars(context.sent, context.aligner.spoken_chars).lstrip()
            messages.append(initialize(self.settings, context_id))
            if unspoken.strip():
                messages.append(text_message(_spaced(unspoken), context_id, flush=True))
            if context.state is _State.ENDING:
                messages.append(close_context_message(context_id))
        return messages

    def forget(self, context_id: str) -> None:
        """Stop tracking a context (its socket is gone and it is not to be resumed)."""
        self._contexts.pop(context_id, None)

    def _taking(self, context_id: str) -> _Context | None:
        context = self._contexts.get(context_id)
        return context if context is not None and context.state is _State.OPEN else None

    def _audio(self, message: AudioMessage) -> list[Event]:
        context = self._contexts.get(message.context_id or "")
        if context is None or context.state is _State.CLOSING:
            self.stats.stray += 1
            self.stats.dropped_audio_bytes += len(message.audio)
            return []
        offset_ms = self.audio_format.duration(context.audio_bytes) * 1000
        context.audio_bytes += len(message.audio)
        words: list[WordTiming] = []
        if message.alignment is not None:
            words = context.aligner.feed(message.alignment, offset_ms)
        return [SpeechPiece(context.id, message.audio, tuple(words))]

    def _final(self, context_id: str | None) -> list[Event]:
        context = self._contexts.pop(context_id or "", None)
        if context is None:
            self.stats.stray += 1
            return []
        if context.state is _State.CLOSING:
            return [ContextEnded(context.id)]
        words = tuple(context.aligner.finish())
        events: list[Event] = []
        if words:
            events.append(SpeechPiece(context.id, b"", words))
        events.append(ContextEnded(context.id))
        return events


def _after_chars(text: str, count: int) -> str:
    """``text`` after its first ``count`` characters other than spaces."""
    seen = 0
    for index, char in enumerate(text):
        if seen >= count:
            return text[index:]
        if not char.isspace():
            seen += 1
    return ""
