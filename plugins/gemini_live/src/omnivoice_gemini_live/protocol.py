"""The Gemini Live wire protocol (``BidiGenerateContent``), sans-IO.

Client messages are JSON objects with exactly one key (``setup``, ``realtimeInput``,
``clientContent``, ``toolResponse``), in lowerCamelCase, sent as text frames; the builders
below return them as text. Server messages are JSON in binary frames, and one message may
carry several keys at once (``serverContent`` with ``usageMetadata``, a ``modelTurn`` with
``turnComplete``, several parts in one ``modelTurn``): :meth:`Parser.parse` returns every
event of a message, in the order a session should act on them. Like the vendor's SDK, the
parser takes camelCase and snake_case keys and standard or URL-safe base64.

Nothing here touches a socket. The audio paths (``realtimeInput.audio`` out, inline audio
in, about 50 times a second each way) cost one base64 conversion and one string
concatenation or ``json.loads``.
"""

from __future__ import annotations

import binascii
import collections
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import attrs

from omnivoice.realtime.types import FunctionDeclaration

__all__ = [
    "API_ENDPOINT",
    "SCHEDULING",
    "VERTEX_ENDPOINT",
    "FunctionResult",
    "GenerationComplete",
    "GoAway",
    "InputTranscription",
    "Interrupted",
    "Malformed",
    "ModelAudio",
    "OutputTranscription",
    "Parser",
    "ResumptionUpdate",
    "ServerEvent",
    "Setup",
    "SetupComplete",
    "ToolCall",
    "ToolCallCancellation",
    "ToolCallRequest",
    "TurnComplete",
    "Usage",
    "VoiceActivity",
    "activity_end",
    "activity_start",
    "audio_message",
    "audio_stream_end",
    "client_content",
    "decode_base64",
    "parse_duration",
    "realtime_text",
    "setup_message",
    "tool_response",
]

log = logging.getLogger(__name__)

API_ENDPOINT = (
    "wss://generativelanguage.googleapis.com/ws/"
    "google.ai.generativelanguage.{api_version}.GenerativeService.BidiGenerateContent"
)
"""The Gemini API endpoint; ``api_version`` is ``v1beta`` or ``v1alpha``."""
VERTEX_ENDPOINT = (
    "wss://{location}-aiplatform.googleapis.com/ws/"
    "google.cloud.aiplatform.v1.LlmBidiService/BidiGenerateContent"
)
"""The Vertex AI endpoint of the same protocol."""

SCHEDULING = frozenset({"INTERRUPT", "WHEN_IDLE", "SILENT"})
"""How the answer of a non-blocking function is taken: at once, cutting the model off;
once the model is idle (the default); or silently, into the context only."""

Role: TypeAlias = Literal["user", "model"]
"""Who said a turn of the conversation, as the service names it."""


# --- client messages --------------------------------------------------------------------


@attrs.frozen
class Setup:
    """Everything one ``setup`` message says. ``None`` leaves the server's default."""

    model: str
    """The full name: ``models/...`` (Gemini API) or a Vertex resource name."""
    voice: str | None = None
    language: str | None = None
    instructions: str | None = None
    temperature: float | None = None
    functions: tuple[FunctionDeclaration, ...] = ()
    non_blocking: Mapping[str, str] = attrs.field(factory=dict)
    """Function name -> the scheduling of its answers, for ``NON_BLOCKING`` functions."""
    declare_blocking: bool = False
    """Say ``behavior: BLOCKING`` for the other functions (where non-blocking is the
    model's default)."""
    input_transcription: bool = True
    output_transcription: bool = True
    activity_detection: Mapping[str, Any] | None = None
    """``realtimeInputConfig.automaticActivityDetection`` (``{"disabled": True}``: the
    client marks the caller's activity itself)."""
    activity_handling: str | None = None
    turn_coverage: str | None = None
    resumption_handle: str | None = None
    """Resume this session; ``None`` starts a new one (resumption is always requested)."""
    compression: Mapping[str, Any] | None = None
    """``contextWindowCompression``; ``None`` sends none."""
    proactive_audio: bool | None = None
    affective_dialog: bool | None = None
    thinking: Mapping[str, Any] | None = None
    """``generationConfig.thinkingConfig`` (``{"thinkingBudget": 0}``...)."""
    initial_history: bool = False
    """``historyConfig.initialHistoryInClientContent``: client content first, then realtime."""
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    """More setup fields, merged last (nested objects key by key)."""


