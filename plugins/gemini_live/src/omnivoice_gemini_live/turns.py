"""Gemini's turns as the contract's events: responses, transcripts and the caller's speech.

Gemini reports a turn as a stream of audio parts and transcriptions that arrive unordered
relative to the audio, then ``generationComplete`` (all audio generated) and, seconds
later, ``turnComplete`` (it has been played); an interrupted turn gets ``interrupted`` and
``turnComplete`` and no ``generationComplete``. The contract wants each response to end
with exactly one final chunk, its transcript pieces before its one final text, and
``SpeechStarted``/``SpeechStopped`` alternating. :class:`Turns` is that translation: a
state machine with no I/O, whose methods take what the server said and return the events
to yield, in order.

- A response begins with its first audio (or a transcription piece before it) and ends,
  with its final chunk, at ``generationComplete``, at ``interrupted``, at
  ``turnComplete`` (a premature one included), on :meth:`Turns.local_interrupt` or when
  the connection is lost; its final transcript (every piece, late ones included) follows
  at ``turnComplete``, when the transcription says it is finished, or before the next
  response begins.
- ``interrupted`` is the barge-in signal: ``SpeechStarted``, then the response's end. The
  rest of an interrupted turn's output is dropped.
- The caller's speech starts with the service's voice activity or the first words
  transcribed, outside a model turn (during one, only ``interrupted`` means the caller
  took the floor), and stops when the voice activity ends or the model answers. The
  caller's final transcript is given when the transcription says so or when a turn that
  answered the caller completes.
"""

from __future__ import annotations

import attrs

from omnivoice.realtime import (
    AudioChunk,
    ConversationLog,
    ProviderEvent,
    SpeechStarted,
    SpeechStopped,
    Transcript,
)

__all__ = ["Turns"]


@attrs.define(eq=False)
class _Reply:
    id: str
    text: str = ""
    audio_bytes: int = 0
    text_finished: bool = False


