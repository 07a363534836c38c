"""The sans-IO layer: query strings, Deepgram's documented messages, errors, and the turn
state machine fed with documented message sequences."""

from __future__ import annotations

import json
from typing import Any

import pytest

from omnivoice.errors import AuthFailedError, ConfigurationError, RateLimitedError
from omnivoice.pipeline import EagerEndOfTurn, TurnResumed
from omnivoice.realtime import SpeechStarted, SpeechStopped, Transcript
from omnivoice_deepgram_stt import protocol as p
from omnivoice_deepgram_stt.turns import Recognition

# The shapes of Deepgram's documentation (protocols reference, section 3.4).
RESULTS = {
    "type": "Results",
    "channel_index": [0, 1],
    "duration": 1.02,
    "start": 3.48,
    "is_final": True,
    "speech_final": True,
    "from_finalize": False,
    "channel": {
        "alternatives": [
            {
                "transcript": "where is my order",
                "confidence": 0.98,
                "words": [
                    {"word": "where", "start": 3.52, "end": 3.70, "punctuated_word": "Where"},
                    {"word": "is", "start": 3.70, "end": 3.80, "punctuated_word": "is"},
                    {"word": "my", "start": 3.80, "end": 3.96, "punctuated_word": "my"},
                    {"word": "order", "start": 3.96, "end": 4.40, "punctuated_word": "order?"},
                ],
            }
        ]
    },
    "metadata": {"request_id": "8c8ebea9", "model_info": {"name": "general-nova-3"}},
}


def results(text: str, start: float, duration: float, **flags: bool) -> str:
    document: dict[str, Any] = json.loads(json.dumps(RESULTS))
    document.update(start=start, duration=duration, is_final=False, speech_final=False)
    document.update(flags)
    words = text.split()
    step = duration / max(1, len(words))
    document["channel"]["alternatives"][0].update(
        transcript=text,
        words=[
            {"word": w, "start": start + i * step, "end": start + (i + 1) * step}
            for i, w in enumerate(words)
        ],
    )
    return json.dumps(document)


def test_query_strings_spell_values_as_deepgram_reads_them() -> None:
    query = p.query_string(
        {"model": "nova-3", "interim_results": True, "endpointing": 300, "eot_threshold": 0.7,
         "keyterm": ["Acme", "order number"], "language": None}
    )  # fmt: skip
    assert query == (
        "model=nova-3&interim_results=true&endpointing=300&eot_threshold=0.7"
        "&keyterm=Acme&keyterm=order+number"
    )


def test_documented_messages_parse() -> None:
    parsed = p.parse(json.dumps(RESULTS))
    assert isinstance(parsed, p.Results)
    assert (parsed.transcript, parsed.is_final, parsed.speech_final) == (
        "where is my order",
        True,
        True,
    )
    assert parsed.words[-1] == p.Word("order?", 3.96, 4.40)
    assert p.parse('{"type":"SpeechStarted","channel":[0,1],"timestamp":3.42}') == (
        p.SpeechStartedMessage(3.42)
    )
    assert p.parse('{"type":"UtteranceEnd","channel":[0,1],"last_word_end":4.40}') == (
        p.UtteranceEnd(4.40)
    )
    metadata = p.parse(
        '{"type":"Metadata","transaction_key":"deprecated","request_id":"8c8e",'
        '"sha256":"e3b0","created":"2024-08-29T22:37:55.202Z","duration":12.3,"channels":1}'
    )
    assert metadata == p.Metadata("8c8e", 12.3)
    assert p.parse('{"type":"Connected","request_id":"r","sequence_id":0}') == p.Connected("r")


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"no": "type"}',
        '{"type": "Results", "channel": {"alternatives": [{"transcript": 5}]}}',
        '{"type": "Results", "start": -1, "duration": 1, "channel": {"alternatives": []}}',
        '{"type": "TurnInfo", "event": "Dance", "turn_index": 0}',
    ],
)
def test_what_is_not_a_message_is_malformed_never_an_exception(text: str) -> None:
    assert isinstance(p.parse(text), p.Malformed)


def test_unknown_types_are_unknown() -> None:
    assert p.parse('{"type": "Novelty"}') == p.Unknown("Novelty")


def test_refused_upgrades_map_to_typed_errors() -> None:
    headers = {"dg-error": "Invalid value for 'endpointing': 'soon'.", "dg-request-id": "r-9"}
    error = p.handshake_error(400, headers, "", ["model", "endpointing", "encoding"])
    assert isinstance(error, ConfigurationError)
    assert error.parameter == "endpointing"
    assert "r-9" in str(error)
    body = json.dumps({"err_code": "Bad Request", "err_msg": "Bad model."})
    unnamed = p.handshake_error(400, {}, body, ["encoding"])
    assert isinstance(unnamed, ConfigurationError)
    assert unnamed.parameter is None
    assert "Bad model." in str(unnamed)
    assert isinstance(p.handshake_error(401, {}, "", []), AuthFailedError)
    assert isinstance(p.handshake_error(429, {}, "", []), RateLimitedError)
    assert not p.recoverable_close(1008, "DATA-0000")
    assert p.recoverable_close(1011, "NET-0001")
    assert p.recoverable_close(1006, "")


