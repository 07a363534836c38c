"""The sans-IO protocol layer: client messages as the service documents them, server
messages in every spelling the vendor's SDK accepts, and the error mapping."""

from __future__ import annotations

import base64
import json

import pytest

from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    RateLimitedError,
)
from omnivoice.realtime import FunctionDeclaration
from omnivoice_gemini_live import protocol as p
from omnivoice_gemini_live.errors import close_error, handshake_error

LOOKUP = FunctionDeclaration(
    "lookup_order",
    "Find an order",
    {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "the number"},
            "express": {"type": ["boolean", "null"]},
            "items": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["order_id"],
        "additionalProperties": False,
    },
)


def test_the_setup_says_everything_in_lower_camel_case() -> None:
    setup = p.Setup(
        model="models/gemini-3.8-live",
        voice="Puck",
        language="en-US",
        instructions="You are a helpful phone agent.",
        temperature=0.7,
        functions=(LOOKUP, FunctionDeclaration("hang_up")),
        non_blocking={"lookup_order": "WHEN_IDLE"},
        declare_blocking=True,
        activity_detection={"startOfSpeechSensitivity": "START_SENSITIVITY_HIGH"},
        activity_handling="START_OF_ACTIVITY_INTERRUPTS",
        resumption_handle="Cj0KO",
        compression={"slidingWindow": {}},
        thinking={"thinkingBudget": 0},
        initial_history=True,
        extra={"generationConfig": {"maxOutputTokens": 512}},
    )
    document = json.loads(p.setup_message(setup))
    assert list(document) == ["setup"]
    body = document["setup"]
    assert body["model"] == "models/gemini-3.8-live"
    assert body["generationConfig"] == {
        "responseModalities": ["AUDIO"],
        "temperature": 0.7,
        "speechConfig": {
            "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}},
            "languageCode": "en-US",
        },
        "thinkingConfig": {"thinkingBudget": 0},
        "maxOutputTokens": 512,
    }
    assert body["systemInstruction"] == {"parts": [{"text": "You are a helpful phone agent."}]}
    (tools,) = body["tools"]
    lookup, hang_up = tools["functionDeclarations"]
    assert lookup == {
        "name": "lookup_order",
        "description": "Find an order",
        "parameters": {
            "type": "OBJECT",
            "properties": {
                "order_id": {"type": "STRING", "description": "the number"},
                "express": {"nullable": True, "type": "BOOLEAN"},
                "items": {"type": "ARRAY", "items": {"type": "INTEGER"}},
            },
            "required": ["order_id"],
        },
        "behavior": "NON_BLOCKING",
    }
    assert hang_up == {"name": "hang_up", "behavior": "BLOCKING"}  # no empty parameters
    assert body["inputAudioTranscription"] == {}
    assert body["outputAudioTranscription"] == {}
    assert body["realtimeInputConfig"] == {
        "automaticActivityDetection": {"startOfSpeechSensitivity": "START_SENSITIVITY_HIGH"},
        "activityHandling": "START_OF_ACTIVITY_INTERRUPTS",
    }
    assert body["sessionResumption"] == {"handle": "Cj0KO"}
    assert body["contextWindowCompression"] == {"slidingWindow": {}}
    assert body["historyConfig"] == {"initialHistoryInClientContent": True}


def test_a_minimal_setup_still_asks_for_resumption() -> None:
    body = json.loads(p.setup_message(p.Setup(model="models/m", input_transcription=False)))
    assert body["setup"]["sessionResumption"] == {}
    assert "inputAudioTranscription" not in body["setup"]
    assert body["setup"]["outputAudioTranscription"] == {}
    for absent in ("tools", "systemInstruction", "realtimeInputConfig", "proactivity"):
        assert absent not in body["setup"]


def test_audio_goes_as_pcm_with_its_rate() -> None:
    audio = bytes(range(256)) * 2
    message = json.loads(p.audio_message(audio, 16000))
    assert message == {
        "realtimeInput": {
            "audio": {"mimeType": "audio/pcm;rate=16000", "data": base64.b64encode(audio).decode()}
        }
    }
    assert json.loads(p.audio_message(b"\x01\x00", 8000))["realtimeInput"]["audio"]["mimeType"] == (
        "audio/pcm;rate=8000"
    )


