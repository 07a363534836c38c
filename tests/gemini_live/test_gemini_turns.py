"""The turn state machine: Gemini's turns as responses that follow the contract's grammar,
whatever order the server's audio, transcriptions and completions come in."""

from __future__ import annotations

from collections.abc import Sequence

from omnivoice.audio.format import GEMINI_OUTPUT
from omnivoice.realtime import AudioChunk, ProviderEvent, SpeechStarted, SpeechStopped, Transcript
from omnivoice.testing import SessionChecker
from omnivoice_gemini_live.turns import Turns


def checked(events: Sequence[ProviderEvent], checker: SessionChecker) -> list[ProviderEvent]:
    for event in events:
        checker.check(event)
    return list(events)


def final(response_id: str) -> AudioChunk:
    return AudioChunk(b"", is_final=True, response_id=response_id)


def test_generation_complete_ends_the_audio_and_turn_complete_the_text() -> None:
    turns, checker = Turns(silence_ms=500), SessionChecker(GEMINI_OUTPUT)
    events = checked(turns.input_text("when do you "), checker)
    events += checked(turns.input_text("open?"), checker)
    events += checked(turns.audio(b"\x01\x00" * 10), checker)
    events += checked(turns.output_text("We open "), checker)
    events += checked(turns.generation_complete(), checker)
    # The transcription lags the audio: these words come after the final chunk.
    events += checked(turns.output_text("at nine."), checker)
    events += checked(turns.turn_complete(), checker)
    checker.end()
    assert events == [
        SpeechStarted(),
        Transcript("when do you ", is_input=True),
        Transcript("open?", is_input=True),
        SpeechStopped(trailing_silence_ms=500),
        AudioChunk(b"\x01\x00" * 10, response_id="r1"),
        Transcript("We open ", is_input=False),
        final("r1"),
        Transcript("when do you open?", is_input=True, is_final=True),
        Transcript("We open at nine.", is_input=False, is_final=True),
    ]
    assert turns.idle


def test_an_interrupted_turn_ends_its_response_and_drops_the_rest() -> None:
    turns, checker = Turns(), SessionChecker(GEMINI_OUTPUT)
    events = checked(turns.audio(b"\x01\x00" * 4), checker)
    events += checked(turns.output_text("On Sundays we"), checker)
    events += checked(turns.interrupted(), checker)
    assert events[-2:] == [SpeechStarted(), final("r1")]
    assert checked(turns.audio(b"\x02\x00" * 4), checker) == []  # was on its way: dropped
    # Late words of what had been generated still belong to the interrupted reply.
    assert checked(turns.output_text(" open at ten"), checker) == []
    assert checked(turns.input_text("wait, "), checker) == [Transcript("wait, ", is_input=True)]
    assert checked(turns.turn_complete(), checker) == [
        Transcript("On Sundays we open at ten", is_input=False, is_final=True)
    ]
    # The caller's words go on into the next turn: not final yet.
    events = checked(turns.input_text("what about Monday?"), checker)
    events += checked(turns.audio(b"\x03\x00"), checker)
    events += checked(turns.turn_complete(), checker)
    assert events == [
        Transcript("what about Monday?", is_input=True),
        SpeechStopped(),
        AudioChunk(b"\x03\x00", response_id="r2"),
        final("r2"),
        Transcript("wait, what about Monday?", is_input=True, is_final=True),
    ]
    assert turns.dropped_audio_bytes == 8
    checker.end()


def test_a_premature_turn_complete_and_an_empty_turn_are_survived() -> None:
    turns, checker = Turns(), SessionChecker(GEMINI_OUTPUT)
    # No generationComplete: turnComplete ends the response itself.
    events = checked(turns.audio(b"\x01\x00"), checker)
    events += checked(turns.output_text("Hel"), checker)
    events += checked(turns.turn_complete(), checker)
    assert events[-2:] == [final("r1"), Transcript("Hel", is_input=False, is_final=True)]
    # The rest of the sentence in a turn of its own: a second response.
    events = checked(turns.audio(b"\x02\x00"), checker)
    events += checked(turns.turn_complete(), checker)
    assert events == [AudioChunk(b"\x02\x00", response_id="r2"), final("r2")]
    # An empty turn says nothing.
    assert checked(turns.generation_complete(), checker) == []
    assert checked(turns.turn_complete(), checker) == []
    checker.end()