# --- the turn state machine ---------------------------------------------------------------------


def feed(recognition: Recognition, *messages: str) -> list[object]:
    events: list[object] = []
    for message in messages:
        events.extend(recognition.receive(p.parse(message)))
    return events


def test_a_nova_turn_from_speech_started_to_speech_final() -> None:
    recognition = Recognition(endpointing_ms=300, utterance_end_ms=1000)
    events = feed(
        recognition,
        '{"type":"SpeechStarted","channel":[0,1],"timestamp":0.5}',
        results("where is", 0.0, 1.0),
        results("where is my order", 0.0, 2.0, is_final=True, speech_final=True),
        '{"type":"UtteranceEnd","channel":[0,1],"last_word_end":2.0}',  # after: ignored
    )
    assert events == [
        SpeechStarted(),
        Transcript("where is", is_input=True, is_final=False),
        Transcript("where is my order", is_input=True, is_final=True),
        SpeechStopped(trailing_silence_ms=0),
    ]
    assert recognition.answered == 2.0


def test_utterance_end_ends_a_turn_endpointing_missed() -> None:
    recognition = Recognition(endpointing_ms=300, utterance_end_ms=1000)
    events = feed(
        recognition,
        '{"type":"SpeechStarted","channel":[0,1],"timestamp":0.1}',
        results("yes", 0.0, 1.0, is_final=True),  # noise kept the VAD from endpointing
        '{"type":"UtteranceEnd","channel":[0,1],"last_word_end":1.0}',
    )
    assert events[-1] == SpeechStopped(trailing_silence_ms=1000)


def test_speech_without_words_ends_as_noise() -> None:
    recognition = Recognition()
    events = feed(
        recognition,
        '{"type":"SpeechStarted","channel":[0,1],"timestamp":1.0}',
        results("", 0.0, 2.0, is_final=True),  # not yet 1.5 s after the start
        results("", 2.0, 1.0, is_final=True),
    )
    assert events == [SpeechStarted(), SpeechStopped(trailing_silence_ms=0)]


def test_the_answer_to_finalize_ends_the_turn() -> None:
    recognition = Recognition(endpointing_ms=300)
    feed(recognition, results("hello", 0.0, 0.5))
    recognition.finalize_sent()
    events = feed(recognition, results("hello there", 0.0, 0.8, is_final=True, from_finalize=True))
    assert events[-2:] == [
        Transcript("hello there", is_input=True, is_final=True),
        SpeechStopped(trailing_silence_ms=0),
    ]


def test_a_new_connection_is_placed_in_the_calls_audio() -> None:
    recognition = Recognition()
    feed(recognition, results("", 0.0, 3.0, is_final=True))
    recognition.connection_opened(3.0)
    feed(recognition, results("hello", 0.0, 1.0, is_final=True))
    assert recognition.answered == 4.0


def turn(event: str, transcript: str = "", end: float = 1.0) -> str:
    return json.dumps(
        {"type": "TurnInfo", "request_id": "r", "sequence_id": 1, "event": event,
         "turn_index": 0, "audio_window_start": 0.0, "audio_window_end": end,
         "transcript": transcript, "words": [], "end_of_turn_confidence": 0.5}
    )  # fmt: skip


def test_a_flux_turn_with_an_eager_end_and_a_resumption() -> None:
    recognition = Recognition()
    events = feed(
        recognition,
        turn("Update", end=0.25),  # no turn open: answered
        turn("StartOfTurn"),
        turn("Update", "where is my"),
        turn("EagerEndOfTurn", "where is my"),
        turn("TurnResumed", "where is my"),
        turn("EagerEndOfTurn", "where is my order"),
        turn("EndOfTurn", "where is my order", end=2.5),
    )
    assert events == [
        SpeechStarted(),
        Transcript("where is my", is_input=True, is_final=False),
        EagerEndOfTurn("where is my"),
        TurnResumed(),
        EagerEndOfTurn("where is my order"),
        Transcript("where is my order", is_input=True, is_final=True),
        SpeechStopped(trailing_silence_ms=0),
    ]
    assert recognition.answered == 2.5


def test_errors_unknown_and_malformed_messages_are_counted() -> None:
    recognition = Recognition()
    feed(
        recognition,
        '{"type": "Error", "code": "INTERNAL", "description": "x"}',
        '{"type": "Warning", "code": "W", "description": "y"}',
        '{"type": "Novelty"}',
        "garbage",
    )
    assert recognition.errors == 2
    assert recognition.unknown == {"Novelty": 1}
    assert recognition.malformed == 1