def setup_message(setup: Setup) -> str:
    """The ``setup`` message: the first a connection sends."""
    generation: dict[str, Any] = {"responseModalities": ["AUDIO"]}
    if setup.temperature is not None:
        generation["temperature"] = setup.temperature
    speech: dict[str, Any] = {}
    if setup.voice:
        speech["voiceConfig"] = {"prebuiltVoiceConfig": {"voiceName": setup.voice}}
    if setup.language:
        speech["languageCode"] = setup.language
    if speech:
        generation["speechConfig"] = speech
    if setup.affective_dialog is not None:
        generation["enableAffectiveDialog"] = setup.affective_dialog
    if setup.thinking is not None:
        generation["thinkingConfig"] = dict(setup.thinking)
    body: dict[str, Any] = {"model": setup.model, "generationConfig": generation}
    if setup.instructions:
        body["systemInstruction"] = {"parts": [{"text": setup.instructions}]}
    if setup.functions:
        declarations = [_declaration(f, setup) for f in setup.functions]
        body["tools"] = [{"functionDeclarations": declarations}]
    if setup.input_transcription:
        body["inputAudioTranscription"] = {}
    if setup.output_transcription:
        body["outputAudioTranscription"] = {}
    realtime: dict[str, Any] = {}
    if setup.activity_detection is not None:
        realtime["automaticActivityDetection"] = dict(setup.activity_detection)
    if setup.activity_handling is not None:
        realtime["activityHandling"] = setup.activity_handling
    if setup.turn_coverage is not None:
        realtime["turnCoverage"] = setup.turn_coverage
    if realtime:
        body["realtimeInputConfig"] = realtime
    resumption: dict[str, Any] = {}
    if setup.resumption_handle is not None:
        resumption["handle"] = setup.resumption_handle
    body["sessionResumption"] = resumption
    if setup.compression is not None:
        body["contextWindowCompression"] = dict(setup.compression)
    if setup.proactive_audio is not None:
        body["proactivity"] = {"proactiveAudio": setup.proactive_audio}
    if setup.initial_history:
        body["historyConfig"] = {"initialHistoryInClientContent": True}
    _merge(body, setup.extra)
    return json.dumps({"setup": body}, separators=(",", ":"))


def _declaration(function: FunctionDeclaration, setup: Setup) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": function.name}
    if function.description:
        declaration["description"] = function.description
    parameters = dict(function.parameters)
    if parameters.get("properties") or parameters.get("type") not in (None, "object"):
        declaration["parameters"] = _schema(parameters)
    if function.name in setup.non_blocking:
        declaration["behavior"] = "NON_BLOCKING"
    elif setup.declare_blocking:
        declaration["behavior"] = "BLOCKING"
    return declaration


# The Schema fields the service takes (an OpenAPI subset); other JSON-schema keywords go.
_SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "default",
        "properties",
        "required",
        "items",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "anyOf",
        "propertyOrdering",
        "example",
    }
)