def test_text_before_audio_begins_the_response() -> None:
    turns, checker = Turns(), SessionChecker(GEMINI_OUTPUT)
    assert checked(turns.tool_call(), checker) == []
    events = checked(turns.output_text("Let me"), checker)
    events += checked(turns.audio(b"\x01\x00"), checker)
    events += checked(turns.output_text(" check.", finished=True), checker)
    events += checked(turns.generation_complete(), checker)
    assert events == [
        Transcript("Let me", is_input=False),
        AudioChunk(b"\x01\x00", response_id="r1"),
        Transcript(" check.", is_input=False),
        final("r1"),
        Transcript("Let me check.", is_input=False, is_final=True),  # finished: no wait
    ]
    assert checked(turns.turn_complete(), checker) == []
    # Text after a turn's end, outside any turn, starts nothing: it is counted.
    assert checked(turns.output_text("stray"), checker) == []
    assert turns.dropped_text == 1
    checker.end()


def test_the_next_response_flushes_the_text_still_due() -> None:
    turns, checker = Turns(), SessionChecker(GEMINI_OUTPUT)
    checked(turns.audio(b"\x01\x00"), checker)
    checked(turns.output_text("One."), checker)
    checked(turns.generation_complete(), checker)
    # A second response in the same turn (after a function call, say).
    events = checked(turns.audio(b"\x02\x00"), checker)
    assert events == [
        Transcript("One.", is_input=False, is_final=True),
        AudioChunk(b"\x02\x00", response_id="r2"),
    ]
    assert checked(turns.turn_complete(), checker) == [final("r2")]
    checker.end()


def test_speech_events_alternate_and_follow_the_turns() -> None:
    turns, checker = Turns(), SessionChecker(GEMINI_OUTPUT)
    assert checked(turns.voice_activity(True), checker) == [SpeechStarted()]
    assert checked(turns.voice_activity(True), checker) == []
    assert checked(turns.input_text("hi"), checker) == [Transcript("hi", is_input=True)]
    assert checked(turns.voice_activity(False), checker) == [SpeechStopped()]
    assert checked(turns.voice_activity(False), checker) == []
    checked(turns.audio(b"\x01\x00"), checker)
    # During a model turn only ``interrupted`` says the caller took the floor.
    assert checked(turns.voice_activity(True), checker) == []
    assert checked(turns.input_text("mm"), checker) == [Transcript("mm", is_input=True)]
    # The caller takes the floor: what they said before is one utterance, done.
    assert checked(turns.interrupted(), checker) == [
        Transcript("himm", is_input=True, is_final=True),
        SpeechStarted(),
        final("r1"),
    ]
    assert checked(turns.interrupted(), checker) == []  # already speaking, already ended
    checked(turns.turn_complete(), checker)
    checker.end()


def test_a_local_interrupt_and_a_lost_connection_close_what_is_open() -> None:
    turns, checker = Turns(), SessionChecker(GEMINI_OUTPUT)
    checked(turns.audio(b"\x01\x00\x02"), checker)  # a sample split across parts
    checked(turns.output_text("Let me explain"), checker)
    checker.interrupted()
    assert checked(turns.local_interrupt("r1"), checker) == [final("r1")]
    assert checked(turns.audio(b"\x00" * 4), checker) == []  # the rest of the turn is dropped
    assert checked(turns.local_interrupt("r1"), checker) == []
    checked(turns.input_text("hang on"), checker)
    assert checked(turns.connection_lost(), checker) == [
        Transcript("hang on", is_input=True, is_final=True),
        Transcript("Let me explain", is_input=False, is_final=True),
    ]
    assert turns.idle
    # A new connection answers afresh.
    events = checked(turns.audio(b"\x05\x00"), checker)
    assert events[-1] == AudioChunk(b"\x05\x00", response_id="r2")
    assert checked(turns.connection_lost(), checker) == [final("r2")]
    checker.end()
    assert all(r.audio_bytes % 2 == 0 for r in checker.responses)  # the odd byte never went


def test_transcripts_are_bounded() -> None:
    turns = Turns(max_text=10)
    turns.input_text("a" * 8)
    turns.input_text("b" * 8)
    (text,) = turns.connection_lost()
    assert isinstance(text, Transcript)
    assert text.text == "aabbbbbbbb"
