"""RealtimeBridge: one phone call connected to one voice-to-voice provider.

The bridge converts the carrier's audio for the provider (or passes G.711 straight
through when the provider takes it), converts the provider's audio back, turns the
provider's output into events, metrics and a transcript, and handles barge-in: it has the
carrier's line cleared, learns from the playback how much of the response the caller
heard, and tells the provider so.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Protocol, Self

import anyio
import attrs
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from omnivoice.audio.converter import StreamConverter
from omnivoice.audio.format import GEMINI_INPUT, GEMINI_OUTPUT, TWILIO, AudioFormat, choose_format
from omnivoice.audio.vad import EnergyVAD
from omnivoice.concurrency import aclose_now
from omnivoice.errors import OmnivoiceError, SessionClosedError
from omnivoice.gateway.events import Event, EventLog, EventType
from omnivoice.gateway.metrics import Metrics
from omnivoice.gateway.transcript import Turn
from omnivoice.realtime.conversation import heard_part, heard_words
from omnivoice.realtime.provider import (
    FunctionCall,
    Provider,
    ProviderError,
    ProviderSwitched,
    RealtimeSession,
    SpeechStarted,
    SpeechStopped,
    Usage,
)
from omnivoice.realtime.types import (
    AudioChunk,
    HeardResponse,
    ProcessConfig,
    Transcript,
    WordTiming,
)
from omnivoice.registration import Capability

__all__ = ["Playback", "RealtimeBridge"]

log = logging.getLogger(__name__)

_MAX_WORDS = 10_000
"""Word timings kept per response (a reply longer than that is cut by its length)."""


class Playback(Protocol):
    """The carrier side's playout, as the bridge sees it (see :mod:`omnivoice.gateway.call`)."""

    @property
    def busy(self) -> bool:
        """Agent audio is queued or still playing on the caller's line."""
        ...

    async def clear(self) -> int:
        """Drop all queued agent audio and silence the line; return the ms of the
        current response the caller heard."""
        ...


@attrs.frozen
class _Queued:
    generation: int
    response: _Response
    chunk: AudioChunk


@attrs.define(eq=False)
class _Response:
    """One response of the provider, as it reaches the caller."""

    turn: Turn
    response_id: str | None = None
    """The id its provider gave its audio chunks, if any."""
    out_bytes: int = 0
    """Carrier-format bytes produced."""
    handed_bytes: int = 0
    """Carrier-format bytes taken by the reader of :meth:`RealtimeBridge.audio`."""
    complete: bool = False
    """Its last chunk arrived."""
    transcript_final: bool = False
    words: list[WordTiming] = attrs.Factory(list)
    """The provider's word timings, if it gives them: what was heard is then exact."""
    received_at: float | None = None
    """When its first audio came from the provider (the bridge's clock)."""


