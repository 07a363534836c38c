"""A gateway configuration for ``omnivoice serve support.scripted_app:config`` in tests.

Its provider answers each utterance of the caller with the caller's own audio (the echo
provider underneath) and with scripted transcripts, so a test knows exactly what the call
record must hold.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import asynccontextmanager

from omnivoice.audio import AudioFormat
from omnivoice.default_plugins.echo import EchoProvider
from omnivoice.gateway.config import Config, RealtimeConfig
from omnivoice.realtime import AudioChunk, HeardResponse, ProcessConfig, Transcript
from omnivoice.realtime.provider import Provider, ProviderEvent, RealtimeSession, SpeechStopped


class _Scripted:
    def __init__(self, inner: RealtimeSession, agent: str) -> None:
        self._inner = inner
        self._agent = agent

    def __aiter__(self) -> AsyncIterator[ProviderEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[ProviderEvent]:
        turn = 0
        async for event in self._inner:
            if isinstance(event, SpeechStopped):
                turn += 1
                yield event
                yield Transcript(f"caller turn {turn}", is_input=True, is_final=True)
            elif isinstance(event, AudioChunk):
                yield Transcript(f"{self._agent} reply {turn}", is_input=False, is_final=True)
                yield event
            else:
                yield event

    async def interrupt(self, heard_ms: int, *, responses: Sequence[HeardResponse] = ()) -> None:
        await self._inner.interrupt(heard_ms, responses=responses)


class ScriptedProvider(Provider):
    name = "scripted"
    accepts = EchoProvider.accepts
    produces = EchoProvider.produces
    capabilities = EchoProvider.capabilities

    def __init__(self) -> None:
        self._echo = EchoProvider(pause_ms=400)

    @asynccontextmanager
    async def open_session(
        self,
        audio_in: AsyncIterable[bytes],
        config: ProcessConfig,
        *,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> AsyncIterator[RealtimeSession]:
        stream = self._echo.process_audio_stream(
            audio_in, config, input_format=input_format, output_format=output_format
        )
        async with stream as session:
            yield _Scripted(session, config.instructions or "agent")


config = Config(realtime=RealtimeConfig(provider=ScriptedProvider(), instructions="Agent"))