def _schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-schema object as the service's ``Schema``: type names in upper case
    (``"object"`` -> ``"OBJECT"``), ``["string", "null"]`` as a nullable ``STRING``."""
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            log.debug("function schema keyword %r is not sent (the service does not take it)", key)
            continue
        if key == "type":
            types = [value] if isinstance(value, str) else list(value)
            named = [t for t in types if t != "null"]
            if len(named) != len(types):
                converted["nullable"] = True
            if named:
                converted["type"] = str(named[0]).upper()
        elif key == "properties" and isinstance(value, Mapping):
            converted[key] = {name: _schema(sub) for name, sub in value.items()}
        elif key == "items" and isinstance(value, Mapping):
            converted[key] = _schema(value)
        elif key == "anyOf" and isinstance(value, list):
            converted[key] = [_schema(sub) for sub in value if isinstance(sub, Mapping)]
        else:
            converted[key] = value
    return converted


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        current = base.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            base[key] = _merge(dict(current), value)
        else:
            base[key] = value
    return base


_AUDIO_PREFIXES: dict[int, str] = {}


def audio_message(audio: bytes, sample_rate: int) -> str:
    """``realtimeInput.audio``: PCM16 little-endian mono at ``sample_rate`` (the service
    takes any rate its MIME type names; 16 kHz is its own)."""
    prefix = _AUDIO_PREFIXES.get(sample_rate)
    if prefix is None:
        mime = f"audio/pcm;rate={int(sample_rate)}"
        prefix = _AUDIO_PREFIXES[sample_rate] = (
            '{"realtimeInput":{"audio":{"mimeType":"' + mime + '","data":"'
        )
    return prefix + binascii.b2a_base64(audio, newline=False).decode("ascii") + '"}}}'


def audio_stream_end() -> str:
    """The caller's audio has ended (the service flushes what it holds)."""
    return '{"realtimeInput":{"audioStreamEnd":true}}'


def activity_start() -> str:
    """The caller started speaking (only with automatic activity detection disabled)."""
    return '{"realtimeInput":{"activityStart":{}}}'


def activity_end() -> str:
    """The caller stopped speaking (only with automatic activity detection disabled)."""
    return '{"realtimeInput":{"activityEnd":{}}}'


def realtime_text(text: str) -> str:
    """Text as realtime input: the model takes it as it takes the caller's words."""
    return json.dumps({"realtimeInput": {"text": text}}, separators=(",", ":"))


def client_content(turns: Iterable[tuple[Role, str]], *, turn_complete: bool) -> str:
    """Turns appended to the conversation (``turn_complete``: the model may answer them,
    or, in initial history, the history is complete)."""
    body = [{"role": role, "parts": [{"text": text}]} for role, text in turns]
    message = {"clientContent": {"turns": body, "turnComplete": turn_complete}}
    return json.dumps(message, separators=(",", ":"))


@attrs.frozen
class FunctionResult:
    """The answer to one function call."""

    call_id: str
    """The call's id (empty: the server gave none, and the answer names only the function)."""
    name: str
    output: Any = None
    """The handler's result (any JSON value), sent as ``response.output``."""
    error: str | None = None
    """What went wrong, sent as ``response.error`` instead."""
    scheduling: str | None = None
    """For a non-blocking function: ``INTERRUPT``, ``WHEN_IDLE`` or ``SILENT``."""
    will_continue: bool | None = None


def tool_response(results: Sequence[FunctionResult]) -> str:
    """One ``toolResponse`` answering ``results``, each under its call's id and name."""
    responses = []
    for result in results:
        payload = {"error": result.error} if result.error is not None else {"output": result.output}
        response: dict[str, Any] = {"id": result.call_id} if result.call_id else {}
        response["name"] = result.name
        response["response"] = payload
        if result.scheduling is not None:
            response["scheduling"] = result.scheduling
        if result.will_continue is not None:
            response["willContinue"] = result.will_continue
        responses.append(response)
    return json.dumps({"toolResponse": {"functionResponses": responses}}, separators=(",", ":"))


# --- server events ------------------------------------------------------------------------


@attrs.frozen
class SetupComplete:
    session_id: str | None = None


@attrs.frozen(slots=True)
class ModelAudio:
    """Agent audio (PCM16 at 24 kHz, its MIME type says)."""

    audio: bytes


