"""A text-mode gateway for ``omnivoice serve support.elevenlabs_app:config`` in tests.

ElevenLabs speaks (``ELEVENLABS_API_URL`` points it at the fake, with
``ELEVENLABS_API_KEY``); the recogniser and the model are scripted, so that a test knows
what each turn says:

- the recogniser finds each utterance of the caller by its energy and calls it
  ``caller turn N``;
- the model streams its answers word by word: a greeting to the first turn; to the
  second, a long answer it never finishes (it stops mid-sentence and waits: only a
  barge-in ends it); to later turns, the last thing it said as it was given back to it
  in the conversation, so that a test reads the model's history in what is spoken.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio

from omnivoice.audio import TWILIO, AudioFormat
from omnivoice.audio.vad import EnergyVAD
from omnivoice.gateway.config import Config, PipelineMode, TextConfig
from omnivoice.pipeline import (
    LanguageModel,
    Message,
    SpeechToText,
    STTEvent,
    TextDelta,
    ToolCall,
)
from omnivoice.realtime import FunctionDeclaration, Transcript
from omnivoice.realtime.provider import SpeechStarted, SpeechStopped
from omnivoice.registration import Capability

GREETING = "Hello, thank you for calling Acme. We open at nine."
ANSWER = (
    "On Sundays we open at ten in the morning and close at four in the afternoon, and on "
    "public holidays we open at noon and close at five in the evening. "
    "On weekdays we open at eight, and on"
)
"""The second answer, as far as the model gets before it stops to think (forever)."""
WORD_S = 0.02
"""How long the model takes per word."""


class EnergySTT(SpeechToText):
    """A recogniser with endpointing that hears no words: each utterance is its number."""

    name = "scripted-stt"
    accepts = (TWILIO,)
    capabilities = Capability.USER_TRANSCRIPTS | Capability.SPEECH_EVENTS

    def transcribe(
        self, audio_in: AsyncIterable[bytes], *, audio_format: AudioFormat
    ) -> AbstractAsyncContextManager[AsyncIterator[STTEvent]]:
        return _recognise(audio_in, audio_format)


@asynccontextmanager
async def _recognise(
    audio_in: AsyncIterable[bytes], audio_format: AudioFormat
) -> AsyncIterator[AsyncIterator[STTEvent]]:
    vad = EnergyVAD(audio_format, end_silence_ms=300)
    tx, rx = anyio.create_memory_object_stream[STTEvent](64)

    async def listen() -> None:
        turn = 0
        with tx:
            async for chunk in audio_in:
                for change in vad.process(chunk):
                    if change.speaking:
                        await tx.send(SpeechStarted())
                        continue
                    turn += 1
                    await tx.send(Transcript(f"caller turn {turn}", True, True))
                    await tx.send(SpeechStopped(change.trailing_silence_ms))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(listen)
        with rx:
            yield rx
        tasks.cancel_scope.cancel()


class ScriptedLLM(LanguageModel):
    """Answers by the number of the caller's turn (see the module's docstring)."""

    name = "scripted-llm"
    capabilities = Capability.STREAMING

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[FunctionDeclaration] = (),
        temperature: float | None = None,
    ) -> AsyncIterator[TextDelta | ToolCall]:
        turns = sum(1 for m in messages if m.role == "user")
        return self._answer(turns, messages)

    async def _answer(
        self, turns: int, messages: Sequence[Message]
    ) -> AsyncIterator[TextDelta | ToolCall]:
        if turns == 1:
            text, hold = GREETING, False
        elif turns == 2:
            text, hold = ANSWER, True
        else:
            said = [m.content for m in messages if m.role == "assistant"][-1]
            text, hold = f"Sorry. I had said: {said}", False
        for index, word in enumerate(text.split(" ")):
            await anyio.sleep(WORD_S)
            yield TextDelta(word if index == 0 else " " + word)
        if hold:
            await anyio.sleep_forever()


config = Config(
    mode=PipelineMode.TEXT,
    stt_provider=EnergySTT(),
    llm_provider=ScriptedLLM(),
    tts_provider="elevenlabs",
    text=TextConfig(
        instructions="You are Acme's phone agent.",
        voice="voice-1",
        options={"end_silence_ms": 400},
    ),
)
