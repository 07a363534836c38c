"""A fake Gemini Live server: a real WebSocket on 127.0.0.1, the vendor's message shapes.

It serves ``BidiGenerateContent`` at the Gemini API paths (``v1beta``, ``v1alpha``) and at
the Vertex AI path, sends every message as JSON in a **binary** frame, and fails as the
service does: by closing with a code and a reason (1007 for a bad key, 1008 for an unknown
model, 1011 for an exhausted quota), or by refusing the upgrade with an HTTP status when
told to. It checks the client as the real server would (``setup`` first, one key per
message, lowerCamelCase, base64 PCM with a rate, function answers under ids it issued,
no history over a resumed session, client activity signals only when the client marks
activity) and records each violation: tests assert ``fake.violations == []``.

Sessions survive connections the way the service's do: ``resumption_update()`` issues a
handle that a later connection's setup may name; a resumed connection knows what the
session knew when the handle was issued (so a function call made after it is unknown).

    async with FakeGemini() as fake:
        provider = Provider("test", url=fake.url)
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            await conn.input_transcription("Hello")
            turn = await conn.respond(audio=pcm24k, transcript="Hi there.", hold=True)
            await conn.interrupt()
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import attrs

from omnivoice.audio.format import GEMINI_INPUT, GEMINI_OUTPUT, AudioFormat
from omnivoice.net import ConnectionClosed, HandshakeRequest, ServerWebSocket
from omnivoice.realtime.provider import Provider
from omnivoice.realtime.types import ProcessConfig
from omnivoice.testing import FakeServer, Rejection, SessionProbe, open_probe

__all__ = [
    "API_PATH",
    "VERTEX_PATH",
    "FakeCall",
    "FakeConnection",
    "FakeGemini",
    "FakeTurn",
    "open_session",
]

API_PATH = "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"
VERTEX_PATH = "/ws/google.cloud.aiplatform.v1.LlmBidiService/BidiGenerateContent"
_PATHS = {API_PATH.format(version=v) for v in ("v1beta", "v1alpha")} | {VERTEX_PATH}

_CLIENT_KEYS = {"setup", "clientContent", "realtimeInput", "toolResponse"}
_REALTIME_KEYS = {"audio", "audioStreamEnd", "text", "activityStart", "activityEnd", "video"}
_SETUP_KEYS = {
    "model",
    "generationConfig",
    "systemInstruction",
    "tools",
    "realtimeInputConfig",
    "sessionResumption",
    "contextWindowCompression",
    "inputAudioTranscription",
    "outputAudioTranscription",
    "proactivity",
    "historyConfig",
    "explicitVadSignal",
    "safetySettings",
}
_MIME = re.compile(r"^audio/pcm;rate=(\d+)$")
_USAGE = {
    "promptTokenCount": 812,
    "responseTokenCount": 95,
    "totalTokenCount": 907,
    "promptTokensDetails": [
        {"modality": "AUDIO", "tokenCount": 700},
        {"modality": "TEXT", "tokenCount": 112},
    ],
    "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 95}],
}
BAD_KEY = "API key not valid. Please pass a valid API key."
QUOTA = "RESOURCE_EXHAUSTED: You exceeded your current quota, please check your plan."


def _snake(document: Any) -> Any:
    """Every key of ``document`` in snake_case, as a server built on protobuf may send."""
    if isinstance(document, dict):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): _snake(v) for k, v in document.items()}
    if isinstance(document, list):
        return [_snake(v) for v in document]
    return document


@attrs.define
class FakeCall:
    """A function call the fake's model makes."""

    name: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict)
    call_id: str = ""


@attrs.define(eq=False)
class FakeSession:
    """The server-side session: what a resumption handle brings back."""

    number: int
    pending: dict[str, str] = attrs.field(factory=dict)
    """Function calls issued and not yet answered or cancelled: id -> name."""
    handles: dict[str, dict[str, str]] = attrs.field(factory=dict)
    """Each handle issued, with the calls pending when it was."""


@attrs.define(eq=False)
class FakeTurn:
    """A model turn in progress; ``finish()`` sends the rest of a held one."""

    connection: FakeConnection
    audio: list[bytes]
    transcript: list[str]
    usage: Mapping[str, Any] | None
    generation_complete: bool = True
    done: bool = False

    async def finish(self) -> None:
        await self.connection._finish(self)


