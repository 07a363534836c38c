"""From Deepgram's messages to the pipeline's speech-to-text events: one state machine, no I/O.

:class:`Recognition` follows one recognition stream across the connections that serve it
(a dropped connection is replaced, and the new one's clock starts at zero again: its
``offset`` places it in the call's audio). It says what the caller said and when their
turns start and end, in the grammar of ``omnivoice.pipeline.contracts.STTEvent``, and up to
where the call's audio has been answered for by final results (what a replacement need not
hear again).

Nova (``/v1``): interim ``Results`` are partial transcripts, ``is_final`` ones final
segments; ``SpeechStarted`` (or the first words) starts the caller's turn; ``speech_final``
(endpointing), ``UtteranceEnd``, or the answer to a ``Finalize`` the pipeline asked for
ends it. A turn that Deepgram's VAD started but that holds no words by the time a final
result covers ``noise_s`` after its start was noise, and ends there.

Flux (``/v2``): ``StartOfTurn`` starts the turn, ``Update`` gives the turn's words so far,
``EagerEndOfTurn`` and ``TurnResumed`` are passed on, ``EndOfTurn`` is the final transcript
and the end of the turn.
"""

from __future__ import annotations

from collections import Counter

from omnivoice.pipeline.contracts import EagerEndOfTurn, STTEvent, TurnResumed
from omnivoice.realtime.provider import SpeechStarted, SpeechStopped
from omnivoice.realtime.types import Transcript
from omnivoice_deepgram_stt import protocol as p

__all__ = ["Recognition"]


class Recognition:
    """Server messages in (:meth:`receive`), speech-to-text events out.

    ``speech_events``: report turns (``SpeechStarted``/``SpeechStopped``); without them
    only transcripts. ``endpointing_ms`` and ``utterance_end_ms`` are the stream's settings
    (the silence their end-of-turn signals stand for).
    """

    def __init__(
        self,
        *,
        speech_events: bool = True,
        endpointing_ms: int | None = None,
        utterance_end_ms: int | None = None,
        noise_s: float = 1.5,
    ) -> None:
        self.speech_events = speech_events
        self.endpointing_ms = endpointing_ms
        self.utterance_end_ms = utterance_end_ms
        self.noise_s = noise_s
        self.offset = 0.0
        """Where the current connection's time zero is in the call's audio, in seconds."""
        self.answered = 0.0
        """The call's audio up to here (seconds) is answered for by final results."""
        self.speaking = False
        self.metadata: p.Metadata | None = None
        """The stream's summary, once Deepgram sent it (after ``CloseStream``)."""
        self.unknown: Counter[str] = Counter()
        """Messages of unknown types, by type."""
        self.malformed = 0
        self.errors = 0
        """``Error`` and ``Warning`` messages."""
        self._partial = ""
        self._speech_start = 0.0
        self._words_in_turn = False
        self._last_word_end = 0.0
        self._finalizing = False
        self._eager = False

    # --- the connection's side ----------------------------------------------------------

    def connection_opened(self, offset: float) -> None:
        """A new connection serves the stream; its time zero is ``offset`` s of the call."""
        self.offset = offset
        self._partial = ""
        self._finalizing = False
        self.metadata = None

    def finalize_sent(self) -> None:
        """A ``Finalize`` (or ``ForceEndTurn``) went out: its answer ends the turn."""
        self._finalizing = True

    # --- messages -----------------------------------------------------------------------

    def receive(self, message: p.ServerMessage) -> list[STTEvent]:
        """The events one message makes (often none)."""
        events: list[STTEvent] = []
        if isinstance(message, p.Results):
            self._results(message, events)
        elif isinstance(message, p.TurnInfo):
            self._turn_info(message, events)
        elif isinstance(message, p.SpeechStartedMessage):
            self._start(self.offset + message.timestamp, events)
        elif isinstance(message, p.UtteranceEnd):
            # After speech_final it says nothing new; one of an earlier turn neither.
            if self.speaking and self.offset + message.last_word_end >= self._speech_start:
                self._stop(self.utterance_end_ms or 0, events)
        elif isinstance(message, p.Metadata):
            self.metadata = message
        elif isinstance(message, p.ServerError | p.ServerWarning):
            self.errors += 1
        elif isinstance(message, p.Unknown):
            self.unknown[message.type] += 1
        elif isinstance(message, p.Malformed):
            self.malformed += 1
        return events

    def _results(self, results: p.Results, events: list[STTEvent]) -> None:
        start, end = self.offset + results.start, self.offset + results.end
        text = results.transcript.strip()
        if text and not self.speaking:
            self._start(start, events)  # words without a SpeechStarted (vad_events off)
        if not results.is_final:
            if text and text != self._partial:
                self._partial = text
                events.append(Transcript(text, is_input=True, is_final=False))
            return
        self.answered = max(self.answered, end)
        self._partial = ""
        if text:
            self._words_in_turn = True
            self._last_word_end = self._words_end(results.words, end)
            events.append(Transcript(text, is_input=True, is_final=True))
        finalized = results.from_finalize and self._finalizing
        if results.from_finalize:
            self._finalizing = False
        if not self.speaking:
            return
        if results.speech_final:
            if self._words_in_turn:
                trailing = round(max(0.0, end - self._last_word_end) * 1000)
            else:
                trailing = self.endpointing_ms or 0
            self._stop(trailing, events)
        elif finalized or (not self._words_in_turn and end - self._speech_start >= self.noise_s):
            self._stop(0, events)

    def _turn_info(self, info: p.TurnInfo, events: list[STTEvent]) -> None:
        end = self.offset + info.audio_window_end
        text = info.transcript.strip()
        event = info.event
        if event == "Update" and not self.speaking:
            self.answered = max(self.answered, end)  # no turn open: nothing to hear again
            return
        if not self.speaking:
            self._start(self.offset + info.audio_window_start, events)
        if event in ("Update", "StartOfTurn"):
            if text and text != self._partial:
                self._partial = text
                events.append(Transcript(text, is_input=True, is_final=False))
        elif event == "EagerEndOfTurn":
            if text and self.speaking:
                self._eager = True
                events.append(EagerEndOfTurn(text))
        elif event == "TurnResumed":
            if self._eager and self.speaking:
                self._eager = False
                events.append(TurnResumed())
        elif event == "EndOfTurn":
            self.answered = max(self.answered, end)
            self._partial = ""
            self._eager = False
            self._finalizing = False
            if text:
                events.append(Transcript(text, is_input=True, is_final=True))
            last = self._words_end(info.words, end)
            self._stop(round(max(0.0, end - last) * 1000), events)

    def _words_end(self, words: tuple[p.Word, ...], default: float) -> float:
        """Where the last of ``words`` ends in the call's audio (``default`` if unknown)."""
        last = words[-1].end if words else None
        return default if last is None else self.offset + last

    # --- turns --------------------------------------------------------------------------

    def _start(self, at: float, events: list[STTEvent]) -> None:
        if self.speaking:
            return
        self.speaking = True
        self._speech_start = at
        self._words_in_turn = False
        self._eager = False
        if self.speech_events:
            events.append(SpeechStarted())

    def _stop(self, trailing_ms: int, events: list[STTEvent]) -> None:
        if not self.speaking:
            return
        self.speaking = False
        self._eager = False
        if self.speech_events:
            events.append(SpeechStopped(trailing_silence_ms=trailing_ms))
