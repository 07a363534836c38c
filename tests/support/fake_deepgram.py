"""A fake Deepgram live-transcription server: a real WebSocket on 127.0.0.1, the vendor's
messages, and a recogniser of its own that a test can speak to.

The fake "hears" words spoken as tones: each word of :data:`VOCABULARY` is a sine of its own
frequency (:func:`speech` makes the audio), found again in each 20 ms frame of the decoded
audio (mu-law, A-law or linear16). An energy detector drives what Deepgram would send:

- ``/v1/listen`` (Nova): ``SpeechStarted`` (``vad_events``), interim ``Results``, final ones
  with ``speech_final`` after ``endpointing`` ms of quiet, ``UtteranceEnd`` after
  ``utterance_end_ms`` without words, empty finals every few seconds of silence,
  ``Finalize`` (``from_finalize``), ``CloseStream`` (the last results, ``Metadata``, close
  1000), ``KeepAlive``; ``1011 NET-0001`` after ``idle_timeout`` s without any message.
- ``/v2/listen`` (Flux): ``Connected``, then ``TurnInfo`` (``StartOfTurn``, ``Update``
  every 250 ms of audio, ``EagerEndOfTurn``/``TurnResumed`` when ``eager_eot_threshold``
  is set, ``EndOfTurn``), ``ForceEndTurn``, ``CloseStream``. The end-of-turn confidence is
  the quiet after the last word over a second; turns advance with the audio only.

Handshakes are checked as Deepgram does: ``Authorization: Token <key>`` (else 401), the
query parameters (else 400 with ``dg-error`` naming the one refused); tests may
``reject()`` with any status (429). Everything the client sent is recorded per connection,
and whatever the real server would refuse is a violation (``fake.violations``).

    async with FakeDeepgram() as fake:
        stt = DeepgramSTT("test", url=fake.url)
        audio = speech("where is my order", MULAW)
        ...
        conn = await fake.connection(0)
        assert conn.params["encoding"] == "mulaw" and bytes(conn.audio) == audio
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import anyio
import numpy as np
from anyio.streams.memory import MemoryObjectSendStream

from omnivoice.audio import g711
from omnivoice.audio.format import TWILIO, AudioFormat, Encoding
from omnivoice.net import ConnectionClosed, HandshakeRequest, ServerWebSocket
from omnivoice.pipeline import SpeechToText, STTEvent
from omnivoice.realtime import Transcript
from omnivoice.testing import FakeServer, Rejection

__all__ = ["VOCABULARY", "FakeConnection", "FakeDeepgram", "Listening", "listening", "speech"]

T = TypeVar("T")

VOCABULARY: dict[str, int] = {
    word: 300 + 100 * index
    for index, word in enumerate(
        [
            "hello", "where", "is", "my", "order", "yes", "no", "please", "thank", "you",
            "i", "want", "to", "speak", "with", "an", "agent", "what", "time", "do",
            "open", "today", "help", "billing", "wait", "stop", "okay", "the", "account",
        ]
    )
}  # fmt: skip
"""The words the fake knows, and the tone (Hz) each is spoken as (300 Hz to 3.1 kHz: a
phone line carries them all)."""

_FRAME_MS = 20
_THRESHOLD = (32768 * 10 ** (-40 / 20)) ** 2
"""A frame louder than -40 dBFS is voiced."""
_WORD_FRAMES = 3
"""A tone this many frames long is a word."""
_INTERIM_MS = 300
_SILENT_FINAL_MS = 3000
"""Without speech, an empty final result this often (as Deepgram finalises silence)."""
_MAX_SEGMENT_MS = 5000
_UPDATE_MS = 250
_ENCODINGS = {"mulaw": Encoding.MULAW, "alaw": Encoding.ALAW, "linear16": Encoding.PCM16}
_V1_PARAMS = {
    "model", "language", "encoding", "sample_rate", "channels", "multichannel",
    "interim_results", "endpointing", "utterance_end_ms", "vad_events", "smart_format",
    "punctuate", "diarize", "numerals", "profanity_filter", "redact", "keyterm", "keywords",
    "search", "replace", "tag", "version", "callback", "mip_opt_out", "dictation", "extra",
    "filler_words", "detect_entities",
}  # fmt: skip
_V2_PARAMS = {
    "model", "encoding", "sample_rate", "eot_threshold", "eager_eot_threshold",
    "eot_timeout_ms", "keyterm", "language_hint", "mip_opt_out", "tag",
}  # fmt: skip
_BOOLEANS = {
    "interim_results", "vad_events", "smart_format", "punctuate", "diarize", "numerals",
    "profanity_filter", "multichannel", "mip_opt_out", "dictation", "filler_words",
}  # fmt: skip


def speech(text: str, audio_format: AudioFormat, *, word_ms: int = 200, gap_ms: int = 40) -> bytes:
    """``text`` (words of :data:`VOCABULARY`) as the fake hears it: one tone per word,
    ``word_ms`` long, ``gap_ms`` of silence between words, in ``audio_format``."""
    rate = audio_format.sample_rate
    pieces = []
    for index, word in enumerate(text.lower().split()):
        hz = VOCABULARY[word.strip(".,?!")]
        if index:
            pieces.append(np.zeros(round(rate * gap_ms / 1000)))
        t = np.arange(round(rate * word_ms / 1000)) / rate
        pieces.append(0.25 * 32767 * np.sin(2 * np.pi * hz * t))
    pcm = np.rint(np.concatenate(pieces) if pieces else np.zeros(0)).astype("<i2").tobytes()
    if audio_format.encoding is Encoding.PCM16:
        return pcm
    return g711.encode(pcm, audio_format.encoding)


class _Ear:
    """Frames of decoded audio in, voiced or not and the word each holds."""

    def __init__(self, encoding: Encoding, sample_rate: int) -> None:
        self.encoding = encoding
        self.sample_rate = sample_rate
        self.frame_bytes = round(sample_rate * _FRAME_MS / 1000) * encoding.sample_width
        self._pending = b""
        self._frequencies = np.array(list(VOCABULARY.values()))
        self._words = list(VOCABULARY)

    def frames(self, data: bytes) -> list[tuple[bool, str | None]]:
        data = self._pending + data
        usable = len(data) - len(data) % self.frame_bytes
        self._pending = data[usable:]
        heard = []
        for start in range(0, usable, self.frame_bytes):
            frame = data[start : start + self.frame_bytes]
            if self.encoding is not Encoding.PCM16:
                frame = g711.decode(frame, self.encoding)
            samples = np.frombuffer(frame, "<i2").astype(np.float64)
            voiced = bool(np.mean(samples**2) > _THRESHOLD)
            heard.append((voiced, self._word(samples) if voiced else None))
        return heard

    def _word(self, samples: np.ndarray[Any, Any]) -> str | None:
        spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
        peak = float(np.argmax(spectrum)) * self.sample_rate / len(samples)
        distance = np.abs(self._frequencies - peak)
        nearest = int(np.argmin(distance))
        return self._words[nearest] if distance[nearest] <= 50 else None


class FakeConnection:
    """One client stream: what it asked for and sent, and the fake's side of it."""

    def __init__(self, fake: FakeDeepgram, ws: ServerWebSocket) -> None:
        self.fake = fake
        self.ws = ws
        self.request: HandshakeRequest = ws.request
        self.params = ws.request.params
        self.flux = ws.request.path == "/v2/listen"
        self.audio = bytearray()
        """Every audio byte received, exactly as sent."""
        self.frames = 0
        """Binary frames received."""
        self.controls: list[tuple[float, str]] = []
        """Control messages by type, with the time (``anyio.current_time()``) of each."""
        self.sent: list[dict[str, Any]] = []
        """Every message the fake sent."""
        self.closed = anyio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.last_message_at = anyio.current_time()
        self.last_audio_at: float | None = None
        self.request_id = str(uuid.uuid4())
        encoding = _ENCODINGS[self.params.get("encoding", "linear16")]
        self.format = AudioFormat(encoding, int(self.params.get("sample_rate", "16000")))
        self._ear = _Ear(encoding, self.format.sample_rate)
        self._sequence = itertools.count()
        # Recognition state, in seconds of this stream's audio.
        self._frame_index = 0
        self._in_speech = False
        self._quiet_frames = 0
        self._segment_start = 0.0
        self._segment_words: list[tuple[str, float, float]] = []
        self._current: tuple[str, int, int] | None = None
        """The word being heard: itself, its first frame, its frame count."""
        self._last_interim = 0.0
        self._last_word_end: float | None = None
        self._utterance_open = False
        self._turn = "Initial"
        self._turn_index = 0
        self._turn_words: list[tuple[str, float, float]] = []
        self._turn_start = 0.0
        self._last_update = 0.0

    # --- what the test reads ---------------------------------------------------------------

    def of_type(self, kind: str) -> list[float]:
        """The times the client sent control messages of ``kind``."""
        return [at for at, sent in self.controls if sent == kind]

    def results(self, **flags: bool) -> list[dict[str, Any]]:
        """The ``Results`` sent, those with the given flags (``is_final=True``...)."""
        found = [m for m in self.sent if m["type"] == "Results"]
        return [m for m in found if all(m.get(k) == v for k, v in flags.items())]

    def turn_events(self) -> list[str]:
        return [m["event"] for m in self.sent if m["type"] == "TurnInfo"]

    @property
    def now(self) -> float:
        """The stream's audio time, in seconds."""
        return self._frame_index * _FRAME_MS / 1000

    # --- scripting ---------------------------------------------------------------------------

    async def send(self, message: Mapping[str, Any]) -> None:
        document = dict(message)
        if self.flux:
            document.setdefault("sequence_id", next(self._sequence))
        try:
            await self.ws.send(json.dumps(document))
        except ConnectionClosed:
            return  # the client has gone (a hang-up): nothing to tell it
        self.sent.append(document)
        self.fake.notify()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.close_code, self.close_reason = code, reason
        await self.ws.aclose(code, reason)

    async def abort(self) -> None:
        """Cut the TCP connection (the client sees 1006)."""
        self.close_code = 1006
        await self.ws.abort()

    # --- serving -------------------------------------------------------------------------

    def violation(self, message: str) -> None:
        self.fake.violation(f"connection {self.fake.connections.index(self)}: {message}")

    async def serve(self) -> None:
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._watch_idle, tasks.cancel_scope)
                if self.flux:
                    await self.send({"type": "Connected", "request_id": self.request_id})
                await self._read()
                tasks.cancel_scope.cancel()
        finally:
            self.closed.set()
            self.fake.notify()

    async def _watch_idle(self, scope: anyio.CancelScope) -> None:
        timeout = self.fake.idle_timeout
        while True:
            due = self.last_message_at + timeout
            now = anyio.current_time()
            if now < due:
                await anyio.sleep(due - now)
                continue
            self.fake.timeouts += 1
            await self.close(1011, "NET-0001")
            scope.cancel()
            return

    async def _read(self) -> None:
        async for message in self.ws:
            self.last_message_at = anyio.current_time()
            if isinstance(message, bytes):
                if not message:
                    self.violation("an empty binary frame (Deepgram closes the stream)")
                    continue
                self.frames += 1
                self.audio += message
                self.last_audio_at = self.last_message_at
                await self._hear(message)
                drop = self.fake.drop_after_bytes
                if drop is not None and len(self.audio) >= drop:
                    self.fake.drop_after_bytes = None
                    await self.abort()
                    return
                self.fake.notify()
                continue
            if not await self._control(message):
                return
            self.fake.notify()

    async def _control(self, message: str) -> bool:
        """One text frame; ``False`` once the stream is over."""
        try:
            kind = json.loads(message)["type"]
        except (ValueError, KeyError, TypeError):
            self.violation(f"a text frame that is not a control message: {message[:80]!r}")
            return True
        self.controls.append((anyio.current_time(), kind))
        allowed = (
            {"CloseStream", "ForceEndTurn", "Configure"}
            if self.flux
            else {"KeepAlive", "Finalize", "CloseStream", "Configure"}
        )
        if kind not in allowed:
            self.violation(f"{kind!r} is not a control message of {self.request.path}")
            return True
        if kind == "Finalize":
            await self._finalize_segment(from_finalize=True)
        elif kind == "ForceEndTurn":
            if self._turn != "Initial":
                await self._end_turn()
        elif kind == "CloseStream":
            if self.flux:
                if self._turn != "Initial":
                    await self._end_turn()
            else:
                await self._finalize_segment(from_finalize=False)
                await self.send(
                    {
                        "type": "Metadata",
                        "transaction_key": "deprecated",
                        "request_id": self.request_id,
                        "sha256": "0" * 64,
                        "created": "2026-01-01T00:00:00.000Z",
                        "duration": round(self.now, 3),
                        "channels": 1,
                    }
                )
            await self.close(1000)
            return False
        return True

    # --- recognition ----------------------------------------------------------------------

    async def _hear(self, data: bytes) -> None:
        for voiced, word in self._ear.frames(data):
            start = self.now
            self._frame_index += 1
            self._track_word(word, start)
            if self.flux:
                await self._flux_frame(voiced, start)
            else:
                await self._nova_frame(voiced, start)

    def _track_word(self, word: str | None, start: float) -> None:
        current = self._current
        if current is not None and word == current[0]:
            self._current = (current[0], current[1], current[2] + 1)
            return
        self._close_word()
        self._current = (word, self._frame_index - 1, 1) if word is not None else None

    def _close_word(self) -> None:
        current = self._current
        self._current = None
        if current is None or current[2] < _WORD_FRAMES:
            return
        word, first, count = current
        timed = (word, first * _FRAME_MS / 1000, (first + count) * _FRAME_MS / 1000)
        self._segment_words.append(timed)
        self._turn_words.append(timed)
        self._last_word_end = timed[2]
        self._utterance_open = True

    def _words_so_far(
        self, words: list[tuple[str, float, float]]
    ) -> list[tuple[str, float, float]]:
        current = self._current
        if current is not None and current[2] >= _WORD_FRAMES:
            word, first, count = current
            return [*words, (word, first * _FRAME_MS / 1000, (first + count) * _FRAME_MS / 1000)]
        return list(words)

    async def _nova_frame(self, voiced: bool, start: float) -> None:
        params = self.params
        now = self.now
        if voiced:
            self._quiet_frames = 0
            if not self._in_speech:
                self._in_speech = True
                if params.get("vad_events") == "true":
                    await self.send(
                        {"type": "SpeechStarted", "channel": [0, 1], "timestamp": start}
                    )
        elif self._in_speech:
            self._quiet_frames += 1
        endpointing = params.get("endpointing", "10")
        quiet_ms = self._quiet_frames * _FRAME_MS
        if self._in_speech and endpointing != "false" and quiet_ms >= int(endpointing):
            self._in_speech = False
            self._close_word()
            await self._final(speech_final=True)
        elif (
            now - self._segment_start
            >= (_MAX_SEGMENT_MS if self._in_speech else _SILENT_FINAL_MS) / 1000
        ):
            self._close_word()
            await self._final(speech_final=False)
        elif (
            self._in_speech
            and params.get("interim_results") == "true"
            and now - self._last_interim >= _INTERIM_MS / 1000
        ):
            self._last_interim = now
            words = self._words_so_far(self._segment_words)
            if words:
                await self._results(words, is_final=False, speech_final=False)
        utterance_end = params.get("utterance_end_ms")
        last = self._last_word_end
        if (
            utterance_end is not None
            and self._utterance_open
            and last is not None
            and not voiced
            and now - last >= int(utterance_end) / 1000
        ):
            self._utterance_open = False
            await self.send({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": last})

    async def _final(self, *, speech_final: bool, from_finalize: bool = False) -> None:
        await self._results(
            self._segment_words,
            is_final=True,
            speech_final=speech_final,
            from_finalize=from_finalize,
        )
        self._segment_start = self.now
        self._segment_words = []

    async def _finalize_segment(self, *, from_finalize: bool) -> None:
        self._close_word()
        if self.now > self._segment_start or self._segment_words:
            await self._final(speech_final=False, from_finalize=from_finalize)
        self._in_speech = False
        self._quiet_frames = 0

    async def _results(
        self,
        words: Sequence[tuple[str, float, float]],
        *,
        is_final: bool,
        speech_final: bool,
        from_finalize: bool = False,
    ) -> None:
        start = self._segment_start
        await self.send(
            {
                "type": "Results",
                "channel_index": [0, 1],
                "duration": round(self.now - start, 3),
                "start": round(start, 3),
                "is_final": is_final,
                "speech_final": speech_final,
                "from_finalize": from_finalize,
                "channel": {
                    "alternatives": [
                        {
                            "transcript": " ".join(w for w, _, _ in words),
                            "confidence": 0.99 if words else 0.0,
                            "words": [
                                {
                                    "word": w,
                                    "start": s,
                                    "end": e,
                                    "confidence": 0.99,
                                    "punctuated_word": w,
                                }
                                for w, s, e in words
                            ],
                        }
                    ]
                },
                "metadata": {
                    "request_id": self.request_id,
                    "model_uuid": "00000000-0000-0000-0000-000000000000",
                    "model_info": {"name": "general-nova-3", "version": "fake", "arch": "nova-3"},
                },
            }
        )

    # --- Flux ----------------------------------------------------------------------------------

    async def _flux_frame(self, voiced: bool, start: float) -> None:
        params = self.params
        if voiced:
            self._quiet_frames = 0
            if self._turn == "Initial":
                self._turn = "TurnOngoing"
                self._turn_start = start
                self._turn_words = []
                await self._turn_info("StartOfTurn", 0.0)
            elif self._turn == "AwaitingEnd":
                self._turn = "TurnOngoing"
                await self._turn_info("TurnResumed", 0.0)
        else:
            self._quiet_frames += 1
        if self._turn == "Initial":
            if self.now - self._last_update >= _UPDATE_MS / 1000:
                await self._turn_info("Update", 0.0)
            return
        quiet_ms = self._quiet_frames * _FRAME_MS
        confidence = min(1.0, quiet_ms / 1000)
        eot = float(params.get("eot_threshold", "0.7"))
        eager = params.get("eager_eot_threshold")
        timeout_ms = int(params.get("eot_timeout_ms", "5000"))
        if self._turn_words or self._current is not None:
            if confidence >= eot or quiet_ms >= timeout_ms:
                await self._end_turn()
                return
        elif quiet_ms >= timeout_ms:
            await self._end_turn()
            return
        if (
            eager is not None
            and self._turn == "TurnOngoing"
            and confidence >= float(eager)
            and self._words_so_far(self._turn_words)
        ):
            self._turn = "AwaitingEnd"
            await self._turn_info("EagerEndOfTurn", confidence)
        elif self.now - self._last_update >= _UPDATE_MS / 1000:
            await self._turn_info("Update", confidence)

    async def _end_turn(self) -> None:
        self._close_word()
        await self._turn_info("EndOfTurn", 1.0)
        self._turn = "Initial"
        self._turn_index += 1
        self._turn_words = []

    async def _turn_info(self, event: str, confidence: float) -> None:
        self._last_update = self.now
        words = (
            self._words_so_far(self._turn_words)
            if event != "Update" or self._turn != "Initial"
            else []
        )
        await self.send(
            {
                "type": "TurnInfo",
                "request_id": self.request_id,
                "event": event,
                "turn_index": self._turn_index,
                "audio_window_start": round(self._turn_start, 3),
                "audio_window_end": round(self.now, 3),
                "transcript": " ".join(w for w, _, _ in words),
                "words": [
                    {"word": w, "confidence": 0.99, "start": start, "end": end}
                    for w, start, end in words
                ],
                "end_of_turn_confidence": round(confidence, 3),
            }
        )


class FakeDeepgram(FakeServer):
    """The server: ``url`` (``/v1/listen``) and ``flux_url`` (``/v2/listen``) for the
    provider, ``connection(i)`` for each client stream.

    ``api_key`` is the key it accepts (``None``: any); ``idle_timeout`` the seconds without
    any message after which it closes a stream with ``1011 NET-0001``. Set
    ``drop_after_bytes`` to cut the next stream once it has received that much audio.
    """

    path = None

    def __init__(self, *, api_key: str | None = "test", idle_timeout: float = 10.0) -> None:
        super().__init__()
        self.api_key = api_key
        self.idle_timeout = idle_timeout
        self.connections: list[FakeConnection] = []
        self.drop_after_bytes: int | None = None
        self.timeouts = 0
        """Streams closed with NET-0001."""

    @property
    def url(self) -> str:
        return self.base_url + "/v1/listen"

    @property
    def flux_url(self) -> str:
        return self.base_url + "/v2/listen"

    async def connection(self, index: int) -> FakeConnection:
        await self.wait_until(lambda: len(self.connections) > index)
        return self.connections[index]

    def received(self) -> bytes:
        """All the audio of every stream, in order of the streams."""
        return b"".join(bytes(conn.audio) for conn in self.connections)

    def check_request(self, request: HandshakeRequest) -> Rejection | None:
        if request.path not in ("/v1/listen", "/v2/listen"):
            return 404, {}, "not found"
        expected = f"Token {self.api_key}"
        if self.api_key is not None and request.headers.get("authorization") != expected:
            return _refusal(401, "INVALID_AUTH", "Invalid credentials.")
        problem = _check_params(request)
        if problem is not None:
            return _refusal(400, "Bad Request", problem)
        return None

    async def handle(self, ws: ServerWebSocket) -> None:
        conn = FakeConnection(self, ws)
        self.connections.append(conn)
        self.notify()
        await conn.serve()


def _refusal(status: int, code: str, message: str) -> Rejection:
    request_id = str(uuid.uuid4())
    body = json.dumps({"err_code": code, "err_msg": message, "request_id": request_id})
    headers = {"dg-error": message, "dg-request-id": request_id, "Content-Type": "application/json"}
    return status, headers, body


def _check_params(request: HandshakeRequest) -> str | None:
    """What Deepgram would refuse in the query string (the message names the parameter)."""
    flux = request.path == "/v2/listen"
    pairs = _pairs(request.query)
    params = dict(pairs)
    known = _V2_PARAMS if flux else _V1_PARAMS
    for name, _ in pairs:
        if name not in known:
            return f"Unknown query parameter '{name}'."
    model = params.get("model", "")
    if flux != model.startswith("flux-"):
        return f"Invalid value for 'model': {model!r} is not served on {request.path}."
    encoding = params.get("encoding")
    if encoding is not None and encoding not in _ENCODINGS:
        return f"Invalid value for 'encoding': {encoding!r}."
    if (encoding is None) != ("sample_rate" not in params) or (flux and encoding is None):
        return "The 'sample_rate' parameter goes with 'encoding'."
    if "sample_rate" in params and not params["sample_rate"].isdigit():
        return "Invalid value for 'sample_rate'."
    for name in _BOOLEANS & params.keys():
        if params[name] not in ("true", "false"):
            return f"Invalid value for '{name}': {params[name]!r} (true or false)."
    endpointing = params.get("endpointing")
    if endpointing is not None and endpointing != "false" and not endpointing.isdigit():
        return f"Invalid value for 'endpointing': {endpointing!r}."
    utterance_end = params.get("utterance_end_ms")
    if utterance_end is not None:
        if not utterance_end.isdigit():
            return f"Invalid value for 'utterance_end_ms': {utterance_end!r}."
        if params.get("interim_results") != "true":
            return "'utterance_end_ms' requires 'interim_results=true'."
    for name, low, high in (("eot_threshold", 0.5, 1.0), ("eager_eot_threshold", 0.3, 0.9)):
        if name in params:
            try:
                value = float(params[name])
            except ValueError:
                return f"Invalid value for '{name}'."
            if not low <= value <= high:
                return f"Invalid value for '{name}': {value} (between {low} and {high})."
    if "eager_eot_threshold" in params and float(params["eager_eot_threshold"]) > float(
        params.get("eot_threshold", "0.7")
    ):
        return "'eager_eot_threshold' must not exceed 'eot_threshold'."
    return None


def _pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


# --- the client side: driving a recognition stream in tests ------------------------------


class Listening:
    """A recognition stream under test: feed it audio, read what it said."""

    def __init__(self, tx: MemoryObjectSendStream[bytes], stream: AsyncIterator[STTEvent]) -> None:
        self.tx = tx
        self.stream = stream
        self.events: list[STTEvent] = []
        self.error: Exception | None = None
        self.ended = anyio.Event()
        self._changed = anyio.Event()

    async def feed(self, audio: bytes, *, chunk_ms: int = 20, fmt: AudioFormat = TWILIO) -> None:
        step = fmt.bytes_per_frame(chunk_ms)
        for start in range(0, len(audio), step):
            await self.tx.send(audio[start : start + step])

    def finals(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, Transcript) and e.is_final]

    def of_type(self, kind: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, condition: Callable[[], bool], *, within: float = 10.0) -> None:
        with anyio.fail_after(within):
            while not condition():
                if self.ended.is_set():
                    raise AssertionError(f"the stream ended first: {self.events} {self.error!r}")
                await self._changed.wait()

    async def collect(self) -> None:
        try:
            async for event in self.stream:
                self.events.append(event)
                self._notify()
        except Exception as exc:
            self.error = exc
        finally:
            self.ended.set()
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


@asynccontextmanager
async def listening(stt: SpeechToText, fmt: AudioFormat = TWILIO) -> AsyncIterator[Listening]:
    """Open a stream of ``stt`` in ``fmt`` and collect its events in the background."""
    tx, rx = anyio.create_memory_object_stream[bytes](64)
    with tx, rx:
        async with stt.transcribe(rx, audio_format=fmt) as stream:
            run = Listening(tx, stream)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(run.collect)
                yield run
                tasks.cancel_scope.cancel()
