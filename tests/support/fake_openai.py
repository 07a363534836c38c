"""A fake OpenAI Realtime server: a real WebSocket on 127.0.0.1, the vendor's event shapes.

It speaks the GA interface, or the beta one when the client sends ``OpenAI-Beta:
realtime=v1``: ``session.created`` first, ``session.updated`` for each ``session.update``,
``conversation.item.added``/``created`` for items, ``response.output_audio.*`` or
``response.audio.*`` for responses. Tests script it (speech events, transcripts,
responses with audio and function calls, errors, closes, expiry) and read what the client
sent. It checks the client as the real server would (session shape, base64 audio,
truncation bounds, known call ids, one response at a time) and records every violation:
tests assert ``fake.violations == []``.

    async with FakeOpenAI() as fake:
        provider = Provider("test", url=fake.url)
        async with provider.process_audio_stream(...) as session:
            conn = await fake.connection(0)
            response = await conn.respond(audio=b"...", transcript="Hello", hold=True)
            await conn.speech_started()          # the server cancels the held response
            truncate = await conn.wait_for("conversation.item.truncate")
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import anyio.abc
import attrs

from omnivoice.audio.format import TWILIO, AudioFormat
from omnivoice.net import HandshakeRequest, ServerWebSocket
from omnivoice.realtime.provider import Provider
from omnivoice.realtime.types import ProcessConfig
from omnivoice.testing import FakeServer, Rejection, SessionProbe, open_probe

__all__ = ["FakeCall", "FakeConnection", "FakeOpenAI", "FakeResponse", "open_session"]

_GA_FORMATS = {"audio/pcm", "audio/pcmu", "audio/pcma"}
_BETA_FORMATS = {"pcm16", "g711_ulaw", "g711_alaw"}
_BETA_ONLY = {
    "modalities",
    "input_audio_format",
    "output_audio_format",
    "input_audio_transcription",
    "input_audio_noise_reduction",
    "turn_detection",
    "voice",
    "temperature",
    "max_response_output_tokens",
}
_CLIENT_EVENTS = {
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
}
_USAGE = {
    "total_tokens": 253,
    "input_tokens": 180,
    "output_tokens": 73,
    "input_token_details": {"text_tokens": 120, "audio_tokens": 60, "cached_tokens": 0},
    "output_token_details": {"text_tokens": 18, "audio_tokens": 55},
}


@attrs.define
class FakeCall:
    """A function call the fake's model makes."""

    name: str
    arguments: Mapping[str, Any] | str = attrs.field(factory=dict)
    call_id: str = ""


@attrs.define(eq=False)
class FakeResponse:
    """A response the fake is producing; ``finish()`` ends a held one."""

    connection: FakeConnection
    id: str
    item_id: str | None
    audio: bytes
    transcript: str
    usage: Mapping[str, Any] | None
    status: str = "in_progress"
    calls: list[dict[str, Any]] = attrs.field(factory=list)
    """Its function call items."""
    done: anyio.Event = attrs.field(factory=anyio.Event)

    async def finish(self) -> None:
        """Send the rest: audio and transcript done, then ``response.done`` (completed)."""
        await self.connection._complete(self)