class FakeConnection:
    """One client connection: what it sent, and how to talk to it."""

    def __init__(self, fake: FakeGemini, ws: ServerWebSocket) -> None:
        self.fake = fake
        self.ws = ws
        self.request: HandshakeRequest = ws.request
        self.setup: dict[str, Any] = {}
        self.configured = anyio.Event()
        self.closed = anyio.Event()
        self.handle: str | None = None
        """The resumption handle its setup named."""
        self.resumed = False
        self.session: FakeSession | None = None
        self.messages: list[dict[str, Any]] = []
        """Every client message but the audio, in order."""
        self.audio_before: list[int] = []
        """For each of ``messages``, the audio bytes received before it."""
        self.audio = bytearray()
        """The caller's audio received, decoded."""
        self.audio_messages = 0
        self.mime_types: set[str] = set()
        self.answers: dict[str, dict[str, Any]] = {}
        """Function responses, by call id."""
        self.tool_responses: list[list[dict[str, Any]]] = []
        """Each toolResponse's functionResponses, in order."""
        self.texts: list[str] = []
        """``realtimeInput.text`` messages."""
        self.history: list[dict[str, Any]] = []
        """The turns of ``clientContent`` messages."""
        self.turn: FakeTurn | None = None
        self._ids = itertools.count(1)
        self._changed = anyio.Event()

    # --- what the client sent ---------------------------------------------------------

    @property
    def model(self) -> str | None:
        return self.setup.get("model")

    @property
    def vertex(self) -> bool:
        return self.request.path == VERTEX_PATH

    def of_kind(self, key: str) -> list[dict[str, Any]]:
        return [m[key] for m in self.messages if key in m]

    async def wait_for(self, condition: Any) -> None:
        while not condition():
            if self.closed.is_set():
                raise AssertionError("the client closed the connection")
            await self._changed.wait()

    async def wait_audio(self, n_bytes: int) -> None:
        """Until at least ``n_bytes`` of caller audio arrived on this connection."""
        await self.wait_for(lambda: len(self.audio) >= n_bytes)

    async def wait_answer(self, call_id: str) -> dict[str, Any]:
        """The function response for ``call_id`` (waits for it)."""
        await self.wait_for(lambda: call_id in self.answers)
        return self.answers[call_id]

    async def wait_closed(self) -> None:
        await self.closed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
        self.fake.notify()

    # --- scripting the server ---------------------------------------------------------

    async def send(self, document: Mapping[str, Any]) -> None:
        """One server message, as JSON in a binary frame."""
        if self.fake.snake_case:
            document = _snake(document)
        await self.ws.send(json.dumps(document).encode())

    def _b64(self, data: bytes) -> str:
        if self.fake.urlsafe_base64:
            return base64.urlsafe_b64encode(data).decode().rstrip("=")
        return base64.b64encode(data).decode()

    async def respond(
        self,
        *,
        audio: bytes = b"",
        transcript: str = "",
        chunk: int = 4800,
        hold: bool = False,
        usage: Mapping[str, Any] | None = _USAGE,
        generation_complete: bool = True,
        pieces: int = 2,
    ) -> FakeTurn:
        """A model turn: ``audio`` (PCM16 24 kHz, ``chunk`` bytes a part) with its
        transcription in ``pieces`` interleaved; ``hold`` sends the first half and keeps
        the turn going until ``finish()`` (or ``interrupt()``)."""
        if self.turn is not None and not self.turn.done:
            raise AssertionError("the fake's model is already in a turn")
        parts = [audio[i : i + chunk] for i in range(0, len(audio), chunk)]
        words = _split(transcript, pieces)
        turn = FakeTurn(self, parts, words, usage, generation_complete)
        self.turn = turn
        if hold:
            await self._send_parts(turn, (len(parts) + 1) // 2, (len(words) + 1) // 2)
        else:
            await self._finish(turn)
        return turn

    async def _send_parts(self, turn: FakeTurn, n_audio: int, n_words: int) -> None:
        for index in range(max(n_audio, n_words)):
            if index < n_audio and turn.audio:
                data = self._b64(turn.audio.pop(0))
                part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}}
                await self.send({"serverContent": {"modelTurn": {"parts": [part]}}})
            if index < n_words and turn.transcript:
                text = turn.transcript.pop(0)
                await self.send({"serverContent": {"outputTranscription": {"text": text}}})

    async def _finish(self, turn: FakeTurn) -> None:
        if turn.done:
            return
        await self._send_parts(turn, len(turn.audio), len(turn.transcript))
        if turn.generation_complete:
            await self.send({"serverContent": {"generationComplete": True}})
        await self._turn_complete(turn)

    async def _turn_complete(self, turn: FakeTurn) -> None:
        turn.done = True
        message: dict[str, Any] = {"serverContent": {"turnComplete": True}}
        if turn.usage is not None:
            message["usageMetadata"] = dict(turn.usage)
        await self.send(message)
        if self.fake.auto_handles:
            await self.resumption_update()

    async def interrupt(self) -> None:
        """The caller spoke over the model: ``interrupted``, then ``turnComplete``."""
        await self.send({"serverContent": {"interrupted": True}})
        turn = self.turn if self.turn is not None and not self.turn.done else None
        if turn is None:
            turn = FakeTurn(self, [], [], None)
        await self._turn_complete(turn)

    async def input_transcription(self, text: str, finished: bool = False) -> None:
        body: dict[str, Any] = {"text": text}
        if finished:
            body["finished"] = True
        await self.send({"serverContent": {"inputTranscription": body}})

    async def voice_activity(self, start: bool) -> None:
        kind = "ACTIVITY_START" if start else "ACTIVITY_END"
        await self.send({"voiceActivity": {"voiceActivityType": kind}})

    async def tool_call(self, *calls: FakeCall) -> list[str]:
        """The model calls functions; their ids."""
        assert self.session is not None
        body = []
        ids = []
        for call in calls:
            call_id = call.call_id or f"function-call-{self.session.number}-{next(self._ids)}"
            self.session.pending[call_id] = call.name
            ids.append(call_id)
            body.append({"id": call_id, "name": call.name, "args": dict(call.arguments)})
        await self.send({"toolCall": {"functionCalls": body}})
        return ids

    async def cancel_calls(self, call_ids: Iterable[str]) -> None:
        assert self.session is not None
        ids = list(call_ids)
        for call_id in ids:
            self.session.pending.pop(call_id, None)
        await self.send({"toolCallCancellation": {"ids": ids}})

    async def go_away(self, time_left: str = "10s") -> None:
        await self.send({"goAway": {"timeLeft": time_left}})

    async def resumption_update(self, resumable: bool = True) -> str | None:
        """Issue a handle (``resumable``), or say this is no point to resume from."""
        assert self.session is not None
        if not resumable:
            await self.send({"sessionResumptionUpdate": {"resumable": False}})
            return None
        handle = f"handle-{self.session.number}-{next(self.fake._handles)}"
        self.session.handles[handle] = dict(self.session.pending)
        self.fake.sessions[handle] = self.session
        await self.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})
        return handle

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.aclose(code, reason)

    async def abort(self) -> None:
        """Cut the TCP connection: the client sees 1006."""
        await self.ws.abort()

    # --- serving ------------------------------------------------------------------------

    def violation(self, message: str) -> None:
        self.fake.violation(f"connection {self.fake.connections.index(self)}: {message}")

    async def _serve(self) -> None:
        try:
            if not await self._set_up():
                return
            async for message in self.ws:
                await self._on_message(message)
        except ConnectionClosed:
            pass  # the client dropped the connection (or the test cut it)
        finally:
            self.closed.set()
            self._notify()

    async def _set_up(self) -> bool:
        fake = self.fake
        try:
            first = await self.ws.receive()
        except ConnectionClosed:
            return False
        document = self._decode(first)
        if document is None or list(document) != ["setup"]:
            self.violation(f"the first message is not setup: {first!r:.100}")
            await self.ws.aclose(1007, "The first message must be setup.")
            return False
        setup = document["setup"]
        self.setup = setup
        self._notify()
        for key in setup:
            if key not in _SETUP_KEYS:
                self.violation(f"setup with the unknown field {key!r}")
        if not fake.authorized(self.request):
            await self.ws.aclose(1007, BAD_KEY)
            return False
        model = str(setup.get("model", ""))
        prefix = "projects/" if self.vertex else "models/"
        if not model.startswith(prefix):
            self.violation(f"model {model!r} without the {prefix!r} prefix")
        if model.rsplit("/", 1)[-1] not in fake.models:
            version = self.request.path.split(".")[3] if not self.vertex else "v1"
            # A close reason holds 123 bytes at most: the service's is cut there too.
            reason = (
                f"{model} is not found for API version {version}, or is not supported for "
                "bidiGenerateContent."
            )
            await self.ws.aclose(1008, reason.encode()[:123].decode(errors="ignore"))
            return False
        if fake.quota_exhausted:
            await self.ws.aclose(1011, QUOTA)
            return False
        modalities = setup.get("generationConfig", {}).get("responseModalities")
        if modalities != ["AUDIO"]:
            self.violation(f"responseModalities {modalities!r}")
        if "sessionResumption" not in setup:
            self.violation("setup without sessionResumption")
        handle = (setup.get("sessionResumption") or {}).get("handle")
        if handle is not None:
            self.handle = handle
            session = fake.sessions.get(handle)
            if session is None or fake.refuse_resumption:
                await self.ws.aclose(
                    1007, "The session resumption handle is invalid or has expired."
                )
                return False
            for other in fake.connections:
                if other.session is session and not other.closed.is_set():
                    # Its close may be on its way: give it a moment, as the service does.
                    with anyio.move_on_after(2):
                        await other.closed.wait()
                if other.session is session and not other.closed.is_set():
                    # The service refuses to resume a session that is still connected.
                    self.violation("a resumption while the session's last connection is open")
                    await self.ws.aclose(1011, "Session is already connected.")
                    return False
            self.session = session
            session.pending = dict(session.handles[handle])
            self.resumed = True
        else:
            fake._session_numbers += 1
            self.session = FakeSession(fake._session_numbers)
        if fake.hold_setup is not None:
            await fake.hold_setup.wait()
        await self.send({"setupComplete": {"sessionId": f"session-{self.session.number}"}})
        self.configured.set()
        self._notify()
        if fake.auto_handles:
            await self.resumption_update()
        return True

    def _decode(self, message: str | bytes) -> dict[str, Any] | None:
        if isinstance(message, bytes):
            self.violation("a binary frame from the client (its messages are JSON text)")
            message = message.decode(errors="replace")
        try:
            document = json.loads(message)
        except ValueError:
            self.violation(f"not JSON: {message[:80]!r}")
            return None
        if not isinstance(document, dict):
            self.violation(f"not a JSON object: {message[:80]!r}")
            return None
        return document

    async def _on_message(self, message: str | bytes) -> None:
        document = self._decode(message)
        if document is None:
            await self.ws.aclose(1007, "Invalid JSON payload received.")
            return
        if len(document) != 1 or next(iter(document)) not in _CLIENT_KEYS:
            self.violation(f"a message with the keys {sorted(document)} (exactly one of four)")
            await self.ws.aclose(1007, "Invalid JSON payload received. Unknown name.")
            return
        key, body = next(iter(document.items()))
        if key == "realtimeInput" and isinstance(body, dict) and "audio" in body:
            self._on_audio(body)
            self._notify()
            return
        self.messages.append(document)
        self.audio_before.append(len(self.audio))
        if key == "setup":
            self.violation("a second setup")
        elif key == "realtimeInput":
            self._on_realtime(body)
        elif key == "clientContent":
            self._on_client_content(body)
        elif key == "toolResponse":
            await self._on_tool_response(body)
        self._notify()

    def _on_audio(self, body: dict[str, Any]) -> None:
        if len(body) != 1:
            self.violation(f"realtimeInput with {sorted(body)} (one at a time)")
        audio = body["audio"]
        mime = str(audio.get("mimeType"))
        match = _MIME.match(mime)
        if match is None:
            self.violation(f"audio with the MIME type {mime!r}")
        self.mime_types.add(mime)
        try:
            data = base64.b64decode(audio.get("data", ""), validate=True)
        except (binascii.Error, TypeError):
            self.violation("audio that is not standard base64")
            return
        if len(data) % 2:
            self.violation("audio that is not whole PCM16 samples")
        self.audio += data
        self.audio_messages += 1

    def _on_realtime(self, body: Any) -> None:
        if not isinstance(body, dict) or len(body) != 1 or next(iter(body)) not in _REALTIME_KEYS:
            self.violation(f"realtimeInput {body!r:.80}")
            return
        key, value = next(iter(body.items()))
        detection = self.setup.get("realtimeInputConfig", {}).get("automaticActivityDetection", {})
        if key in ("activityStart", "activityEnd") and not detection.get("disabled"):
            self.violation(f"{key} with automatic activity detection on")
        if key == "text":
            self.texts.append(str(value))

    def _on_client_content(self, body: Any) -> None:
        if self.resumed:
            self.violation("clientContent history re-sent over a resumed session")
        for turn in body.get("turns") or []:
            if turn.get("role") not in ("user", "model"):
                self.violation(f"a turn with the role {turn.get('role')!r}")
            if not all("text" in part for part in turn.get("parts") or [None]):
                self.violation(f"a turn without text parts: {turn!r:.80}")
            self.history.append(turn)
        initial = self.setup.get("historyConfig", {}).get("initialHistoryInClientContent")
        if initial and self.audio:
            self.violation("initial history after the realtime input began")

    async def _on_tool_response(self, body: Any) -> None:
        assert self.session is not None
        responses = body.get("functionResponses") if isinstance(body, dict) else None
        if not isinstance(responses, list) or not responses:
            self.violation(f"toolResponse {body!r:.80}")
            return
        for response in responses:
            call_id = response.get("id")
            name = self.session.pending.get(call_id)
            problem = None
            if name is None:
                problem = f"an answer to the unknown function call {call_id!r}"
            elif response.get("name") != name:
                problem = f"the answer to {call_id!r} names {response.get('name')!r}, not {name!r}"
            elif not isinstance(response.get("response"), dict):
                problem = f"the answer to {call_id!r} is not an object"
            if problem is not None:
                self.violation(problem)
                await self.ws.aclose(1007, "Invalid function response: " + problem)
                return
            del self.session.pending[call_id]
            self.answers[call_id] = response
        self.tool_responses.append(responses)