@attrs.frozen
class GenerationComplete:
    """The model has generated all of its answer (not sent when it was interrupted)."""


@attrs.frozen
class TurnComplete:
    """The model's turn is over (it may come seconds after the audio: it waits for the
    audio to have played)."""

    reason: str | None = None
    waiting_for_input: bool | None = None


@attrs.frozen
class Interrupted:
    """The caller spoke over the model: the turn stops (the barge-in signal)."""


@attrs.frozen(slots=True)
class InputTranscription:
    text: str
    finished: bool = False


@attrs.frozen(slots=True)
class OutputTranscription:
    text: str
    finished: bool = False


@attrs.frozen
class ToolCallRequest:
    call_id: str
    name: str
    arguments: Mapping[str, Any]


@attrs.frozen
class ToolCall:
    calls: tuple[ToolCallRequest, ...]


@attrs.frozen
class ToolCallCancellation:
    """The calls the model no longer wants answered (the caller interrupted)."""

    call_ids: tuple[str, ...]


@attrs.frozen
class GoAway:
    """The server will end the connection in ``time_left`` seconds (``None``: it did not
    say, or not in a form understood)."""

    time_left: float | None


@attrs.frozen
class ResumptionUpdate:
    handle: str | None
    resumable: bool
    last_consumed: int | None = None


@attrs.frozen
class Usage:
    input_tokens: int
    output_tokens: int
    details: Mapping[str, Any]


@attrs.frozen
class VoiceActivity:
    """The service's voice detector: the caller started (``start``) or stopped speaking."""

    start: bool


@attrs.frozen
class Malformed:
    """A message (or a part of one) that is not valid: counted and reported, never fatal."""

    detail: str


ServerEvent: TypeAlias = (
    SetupComplete
    | ModelAudio
    | GenerationComplete
    | TurnComplete
    | Interrupted
    | InputTranscription
    | OutputTranscription
    | ToolCall
    | ToolCallCancellation
    | GoAway
    | ResumptionUpdate
    | Usage
    | VoiceActivity
    | Malformed
)

_Doc = Mapping[str, Any]

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(name: str) -> str:
    return _SNAKE.sub("_", name).lower()


class _Keys:
    """Each camelCase key with its snake_case twin, looked up in that order."""

    def __init__(self) -> None:
        self._twins: dict[str, str] = {}

    def get(self, document: _Doc, key: str) -> Any:
        value = document.get(key)
        if value is None:
            twin = self._twins.get(key)
            if twin is None:
                twin = self._twins[key] = _snake(key)
            value = document.get(twin)
        return value


_keys = _Keys()
_get = _keys.get

# Top-level keys of a server message, and serverContent keys, that need no action.
_IGNORED_KEYS = frozenset(
    {
        "groundingMetadata",
        "grounding_metadata",
        "urlContextMetadata",
        "url_context_metadata",
        "interimInputTranscription",
        "interim_input_transcription",
        "turnCompleteReason",
        "turn_complete_reason",
        "waitingForInput",
        "waiting_for_input",
    }
)
_MESSAGE_KEYS = frozenset(
    {
        "setupComplete",
        "serverContent",
        "toolCall",
        "toolCallCancellation",
        "goAway",
        "sessionResumptionUpdate",
        "usageMetadata",
        "voiceActivity",
        "voiceActivityDetectionSignal",
    }
)
_CONTENT_KEYS = frozenset(
    {
        "modelTurn",
        "generationComplete",
        "turnComplete",
        "interrupted",
        "inputTranscription",
        "outputTranscription",
    }
)
_KNOWN_MESSAGE_KEYS = _MESSAGE_KEYS | {_snake(k) for k in _MESSAGE_KEYS} | _IGNORED_KEYS
_KNOWN_CONTENT_KEYS = _CONTENT_KEYS | {_snake(k) for k in _CONTENT_KEYS} | _IGNORED_KEYS