class FakeConnection:
    """One client connection: what it sent and how to talk to it."""

    def __init__(self, fake: FakeOpenAI, ws: ServerWebSocket) -> None:
        self.fake = fake
        self.ws = ws
        self.request: HandshakeRequest = ws.request
        self.api = "beta" if ws.request.headers.get("OpenAI-Beta") == "realtime=v1" else "ga"
        self.events: list[dict[str, Any]] = []
        """Every client event but the audio appends, in order."""
        self.appends_before: list[int] = []
        """For each of ``events``, how many audio appends came before it."""
        self.appends = 0
        self.audio = bytearray()
        """The caller audio received, decoded."""
        self.session: dict[str, Any] = {}
        """The effective session configuration."""
        self.updates: list[dict[str, Any]] = []
        self.configured = anyio.Event()
        self.closed = anyio.Event()
        self.items: dict[str, dict[str, Any]] = {}
        """Every conversation item, by id (``audio_ms`` for assistant audio)."""
        self.created_items: list[dict[str, Any]] = []
        """Items the client created (history messages, function outputs), in order."""
        self.outputs: dict[str, str] = {}
        """Function call outputs, by call id."""
        self.issued_calls: set[str] = set()
        self.response: FakeResponse | None = None
        """The response in progress."""
        self.late_cancel = False
        """Record ``response.cancel`` without acting on it (``cancel_response()`` does)."""
        self._changed = anyio.Event()
        self._ids = itertools.count(1)

    # --- reading what the client sent -----------------------------------------------------

    @property
    def model(self) -> str | None:
        return self.request.params.get("model")

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    async def wait_for(self, kind: str, count: int = 1) -> dict[str, Any]:
        """The ``count``-th client event of type ``kind`` (waits for it)."""
        while len(self.of_type(kind)) < count:
            await self._wait()
        return self.of_type(kind)[count - 1]

    async def wait_audio(self, n_bytes: int) -> None:
        """Until at least ``n_bytes`` of caller audio arrived in all."""
        while len(self.audio) < n_bytes:
            await self._wait()

    async def wait_closed(self) -> None:
        await self.closed.wait()

    async def _wait(self) -> None:
        if self.closed.is_set():
            raise AssertionError("the client closed the connection")
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
        self.fake.notify()

    @property
    def input_bytes_per_ms(self) -> int:
        return _bytes_per_ms(self.api, self.session, "input")

    @property
    def output_bytes_per_ms(self) -> int:
        return _bytes_per_ms(self.api, self.session, "output")

    @property
    def interrupt_response(self) -> bool:
        if self.api == "ga":
            detection = self.session.get("audio", {}).get("input", {}).get("turn_detection")
        else:
            detection = self.session.get("turn_detection")
        return bool(detection) and bool(detection.get("interrupt_response", True))

    # --- scripting the server ---------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    async def send(self, event: Mapping[str, Any]) -> None:
        """Send one server event (an ``event_id`` is added)."""
        document = {"event_id": self.new_id("event"), **event}
        await self.ws.send(json.dumps(document))

    async def speech_started(
        self, item_id: str | None = None, *, cancel: bool | None = None
    ) -> str:
        """VAD heard the caller. A response in progress is cancelled if ``cancel``, or by
        default if the session's ``interrupt_response`` says so."""
        item_id = item_id or self.new_id("item")
        await self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": len(self.audio) // max(1, self.input_bytes_per_ms),
                "item_id": item_id,
            }
        )
        if cancel is None:
            cancel = self.interrupt_response
        if self.response is not None and cancel:
            await self._cancel(self.response, "turn_detected")
        return item_id

    async def speech_stopped(self, item_id: str) -> None:
        """The caller stopped: the turn is committed and becomes a user item."""
        await self.send(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": len(self.audio) // max(1, self.input_bytes_per_ms),
                "item_id": item_id,
            }
        )
        await self.send(
            {"type": "input_audio_buffer.committed", "previous_item_id": None, "item_id": item_id}
        )
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self.items[item_id] = item
        await self._item_added(item)

    async def transcribe(self, item_id: str, text: str, *, deltas: Sequence[str] = ()) -> None:
        """The caller's words, as the transcription model sends them."""
        for delta in deltas:
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": delta,
                }
            )
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": text,
                "usage": {"type": "duration", "seconds": 1.2},
            }
        )

    async def user_turn(self, text: str) -> str:
        """A whole turn of the caller: speech, commit, transcript."""
        item_id = await self.speech_started()
        await self.speech_stopped(item_id)
        await self.transcribe(
            item_id, text, deltas=[text[: len(text) // 2], text[len(text) // 2 :]]
        )
        return item_id

    async def respond(
        self,
        *,
        audio: bytes = b"",
        transcript: str = "",
        chunk: int = 800,
        calls: Iterable[FakeCall] = (),
        hold: bool = False,
        usage: Mapping[str, Any] | None = _USAGE,
    ) -> FakeResponse:
        """Produce a response: audio (``chunk`` bytes per delta) with its transcript, and/or
        function calls. ``hold`` keeps it in progress until ``finish()`` or a cancel."""
        if self.response is not None:
            raise AssertionError("the fake already has a response in progress")
        response_id = self.new_id("resp")
        has_audio = bool(audio or transcript)
        item_id = self.new_id("item") if has_audio else None
        response = FakeResponse(self, response_id, item_id, audio, transcript, usage)
        self.response = response
        await self.send(
            {
                "type": "response.created",
                "response": {
                    "id": response_id,
                    "object": "realtime.response",
                    "status": "in_progress",
                    "status_details": None,
                    "output": [],
                    "usage": None,
                },
            }
        )
        await self.send(
            {
                "type": "rate_limits.updated",
                "rate_limits": [
                    {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.01}
                ],
            }
        )
        output_index = 0
        for call in calls:
            await self._function_call(response, call, output_index)
            output_index += 1
        if item_id is not None:
            await self._audio(response, item_id, output_index, chunk)
        if not hold:
            await self._complete(response)
        return response

    async def error(
        self, code: str, message: str = "", *, type: str = "invalid_request_error"
    ) -> None:
        """An ``error`` event."""
        await self.send(
            {
                "type": "error",
                "error": {
                    "type": type,
                    "code": code,
                    "message": message or code,
                    "param": None,
                    "event_id": None,
                },
            }
        )

    async def fail_response(self, code: str, message: str = "") -> None:
        """A response that fails at once (``response.done`` with status ``failed``)."""
        response_id = self.new_id("resp")
        await self.send(
            {
                "type": "response.created",
                "response": {"id": response_id, "status": "in_progress", "output": []},
            }
        )
        await self.send(
            {
                "type": "response.done",
                "response": {
                    "id": response_id,
                    "object": "realtime.response",
                    "status": "failed",
                    "status_details": {
                        "type": "failed",
                        "error": {
                            "type": "invalid_request_error",
                            "code": code,
                            "message": message or code,
                        },
                    },
                    "output": [],
                    "usage": None,
                },
            }
        )

    async def cancel_response(self, reason: str = "client_cancelled") -> None:
        """End the response in progress as cancelled (after a ``late_cancel``)."""
        if self.response is not None:
            await self._cancel(self.response, reason)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.aclose(code, reason)

    async def abort(self) -> None:
        """Cut the TCP connection: the client sees 1006."""
        await self.ws.abort()

    async def expire(self) -> None:
        """The session hit its time limit, as the server says it."""
        message = "Your session hit the maximum duration of 60 minutes."
        await self.error("session_expired", message)
        await self.ws.aclose(1001, message)

    # --- producing responses ------------------------------------------------------------------

    def _names(self) -> tuple[str, str]:
        if self.api == "ga":
            return "response.output_audio", "response.output_audio_transcript"
        return "response.audio", "response.audio_transcript"

    async def _item_added(self, item: Mapping[str, Any]) -> None:
        kind = "conversation.item.added" if self.api == "ga" else "conversation.item.created"
        await self.send({"type": kind, "previous_item_id": None, "item": item})

    async def _function_call(self, response: FakeResponse, call: FakeCall, index: int) -> None:
        call_id = call.call_id or self.new_id("call")
        item_id = self.new_id("item")
        arguments = (
            call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        )
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": call_id,
            "arguments": "",
        }
        self.items[item_id] = item
        response.calls.append(item)
        self.issued_calls.add(call_id)
        ids = {"response_id": response.id, "item_id": item_id, "output_index": index}
        await self.send(
            {
                "type": "response.output_item.added",
                "response_id": response.id,
                "output_index": index,
                "item": item,
            }
        )
        await self.send(
            {
                "type": "response.function_call_arguments.delta",
                **ids,
                "call_id": call_id,
                "delta": arguments,
            }
        )
        await self.send(
            {
                "type": "response.function_call_arguments.done",
                **ids,
                "call_id": call_id,
                "name": call.name,
                "arguments": arguments,
            }
        )
        item.update(status="completed", arguments=arguments)

    async def _audio(self, response: FakeResponse, item_id: str, index: int, chunk: int) -> None:
        audio_name, transcript_name = self._names()
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
            "audio_ms": 0,
        }
        self.items[item_id] = item
        public = {k: v for k, v in item.items() if k != "audio_ms"}
        await self.send(
            {
                "type": "response.output_item.added",
                "response_id": response.id,
                "output_index": index,
                "item": public,
            }
        )
        await self._item_added(public)
        ids = {
            "response_id": response.id,
            "item_id": item_id,
            "output_index": index,
            "content_index": 0,
        }
        part = {"type": "audio" if self.api == "beta" else "output_audio", "transcript": ""}
        await self.send({"type": "response.content_part.added", **ids, "part": part})
        words = response.transcript.split(" ") if response.transcript else []
        pieces = [response.audio[i : i + chunk] for i in range(0, len(response.audio), chunk)]
        for n in range(max(len(pieces), len(words))):
            if response.status != "in_progress":
                return  # cancelled meanwhile
            if n < len(pieces):
                item["audio_ms"] += len(pieces[n]) / self.output_bytes_per_ms
                await self.send(
                    {
                        "type": f"{audio_name}.delta",
                        **ids,
                        "delta": base64.b64encode(pieces[n]).decode(),
                    }
                )
            if n < len(words):
                delta = words[n] if n == 0 else " " + words[n]
                await self.send({"type": f"{transcript_name}.delta", **ids, "delta": delta})

    async def _complete(self, response: FakeResponse) -> None:
        if response.status != "in_progress":
            return
        response.status = "completed"
        output = []
        if response.item_id is not None:
            audio_name, transcript_name = self._names()
            ids = {
                "response_id": response.id,
                "item_id": response.item_id,
                "output_index": 0,
                "content_index": 0,
            }
            await self.send({"type": f"{audio_name}.done", **ids})
            await self.send(
                {"type": f"{transcript_name}.done", **ids, "transcript": response.transcript}
            )
            item = self.items[response.item_id]
            item["status"] = "completed"
            kind = "audio" if self.api == "beta" else "output_audio"
            item["content"] = [{"type": kind, "transcript": response.transcript}]
            output.append({k: v for k, v in item.items() if k != "audio_ms"})
        output += [dict(item) for item in response.calls]
        await self._done(response, output, None)

    async def _cancel(self, response: FakeResponse, reason: str) -> None:
        if response.status != "in_progress":
            return
        response.status = "cancelled"
        # As the server does on a cancel: the item ends incomplete, no audio.done follows.
        output = []
        if response.item_id is not None:
            item = self.items[response.item_id]
            item["status"] = "incomplete"
            output.append({k: v for k, v in item.items() if k != "audio_ms"})
            await self.send(
                {
                    "type": "response.output_item.done",
                    "response_id": response.id,
                    "output_index": 0,
                    "item": output[0],
                }
            )
        await self._done(response, output, reason)

    async def _done(
        self, response: FakeResponse, output: list[dict[str, Any]], reason: str | None
    ) -> None:
        self.response = None
        await self.send(
            {
                "type": "response.done",
                "response": {
                    "id": response.id,
                    "object": "realtime.response",
                    "status": response.status,
                    "status_details": (
                        {"type": "cancelled", "reason": reason} if reason is not None else None
                    ),
                    "output": output,
                    "conversation_id": "conv_1",
                    "usage": response.usage,
                },
            }
        )
        response.done.set()
        self._notify()

    # --- the client's events --------------------------------------------------------------

    def violation(self, message: str) -> None:
        self.fake.violation(f"connection {self.fake.connections.index(self)}: {message}")

    async def _serve(self) -> None:
        try:
            async for message in self.ws:
                if not isinstance(message, str):
                    self.violation("a binary frame (client events are JSON text)")
                    continue
                try:
                    event = json.loads(message)
                    kind = event["type"]
                except (ValueError, KeyError, TypeError):
                    self.violation(f"not a JSON event: {message[:80]!r}")
                    continue
                await self._on_event(kind, event)
        finally:
            self.closed.set()
            self._notify()

    async def _on_event(self, kind: str, event: dict[str, Any]) -> None:
        if kind == "input_audio_buffer.append":
            try:
                self.audio += base64.b64decode(event["audio"], validate=True)
            except (binascii.Error, KeyError, TypeError):
                self.violation("input_audio_buffer.append without valid base64 audio")
            self.appends += 1
            self._notify()
            return
        self.events.append(event)
        self.appends_before.append(self.appends)
        if kind not in _CLIENT_EVENTS:
            self.violation(f"unknown client event {kind!r}")
        elif kind == "session.update":
            await self._session_update(event)
        elif kind == "response.cancel":
            named = event.get("response_id")
            if self.late_cancel:
                pass
            elif self.response is None or named not in (None, self.response.id):
                # Only the response named (or the one in progress) is cancelled.
                await self.error("response_cancel_not_active", "There is no active response.")
            else:
                await self._cancel(self.response, "client_cancelled")
        elif kind == "conversation.item.truncate":
            await self._truncate(event)
        elif kind == "conversation.item.delete":
            item_id = event.get("item_id")
            if item_id not in self.items:
                self.violation(f"delete of an unknown item {item_id!r}")
                await self.error("item_delete_invalid_item_id", f"Item {item_id} not found")
            else:
                del self.items[item_id]
                await self.send({"type": "conversation.item.deleted", "item_id": item_id})
        elif kind == "conversation.item.create":
            await self._item_create(event)
        elif kind == "response.create" and self.response is not None:
            self.violation("response.create while a response is in progress")
            await self.error(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress.",
            )
        self._notify()

    async def _session_update(self, event: dict[str, Any]) -> None:
        session = event.get("session")
        if not isinstance(session, dict):
            self.violation("session.update without a session object")
            return
        for problem in _check_session(self.api, session):
            self.violation(problem)
        if self.fake.refuse_session is not None:
            await self.error(
                self.fake.refuse_session, "Invalid value: 'robot'.", type="invalid_request_error"
            )
            return
        self.session = _merged(self.session, session)
        self.updates.append(session)
        answer = {"object": "realtime.session", "id": self.fake.session_ids[self], **self.session}
        await self.send({"type": "session.updated", "session": answer})
        self.configured.set()

    async def _truncate(self, event: dict[str, Any]) -> None:
        item = self.items.get(event.get("item_id", ""))
        end = event.get("audio_end_ms")
        problem = None
        if item is None or item.get("role") != "assistant":
            problem = f"truncate of {event.get('item_id')!r}, not an assistant item"
        elif event.get("content_index") != 0:
            problem = "truncate with content_index other than 0"
        elif not isinstance(end, int) or end <= 0:
            problem = f"truncate with audio_end_ms {end!r} (must be a positive integer)"
        elif end > item["audio_ms"] + 1e-9:
            problem = f"truncate at {end} ms of an item with {item['audio_ms']:g} ms of audio"
        if problem is not None:
            self.violation(problem)
            await self.error("invalid_value", problem)
            return
        item["audio_ms"] = end
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": event["item_id"],
                "content_index": 0,
                "audio_end_ms": end,
            }
        )

    async def _item_create(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if not isinstance(item, dict):
            self.violation("conversation.item.create without an item")
            return
        kind = item.get("type")
        if kind == "function_call_output":
            call_id = item.get("call_id")
            if call_id not in self.issued_calls:
                self.violation(f"output for an unknown call {call_id!r}")
            elif call_id in self.outputs:
                self.violation(f"a second output for call {call_id!r}")
            if not isinstance(item.get("output"), str):
                self.violation("function_call_output.output must be a string")
            self.outputs[str(call_id)] = str(item.get("output"))
        elif kind == "message":
            role = item.get("role")
            allowed = {
                "user": {"input_text", "input_audio"},
                "system": {"input_text"},
                "assistant": {"output_text", "output_audio"}
                if self.api == "ga"
                else {"text", "audio"},
            }.get(str(role))
            if allowed is None:
                self.violation(f"message with role {role!r}")
            for part in item.get("content") or [None]:
                if not isinstance(part, dict) or part.get("type") not in (allowed or ()):
                    self.violation(f"{role} message with content {part!r} ({self.api})")
        else:
            self.violation(f"conversation.item.create of a {kind!r} item")
        item_id = self.new_id("item")
        stored = {**item, "id": item_id, "object": "realtime.item", "status": "completed"}
        self.items[item_id] = stored
        self.created_items.append(stored)
        await self._item_added(stored)


class FakeOpenAI(FakeServer):
    """The server: ``url`` for the provider, ``connection(i)`` for each client session."""

    path = "/v1/realtime"

    def __init__(
        self,
        *,
        api_key: str | None = "test",
        models: Iterable[str] = ("gpt-realtime",),
        auth_failure: str = "event",
        unknown_model: str = "http",
        session_seconds: float = 3600.0,
        refuse_session: str | None = None,
        silent: bool = False,
    ) -> None:
        """``auth_failure``: ``"event"`` (101, an ``invalid_api_key`` error, close 3000,
        as the server does) or ``"http"`` (401). ``unknown_model``: ``"http"`` (404) or
        ``"event"`` (a ``model_not_found`` error before ``session.created``).
        ``refuse_session``: answer ``session.update`` with an error of this code.
        ``silent``: never send ``session.created``."""
        super().__init__()
        self.api_key = api_key
        self.models = set(models)
        self.auth_failure = auth_failure
        self.unknown_model = unknown_model
        self.session_seconds = session_seconds
        self.refuse_session = refuse_session
        self.silent = silent
        self.connections: list[FakeConnection] = []
        self.session_ids: dict[FakeConnection, str] = {}

    async def connection(self, index: int) -> FakeConnection:
        """The ``index``-th connection, once it is configured (its first ``session.update``)."""
        await self.wait_until(lambda: len(self.connections) > index)
        conn = self.connections[index]
        await conn.configured.wait()
        return conn

    def received_audio_ending(self, tail: bytes) -> bool:
        """Some connection's audio ends with ``tail`` (the caller's latest audio arrived)."""
        return any(conn.audio.endswith(tail) for conn in self.connections)

    def check_request(self, request: HandshakeRequest) -> Rejection | None:
        if self.auth_failure == "http" and not self._authorized(request):
            body = {"error": {"message": "Incorrect API key provided.", "code": "invalid_api_key"}}
            return 401, {"Content-Type": "application/json"}, json.dumps(body)
        if self.unknown_model == "http" and request.params.get("model") not in self.models:
            body = {"error": {"message": "The model does not exist.", "code": "model_not_found"}}
            return 404, {"Content-Type": "application/json"}, json.dumps(body)
        return None

    def _authorized(self, request: HandshakeRequest) -> bool:
        expected = f"Bearer {self.api_key}"
        return self.api_key is None or request.headers.get("authorization") == expected

    async def handle(self, ws: ServerWebSocket) -> None:
        conn = FakeConnection(self, ws)
        self.connections.append(conn)
        session_id = f"sess_{len(self.connections)}"
        self.session_ids[conn] = session_id
        self.notify()
        if not self._authorized(ws.request):
            await conn.error("invalid_api_key", "Incorrect API key provided: sk-***.")
            await ws.aclose(3000, "invalid_request_error.invalid_api_key")
            conn.closed.set()
            return
        if ws.request.params.get("model") not in self.models:
            await conn.error(
                "model_not_found", "The model does not exist or you do not have access to it."
            )
            await ws.aclose(1008, "invalid_request_error.model_not_found")
            conn.closed.set()
            return
        if not self.silent:
            await conn.send(
                {"type": "session.created", "session": _created(conn.api, session_id, self)}
            )
        await conn._serve()


def _created(api: str, session_id: str, fake: FakeOpenAI) -> dict[str, Any]:
    expires = int(time.time() + fake.session_seconds)
    if api == "ga":
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": session_id,
            "model": "gpt-realtime",
            "expires_at": expires,
            "output_modalities": ["audio"],
            "instructions": "",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 200,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                },
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
            },
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
        }
    return {
        "object": "realtime.session",
        "id": session_id,
        "model": "gpt-4o-realtime-preview",
        "expires_at": expires,
        "modalities": ["text", "audio"],
        "instructions": "",
        "voice": "alloy",
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm16",
        "input_audio_transcription": None,
        "turn_detection": {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 200,
        },
        "tools": [],
        "tool_choice": "auto",
        "temperature": 0.8,
    }