def test_the_other_client_messages() -> None:
    assert json.loads(p.audio_stream_end()) == {"realtimeInput": {"audioStreamEnd": True}}
    assert json.loads(p.activity_start()) == {"realtimeInput": {"activityStart": {}}}
    assert json.loads(p.activity_end()) == {"realtimeInput": {"activityEnd": {}}}
    assert json.loads(p.realtime_text("hi")) == {"realtimeInput": {"text": "hi"}}
    assert json.loads(
        p.client_content([("user", "Hello"), ("model", "Hi.")], turn_complete=False)
    ) == {
        "clientContent": {
            "turns": [
                {"role": "user", "parts": [{"text": "Hello"}]},
                {"role": "model", "parts": [{"text": "Hi."}]},
            ],
            "turnComplete": False,
        }
    }


def test_a_tool_response_carries_each_id_and_name_with_an_object() -> None:
    message = p.tool_response(
        [
            p.FunctionResult("function-call-1", "lookup_order", output={"status": "shipped"}),
            p.FunctionResult("function-call-2", "hang_up", error="no line"),
            p.FunctionResult("c3", "notify", output="ok", scheduling="SILENT", will_continue=False),
            p.FunctionResult("", "vertex_style", output=1),
        ]
    )
    assert json.loads(message) == {
        "toolResponse": {
            "functionResponses": [
                {
                    "id": "function-call-1",
                    "name": "lookup_order",
                    "response": {"output": {"status": "shipped"}},
                },
                {"id": "function-call-2", "name": "hang_up", "response": {"error": "no line"}},
                {
                    "id": "c3",
                    "name": "notify",
                    "response": {"output": "ok"},
                    "scheduling": "SILENT",
                    "willContinue": False,
                },
                {"name": "vertex_style", "response": {"output": 1}},
            ]
        }
    }


# --- the server's messages ------------------------------------------------------------------


def test_the_documented_server_messages() -> None:
    parser = p.Parser()
    audio = b"\x01\x02\x03\x04"
    data = base64.b64encode(audio).decode()
    messages = [
        {"setupComplete": {}},
        {"serverContent": {"inputTranscription": {"text": "where is my order"}}},
        {
            "serverContent": {
                "modelTurn": {
                    "parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}}]
                }
            }
        },
        {"serverContent": {"outputTranscription": {"text": "Let me check"}}},
        {
            "toolCall": {
                "functionCalls": [
                    {"id": "fc-1", "name": "lookup_order", "args": {"order_id": "42"}}
                ]
            }
        },
        {"serverContent": {"generationComplete": True}},
        {
            "serverContent": {"turnComplete": True},
            "usageMetadata": {
                "promptTokenCount": 812,
                "responseTokenCount": 95,
                "totalTokenCount": 907,
            },
        },
        {"serverContent": {"interrupted": True}},
        {"toolCallCancellation": {"ids": ["fc-1"]}},
        {"sessionResumptionUpdate": {"newHandle": "Cj0KO", "resumable": True}},
        {"goAway": {"timeLeft": "50s"}},
    ]
    events = [e for m in messages for e in parser.parse(json.dumps(m).encode())]
    assert events == [
        p.SetupComplete(None),
        p.InputTranscription("where is my order"),
        p.ModelAudio(audio),
        p.OutputTranscription("Let me check"),
        p.ToolCall((p.ToolCallRequest("fc-1", "lookup_order", {"order_id": "42"}),)),
        p.GenerationComplete(),
        p.TurnComplete(),
        p.Usage(
            812, 95, {"promptTokenCount": 812, "responseTokenCount": 95, "totalTokenCount": 907}
        ),
        p.Interrupted(),
        p.ToolCallCancellation(("fc-1",)),
        p.ResumptionUpdate("Cj0KO", resumable=True),
        p.GoAway(50.0),
    ]
    assert parser.malformed == 0
    assert not parser.unknown


def test_snake_case_keys_and_url_safe_base64_are_accepted() -> None:
    parser = p.Parser()
    audio = bytes([0xFB, 0xFF, 0xFE, 0x00, 0x3E, 0x3F])  # encodes with - and _ in URL-safe form
    data = base64.urlsafe_b64encode(audio).decode().rstrip("=")
    assert "-" in data or "_" in data
    message = {
        "setup_complete": {"session_id": "s-1"},
        "server_content": {
            "model_turn": {
                "parts": [{"inline_data": {"mime_type": "audio/pcm;rate=24000", "data": data}}]
            },
            "output_transcription": {"text": "Hi", "finished": True},
            "turn_complete": True,
        },
        "session_resumption_update": {"new_handle": "h", "resumable": True},
        "go_away": {"time_left": {"seconds": 12, "nanos": 500000000}},
    }
    assert parser.parse(json.dumps(message)) == [
        p.SetupComplete("s-1"),
        p.ModelAudio(audio),
        p.OutputTranscription("Hi", finished=True),
        p.TurnComplete(),
        p.ResumptionUpdate("h", resumable=True),
        p.GoAway(12.5),
    ]


