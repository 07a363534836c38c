"""The sans-IO OpenAI Realtime layer: client events built, server events parsed, errors mapped.

Server events are the vendor's documented examples (GA and beta spellings).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from omnivoice.audio.format import OPENAI, TWILIO, AudioFormat, Encoding
from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    RateLimitedError,
)
from omnivoice.realtime.types import FunctionDeclaration
from omnivoice_openai_realtime import protocol as p

ALAW = AudioFormat(Encoding.ALAW, 8000)
LOOKUP = FunctionDeclaration(
    "lookup_order",
    "Find an order",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)


def update(settings: p.SessionSettings) -> dict[str, Any]:
    event = json.loads(p.session_update(settings))
    assert event["type"] == "session.update"
    session: dict[str, Any] = event["session"]
    return session


def test_ga_session_update_for_a_phone_line() -> None:
    session = update(
        p.SessionSettings(
            api="ga",
            input_format=TWILIO,
            output_format=TWILIO,
            instructions="You are a helpful phone agent.",
            voice="marin",
            transcription={"model": "gpt-4o-mini-transcribe"},
            tools=(LOOKUP,),
        )
    )
    assert session == {
        "type": "realtime",
        "output_modalities": ["audio"],
        "instructions": "You are a helpful phone agent.",
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {"model": "gpt-4o-mini-transcribe"},
                "turn_detection": dict(p.SERVER_VAD),
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
        },
        "tools": [{"type": "function", **LOOKUP.to_dict()}],
        "tool_choice": "auto",
    }


def test_beta_session_update_is_flat_with_format_strings() -> None:
    session = update(
        p.SessionSettings(
            api="beta",
            input_format=TWILIO,
            output_format=TWILIO,
            voice="alloy",
            transcription={"model": "whisper-1"},
            temperature=0.8,
            noise_reduction="near_field",
        )
    )
    assert session == {
        "modalities": ["text", "audio"],
        "input_audio_format": "g711_ulaw",
        "output_audio_format": "g711_ulaw",
        "turn_detection": dict(p.SERVER_VAD),
        "voice": "alloy",
        "input_audio_transcription": {"model": "whisper-1"},
        "input_audio_noise_reduction": {"type": "near_field"},
        "temperature": 0.8,
        "tools": [],
    }


@pytest.mark.parametrize(
    ("fmt", "ga", "beta"),
    [
        (TWILIO, {"type": "audio/pcmu"}, "g711_ulaw"),
        (ALAW, {"type": "audio/pcma"}, "g711_alaw"),
        (OPENAI, {"type": "audio/pcm", "rate": 24000}, "pcm16"),
    ],
)
def test_audio_formats_in_both_interfaces(fmt: AudioFormat, ga: Any, beta: str) -> None:
    ga_session = update(p.SessionSettings(api="ga", input_format=fmt, output_format=fmt))
    assert ga_session["audio"]["input"]["format"] == ga
    assert ga_session["audio"]["output"]["format"] == ga
    beta_session = update(p.SessionSettings(api="beta", input_format=fmt, output_format=fmt))
    assert beta_session["input_audio_format"] == beta
    assert beta_session["output_audio_format"] == beta


def test_formats_the_server_cannot_take_are_refused() -> None:
    with pytest.raises(ValueError, match="24 kHz"):
        p.session_update(
            p.SessionSettings(
                api="ga", input_format=AudioFormat(Encoding.PCM16, 16000), output_format=OPENAI
            )
        )


def test_turn_detection_off_semantic_vad_and_extra_fields_merge() -> None:
    session = update(
        p.SessionSettings(
            api="ga",
            input_format=OPENAI,
            output_format=OPENAI,
            turn_detection=p.SEMANTIC_VAD,
            speed=1.1,
            extra={
                "audio": {"input": {"noise_reduction": {"type": "far_field"}}},
                "tracing": "auto",
            },
        )
    )
    assert session["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
    assert session["audio"]["input"]["noise_reduction"] == {"type": "far_field"}
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"]["speed"] == 1.1
    assert session["tracing"] == "auto"
    off = update(
        p.SessionSettings(api="ga", input_format=TWILIO, output_format=TWILIO, turn_detection=None)
    )
    assert off["audio"]["input"]["turn_detection"] is None


def test_audio_append_is_base64_in_a_json_event() -> None:
    audio = bytes(range(256)) * 3
    event = json.loads(p.input_audio_append(audio))
    assert event == {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}


def test_client_events() -> None:
    assert json.loads(p.response_create()) == {"type": "response.create"}
    assert json.loads(p.response_cancel()) == {"type": "response.cancel"}
    assert json.loads(p.response_cancel("resp_1")) == {
        "type": "response.cancel",
        "response_id": "resp_1",
    }
    assert json.loads(p.item_truncate("item_a1", 1520)) == {
        "type": "conversation.item.truncate",
        "item_id": "item_a1",
        "content_index": 0,
        "audio_end_ms": 1520,
    }
    with pytest.raises(ValueError, match="delete"):
        p.item_truncate("item_a1", 0)
    assert json.loads(p.item_delete("item_a1")) == {
        "type": "conversation.item.delete",
        "item_id": "item_a1",
    }
    assert json.loads(p.function_call_output("call_Xyz123", '{"status":"shipped"}')) == {
        "type": "conversation.item.create",
        "item": {
            "type": "function_call_output",
            "call_id": "call_Xyz123",
            "output": '{"status":"shipped"}',
        },
    }


@pytest.mark.parametrize(("api", "assistant_type"), [("ga", "output_text"), ("beta", "text")])
def test_history_messages(api: p.Api, assistant_type: str) -> None:
    user = json.loads(p.message_item(api, "user", "Where is my order?"))
    assert user == {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Where is my order?"}],
        },
    }
    agent = json.loads(p.message_item(api, "agent", "It shipped."))
    assert agent["item"]["role"] == "assistant"
    assert agent["item"]["content"] == [{"type": assistant_type, "text": "It shipped."}]


# --- server events ------------------------------------------------------------------------


def parse(document: dict[str, Any], parser: p.Parser | None = None) -> p.ServerEvent | None:
    return (parser or p.Parser()).parse(json.dumps(document))


IDS = {"response_id": "resp_1", "item_id": "item_a1", "output_index": 0, "content_index": 0}


@pytest.mark.parametrize("kind", ["response.output_audio.delta", "response.audio.delta"])
def test_audio_deltas_of_both_interfaces(kind: str) -> None:
    event = parse(
        {"type": kind, "event_id": "e", **IDS, "delta": base64.b64encode(b"\x01\x02").decode()}
    )
    assert event == p.AudioDelta("resp_1", "item_a1", b"\x01\x02")


@pytest.mark.parametrize("kind", ["response.output_audio.done", "response.audio.done"])
def test_audio_done_of_both_interfaces(kind: str) -> None:
    assert parse({"type": kind, **IDS}) == p.AudioDone("resp_1", "item_a1")


@pytest.mark.parametrize(
    "prefix",
    [
        "response.output_audio_transcript",
        "response.audio_transcript",
        "response.output_text",
        "response.text",
    ],
)
def test_agent_text_of_both_interfaces(prefix: str) -> None:
    assert parse({"type": f"{prefix}.delta", **IDS, "delta": "Hel"}) == p.TextDelta(
        "resp_1", "item_a1", "Hel"
    )
    key = "transcript" if "audio" in prefix else "text"
    assert parse({"type": f"{prefix}.done", **IDS, key: "Hello!"}) == p.TextDone(
        "resp_1", "item_a1", "Hello!"
    )


def test_user_transcription_and_speech_events() -> None:
    base = "conversation.item.input_audio_transcription"
    assert parse({"type": f"{base}.delta", "item_id": "u1", "content_index": 0, "delta": "Wh"}) == (
        p.InputTranscriptDelta("u1", "Wh")
    )
    completed = {"type": f"{base}.completed", "item_id": "u1", "content_index": 0}
    assert parse(
        {**completed, "transcript": "Where?", "usage": {"type": "duration", "seconds": 1}}
    ) == (p.InputTranscriptDone("u1", "Where?"))
    failed = parse(
        {
            "type": f"{base}.failed",
            "item_id": "u1",
            "content_index": 0,
            "error": {
                "type": "transcription_error",
                "code": "audio_unintelligible",
                "message": "no",
            },
        }
    )
    assert isinstance(failed, p.InputTranscriptFailed)
    assert failed.error.code == "audio_unintelligible"
    started = {"type": "input_audio_buffer.speech_started", "audio_start_ms": 1180, "item_id": "u1"}
    assert parse(started) == p.SpeechStarted("u1", 1180)
    stopped = {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 2900, "item_id": "u1"}
    assert parse(stopped) == p.SpeechStopped("u1", 2900)
    committed = {"type": "input_audio_buffer.committed", "previous_item_id": None, "item_id": "u1"}
    assert parse(committed) == p.InputCommitted("u1")


def test_response_lifecycle_and_function_calls() -> None:
    created = {"type": "response.created", "response": {"id": "resp_2", "status": "in_progress"}}
    assert parse(created) == p.ResponseCreated("resp_2")
    added = parse(
        {
            "type": "response.output_item.added",
            "response_id": "resp_2",
            "output_index": 0,
            "item": {"id": "item_f1", "type": "function_call", "call_id": "call_X", "name": "f"},
        }
    )
    assert added == p.OutputItemAdded("resp_2", "item_f1", "function_call", None)
    done = parse(
        {
            "type": "response.function_call_arguments.done",
            "response_id": "resp_2",
            "item_id": "item_f1",
            "output_index": 0,
            "call_id": "call_Xyz123",
            "name": "lookup_order",
            "arguments": '{"order_id":"42"}',
        }
    )
    assert done == p.FunctionCallDone(
        "resp_2", "item_f1", "call_Xyz123", "lookup_order", '{"order_id":"42"}'
    )
    usage = {"total_tokens": 253, "input_tokens": 180, "output_tokens": 73}
    finished = parse(
        {
            "type": "response.done",
            "response": {"id": "resp_2", "status": "completed", "usage": usage},
        }
    )
    assert finished == p.ResponseDone("resp_2", "completed", None, usage, None)
    cancelled = parse(
        {
            "type": "response.done",
            "response": {
                "id": "resp_3",
                "status": "cancelled",
                "status_details": {"type": "cancelled", "reason": "turn_detected"},
            },
        }
    )
    assert cancelled == p.ResponseDone("resp_3", "cancelled", "turn_detected", None, None)


def test_a_failed_response_carries_its_error() -> None:
    event = parse(
        {
            "type": "response.done",
            "response": {
                "id": "resp_1",
                "status": "failed",
                "status_details": {
                    "type": "failed",
                    "error": {
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                        "message": "The model `gpt-realtime` does not exist.",
                    },
                },
            },
        }
    )
    assert isinstance(event, p.ResponseDone)
    assert event.error is not None
    assert event.error.code == "model_not_found"


def test_session_events_and_errors() -> None:
    created = parse(
        {
            "type": "session.created",
            "event_id": "event_001",
            "session": {"type": "realtime", "id": "sess_001", "expires_at": 1767225600},
        }
    )
    assert created == p.SessionCreated("sess_001", 1767225600.0)
    assert parse({"type": "session.updated", "session": {}}) == p.SessionUpdated()
    error = parse(
        {
            "type": "error",
            "event_id": "event_099",
            "error": {
                "type": "invalid_request_error",
                "code": "conversation_already_has_active_response",
                "message": "Conversation already has an active response in progress.",
                "param": None,
                "event_id": "client_evt_7",
            },
        }
    )
    assert error == p.ServerError(
        "invalid_request_error",
        "conversation_already_has_active_response",
        "Conversation already has an active response in progress.",
        None,
        "client_evt_7",
    )


def test_unknown_events_are_counted_and_known_unneeded_ones_skipped() -> None:
    parser = p.Parser()
    assert parse({"type": "rate_limits.updated", "rate_limits": []}, parser) is None
    assert parse({"type": "conversation.item.added", "item": {}}, parser) is None
    assert parse({"type": "response.brand_new_thing"}, parser) is None
    assert parse({"type": "response.brand_new_thing"}, parser) is None
    assert parser.unknown == {"response.brand_new_thing": 2}
    assert parser.malformed == 0


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        '"a string"',
        '{"no": "type"}',
        json.dumps({"type": "response.output_audio.delta", **IDS, "delta": "!!!"}),
        json.dumps({"type": "response.output_audio.delta", "delta": "AAAA"}),
        json.dumps({"type": "response.created", "response": None}),
    ],
)
def test_malformed_frames_are_counted_and_reported(frame: str) -> None:
    parser = p.Parser()
    event = parser.parse(frame)
    assert isinstance(event, p.Malformed)
    assert parser.malformed == 1


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "expected", "fatal"),
    [
        ("invalid_api_key", "invalid_request_error", AuthFailedError, True),
        (None, "authentication_error", AuthFailedError, True),
        ("model_not_found", "invalid_request_error", ModelUnavailableError, True),
        ("rate_limit_exceeded", "rate_limit_exceeded", RateLimitedError, False),
        ("insufficient_quota", "insufficient_quota", RateLimitedError, False),
        ("invalid_value", "invalid_request_error", p.OpenAIRealtimeError, False),
        (None, "server_error", p.OpenAIRealtimeError, False),
    ],
)
def test_server_errors_map_to_typed_errors(
    code: str | None, kind: str, expected: type[Exception], fatal: bool
) -> None:
    error, is_fatal = p.error_for(p.ServerError(kind, code, "something happened", "voice"))
    assert type(error) is expected
    assert is_fatal is fatal
    assert "something happened" in str(error)
    if isinstance(error, p.OpenAIRealtimeError):
        assert (error.type, error.code, error.param) == (kind, code, "voice")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, AuthFailedError),
        (403, AuthFailedError),
        (404, ModelUnavailableError),
        (429, RateLimitedError),
        (500, ConnectionFailedError),
        (503, ConnectionFailedError),
    ],
)
def test_handshake_statuses_map_to_typed_errors(status: int, expected: type[Exception]) -> None:
    body = json.dumps({"error": {"message": "Nope.", "code": "x"}})
    error = p.handshake_error(status, body, "7")
    assert type(error) is expected
    assert f"HTTP {status}: Nope." in str(error)
    if status == 429:
        assert "retry after 7 s" in str(error)