class Turns:
    """The response and speech state of one call (across its connections).

    ``silence_ms`` is how long the service waits in silence before it ends the caller's
    turn (its ``silenceDurationMs``), reported as ``SpeechStopped.trailing_silence_ms``
    when the caller's turn is known to have ended only because the model answered.
    ``log`` is kept up to date with each utterance, placed where it began (a caller's words
    transcribed late stay before the reply to them); replies are known there by their
    response ids.
    """

    def __init__(
        self, *, silence_ms: int = 0, max_text: int = 16000, log: ConversationLog | None = None
    ) -> None:
        self.silence_ms = max(0, silence_ms)
        self.max_text = max_text
        self.log = log if log is not None else ConversationLog(max_chars=max_text)
        self.speaking = False
        """The caller is speaking, as last reported (``SpeechStarted`` was yielded)."""
        self.in_turn = False
        """A model turn is in progress: it has said or called something, and its
        ``turnComplete`` has not come."""
        self.interrupted_turn = False
        self._discarding = False
        self._open: _Reply | None = None
        self._ended: _Reply | None = None
        """The last response to end: its final transcript is still due."""
        self._user = ""
        """The caller's words since their last final transcript."""
        self._users = 0
        self._count = 0
        self._carry = b""
        self.dropped_audio_bytes = 0
        """Audio of interrupted turns that arrived after the interruption, dropped."""
        self.dropped_text = 0
        """Agent transcription pieces that came after their response's final text."""

    @property
    def response_open(self) -> bool:
        """A response has begun and its final chunk is due."""
        return self._open is not None

    @property
    def idle(self) -> bool:
        """No model turn is in progress and no response is open."""
        return not self.in_turn and self._open is None

    @property
    def current_response(self) -> str | None:
        """The id of the open response (or of the last to end, its text still due)."""
        reply = self._open or self._ended
        return reply.id if reply is not None else None

    # --- what the server said ------------------------------------------------------------

    def audio(self, data: bytes) -> list[ProviderEvent]:
        if self._discarding:
            self.dropped_audio_bytes += len(data)
            return []
        events: list[ProviderEvent] = []
        if self._open is None:
            events += self._begin()
        reply = self._open
        assert reply is not None
        if self._carry:
            data = self._carry + data
            self._carry = b""
        if len(data) % 2:  # a sample split across parts: its first byte waits
            data, self._carry = data[:-1], data[-1:]
        if data:
            reply.audio_bytes += len(data)
            events.append(AudioChunk(data, response_id=reply.id))
        return events

    def output_text(self, text: str, finished: bool = False) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        reply = self._open
        if reply is None and self._ended is None:
            if not self.in_turn or self._discarding or not text:
                if text:
                    self.dropped_text += 1  # after its response's final text
                return []
            events += self._begin()  # text before the audio: the response begins
            reply = self._open
        if reply is not None:
            if text:
                reply.text = self._bounded(_join(reply.text, text))
                self.log.utterance("agent", reply.id).text = reply.text
                events.append(Transcript(text, is_input=False, is_final=False))
            reply.text_finished = reply.text_finished or finished
            return events
        ended = self._ended
        assert ended is not None
        ended.text = self._bounded(_join(ended.text, text))  # late words of an ended response
        self.log.utterance("agent", ended.id).text = ended.text
        if finished:
            events += self._final_text()
        return events

    def input_text(self, text: str, finished: bool = False) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        if text and not self.speaking and not self.in_turn:
            events += self._caller_starts()
        if text:
            if not self._user:
                self._users += 1  # a new utterance of the caller: in the log from now on
            self._user = _join(self._user, text)[-self.max_text :]  # a final may never come
            self.log.utterance("user", f"u{self._users}").text = self._user.strip()
            events.append(Transcript(text, is_input=True, is_final=False))
        if finished:
            events += self._user_final()
            if not self.in_turn:
                events += self._caller_done()
        return events

    def voice_activity(self, start: bool) -> list[ProviderEvent]:
        if start:
            if self.speaking or self.in_turn:
                return []  # during a model turn, ``interrupted`` says if the caller won
            return self._caller_starts()
        if not self.speaking:
            return []
        self.speaking = False
        return [SpeechStopped()]

    def interrupted(self) -> list[ProviderEvent]:
        events = self._caller_starts() if not self.speaking else []
        events += self._end_open()
        self.in_turn = True
        self.interrupted_turn = True
        self._discarding = True
        return events

    def tool_call(self) -> list[ProviderEvent]:
        """The model called functions: it has taken its turn."""
        events = self._caller_done() if not self._discarding else []
        self.in_turn = True
        return events

    def generation_complete(self) -> list[ProviderEvent]:
        events = self._end_open()
        if self._ended is not None and self._ended.text_finished:
            events += self._final_text()
        return events

    def turn_complete(self) -> list[ProviderEvent]:
        events = self._end_open()
        if not self.interrupted_turn:
            events += self._user_final()  # the turn answered the caller's words
        events += self._final_text()
        self.in_turn = self.interrupted_turn = self._discarding = False
        return events

    # --- what the session did ------------------------------------------------------------

    def local_interrupt(self, response_id: str | None) -> list[ProviderEvent]:
        """The consumer interrupted response ``response_id`` (the one open when it did):
        it ends now, if still open, and the rest of this turn's output is dropped. A
        response that began since is not touched."""
        reply = self._open
        if reply is not None and reply.id != response_id:
            return []
        events = self._end_open()
        if self.in_turn:
            self._discarding = True
        return events

    @property
    def open_response(self) -> str | None:
        """The id of the open response, if one is."""
        return self._open.id if self._open is not None else None

    def connection_lost(self) -> list[ProviderEvent]:
        """The connection serving the call is gone (or being replaced): close what it left
        open. The caller's speech state stays (the next connection hears the caller)."""
        events = self._end_open()
        events += self._user_final()
        events += self._final_text()
        self.in_turn = self.interrupted_turn = self._discarding = False
        return events

    # --- helpers ------------------------------------------------------------------------

    def _begin(self) -> list[ProviderEvent]:
        events = self._final_text()
        events += self._caller_done()
        self._count += 1
        self._open = _Reply(f"r{self._count}")
        self.log.utterance("agent", self._open.id).open = True
        self.in_turn = True
        return events

    def _caller_starts(self) -> list[ProviderEvent]:
        """The caller takes the floor: what they said before is one utterance, done."""
        events = self._user_final()
        self.speaking = True
        events.append(SpeechStarted())
        return events

    def _caller_done(self) -> list[ProviderEvent]:
        if not self.speaking:
            return []
        self.speaking = False
        return [SpeechStopped(trailing_silence_ms=self.silence_ms)]

    def _end_open(self) -> list[ProviderEvent]:
        reply = self._open
        if reply is None:
            return []
        self._open = None
        self._carry = b""  # half a sample cannot be played
        self._ended = reply  # its final text follows (see the callers)
        return [AudioChunk(b"", is_final=True, response_id=reply.id)]

    def _final_text(self) -> list[ProviderEvent]:
        reply = self._ended
        if reply is None:
            return []
        self._ended = None
        text = reply.text.strip()
        utterance = self.log.utterance("agent", reply.id)
        utterance.text, utterance.open = text, False
        return [Transcript(text, is_input=False, is_final=True)] if text else []

    def _user_final(self) -> list[ProviderEvent]:
        text = self._user.strip()
        self._user = ""
        if text:
            self.log.utterance("user", f"u{self._users}").text = text
        return [Transcript(text, is_input=True, is_final=True)] if text else []

    def _bounded(self, text: str) -> str:
        return text if len(text) <= self.max_text else text[-self.max_text :]


def _join(text: str, piece: str) -> str:
    """Transcription pieces run on as they come ("Sun" + "days"), except where one ends a
    sentence or a clause and the next begins without a space: one goes in between."""
    if text and piece and text[-1] in ".?!,;:" and not piece[0].isspace():
        return f"{text} {piece}"
    return text + piece