class FakeGemini(FakeServer):
    """The service: ``url`` for the provider, ``connection(i)`` for each connection."""

    path = None  # the Gemini API's paths and Vertex AI's: see check_request

    def __init__(
        self,
        *,
        api_key: str | None = "test",
        access_token: str = "vertex-token",
        models: Iterable[str] = (
            "gemini-3.8-live",
            "gemini-3.1-flash-live-preview",
            "gemini-2.5-flash-native-audio-preview-12-2025",
            "gemini-live-2.5-flash-native-audio",
        ),
        auth_failure: str = "close",
        auto_handles: bool = True,
    ) -> None:
        """``auth_failure``: ``"close"`` (the upgrade succeeds, the setup is answered with
        1007, as the service does) or ``"http"`` (401). ``auto_handles``: issue a
        resumption handle after the setup and after each turn."""
        super().__init__()
        self.api_key = api_key
        self.access_token = access_token
        self.models = set(models)
        self.auth_failure = auth_failure
        self.auto_handles = auto_handles
        self.quota_exhausted = False
        self.refuse_resumption = False
        self.snake_case = False
        """Send snake_case keys (as a protobuf-based server may)."""
        self.urlsafe_base64 = False
        """Send audio in URL-safe base64 without padding."""
        self.hold_setup: anyio.Event | None = None
        """Answer setups only once this is set."""
        self.connections: list[FakeConnection] = []
        self.sessions: dict[str, FakeSession] = {}
        self._session_numbers = 0
        self._handles = itertools.count(1)

    @property
    def url(self) -> str:
        return self.base_url + API_PATH.format(version="v1beta")

    @property
    def vertex_url(self) -> str:
        return self.base_url + VERTEX_PATH

    async def connection(self, index: int) -> FakeConnection:
        """The ``index``-th connection, once its setup is complete."""
        await self.wait_until(lambda: len(self.connections) > index)
        conn = self.connections[index]
        await conn.configured.wait()
        return conn

    def audio(self) -> bytes:
        """The caller's audio every connection received, in order of the connections."""
        return b"".join(bytes(conn.audio) for conn in self.connections)

    def authorized(self, request: HandshakeRequest) -> bool:
        if request.path == VERTEX_PATH:
            return request.headers.get("authorization") == f"Bearer {self.access_token}"
        if self.api_key is None:
            return True
        given = request.headers.get("x-goog-api-key") or request.params.get("key")
        return given == self.api_key

    def check_request(self, request: HandshakeRequest) -> Rejection | None:
        if request.path not in _PATHS:
            return 404, {}, "not found"
        if self.auth_failure == "http" and not self.authorized(request):
            body = {"error": {"code": 401, "message": BAD_KEY, "status": "UNAUTHENTICATED"}}
            return 401, {"Content-Type": "application/json"}, json.dumps(body)
        return None

    async def handle(self, ws: ServerWebSocket) -> None:
        conn = FakeConnection(self, ws)
        self.connections.append(conn)
        self.notify()
        await conn._serve()


def _split(text: str, pieces: int) -> list[str]:
    """``text`` in about ``pieces`` pieces, at word boundaries, spaces kept."""
    if not text:
        return []
    words = re.findall(r"\S+\s*", text)
    size = max(1, -(-len(words) // max(1, pieces)))
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def open_session(
    provider: Provider,
    config: ProcessConfig | None = None,
    *,
    input_format: AudioFormat = GEMINI_INPUT,
    collect: bool = True,
) -> AbstractAsyncContextManager[SessionProbe]:
    """Open a session of ``provider`` (PCM16 16 kHz in, 24 kHz out) and collect its events,
    checked against the contract, in the background (unless ``collect``)."""
    return open_probe(
        provider, config, input_format=input_format, output_format=GEMINI_OUTPUT, collect=collect
    )