class RealtimeBridge:
    """Connect one call, in ``telephony_format``, to ``provider``.

    Use it as an async context manager: entering opens the provider's session (and raises
    its connection errors), leaving ends it. In between, :meth:`send_audio` takes the
    caller's audio, :meth:`audio` yields the agent's audio for the carrier, and
    :meth:`events`, :meth:`metrics` and :meth:`transcript` describe the call.
    """

    def __init__(
        self,
        provider: Provider,
        config: ProcessConfig,
        telephony_format: AudioFormat = TWILIO,
        *,
        input_format: AudioFormat | None = None,
        output_format: AudioFormat | None = None,
        codec: str = "polyphase",
        playback: Playback | None = None,
        inbound_buffer: int = 50,
        outbound_buffer: int = 64,
        event_capacity: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.config = config
        self.telephony_format = telephony_format
        self.input_format = input_format or choose_format(
            provider.accepts, telephony_format, who=provider.name
        )
        self.output_format = output_format or choose_format(
            provider.produces, telephony_format, who=provider.name
        )
        self._vad: EnergyVAD | None = None
        if not provider.capabilities & Capability.SPEECH_EVENTS and telephony_format.channels == 1:
            # The provider cannot tell when the caller speaks: barge-in is found here.
            self._vad = EnergyVAD(telephony_format)
        self._codec = codec
        self._playback = playback
        self._clock = clock
        self._log = EventLog(event_capacity)
        self._metrics = Metrics()
        self._turns: list[Turn] = []
        self._inbound_buffer = inbound_buffer
        self._outbound_buffer = outbound_buffer
        self._stack: AsyncExitStack | None = None
        self._session: RealtimeSession | None = None
        self._audio_in: MemoryObjectSendStream[bytes] | None = None
        self._audio_out: MemoryObjectReceiveStream[_Queued] | None = None
        self._task_group: TaskGroup | None = None
        self._started_at: float | None = None
        self._generation = 0
        """Bumped by each interruption: queued audio of an older generation is dropped."""
        self._response: _Response | None = None
        """The response the provider is producing (or produced last)."""
        self._playing: deque[_Response] = deque()
        """Responses handed to the carrier and not yet played to their end, oldest first."""
        self._discarding = False
        """The rest of an interrupted response is still arriving from the provider."""
        self._user_turn: Turn | None = None
        self._user_speech_ended_at: float | None = None
        self._closed = False

    # --- construction helpers -----------------------------------------------------------

    @classmethod
    def for_twilio(cls, provider: Provider, config: ProcessConfig, **options: Any) -> Self:
        """A bridge for a Twilio call (mu-law 8 kHz), formats taken from the provider."""
        return cls(provider, config, TWILIO, **options)

    @classmethod
    def for_twilio_gemini(cls, provider: Provider, config: ProcessConfig, **options: Any) -> Self:
        """A bridge for a Twilio call to Gemini Live: PCM16 16 kHz in, 24 kHz out."""
        options.setdefault("input_format", GEMINI_INPUT)
        options.setdefault("output_format", GEMINI_OUTPUT)
        return cls(provider, config, TWILIO, **options)

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._started_at = self._clock()
        self._inbound = StreamConverter(self.telephony_format, self.input_format, self._codec)
        self._outbound = StreamConverter(self.output_format, self.telephony_format, self._codec)
        async with AsyncExitStack() as stack:
            audio_in_tx, audio_in_rx = anyio.create_memory_object_stream[bytes](
                self._inbound_buffer
            )
            stack.enter_context(audio_in_tx)
            stack.enter_context(audio_in_rx)
            out_tx, out_rx = anyio.create_memory_object_stream[_Queued](self._outbound_buffer)
            stack.enter_context(out_tx)
            stack.enter_context(out_rx)
            self._audio_in, self._audio_out = audio_in_tx, out_rx
            stream = self.provider.process_audio_stream(
                audio_in_rx,
                self.config,
                input_format=self.input_format,
                output_format=self.output_format,
            )
            self._session = await stack.enter_async_context(stream)
            task_group: TaskGroup = await stack.enter_async_context(anyio.create_task_group())
            task_group.start_soon(self._pump, self._session, out_tx)
            self._task_group = task_group
            self._stack = stack.pop_all()
        self._emit(
            EventType.SESSION_STARTED,
            provider=self.provider.name,
            input_format=str(self.input_format),
            output_format=str(self.output_format),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None

    async def aclose(self) -> None:
        """End the session: its tasks are cancelled and the provider's session closed.

        Call it from the task that entered the bridge (``async with`` does).
        """
        if self._closed or self._stack is None:
            return
        self._closed = True
        if self._audio_in is not None:
            self._audio_in.close()
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
        stack, self._stack = self._stack, None
        try:
            await stack.aclose()
        finally:
            self._metrics.duration_s = round(self._now(), 3)
            self._metrics.events_dropped = self._log.dropped
            self._emit(EventType.SESSION_ENDED, metrics=self._metrics.snapshot())
            self._log.close()

    # --- the caller's side -----------------------------------------------------------------

    async def send_audio(self, data: bytes) -> None:
        """The caller's audio, in the telephony format. Waits when the provider lags."""
        if self._audio_in is None or self._closed:
            raise SessionClosedError("the bridge is not open")
        self._metrics.audio_in_bytes += len(data)
        if self._vad is not None:
            for change in self._vad.process(data):
                if change.speaking:
                    await self._handle_speech_started()
                else:
                    self._user_stopped(change.trailing_silence_ms)
        converted = self._inbound.convert(data)
        if not converted:
            return
        try:
            await self._audio_in.send(converted)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise SessionClosedError(f"{self.provider.name} session has ended") from exc

    def audio(self) -> AsyncIterator[AudioChunk]:
        """The agent's audio in the telephony format; ``is_final`` ends one response.

        Audio of a response the caller interrupted is dropped here, even if it was already
        queued. The iterator ends when the session does. One reader at a time.
        """
        if self._audio_out is None:
            raise SessionClosedError("the bridge is not open")
        return _AudioOut(self, self._audio_out)

    def _hand_out(self, queued: _Queued) -> AudioChunk | None:
        """Account for a chunk leaving through :meth:`audio`; ``None``: it is stale."""
        if queued.generation != self._generation:
            return None
        response, chunk = queued.response, queued.chunk
        if response.handed_bytes == 0:
            self._playing.append(response)
            latency: float | None = None
            if self._user_speech_ended_at is not None:
                latency = round((self._now() - self._user_speech_ended_at) * 1000, 1)
                self._metrics.response_latencies_ms.append(latency)
                self._user_speech_ended_at = None
            onset = None
            if response.received_at is not None:
                onset = round((self._clock() - response.received_at) * 1000, 3)
            self._emit(EventType.AGENT_AUDIO_STARTED, latency_ms=latency, onset_ms=onset)
        response.handed_bytes += len(chunk.audio)
        self._metrics.audio_out_bytes += len(chunk.audio)
        if chunk.is_final and self._playback is None:
            # No carrier playout to wait for: the response ends when it is handed over.
            self.playback_finished()
        return chunk

    def playback_finished(self, heard_ms: int | None = None) -> None:
        """The oldest response in play has played to its end (its last mark came back)."""
        if not self._playing:
            return
        response = self._playing.popleft()
        heard = self._ms(response.handed_bytes) if heard_ms is None else heard_ms
        self._finish_agent_turn(response, heard, interrupted=False)

    async def interrupt(self) -> None:
        """Stop the agent now (as on barge-in): clear the line and tell the provider."""
        await self._interrupt(reason="requested")

    def dtmf(self, digit: str) -> None:
        """Report a key the caller pressed."""
        self._emit(EventType.DTMF, digit=digit)

    # --- what happened -----------------------------------------------------------------

    def events(self) -> AsyncIterator[Event]:
        """Every event of the session, in order; ends after ``SESSION_ENDED``."""
        return self._log.stream()

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback`` synchronously with every event (for call records)."""
        self._log.subscribe(callback)

    def metrics(self) -> dict[str, Any]:
        self._metrics.duration_s = round(self._now(), 3)
        self._metrics.events_dropped = self._log.dropped
        return self._metrics.snapshot()

    def transcript(self) -> list[Turn]:
        """The turns so far, in order of their start."""
        return sorted(self._turns, key=lambda turn: turn.start)

    # --- the provider's side -----------------------------------------------------------

    async def _pump(self, session: RealtimeSession, out: MemoryObjectSendStream[_Queued]) -> None:
        with out:  # when the session ends, audio() ends
            events = aiter(session)
            try:
                async for event in events:
                    await self._handle(event, out)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the reader of audio() has gone: the call is over
            except OmnivoiceError as exc:
                self._error(exc, fatal=True)
            except Exception as exc:
                log.exception("%s failed", self.provider.name)
                self._error(OmnivoiceError(f"{type(exc).__name__}: {exc}"), fatal=True)
            finally:
                await aclose_now(events)  # an async generator's cleanup runs now
                if self._audio_in is not None:
                    self._audio_in.close()  # and send_audio() fails from now on

    async def _handle(self, event: object, out: MemoryObjectSendStream[_Queued]) -> None:
        # ``object``: a third-party provider may yield anything; the unknown is reported.
        if isinstance(event, AudioChunk):
            await self._agent_audio(event, out)
        elif isinstance(event, Transcript):
            self._transcript(event)
        elif isinstance(event, SpeechStarted):
            await self._handle_speech_started()
        elif isinstance(event, SpeechStopped):
            self._user_stopped(event.trailing_silence_ms)
        elif isinstance(event, FunctionCall):
            self._metrics.function_calls += 1
            self._emit(
                EventType.FUNCTION_CALL,
                call_id=event.call_id,
                name=event.name,
                arguments=dict(event.arguments),
            )
        elif isinstance(event, Usage):
            self._metrics.input_tokens += event.input_tokens
            self._metrics.output_tokens += event.output_tokens
            self._emit(
                EventType.USAGE,
                input_tokens=event.input_tokens,
                output_tokens=event.output_tokens,
                details=dict(event.details),
            )
        elif isinstance(event, ProviderError):
            self._error(event.error, fatal=event.fatal)
        elif isinstance(event, ProviderSwitched):
            self._metrics.provider_switches += 1
            self._emit(
                EventType.PROVIDER_SWITCHED,
                previous=event.previous,
                current=event.current,
                reason=event.reason,
            )
        else:
            self._error(OmnivoiceError(f"unknown provider event {event!r}"), fatal=False)

    async def _handle_speech_started(self) -> None:
        self._user_started()
        await self._interrupt(reason="barge-in")

    async def _agent_audio(self, chunk: AudioChunk, out: MemoryObjectSendStream[_Queued]) -> None:
        if self._discarding:
            if chunk.is_final:
                self._discarding = False
            return
        if self._response is None or self._response.complete:
            turn = Turn("agent", start=self._now())
            self._turns.append(turn)
            self._response = _Response(turn)
            self._metrics.turns += 1
            self._emit(EventType.AGENT_SPEECH_STARTED)
        response = self._response
        if response.received_at is None:
            response.received_at = self._clock()
        if response.response_id is None:
            response.response_id = chunk.response_id
        audio = self._outbound.convert(chunk.audio)
        response.out_bytes += len(audio)
        if chunk.is_final:
            response.complete = True
        if chunk.words and len(response.words) < _MAX_WORDS:
            response.words.extend(chunk.words[: _MAX_WORDS - len(response.words)])
        converted = AudioChunk(audio, chunk.is_final, response.response_id)
        await out.send(_Queued(self._generation, response, converted))

    def _transcript(self, event: Transcript) -> None:
        if event.is_input:
            self._emit(EventType.USER_TRANSCRIPT, text=event.text, final=event.is_final)
            if not event.is_final:
                return
            turn = self._pending_user_turn()
            turn.text = f"{turn.text} {event.text}".strip() if turn.text else event.text
            return
        self._emit(EventType.AGENT_TRANSCRIPT, text=event.text, final=event.is_final)
        response = self._response
        if self._discarding and response is not None:
            turn = response.turn
            if event.is_final:  # the whole text of the interrupted response: keep what was heard
                turn.text = event.text
                response.transcript_final = True
                turn.heard_text = self._heard_text(response, event.text, turn.heard_ms or 0)
            return
        if response is None or response.transcript_final:
            # Text before audio: the turn starts with its transcript.
            turn = Turn("agent", start=self._now())
            self._turns.append(turn)
            response = self._response = _Response(turn)
            self._metrics.turns += 1
            self._emit(EventType.AGENT_SPEECH_STARTED)
        turn = response.turn
        if event.is_final:
            turn.text = event.text
            response.transcript_final = True
            if turn.interrupted:  # the text arrived after the interruption
                turn.heard_text = self._heard_text(response, turn.text, turn.heard_ms or 0)
            elif turn.end is not None:
                turn.heard_text = turn.text
        else:
            turn.text += event.text

    def _pending_user_turn(self) -> Turn:
        """The earliest user turn still waiting for its text (transcripts come in order)."""
        waiting = None
        for turn in reversed(self._turns):
            if turn.role == "user":
                if turn.text:
                    break
                waiting = turn
        if waiting is not None:
            return waiting
        turn = Turn("user", start=self._now(), end=self._now())
        self._turns.append(turn)
        return turn

    def _user_started(self) -> None:
        self._user_turn = Turn("user", start=self._now())
        self._turns.append(self._user_turn)
        self._emit(EventType.USER_SPEECH_STARTED)

    def _user_stopped(self, trailing_silence_ms: int) -> None:
        now = round(max(0.0, self._now() - trailing_silence_ms / 1000), 4)
        turn = self._user_turn
        if turn is not None and turn.end is None:
            turn.end = now
            self._metrics.user_speech_s = round(self._metrics.user_speech_s + (now - turn.start), 3)
        self._user_speech_ended_at = now
        self._emit(EventType.USER_SPEECH_ENDED)

    def _busy(self) -> bool:
        return self._playback.busy if self._playback is not None else False

    async def _interrupt(self, *, reason: str) -> None:
        """Barge-in: silence the line, drop queued audio, record and report what was heard."""
        producing = self._response is not None and not self._response.complete
        if not (self._playing or producing or self._busy()):
            return
        if self._playback is not None:
            heard_ms = await self._playback.clear()
        elif self._playing:
            heard_ms = self._ms(self._playing[0].handed_bytes)
        else:
            heard_ms = 0
        self._generation += 1  # whatever is queued in audio() is dropped
        if producing and self._response is not None:
            self._discarding = True  # and so is the rest of it still to come
            self._response.complete = True
        interrupted = list(self._playing)
        if producing and self._response is not None and self._response not in interrupted:
            interrupted.append(self._response)
        self._playing.clear()
        # The oldest was playing; those queued behind it were not heard at all.
        heard = [
            HeardResponse(r.response_id, heard_ms if i == 0 else 0, self._ms(r.out_bytes))
            for i, r in enumerate(interrupted)
        ]
        for response, position in zip(interrupted, heard, strict=True):
            self._finish_agent_turn(response, position.heard_ms, interrupted=True)
        self._metrics.interruptions += 1
        self._emit(EventType.INTERRUPTION, reason=reason, heard_ms=heard_ms)
        if self._session is not None and self.provider.capabilities & Capability.INTERRUPTION:
            await self._session.interrupt(heard_ms, responses=heard)

    def _finish_agent_turn(self, response: _Response, heard_ms: int, interrupted: bool) -> None:
        turn = response.turn
        if turn.end is not None:
            return
        turn.end = self._now()
        turn.interrupted = interrupted
        turn.heard_ms = heard_ms
        turn.heard_text = turn.text
        if interrupted:
            turn.heard_text = self._heard_text(response, turn.text, heard_ms)
        self._metrics.agent_speech_s = round(self._metrics.agent_speech_s + heard_ms / 1000, 3)
        self._emit(EventType.AGENT_SPEECH_ENDED, interrupted=interrupted, heard_ms=heard_ms)

    # --- helpers ---------------------------------------------------------------------------

    def _heard_text(self, response: _Response, text: str, heard_ms: int) -> str:
        """The words of an interrupted reply the caller heard: by the provider's word
        timings when it gave them, else estimated over the reply's audio."""
        if response.words:
            return " ".join(word.text for word in heard_words(response.words, heard_ms))
        return heard_part(text, heard_ms, self._ms(response.out_bytes))

    def _error(self, error: OmnivoiceError, *, fatal: bool) -> None:
        self._metrics.errors += 1
        log.warning("%s: %s%s", self.provider.name, error, " (session ended)" if fatal else "")
        self._emit(EventType.ERROR, error=type(error).__name__, message=str(error), fatal=fatal)

    def _emit(self, type_: EventType, **data: Any) -> None:
        self._log.emit(Event(type_, self._now(), data))

    def _now(self) -> float:
        if self._started_at is None:  # never opened
            return 0.0
        return round(self._clock() - self._started_at, 4)  # 0.1 ms is plenty for records

    def _ms(self, n_bytes: int) -> int:
        return round(self.telephony_format.duration(n_bytes) * 1000)


class _AudioOut:
    """The iterator :meth:`RealtimeBridge.audio` returns (a plain object: nothing to close)."""

    def __init__(self, bridge: RealtimeBridge, stream: MemoryObjectReceiveStream[_Queued]):
        self._bridge = bridge
        self._stream = stream

    def __aiter__(self) -> _AudioOut:
        return self

    async def __anext__(self) -> AudioChunk:
        while True:
            try:
                queued = await self._stream.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                raise StopAsyncIteration from None
            chunk = self._bridge._hand_out(queued)
            if chunk is not None:
                return chunk