_URLSAFE = bytes.maketrans(b"-_", b"+/")
_MAX_UNKNOWN = 100


def decode_base64(data: str) -> bytes:
    """Standard or URL-safe base64, padded or not (as the vendor's SDK accepts)."""
    raw = data.encode("ascii")
    if b"-" in raw or b"_" in raw:
        raw = raw.translate(_URLSAFE)
    if len(raw) % 4:
        raw += b"=" * (-len(raw) % 4)
    return binascii.a2b_base64(raw, strict_mode=True)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*s\s*$")


def parse_duration(value: Any) -> float | None:
    """A protobuf Duration: ``"50s"``, ``"1.5s"``, ``{"seconds": 50, "nanos": 0}`` or a
    number of seconds; ``None`` if it is none of those."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        match = _DURATION.match(value)
        return float(match.group(1)) if match else None
    if isinstance(value, Mapping):
        try:
            seconds = float(value.get("seconds") or 0) + float(value.get("nanos") or 0) / 1e9
        except (TypeError, ValueError):
            return None
        return seconds if seconds >= 0 else None
    return None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class Parser:
    """Turns server messages into events; counts what it skips.

    ``unknown`` counts keys it does not know (new vendor fields must never break a call),
    ``malformed`` the messages and parts that were not valid, ``skipped`` what it read and
    had no use for (thought parts, model text in an audio session).
    """

    def __init__(self) -> None:
        self.unknown: collections.Counter[str] = collections.Counter()
        self.skipped: collections.Counter[str] = collections.Counter()
        self.malformed = 0

    def parse(self, message: str | bytes) -> list[ServerEvent]:
        """The events of one message, in the order to act on them."""
        try:
            document = json.loads(message)
        except (ValueError, UnicodeDecodeError) as exc:
            return [self._malformed(f"not JSON ({type(exc).__name__}): {message[:80]!r}")]
        if not isinstance(document, dict):
            return [self._malformed(f"not a JSON object: {message[:80]!r}")]
        events: list[ServerEvent] = []
        for key in document:
            if key not in _KNOWN_MESSAGE_KEYS:
                self._unknown(str(key))
        try:
            self._parse(document, events)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            events.append(self._malformed(f"{type(exc).__name__}: {exc}: {message[:80]!r}"))
        return events

    def _parse(self, document: _Doc, events: list[ServerEvent]) -> None:
        activity = _get(document, "voiceActivity")
        if isinstance(activity, Mapping):
            kind = _get(activity, "voiceActivityType")
            if kind in ("ACTIVITY_START", "ACTIVITY_END"):
                events.append(VoiceActivity(start=kind == "ACTIVITY_START"))
        signal = _get(document, "voiceActivityDetectionSignal")
        if isinstance(signal, Mapping):
            kind = _get(signal, "vadSignalType")
            if kind in ("VAD_SIGNAL_TYPE_SOS", "VAD_SIGNAL_TYPE_EOS"):
                events.append(VoiceActivity(start=kind == "VAD_SIGNAL_TYPE_SOS"))
        setup = _get(document, "setupComplete")
        if setup is not None:
            session_id = _get(setup, "sessionId") if isinstance(setup, Mapping) else None
            events.append(SetupComplete(str(session_id) if session_id else None))
        content = _get(document, "serverContent")
        if content is not None:
            self._content(content, events)
        tool_call = _get(document, "toolCall")
        if tool_call is not None:
            events.append(self._tool_call(tool_call))
        cancellation = _get(document, "toolCallCancellation")
        if cancellation is not None:
            ids = _get(cancellation, "ids") or []
            events.append(ToolCallCancellation(tuple(str(i) for i in ids)))
        usage = _get(document, "usageMetadata")
        if isinstance(usage, Mapping):
            events.append(self._usage(usage))
        update = _get(document, "sessionResumptionUpdate")
        if isinstance(update, Mapping):
            handle = _get(update, "newHandle")
            consumed = _get(update, "lastConsumedClientMessageIndex")
            events.append(
                ResumptionUpdate(
                    handle=str(handle) if handle else None,
                    resumable=bool(_get(update, "resumable")),
                    last_consumed=int(consumed) if consumed is not None else None,
                )
            )
        go_away = _get(document, "goAway")
        if go_away is not None:
            left = _get(go_away, "timeLeft") if isinstance(go_away, Mapping) else None
            events.append(GoAway(parse_duration(left)))

    def _content(self, content: _Doc, events: list[ServerEvent]) -> None:
        for key in content:
            if key not in _KNOWN_CONTENT_KEYS:
                self._unknown(f"serverContent.{key}")
        transcription = _get(content, "inputTranscription")
        if isinstance(transcription, Mapping):
            text = _get(transcription, "text")
            if text or _get(transcription, "finished"):
                finished = bool(_get(transcription, "finished"))
                events.append(InputTranscription(str(text or ""), finished))
        turn = _get(content, "modelTurn")
        if isinstance(turn, Mapping):
            for part in _get(turn, "parts") or ():
                self._part(part, events)
        transcription = _get(content, "outputTranscription")
        if isinstance(transcription, Mapping):
            text = _get(transcription, "text")
            if text or _get(transcription, "finished"):
                finished = bool(_get(transcription, "finished"))
                events.append(OutputTranscription(str(text or ""), finished))
        if _get(content, "interrupted"):
            events.append(Interrupted())
        if _get(content, "generationComplete"):
            events.append(GenerationComplete())
        if _get(content, "turnComplete"):
            reason = _get(content, "turnCompleteReason")
            waiting = _get(content, "waitingForInput")
            events.append(
                TurnComplete(
                    str(reason) if reason else None, bool(waiting) if waiting is not None else None
                )
            )

    def _part(self, part: Any, events: list[ServerEvent]) -> None:
        if not isinstance(part, Mapping):
            events.append(self._malformed(f"a modelTurn part that is not an object: {part!r:.80}"))
            return
        if _get(part, "thought"):
            self.skipped["thought"] += 1
            return
        inline = _get(part, "inlineData")
        if isinstance(inline, Mapping):
            mime = str(_get(inline, "mimeType") or "")
            if mime and not mime.startswith("audio/pcm"):
                self.skipped[f"inlineData {mime}"] += 1
                return
            try:
                audio = decode_base64(str(_get(inline, "data") or ""))
            except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
                events.append(self._malformed(f"inline audio that is not base64: {exc}"))
                return
            if audio:
                events.append(ModelAudio(audio))
            return
        if _get(part, "text") is not None:
            self.skipped["text"] += 1  # its words come as outputTranscription
            return
        self.skipped["part"] += 1

    def _tool_call(self, tool_call: _Doc) -> ToolCall:
        calls = []
        for call in _get(tool_call, "functionCalls") or ():
            arguments = _get(call, "args")
            calls.append(
                ToolCallRequest(
                    call_id=str(_get(call, "id") or ""),
                    name=str(call["name"]),
                    arguments=dict(arguments) if isinstance(arguments, Mapping) else {},
                )
            )
        return ToolCall(tuple(calls))

    def _usage(self, usage: _Doc) -> Usage:
        # Vertex AI names the output ``candidates``, the Gemini API ``response``.
        output = _get(usage, "responseTokenCount")
        if output is None:
            output = _get(usage, "candidatesTokenCount")
        return Usage(
            input_tokens=_count(_get(usage, "promptTokenCount")),
            output_tokens=_count(output),
            details=dict(usage),
        )

    def _unknown(self, key: str) -> None:
        # Bounded: a server sending ever new keys must not grow the counter for ever.
        if key not in self.unknown and len(self.unknown) >= _MAX_UNKNOWN:
            key = "(others)"
        self.unknown[key] += 1

    def _malformed(self, detail: str) -> Malformed:
        self.malformed += 1
        return Malformed(detail)
