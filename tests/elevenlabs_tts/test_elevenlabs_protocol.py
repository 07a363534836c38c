"""The ElevenLabs wire protocols, sans-IO: addresses, messages as the vendor documents them,
alignment to word timings, and the multi-context state machine."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from omnivoice.audio import TWILIO, AudioFormat, Encoding
from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    RateLimitedError,
    UnsupportedFormatError,
)
from omnivoice.realtime import WordTiming
from omnivoice_elevenlabs_tts import protocol as p

SETTINGS = p.Settings(model="eleven_flash_v2_5", output_format="ulaw_8000")


def sent(messages: list[str]) -> list[dict[str, Any]]:
    return [json.loads(m) for m in messages]


def audio_message(
    text: str, *, context: str | None = "r1", ms: int = 10, audio: bytes | None = None
) -> str:
    """An audio message as the server sends it: each character ``ms`` long."""
    alignment = {
        "chars": list(text),
        "charStartTimesMs": [i * ms for i in range(len(text))],
        "charDurationsMs": [ms] * len(text),
    }
    message: dict[str, Any] = {
        "audio": base64.b64encode(
            audio if audio is not None else b"\x01" * 8 * ms * len(text)
        ).decode(),
        "isFinal": None,
        "normalizedAlignment": alignment,
        "alignment": alignment,
    }
    if context is not None:
        message["contextId"] = context
    return json.dumps(message)


# --- addresses and settings -------------------------------------------------------------------


def test_the_formats_are_mulaw_first_then_pcm() -> None:
    assert list(p.FORMATS.values()) == [
        "ulaw_8000",
        "alaw_8000",
        "pcm_16000",
        "pcm_22050",
        "pcm_24000",
    ]
    assert next(iter(p.FORMATS)) == TWILIO
    assert p.output_format(AudioFormat(Encoding.PCM16, 22050)) == "pcm_22050"
    with pytest.raises(UnsupportedFormatError, match="44100"):
        p.output_format(AudioFormat(Encoding.PCM16, 44100))


def test_websocket_addresses_are_derived_from_the_api_base() -> None:
    assert p.websocket_base("https://api.elevenlabs.io") == "wss://api.elevenlabs.io"
    assert p.websocket_base("http://127.0.0.1:8000/proxy") == "ws://127.0.0.1:8000/proxy"
    with pytest.raises(ValueError, match="http"):
        p.websocket_base("ftp://example.com")
    settings = p.Settings(
        model="eleven_flash_v2_5",
        output_format="ulaw_8000",
        inactivity_timeout=180,
        language_code="en",
        auto_mode=True,
    )
    url = p.multi_stream_input_url("https://api.elevenlabs.io", "JBFq/nC", settings)
    assert url == (
        "wss://api.elevenlabs.io/v1/text-to-speech/JBFq%2FnC/multi-stream-input"
        "?model_id=eleven_flash_v2_5&output_format=ulaw_8000&sync_alignment=true"
        "&auto_mode=true&inactivity_timeout=180&language_code=en"
    )
    single = p.stream_input_url("http://localhost:1/base", "v", SETTINGS)
    assert single.startswith("ws://localhost:1/base/v1/text-to-speech/v/stream-input?model_id=")
    http = p.http_stream_url("https://api.elevenlabs.io", "v", SETTINGS)
    assert http == "https://api.elevenlabs.io/v1/text-to-speech/v/stream?output_format=ulaw_8000"


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="50-500"):
        p.Settings(model="m", output_format="ulaw_8000", chunk_length_schedule=[10])
    with pytest.raises(ValueError, match="1-180"):
        p.Settings(model="m", output_format="ulaw_8000", inactivity_timeout=300)


def test_the_http_body_carries_the_text_model_and_voice_settings() -> None:
    settings = p.Settings(
        model="eleven_turbo_v2_5",
        output_format="pcm_16000",
        voice_settings={"stability": 0.5},
        seed=7,
    )
    assert p.http_stream_body("Hi.", settings) == {
        "text": "Hi.",
        "model_id": "eleven_turbo_v2_5",
        "voice_settings": {"stability": 0.5},
        "seed": 7,
    }


# --- client messages --------------------------------------------------------------------------


def test_the_initialisation_is_a_single_space_with_the_settings() -> None:
    settings = p.Settings(
        model="m",
        output_format="ulaw_8000",
        voice_settings={"stability": 0.5, "similarity_boost": 0.8},
        chunk_length_schedule=[120, 160, 250, 290],
    )
    assert json.loads(p.initialize(settings, "ctx1")) == {
        "text": " ",
        "voice_settings": {"stability": 0.5, "similarity_boost": 0.8},
        "generation_config": {"chunk_length_schedule": [120, 160, 250, 290]},
        "context_id": "ctx1",
    }
    assert json.loads(p.initialize(SETTINGS)) == {"text": " "}


def test_a_single_context_synthesis_ends_with_an_empty_text() -> None:
    assert sent(p.single_messages(SETTINGS, "Hello there.")) == [
        {"text": " "},
        {"text": "Hello there. ", "flush": True},
        {"text": ""},
    ]
    assert sent(p.single_messages(SETTINGS, "  ")) == [{"text": " "}, {"text": ""}]


# --- server messages --------------------------------------------------------------------------


def test_an_audio_message_as_documented() -> None:
    message = json.dumps(
        {
            "audio": base64.b64encode(b"\x01\x02").decode(),
            "isFinal": None,
            "normalizedAlignment": {
                "charStartTimesMs": [0, 3, 7],
                "charDurationsMs": [3, 4, 5],
                "chars": ["H", "e", "l"],
            },
            "alignment": {
                "charStartTimesMs": [0, 3, 7],
                "charDurationsMs": [3, 4, 5],
                "chars": ["H", "e", "l"],
            },
            "contextId": "ctx1",
        }
    )
    (audio,) = p.parse_message(message)
    assert audio == p.AudioMessage(
        b"\x01\x02", "ctx1", p.Alignment(("H", "e", "l"), (0, 3, 7), (3, 4, 5))
    )


def test_the_original_alignment_is_preferred_and_the_normalised_one_stands_in() -> None:
    data = json.loads(audio_message("ab"))
    data["alignment"] = {"chars": ["x"], "charStartTimesMs": [0], "charDurationsMs": [1]}
    (audio,) = p.parse_message(json.dumps(data))
    assert isinstance(audio, p.AudioMessage)
    assert audio.alignment is not None
    assert audio.alignment.chars == ("x",)
    data["alignment"] = None
    (audio,) = p.parse_message(json.dumps(data))
    assert isinstance(audio, p.AudioMessage)
    assert audio.alignment is not None
    assert audio.alignment.chars == ("a", "b")


def test_final_error_snake_case_and_bad_messages() -> None:
    assert p.parse_message('{"isFinal": true, "contextId": "ctx1"}') == [p.FinalMessage("ctx1")]
    assert p.parse_message('{"is_final": true, "context_id": "c"}') == [p.FinalMessage("c")]
    audio = base64.b64encode(b"\x01").decode()
    assert p.parse_message(json.dumps({"audio": audio, "isFinal": True})) == [
        p.AudioMessage(b"\x01", None, None),
        p.FinalMessage(None),
    ]
    timeout = {
        "message": "Have not received a new text input within the timeout of 20 seconds.",
        "error": "input_timeout_exceeded",
        "code": 1008,
    }
    assert p.parse_message(json.dumps(timeout)) == [
        p.ErrorMessage("input_timeout_exceeded", timeout["message"], 1008)
    ]
    assert p.parse_message('{"whatever": 1}') == [p.UnknownMessage(("whatever",))]
    for bad in ("not json", "[1]", '{"audio": "%%%"}', '{"audio": 5}', '{"contextId": 3}'):
        with pytest.raises(p.MalformedMessage):
            p.parse_message(bad)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected", "named"),
    [
        ("invalid_api_key", AuthFailedError, "ELEVENLABS_API_KEY"),
        ("auth_error", AuthFailedError, "API key"),
        ("quota_exceeded", RateLimitedError, "quota"),
        ("too_many_concurrent_requests", RateLimitedError, "limit"),
        ("voice_not_found", ModelUnavailableError, "'v9'"),
        ("model_not_found", ModelUnavailableError, "'m9'"),
        ("detected_unusual_activity", ConnectionFailedError, "unusual"),
    ],
)
def test_vendor_errors_are_typed(error: str, expected: type[Exception], named: str) -> None:
    raised = p.vendor_error(error, "", voice_id="v9", model="m9")
    assert type(raised) is expected
    assert named in str(raised)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, '{"detail": {"status": "invalid_api_key", "message": "bad"}}', AuthFailedError),
        (403, "Forbidden", AuthFailedError),
        (429, '{"detail": {"status": "too_many_concurrent_requests"}}', RateLimitedError),
        (404, '{"detail": {"status": "voice_not_found", "message": "no"}}', ModelUnavailableError),
        (400, '{"detail": {"status": "model_not_found"}}', ModelUnavailableError),
        (422, '{"detail": [{"loc": ["body", "text"], "msg": "required"}]}', ConnectionFailedError),
        (500, "oops", ConnectionFailedError),
    ],
)
def test_http_errors_are_typed(status: int, body: str, expected: type[Exception]) -> None:
    assert type(p.http_error(status, body, voice_id="v", model="m")) is expected


def test_a_close_is_explained_by_the_error_before_it() -> None:
    before = p.ErrorMessage("invalid_api_key", "Invalid API key", 1008)
    assert isinstance(p.close_error(1008, "", before, voice_id="v", model="m"), AuthFailedError)
    assert isinstance(
        p.close_error(1008, "quota_exceeded", None, voice_id="v", model="m"), RateLimitedError
    )
    dropped = p.close_error(1006, "", None, voice_id="v", model="m")
    assert type(dropped) is ConnectionFailedError


# --- text in, words out -----------------------------------------------------------------------


def test_whole_words_go_out_at_once_and_each_sentence_is_flushed() -> None:
    chunker = p.TextChunker()
    assert chunker.feed("He") == []
    assert chunker.feed("llo") == []
    assert chunker.feed(" there") == [("Hello ", False)]
    assert chunker.feed(". Dr. Smith") == [("there. ", True), ("Dr. ", False)]
    assert chunker.feed(" will") == [("Smith ", False)]
    assert chunker.feed(" call.\n") == [("will call. ", True)]
    assert chunker.feed("Bye") == []
    assert chunker.flush() == "Bye "
    assert chunker.flush() == ""


def test_word_timings_span_messages_on_the_responses_clock() -> None:
    aligner = p.WordAligner()
    first = p.Alignment(tuple("Hi the"), (0, 10, 20, 30, 40, 50), (10,) * 6)
    assert aligner.feed(first, 0) == [WordTiming("Hi", 0, 20)]
    second = p.Alignment(tuple("re, you"), (0, 10, 20, 30, 40, 50, 60), (10,) * 7)
    assert aligner.feed(second, 60) == [WordTiming("there,", 30, 90)]
    assert aligner.finish() == [WordTiming("you", 100, 130)]
    assert aligner.spoken_chars == len("Hithere,you")


# --- the multi-context state machine ----------------------------------------------------------


def test_a_response_is_a_context_from_its_initialisation_to_its_final_message() -> None:
    stream = p.MultiStream(SETTINGS, TWILIO)
    context, opening = stream.open()
    assert context == "r1"
    assert sent(opening) == [{"text": " ", "context_id": "r1"}]
    assert sent(stream.text(context, "Hello the")) == [{"text": "Hello ", "context_id": "r1"}]
    assert sent(stream.flush(context)) == [{"text": "the ", "flush": True, "context_id": "r1"}]
    assert stream.flush(context) == []  # nothing new to speak
    assert sent(stream.text(context, "re. Bye")) == [
        {"text": "re. ", "flush": True, "context_id": "r1"}
    ]
    assert sent(stream.end(context)) == [
        {"text": "Bye ", "flush": True, "context_id": "r1"},
        {"context_id": "r1", "close_context": True},
    ]
    assert stream.text(context, "more") == []  # ended: it takes no more
    (piece,) = stream.receive(audio_message("Hello ", ms=10))
    assert piece == p.SpeechPiece("r1", b"\x01" * 480, (WordTiming("Hello", 0, 50),))
    (piece,) = stream.receive(audio_message("Bye", ms=10))
    assert piece.words == ()  # "Bye" may go on in the next message
    assert stream.open_contexts == 1
    last, ended = stream.receive('{"isFinal": true, "contextId": "r1"}')
    assert last == p.SpeechPiece("r1", b"", (WordTiming("Bye", 60, 90),))
    assert ended == p.ContextEnded("r1")
    assert stream.open_contexts == 0


def test_a_context_left_early_is_closed_and_its_late_audio_dropped() -> None:
    stream = p.MultiStream(SETTINGS, TWILIO)
    context, _ = stream.open()
    stream.text(context, "One two three ")
    assert sent(stream.close(context)) == [{"context_id": "r1", "close_context": True}]
    assert stream.close(context) == []
    assert not stream.is_open(context)
    assert stream.receive(audio_message("One ")) == []
    assert stream.stats.dropped_audio_bytes == 8 * 10 * 4
    assert stream.open_contexts == 1  # until the server says it is closed
    assert stream.receive('{"isFinal": true, "contextId": "r1"}') == [p.ContextEnded("r1")]
    assert stream.open_contexts == 0


def test_never_more_contexts_than_the_vendor_allows() -> None:
    stream = p.MultiStream(SETTINGS, TWILIO)
    contexts = [stream.open()[0] for _ in range(p.MAX_CONTEXTS)]
    assert contexts == ["r1", "r2", "r3", "r4", "r5"]
    assert not stream.can_open()
    with pytest.raises(RuntimeError):
        stream.open()
    stream.close("r1")
    assert not stream.can_open()  # closing is not closed
    stream.receive('{"isFinal": true, "contextId": "r1"}')
    assert stream.can_open()


def test_a_new_socket_resumes_from_the_first_word_not_yet_spoken() -> None:
    stream = p.MultiStream(SETTINGS, TWILIO)
    left, _ = stream.open()
    stream.close(left)
    context, _ = stream.open()
    stream.text(context, "One two three four ")
    (piece,) = stream.receive(audio_message("One tw", context="r2"))
    assert [w.text for w in piece.words] == ["One"]
    resumed = sent(stream.replaced())
    assert resumed == [
        {"text": " ", "context_id": "r2"},
        {"text": "two three four ", "flush": True, "context_id": "r2"},
    ]
    assert stream.open_contexts == 1  # the one left early went with the old socket
    # The resumed audio continues the response's clock.
    (piece,) = stream.receive(audio_message("two ", context="r2"))
    assert piece.words == (WordTiming("two", 60, 90),)


def test_an_ended_context_is_ended_again_on_a_new_socket() -> None:
    stream = p.MultiStream(SETTINGS, TWILIO)
    context, _ = stream.open()
    stream.text(context, "Hi there.")
    stream.end(context)
    assert sent(stream.replaced())[-1] == {"context_id": "r1", "close_context": True}


def test_keep_alives_and_what_cannot_be_used() -> None:
    stream = p.MultiStream(SETTINGS, TWILIO)
    assert sent(stream.keep_alive()) == [{"text": ""}]
    stream.open()
    assert sent(stream.keep_alive()) == [{"text": "", "context_id": "r1"}]
    assert stream.receive("garbage") == []
    assert stream.receive('{"novel": true}') == []
    assert stream.receive(audio_message("x", context="nobody")) == []
    assert stream.receive('{"isFinal": true, "contextId": "nobody"}') == []
    assert (stream.stats.malformed, stream.stats.unknown, stream.stats.stray) == (1, 1, 2)
    error = stream.receive('{"message": "m", "error": "quota_exceeded", "code": 1008}')
    assert error == [p.VendorError(p.ErrorMessage("quota_exceeded", "m", 1008))]