def test_one_message_may_carry_several_parts_and_keys() -> None:
    parser = p.Parser()
    one, two = base64.b64encode(b"\x01\x00").decode(), base64.b64encode(b"\x02\x00").decode()
    message = {
        "serverContent": {
            "modelTurn": {
                "parts": [
                    {"text": "**Planning the answer**", "thought": True},
                    {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": one}},
                    {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": two}},
                    {"text": "Hello"},
                ]
            },
            "outputTranscription": {"text": "Hello"},
            "inputTranscription": {"text": "hi"},
            "turnComplete": True,
        },
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4},
        "voiceActivity": {"voiceActivityType": "ACTIVITY_END"},
    }
    assert parser.parse(json.dumps(message)) == [
        p.VoiceActivity(start=False),
        p.InputTranscription("hi"),
        p.ModelAudio(b"\x01\x00"),
        p.ModelAudio(b"\x02\x00"),
        p.OutputTranscription("Hello"),
        p.TurnComplete(),
        p.Usage(3, 4, {"promptTokenCount": 3, "candidatesTokenCount": 4}),  # Vertex's name
    ]
    assert parser.skipped == {"thought": 1, "text": 1}


def test_bad_messages_are_counted_not_raised() -> None:
    parser = p.Parser()
    (not_json,) = parser.parse(b"\xff\xfe")
    assert isinstance(not_json, p.Malformed)
    assert isinstance(parser.parse("[1, 2]")[0], p.Malformed)
    bad_audio = {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "!!!"}}]}}}
    assert isinstance(parser.parse(json.dumps(bad_audio))[0], p.Malformed)
    no_name = {"toolCall": {"functionCalls": [{"id": "x"}]}}
    assert isinstance(parser.parse(json.dumps(no_name))[0], p.Malformed)
    assert parser.malformed == 4
    assert parser.parse(json.dumps({"somethingNew": {}, "serverContent": {"whatever": 1}})) == []
    assert parser.unknown == {"somethingNew": 1, "serverContent.whatever": 1}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("50s", 50.0),
        ("1.5s", 1.5),
        (" 0.25s ", 0.25),
        (7, 7.0),
        ({"seconds": "3"}, 3.0),
        ("soon", None),
        ("-1s", None),
        (None, None),
        (True, None),
    ],
)
def test_durations(value: object, seconds: float | None) -> None:
    assert p.parse_duration(value) == seconds


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (1007, "API key not valid. Please pass a valid API key.", AuthFailedError),
        (1007, "API key expired. Please renew the API key.", AuthFailedError),
        (1007, "Request contains an invalid argument.", ConnectionFailedError),
        (
            1008,
            "models/gemini-9 is not found for API version v1beta, or is not supported for "
            "bidiGenerateContent.",
            ModelUnavailableError,
        ),
        (1008, "Permission denied on resource project p.", AuthFailedError),
        (1008, "Operation is not implemented, or supported, or enabled.", ConnectionFailedError),
        (1011, "RESOURCE_EXHAUSTED: You exceeded your current quota.", RateLimitedError),
        (1011, "Deadline expired before operation could complete.", ConnectionFailedError),
        (1006, "", ConnectionFailedError),
    ],
)
def test_close_codes_map_to_the_contract_errors(
    code: int, reason: str, expected: type[Exception]
) -> None:
    error = close_error(code, reason)
    assert type(error) is expected
    assert str(code) in str(error)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, AuthFailedError),
        (403, AuthFailedError),
        (404, ModelUnavailableError),
        (429, RateLimitedError),
        (500, ConnectionFailedError),
    ],
)
def test_handshake_statuses_map_to_the_contract_errors(
    status: int, expected: type[Exception]
) -> None:
    body = json.dumps({"error": {"code": status, "message": "The reason.", "status": "X"}})
    error = handshake_error(status, body)
    assert type(error) is expected
    assert "The reason." in str(error)