def _check_session(api: str, session: Mapping[str, Any]) -> list[str]:
    problems = []
    if api == "ga":
        if session.get("type") != "realtime":
            problems.append(
                f"GA session.update needs session.type 'realtime', got {session.get('type')!r}"
            )
        for key in sorted(_BETA_ONLY & session.keys()):
            problems.append(f"GA session.update with the beta field {key!r}")
        audio = session.get("audio", {})
        for side in ("input", "output"):
            fmt = audio.get(side, {}).get("format")
            if fmt is None:
                continue
            if not isinstance(fmt, dict) or fmt.get("type") not in _GA_FORMATS:
                problems.append(f"GA audio.{side}.format {fmt!r}")
            elif fmt["type"] == "audio/pcm" and fmt.get("rate") != 24000:
                problems.append(f"GA audio/pcm at {fmt.get('rate')!r} Hz (24000 only)")
        modalities = session.get("output_modalities")
        if modalities is not None and modalities not in (["audio"], ["text"]):
            problems.append(f"output_modalities {modalities!r}")
    else:
        for key in ("type", "audio", "output_modalities"):
            if key in session:
                problems.append(f"beta session.update with the GA field {key!r}")
        for key in ("input_audio_format", "output_audio_format"):
            if key in session and session[key] not in _BETA_FORMATS:
                problems.append(f"beta {key} {session[key]!r}")
    for tool in session.get("tools") or []:
        if tool.get("type") != "function" or not tool.get("name") or "parameters" not in tool:
            problems.append(f"tool {tool!r}")
    return problems


def _merged(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _bytes_per_ms(api: str, session: Mapping[str, Any], side: str) -> int:
    if api == "ga":
        fmt = session.get("audio", {}).get(side, {}).get("format") or {"type": "audio/pcm"}
        return 48 if fmt.get("type") == "audio/pcm" else 8
    fmt = session.get(f"{side}_audio_format", "pcm16")
    return 48 if fmt == "pcm16" else 8


# --- the client side: driving a provider session in tests ------------------------------------


def open_session(
    provider: Provider,
    config: ProcessConfig | None = None,
    fmt: AudioFormat | None = None,
    *,
    collect: bool = True,
) -> AbstractAsyncContextManager[SessionProbe]:
    """Open a session of ``provider`` (G.711 mu-law both ways unless ``fmt``) and collect
    its events, checked against the contract, in the background (unless ``collect``)."""
    fmt = fmt or TWILIO
    return open_probe(provider, config, input_format=fmt, output_format=fmt, collect=collect)
