"""The text pipeline: speech-to-text, an LLM and text-to-speech as one realtime provider.

:class:`TextPipeline` is a :class:`~omnivoice.realtime.provider.Provider`: the bridge, the
gateway and the fallback client serve a call with it exactly as with a voice-to-voice
model. Each session streams all the way:

- the caller's audio goes to the recogniser (converted if need be) and through a local
  voice-activity detector; the recogniser's transcripts go out as they come;
- the caller's turn ends on the recogniser's ``SpeechStopped``, else after
  ``end_silence_ms`` of quiet seen by the detector, else after ``max_turn_s`` of speech
  (then the recogniser is asked to finalize what it heard);
- a recogniser's early end of turn (``EagerEndOfTurn``) starts the answer before the turn
  has ended; it is said only once the turn ends with the same words (``TurnResumed`` or
  other words drop it);
- the model's answer is cut into sentences, and each goes to text-to-speech as soon as it
  is complete, so the first audio follows the first sentence; a text-to-speech that takes
  streamed text (``INPUT_STREAMING``) gets the answer as it is written instead, on one
  stream per call opened when the call starts (see :mod:`omnivoice.pipeline.speech`);
- when the caller speaks over the agent, the session says ``SpeechStarted``; the bridge
  clears the line and calls :meth:`interrupt` with what was heard, which stops the model
  and the synthesis and keeps only the heard words in the conversation;
- the model's function calls run through ``ProcessConfig.on_function_call``, at most
  ``max_tool_rounds`` rounds per turn;
- each response ends with a ``Usage`` event whose ``details["pipeline"]`` holds the turn's
  latencies (see ``docs/pipeline.md``).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import TYPE_CHECKING, Any, TypeAlias

import anyio
import anyio.lowlevel
import attrs
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from omnivoice.audio.converter import DEFAULT_CODEC, StreamConverter
from omnivoice.audio.format import AudioFormat, choose_format
from omnivoice.audio.vad import EnergyVAD, VoiceActivity
from omnivoice.errors import OmnivoiceError, SessionClosedError
from omnivoice.pipeline.contracts import (
    EagerEndOfTurn,
    LanguageModel,
    Message,
    SpeechStream,
    SpeechToText,
    STTEvent,
    TextDelta,
    TextToSpeech,
    ToolCall,
    TurnResumed,
    WordTiming,
)
from omnivoice.pipeline.speech import SentenceSpeech, SpeakingRate, Speech, StreamingSpeech
from omnivoice.pipeline.speech import closing as _closing
from omnivoice.realtime.functions import FunctionOutcome, must_complete, run_function_call
from omnivoice.realtime.provider import (
    FunctionCall,
    Provider,
    ProviderError,
    ProviderEvent,
    RealtimeSession,
    SpeechStarted,
    SpeechStopped,
    Usage,
)
from omnivoice.realtime.session import EventChannel, serve_session
from omnivoice.realtime.types import AudioChunk, HeardResponse, ProcessConfig, Transcript
from omnivoice.registration import Capability, Kind
from omnivoice.telemetry.tracing import record_operation

if TYPE_CHECKING:
    from omnivoice.plugins import Registry

__all__ = ["TextPipeline", "build_pipeline"]

log = logging.getLogger(__name__)

_INBOX = 64
"""Recogniser and detector events waiting for the session's controller."""
_STT_AUDIO = 50
"""Caller chunks waiting for the recogniser (a second of 20 ms frames)."""
_OUT = 64
"""Events waiting for the session's reader."""
_VAD_FRAME_MS = 20
_CANCELLED = json.dumps({"error": "cancelled: the caller interrupted"})


class TextPipeline(Provider):
    """Speech-to-text, a language model and text-to-speech, served as one realtime provider.

    It declares what ``stt`` accepts and what ``tts`` produces, so a bridge converts once;
    a session opened directly in another format ``codec`` converts is converted inside.
    The providers belong to the pipeline from now on: :meth:`aclose` closes them.

    Turn-taking: ``end_silence_ms`` of quiet after speech, as the local detector hears it
    (``vad``; a frame is speech above ``vad_threshold_dbfs``, speech starts after
    ``vad_start_ms`` of it), ends the caller's turn when the recogniser has not;
    ``max_turn_s`` of speech ends it anyway. After the end of speech, the recogniser's
    final transcript is awaited at most ``final_timeout_s`` (then its last partial one
    stands in). ``max_tool_rounds`` bounds the rounds of function calls per turn;
    ``max_sentence_chars`` the text sent to synthesis at once. A text-to-speech that takes
    streamed text (``INPUT_STREAMING``) gets it as the model writes it, unless
    ``stream_text`` is false. ``codec`` and ``registry`` choose the audio converter;
    ``clock`` (seconds) times the per-turn metrics.
    """

    def __init__(
        self,
        stt: SpeechToText,
        llm: LanguageModel,
        tts: TextToSpeech,
        *,
        name: str | None = None,
        end_silence_ms: int = 800,
        vad: bool = True,
        vad_threshold_dbfs: float = -40.0,
        vad_start_ms: int = 60,
        max_turn_s: float = 15.0,
        final_timeout_s: float = 1.0,
        max_tool_rounds: int = 5,
        max_sentence_chars: int = 250,
        stream_text: bool = True,
        codec: str = DEFAULT_CODEC,
        registry: Registry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not stt.accepts:
            raise ValueError(f"speech-to-text provider {stt.name!r} declares no input formats")
        if not tts.produces:
            raise ValueError(f"text-to-speech provider {tts.name!r} declares no output formats")
        for option, value in [
            ("end_silence_ms", end_silence_ms),
            ("vad_start_ms", vad_start_ms),
            ("max_turn_s", max_turn_s),
            ("final_timeout_s", final_timeout_s),
            ("max_tool_rounds", max_tool_rounds),
        ]:
            if value < 0:
                raise ValueError(f"{option} must not be negative, got {value}")
        if max_sentence_chars < 1:
            raise ValueError(f"max_sentence_chars must be positive, got {max_sentence_chars}")
        self.stt = stt
        self.llm = llm
        self.tts = tts
        self.name = name or f"{stt.name}+{llm.name}+{tts.name}"
        self.accepts = tuple(stt.accepts)
        self.produces = tuple(tts.produces)
        self.capabilities = (
            Capability.AGENT_TRANSCRIPTS
            | Capability.SPEECH_EVENTS
            | Capability.INTERRUPTION
            | Capability.TRUNCATION
            | Capability.HISTORY
            | Capability.STREAMING
            | (stt.capabilities & Capability.USER_TRANSCRIPTS)
            | (llm.capabilities & Capability.FUNCTION_CALLING)
        )
        self.end_silence_ms = end_silence_ms
        self.vad = vad
        self.vad_threshold_dbfs = vad_threshold_dbfs
        self.vad_start_ms = vad_start_ms
        self.max_turn_s = max_turn_s
        self.final_timeout_s = final_timeout_s
        self.max_tool_rounds = max_tool_rounds
        self.max_sentence_chars = max_sentence_chars
        self.stream_text = stream_text
        self.codec = codec
        self.registry = registry
        self.clock = clock

    def supports(self, audio_format: AudioFormat, role: str) -> bool:
        """Its providers' formats, and any other its codec converts them from or to."""
        declared = self.accepts if role == "input" else self.produces
        return audio_format in declared or audio_format in _convertible(self.codec, self.registry)

    def open_session(
        self,
        audio_in: AsyncIterable[bytes],
        config: ProcessConfig,
        *,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> AbstractAsyncContextManager[RealtimeSession]:
        session = _TextSession(self, config, input_format, output_format)
        run = functools.partial(session.run, audio_in)
        return serve_session(session, run, events=session.events, name=self.name)

    async def aclose(self) -> None:
        """Close the three providers."""
        try:
            await self.stt.aclose()
        finally:
            try:
                await self.llm.aclose()
            finally:
                await self.tts.aclose()


def _convertible(codec: str, registry: Registry | None) -> tuple[AudioFormat, ...]:
    """The formats the codec converts between, both ways (as it registered them)."""
    if registry is None:
        from omnivoice.plugins import get_registry

        registry = get_registry()
    registration = registry.get(Kind.CODEC, codec)
    return tuple(f for f in registration.accepts if f in registration.produces)


def build_pipeline(
    registry: Registry | None = None,
    *,
    stt: str | SpeechToText,
    llm: str | LanguageModel,
    tts: str | TextToSpeech,
    stt_options: Mapping[str, Any] | None = None,
    llm_options: Mapping[str, Any] | None = None,
    tts_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> TextPipeline:
    """A :class:`TextPipeline` of providers given by their registered names (or as objects).

    A name is created with its factory and the matching ``*_options``; ``options`` go to
    :class:`TextPipeline`. ``registry`` defaults to the process-wide one.
    """
    if registry is None:
        from omnivoice.plugins import get_registry

        registry = get_registry()
    options.setdefault("registry", registry)
    return TextPipeline(
        _create(registry, Kind.STT, stt, stt_options, SpeechToText),
        _create(registry, Kind.LLM, llm, llm_options, LanguageModel),
        _create(registry, Kind.TTS, tts, tts_options, TextToSpeech),
        **options,
    )


def _create(
    registry: Registry,
    kind: Kind,
    given: str | object,
    options: Mapping[str, Any] | None,
    expected: type,
) -> Any:
    if not isinstance(given, str):
        return given
    created = registry.create(kind, given, **(options or {}))
    if not isinstance(created, expected):
        raise TypeError(
            f"{kind.label} {given!r} gave a {type(created).__name__}, not a {expected.__name__}"
        )
    return created


# --- one call -----------------------------------------------------------------------------


@attrs.frozen
class _Voice:
    """A change the local detector saw."""

    activity: VoiceActivity


@attrs.frozen
class _CallerEnded:
    """The caller's audio is over."""


@attrs.frozen
class _RecognitionEnded:
    error: Exception | None = None


@attrs.frozen
class _Deadline:
    """A deadline of the controller passed (the turn's length, the wait for a transcript)."""


_Input: TypeAlias = STTEvent | _Voice | _CallerEnded | _RecognitionEnded | _Deadline


@attrs.define(eq=False)
class _Round:
    """One answer of the model within a response; function calls lead to the next."""

    calls: list[ToolCall] = attrs.Factory(list)
    """The calls that were started."""
    outcomes: dict[str, FunctionOutcome] = attrs.Factory(dict)


@attrs.define(eq=False)
class _Response:
    """The agent's answer to one turn of the caller, and its place in the conversation."""

    user_text: str
    speech_ended_at: float | None
    final_at: float | None
    scope: anyio.CancelScope = attrs.Factory(anyio.CancelScope)
    done: anyio.Event = attrs.Factory(anyio.Event)
    rounds: list[_Round] = attrs.Factory(list)
    speech: Speech | None = None
    """Its text to audio (from the moment its runner starts)."""
    output_started: bool = False
    """A transcript or audio of it went to the session's reader (the bridge knows it)."""
    calls_started: bool = False
    withdrawn: bool = False
    """Cancelled before it said anything, because the caller went on speaking."""
    cut_short: bool = False
    """Interrupted (or its synthesis failed): only what was heard counts."""
    heard_ms: int | None = None
    tail: bytes = b""
    """The converter's last audio, sent with the final chunk."""
    llm_started_at: float | None = None
    first_token_at: float | None = None
    first_audio_at: float | None = None
    llm_ended_at: float | None = None
    tts_ended_at: float | None = None
    confirmed: anyio.Event | None = None
    """For an answer started on an early end of turn: set once the turn has ended with its
    words. Until then nothing of it is said, and no function of it runs."""

    async def until_confirmed(self) -> None:
        if self.confirmed is not None:
            await self.confirmed.wait()

    def spoken_text(self) -> str:
        return self.speech.spoken_text() if self.speech is not None else ""

    def messages(self) -> list[Message]:
        """The response as the model's conversation keeps it."""
        texts: dict[int, list[str]] = {}
        if self.speech is not None:
            heard: float | None = None
            if self.cut_short:  # only what was heard (all that was said, if not known)
                heard = math.inf if self.heard_ms is None else float(self.heard_ms)
            texts = self.speech.texts(heard)
        messages = [Message("user", self.user_text)] if self.user_text else []
        for index, round_ in enumerate(self.rounds):
            content = " ".join(texts.get(index, []))
            if round_.calls:
                messages.append(Message("assistant", content, tool_calls=tuple(round_.calls)))
                for call in round_.calls:
                    outcome = round_.outcomes.get(call.id)
                    output = outcome.output if outcome is not None else _CANCELLED
                    messages.append(Message("tool", output, tool_call_id=call.id))
            elif content:
                messages.append(Message("assistant", content))
        return messages

    def metrics(self) -> dict[str, Any]:
        speech = self.speech
        return {
            "stt_final_ms": _ms(self.speech_ended_at, self.final_at),
            "llm_first_token_ms": _ms(self.llm_started_at, self.first_token_at),
            "tts_first_audio_ms": _ms(
                speech.started_at if speech else None, speech.first_audio_at if speech else None
            ),
            "response_ms": _ms(self.speech_ended_at, self.first_audio_at),
            "function_rounds": sum(1 for round_ in self.rounds if round_.calls),
            "interrupted": self.heard_ms is not None,
            "speculative": self.confirmed is not None,
        }


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, (end - start) * 1000), 1)


class _TextSession:
    """One call through a :class:`TextPipeline` (a :class:`RealtimeSession`).

    Tasks, in one task group: the caller's audio (to the recogniser and the detector), the
    recogniser's events, a timer, the controller that takes turns, and one runner per
    response (the model and the synthesis, cancelled together on barge-in). Only the
    controller and :meth:`interrupt` change the conversation, one at a time.
    """

    def __init__(
        self,
        pipeline: TextPipeline,
        config: ProcessConfig,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> None:
        self._pipeline = pipeline
        self._config = config
        self._clock = pipeline.clock
        self._output_format = output_format
        self._stt_format = choose_format(pipeline.stt.accepts, input_format, who=pipeline.stt.name)
        self._tts_format = choose_format(
            pipeline.tts.produces, output_format, who=pipeline.tts.name
        )
        # Converters are built now, so that an impossible conversion fails on entry.
        self._inbound = self._converter(input_format, self._stt_format)
        self._spare_outbound = self._converter(self._tts_format, output_format)
        self._vad = None
        if pipeline.vad and input_format.channels == 1:
            self._vad = EnergyVAD(
                input_format,
                threshold_dbfs=pipeline.vad_threshold_dbfs,
                start_frames=math.ceil(pipeline.vad_start_ms / _VAD_FRAME_MS),
                end_silence_ms=pipeline.end_silence_ms,
                frame_ms=_VAD_FRAME_MS,
            )
        self._seed = [Message("system", config.instructions)] if config.instructions else []
        for item in config.history:
            self._seed.append(Message("user" if item.role == "user" else "assistant", item.text))
        self._responses: list[_Response] = []
        """The conversation after the seed, oldest first."""
        self._current: _Response | None = None
        """The latest response (running or not)."""
        self._last_spoken: _Response | None = None
        """The latest response that has said something: the one an interruption cuts."""
        self._rate = SpeakingRate()
        self._streaming = bool(
            pipeline.stream_text and pipeline.tts.capabilities & Capability.INPUT_STREAMING
        )
        """The model's text is streamed into the call's synthesis stream."""
        self._speech_stream: SpeechStream | None = None
        # The caller's turn.
        self._in_turn = False
        self._awaiting = False
        """The turn has ended: answer once its text is known."""
        self._finals: list[str] = []
        self._partial = ""
        self._final_at: float | None = None
        self._speech_ended_at: float | None = None
        self._caller_ended = False
        self._turn_deadline: float | None = None
        self._final_deadline: float | None = None
        self._deadlines_moved = anyio.Event()
        self._tasks: TaskGroup | None = None
        self._recognition: AsyncIterator[STTEvent] | None = None
        self._speculation: tuple[_Response, _Response | None] | None = None
        """An answer started on an early end of turn, and the response before it."""
        self.events = EventChannel(_OUT)

    # --- the RealtimeSession contract -------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[ProviderEvent]:
        return aiter(self.events)

    async def interrupt(self, heard_ms: int, *, responses: Sequence[HeardResponse] = ()) -> None:
        """The caller barged in having heard ``heard_ms`` of the response: stop it, and
        keep only what was heard."""
        target = self._last_spoken
        if target is not None and target.heard_ms is None:
            target.heard_ms = max(0, heard_ms)
            target.cut_short = True
            target.scope.cancel()
        current = self._current
        if current is not None and current is not target and not current.done.is_set():
            # An answer that has said nothing yet goes too: the caller wants to speak.
            current.heard_ms = 0
            current.cut_short = True
            current.scope.cancel()

    # --- the session's tasks ------------------------------------------------------------------

    async def run(self, audio_in: AsyncIterable[bytes], *, task_status: TaskStatus[None]) -> None:
        """Open the recognition stream, report started, then serve the call."""
        pipeline = self._pipeline
        async with AsyncExitStack() as stack:
            inbox_tx, inbox_rx = anyio.create_memory_object_stream[_Input](_INBOX)
            stt_tx, stt_rx = anyio.create_memory_object_stream[bytes](_STT_AUDIO)
            for stream in (inbox_tx, inbox_rx, stt_tx, stt_rx):
                stack.enter_context(stream)
            recognition = await stack.enter_async_context(
                pipeline.stt.transcribe(stt_rx, audio_format=self._stt_format)
            )
            self._recognition = recognition
            if self._streaming:  # connected now, so that the first answer does not wait
                speech = pipeline.tts.open_stream(
                    audio_format=self._tts_format, voice=self._config.voice
                )
                self._speech_stream = await stack.enter_async_context(speech)
            task_status.started()
            async with anyio.create_task_group() as tasks:
                self._tasks = tasks
                with inbox_tx:
                    tasks.start_soon(self._read_caller, audio_in, stt_tx, inbox_tx.clone())
                    tasks.start_soon(self._recognise, recognition, inbox_tx.clone())
                    tasks.start_soon(self._keep_time, inbox_tx.clone())
                await self._control(inbox_rx)
                tasks.cancel_scope.cancel()

    async def _read_caller(
        self,
        audio_in: AsyncIterable[bytes],
        stt_tx: MemoryObjectSendStream[bytes],
        inbox: MemoryObjectSendStream[_Input],
    ) -> None:
        with inbox, stt_tx:  # closing stt_tx tells the recogniser the audio is over
            try:
                async for chunk in audio_in:
                    if self._vad is not None:
                        for change in self._vad.process(chunk):
                            await inbox.send(_Voice(change))
                    data = self._inbound.convert(chunk) if self._inbound is not None else chunk
                    if data:
                        await stt_tx.send(data)
                if self._inbound is not None and (tail := self._inbound.flush()):
                    await stt_tx.send(tail)
            except anyio.BrokenResourceError:
                return  # the recogniser stopped taking audio: its end is reported
            # Said before the recogniser can see the end, so that its end is expected.
            await inbox.send(_CallerEnded())

    async def _recognise(
        self, recognition: AsyncIterator[STTEvent], inbox: MemoryObjectSendStream[_Input]
    ) -> None:
        with inbox:
            error: Exception | None = None
            try:
                async with _closing(recognition):
                    async for event in recognition:
                        await inbox.send(event)
            except Exception as exc:
                error = exc
            await inbox.send(_RecognitionEnded(error))

    async def _keep_time(self, inbox: MemoryObjectSendStream[_Input]) -> None:
        """Tell the controller when its earliest deadline passes."""
        with inbox:
            while True:
                moved = self._deadlines_moved
                deadline = min(
                    (d for d in (self._turn_deadline, self._final_deadline) if d is not None),
                    default=math.inf,
                )
                with anyio.CancelScope(deadline=deadline):
                    await moved.wait()
                if moved.is_set():
                    continue
                await inbox.send(_Deadline())
                await moved.wait()  # until the controller has dealt with it

    def _move_deadlines(self) -> None:
        self._deadlines_moved.set()
        self._deadlines_moved = anyio.Event()

    async def _emit(self, event: ProviderEvent) -> None:
        assert self._tasks is not None
        if not await self.events.emit(event):
            # The session's reader has gone: nobody is listening to the call any more.
            self._tasks.cancel_scope.cancel()
            await anyio.lowlevel.checkpoint()

    async def _report(self, who: str, exc: Exception, *, fatal: bool = False) -> None:
        error = exc if isinstance(exc, OmnivoiceError) else OmnivoiceError(f"{who}: {exc!r}")
        log.warning("%s: %s%s", self._pipeline.name, error, " (session ended)" if fatal else "")
        await self._emit(ProviderError(error, fatal=fatal))

    # --- the controller: turns ----------------------------------------------------------------

    async def _control(self, inbox: MemoryObjectReceiveStream[_Input]) -> None:
        async for item in inbox:
            if not await self._take(item):
                break
        self._drop_speculation()
        current = self._current
        if current is not None:
            await current.done.wait()  # the last answer is said before the session ends

    async def _take(self, item: object) -> bool:
        """Handle one input; ``False`` ends the session. (``object``: a third-party
        recogniser may yield anything; the unknown is reported.)"""
        if isinstance(item, Transcript):
            await self._transcript(item)
        elif isinstance(item, SpeechStarted):
            await self._speech_started()
        elif isinstance(item, SpeechStopped):
            await self._speech_stopped(item.trailing_silence_ms)
        elif isinstance(item, _Voice):
            if item.activity.speaking:
                await self._speech_started()
            else:
                await self._finalize_recognition()
                await self._speech_stopped(item.activity.trailing_silence_ms)
        elif isinstance(item, EagerEndOfTurn):
            self._speculate(item.text)
        elif isinstance(item, TurnResumed):
            self._drop_speculation()
        elif isinstance(item, _Deadline):
            await self._deadline_passed()
        elif isinstance(item, _CallerEnded):
            self._caller_ended = True
            await self._speech_stopped(0)
        elif isinstance(item, _RecognitionEnded):
            return await self._recognition_ended(item.error)
        else:
            error = OmnivoiceError(f"unknown speech-to-text event {item!r}")
            await self._report(self._pipeline.stt.name, error)
        return True

    async def _recognition_ended(self, error: Exception | None) -> bool:
        stt = self._pipeline.stt.name
        if error is None and not self._caller_ended:
            error = SessionClosedError(f"{stt}: the recognition stream ended during the call")
        if error is not None:
            if self._current is not None:
                self._current.scope.cancel()
            await self._report(stt, error, fatal=True)
            return False
        # The caller is gone and everything they said is transcribed: answer the rest.
        await self._respond_when_ready(timed_out=True)
        return False

    async def _speech_started(self) -> None:
        if self._in_turn:
            return
        self._drop_speculation()
        self._in_turn = True
        self._awaiting = False  # an ended turn still unanswered goes on with this speech
        self._turn_deadline = anyio.current_time() + self._pipeline.max_turn_s
        self._final_deadline = None
        self._move_deadlines()
        current = self._current
        if current is not None and not current.done.is_set() and not current.output_started:
            self._withdraw(current)
        await self._emit(SpeechStarted())

    async def _speech_stopped(self, trailing_silence_ms: int) -> None:
        if not self._in_turn:
            return
        self._in_turn = False
        self._turn_deadline = None
        self._move_deadlines()
        self._speech_ended_at = self._clock() - trailing_silence_ms / 1000
        await self._emit(SpeechStopped(trailing_silence_ms=trailing_silence_ms))
        self._awaiting = True
        await self._respond_when_ready()

    async def _transcript(self, transcript: Transcript) -> None:
        if not transcript.is_input:
            transcript = attrs.evolve(transcript, is_input=True)
        await self._emit(transcript)
        if not transcript.is_final:
            self._partial = _extend(self._partial, transcript.text)
            return
        self._partial = ""
        text = transcript.text.strip()
        if text:
            self._finals.append(text)
            self._final_at = self._clock()
        if self._in_turn or self._awaiting:
            await self._respond_when_ready()
            return
        if not text:
            return
        # Text outside any turn: speech the detectors missed, or a late part of the last turn.
        current = self._current
        if current is not None and not current.done.is_set():
            if current.output_started:
                return  # the agent is answering: the text joins the caller's next turn
            self._withdraw(current)  # not answered yet: answer everything at once
        if self._speech_ended_at is None:
            self._speech_ended_at = self._clock()
        self._awaiting = True
        await self._respond_when_ready()

    async def _deadline_passed(self) -> None:
        now = anyio.current_time()
        if self._turn_deadline is not None and now >= self._turn_deadline:
            log.info(
                "%s: the caller's turn reached %g s; it ends here",
                self._pipeline.name,
                self._pipeline.max_turn_s,
            )
            await self._finalize_recognition()
            await self._speech_stopped(0)
        if self._final_deadline is not None and now >= self._final_deadline:
            self._final_deadline = None
            await self._respond_when_ready(timed_out=True)
        self._move_deadlines()

    async def _respond_when_ready(self, *, timed_out: bool = False) -> None:
        """Answer the ended turn once its text is known (``timed_out``: no longer wait)."""
        if not self._awaiting or self._in_turn:
            return
        if self._partial.strip() and not timed_out:
            self._wait_for_final()  # the recogniser is still finishing this speech
            return
        parts = list(self._finals)
        if timed_out and self._partial.strip():
            parts.append(self._partial.strip())
        if not parts:
            if timed_out:  # nothing was recognised: noise, not words
                self._drop_speculation()
                self._awaiting = False
                self._speech_ended_at = None
                log.info("%s: speech without words; no answer", self._pipeline.name)
            else:
                self._wait_for_final()
            return
        self._start_response(" ".join(parts), used_final=bool(self._finals))

    def _wait_for_final(self) -> None:
        if self._final_deadline is None:
            self._final_deadline = anyio.current_time() + self._pipeline.final_timeout_s
            self._move_deadlines()

    def _start_response(self, text: str, *, used_final: bool) -> None:
        assert self._tasks is not None
        response = _Response(
            text,
            speech_ended_at=self._speech_ended_at,
            final_at=self._final_at if used_final else None,
        )
        self._awaiting = False
        self._finals, self._partial = [], ""
        self._final_at = self._speech_ended_at = None
        if self._final_deadline is not None:
            self._final_deadline = None
            self._move_deadlines()
        if self._confirm_speculation(response):
            return
        previous, self._current = self._current, response
        self._responses.append(response)
        self._tasks.start_soon(self._run_response, response, previous)

    # --- speculative turns: an answer prepared before the turn has ended -----------------------

    def _speculate(self, text: str) -> None:
        """The recogniser expects the turn to end with ``text``: start answering it, silently."""
        self._drop_speculation()
        if not self._in_turn or not text.strip() or self._tasks is None:
            return
        response = _Response(text.strip(), speech_ended_at=None, final_at=None)
        response.confirmed = anyio.Event()
        previous, self._current = self._current, response
        self._speculation = (response, previous)
        self._responses.append(response)
        self._tasks.start_soon(self._run_response, response, previous)

    def _confirm_speculation(self, answer: _Response) -> bool:
        """The turn ended and ``answer`` is due: the prepared answer speaks instead, if it
        answers the same words."""
        if self._speculation is None:
            return False
        response = self._speculation[0]
        stopped = response.done.is_set() or response.scope.cancel_called
        if stopped or response.user_text.split() != answer.user_text.split():
            self._drop_speculation()
            return False
        self._speculation = None
        response.speech_ended_at, response.final_at = answer.speech_ended_at, answer.final_at
        assert response.confirmed is not None
        response.confirmed.set()
        return True

    def _drop_speculation(self) -> None:
        """Forget the prepared answer: the caller went on, or said something else."""
        if self._speculation is None:
            return
        response, previous = self._speculation
        self._speculation = None
        response.withdrawn = response.cut_short = True
        response.heard_ms = 0
        response.scope.cancel()
        if response in self._responses:
            self._responses.remove(response)
        if self._current is response:
            self._current = previous

    async def _finalize_recognition(self) -> None:
        """The pipeline ends the turn by itself: the recogniser should say its last words now."""
        if not self._in_turn or self._recognition is None:
            return
        stt = self._pipeline.stt
        try:
            await stt.finalize(self._recognition)
        except Exception as exc:
            await self._report(stt.name, exc)

    def _withdraw(self, response: _Response) -> None:
        """Cancel an answer the caller has not heard any of, because they went on speaking;
        what they said joins their new words (unless a function already ran for it)."""
        response.withdrawn = response.cut_short = True  # and none of its text was heard
        response.heard_ms = 0
        response.scope.cancel()
        if not response.calls_started:
            self._responses.remove(response)
            self._finals.insert(0, response.user_text)

    # --- a response: the model, its speech ----------------------------------------------------

    def _messages(self) -> list[Message]:
        messages = list(self._seed)
        for response in self._responses:
            messages.extend(response.messages())
        return messages

    def _speech(self) -> Speech:
        """The speech of a new response (with a fresh converter: nothing of an interrupted
        one leaks into the next)."""
        pipeline, outbound = self._pipeline, self._take_outbound()
        if self._speech_stream is not None:
            timed = bool(pipeline.tts.capabilities & Capability.WORD_TIMINGS)
            return StreamingSpeech(
                self._speech_stream, timed, outbound, self._output_format, self._rate, self._clock
            )
        return SentenceSpeech(
            pipeline.tts,
            self._tts_format,
            self._config.voice,
            pipeline.max_sentence_chars,
            outbound,
            self._output_format,
            self._rate,
            self._clock,
        )

    async def _run_response(self, response: _Response, previous: _Response | None) -> None:
        try:
            if previous is not None:
                await previous.done.wait()  # its words are in the conversation first
            with response.scope:
                speech = response.speech = self._speech()
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._speak, response, speech)
                    try:
                        await self._think(response, speech)
                        response.llm_ended_at = self._clock()
                    finally:
                        speech.close()
            if not response.withdrawn:
                await self._finish(response)
        finally:
            if response.speech is not None:
                response.speech.discard()
            response.done.set()
            self._trace(response)

    def _trace(self, response: _Response) -> None:
        """The response's stages as spans of the call's trace (docs/operations.md)."""
        now, metrics = self._clock(), response.metrics()
        pipeline = self._pipeline
        record_operation(
            "omnivoice.stt.segment",
            *(response.speech_ended_at, response.final_at),
            now=now,
            **{
                "omnivoice.stt": pipeline.stt.name,
                "omnivoice.stt_final_ms": metrics["stt_final_ms"],
            },
        )
        record_operation(
            "omnivoice.llm.request",
            *(response.llm_started_at, response.llm_ended_at or now),
            now=now,
            **{
                "omnivoice.llm": pipeline.llm.name,
                "omnivoice.llm_first_token_ms": metrics["llm_first_token_ms"],
                "omnivoice.function_rounds": metrics["function_rounds"],
            },
        )
        tts_started_at = response.speech.started_at if response.speech is not None else None
        record_operation(
            "omnivoice.tts.synthesis",
            *(tts_started_at, response.tts_ended_at or now),
            now=now,
            **{
                "omnivoice.tts": pipeline.tts.name,
                "omnivoice.tts_first_audio_ms": metrics["tts_first_audio_ms"],
            },
        )

    async def _finish(self, response: _Response) -> None:
        if response.output_started:
            text = response.spoken_text()
            if text:
                await self._emit(Transcript(text, is_input=False, is_final=True))
            await self._emit(AudioChunk(response.tail, is_final=True))
        await self._emit(Usage(details={"pipeline": response.metrics()}))

    async def _think(self, response: _Response, speech: Speech) -> None:
        """The model's rounds: text to the speech, function calls run in between."""
        llm, config = self._pipeline.llm, self._config
        limit = self._pipeline.max_tool_rounds
        response.llm_started_at = self._clock()
        for index in range(limit + 1):
            await anyio.lowlevel.checkpoint()  # an interrupted response asks nothing more
            round_ = _Round()
            response.rounds.append(round_)
            tools = config.functions if index < limit else ()
            requested: list[ToolCall] = []
            try:
                stream = llm.stream(self._messages(), tools=tools, temperature=config.temperature)
                async with _closing(stream):
                    async for item in stream:
                        if response.first_token_at is None:
                            response.first_token_at = self._clock()
                        if isinstance(item, TextDelta):
                            await speech.write(index, item.text)
                        elif isinstance(item, ToolCall):
                            requested.append(item)
            except Exception as exc:
                await self._report(llm.name, exc)
                return  # what was written is still said
            await speech.end_round(index)
            if not requested:
                return
            if not tools:
                names = ", ".join(sorted({call.name for call in requested}))
                reason = (
                    f"after {limit} rounds of function calls in one turn"
                    if config.functions
                    else "though no functions are declared"
                )
                error = OmnivoiceError(f"{llm.name} called {names} {reason}; not run")
                await self._report(llm.name, error)
                return
            for call in requested:
                await self._call(response, round_, call)

    async def _call(self, response: _Response, round_: _Round, call: ToolCall) -> None:
        await response.until_confirmed()  # a speculative answer runs no function yet
        response.calls_started = True
        round_.calls.append(call)
        # Functions with side effects run to the end even if the caller interrupts.
        with anyio.CancelScope(shield=must_complete(self._config, call.name)):
            await self._emit(FunctionCall(call.id, call.name, _arguments(call.arguments)))
            outcome = await run_function_call(self._config, call.id, call.name, call.arguments)
            round_.outcomes[call.id] = outcome

    async def _speak(self, response: _Response, speech: Speech) -> None:
        """Synthesise the response's text as it comes, and hand its audio over."""

        async def say(text: str, audio: bytes, words: tuple[WordTiming, ...]) -> None:
            await self._say(response, text, audio, words)

        await response.until_confirmed()  # a speculative answer is written, not spoken
        try:
            response.tail = await speech.run(say)
        except Exception as exc:
            response.tts_ended_at = self._clock()
            await self._report(self._pipeline.tts.name, exc)
            response.cut_short = True  # only what was said counts
            response.scope.cancel()
            return
        response.tts_ended_at = self._clock()

    async def _say(
        self, response: _Response, text: str, audio: bytes, words: tuple[WordTiming, ...]
    ) -> None:
        separator = " " if response.output_started else ""
        response.output_started = True
        self._last_spoken = response
        if text:  # a piece of the response's transcript goes before its audio
            await self._emit(Transcript(separator + text, is_input=False))
        await self._emit(AudioChunk(audio, words=words))
        if response.first_audio_at is None:
            response.first_audio_at = self._clock()

    # --- audio conversion ---------------------------------------------------------------------

    def _converter(self, src: AudioFormat, dst: AudioFormat) -> StreamConverter | None:
        if src == dst:
            return None
        pipeline = self._pipeline
        return StreamConverter(src, dst, pipeline.codec, registry=pipeline.registry)

    def _take_outbound(self) -> StreamConverter | None:
        """A fresh converter per response: nothing of an interrupted one leaks into the next."""
        converter, self._spare_outbound = self._spare_outbound, None
        if converter is None:
            converter = self._converter(self._tts_format, self._output_format)
        return converter


def _extend(partial: str, text: str) -> str:
    """The caller's words so far, given the next partial transcript: it replaces the last
    (the segment so far, perhaps revised) unless it is a piece of new words after them."""
    if partial and text[:1].isspace() and not text.startswith(partial):
        return partial + text
    return text


def _arguments(text: str) -> Mapping[str, Any]:
    """The model's arguments for the ``FunctionCall`` event (invalid ones: empty; the
    function's outcome tells the model what was wrong)."""
    try:
        parsed = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
