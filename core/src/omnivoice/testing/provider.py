"""A realtime provider that a test scripts event by event (the bridge's and gateway's fake).

provider = ScriptedProvider(accepts=[TWILIO], produces=[TWILIO])
async with RealtimeBridge.for_twilio(provider, config) as bridge:
    session = provider.sessions[0]
    session.emit(AudioChunk(b"...", is_final=True))     # what the "model" says
    await session.wait_for_audio(160)                  # what the caller sent
    assert session.interrupts == [...]                  # what the bridge asked
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from omnivoice.audio.format import TWILIO, AudioFormat
from omnivoice.errors import OmnivoiceError
from omnivoice.realtime.provider import Provider, ProviderEvent
from omnivoice.realtime.types import HeardResponse, ProcessConfig
from omnivoice.registration import Capability

__all__ = ["ScriptedProvider", "ScriptedSession"]

_SCRIPT_CAPACITY = 1000


class ScriptedSession:
    """The provider side of one call: records what it gets, yields what the test says."""

    def __init__(
        self,
        config: ProcessConfig,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> None:
        self.config = config
        self.input_format = input_format
        self.output_format = output_format
        self.received = bytearray()
        """The caller's audio, as the session got it."""
        self.audio_ended = anyio.Event()
        self.interrupts: list[int] = []
        """``heard_ms`` of each ``interrupt()``."""
        self.heard: list[tuple[HeardResponse, ...]] = []
        """``responses`` of each ``interrupt()``."""
        self.interrupted = anyio.Event()
        self._received_changed = anyio.Event()
        self._tx: MemoryObjectSendStream[ProviderEvent | Exception]
        self._rx: MemoryObjectReceiveStream[ProviderEvent | Exception]
        self._tx, self._rx = anyio.create_memory_object_stream[ProviderEvent | Exception](
            _SCRIPT_CAPACITY
        )

    # --- driven by the test ---------------------------------------------------------------

    def emit(self, *events: ProviderEvent | Exception) -> None:
        """Queue events (an exception is raised by the session when reached)."""
        for event in events:
            self._tx.send_nowait(event)

    def end(self) -> None:
        """The provider ends the session after what was emitted."""
        self._tx.close()

    def close(self) -> None:
        self._tx.close()
        self._rx.close()

    async def wait_for_audio(self, n_bytes: int) -> bytes:
        """Until ``n_bytes`` of the caller's audio have arrived; all of it so far."""
        while len(self.received) < n_bytes:
            changed = self._received_changed
            await changed.wait()
        return bytes(self.received)

    # --- the RealtimeSession contract -------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[ProviderEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[ProviderEvent]:
        async with self._rx:
            async for event in self._rx:
                if isinstance(event, Exception):
                    raise event
                yield event

    async def interrupt(self, heard_ms: int, *, responses: Sequence[HeardResponse] = ()) -> None:
        self.interrupts.append(heard_ms)
        self.heard.append(tuple(responses))
        self.interrupted.set()

    async def consume(self, audio_in: AsyncIterable[bytes]) -> None:
        async for chunk in audio_in:
            self.received += chunk
            self._received_changed.set()
            self._received_changed = anyio.Event()
        self.audio_ended.set()


class ScriptedProvider(Provider):
    """A provider whose sessions are :class:`ScriptedSession` objects, scripted by the test.

    ``connect_error`` makes every session fail to open with it; ``consume_audio=False``
    leaves the caller's audio unread (a provider that stalls). It declares speech events,
    interruption and history unless ``capabilities`` says otherwise.
    """

    def __init__(
        self,
        name: str = "scripted",
        *,
        accepts: Iterable[AudioFormat] = (TWILIO,),
        produces: Iterable[AudioFormat] = (TWILIO,),
        capabilities: Capability = (
            Capability.SPEECH_EVENTS | Capability.INTERRUPTION | Capability.HISTORY
        ),
        connect_error: OmnivoiceError | None = None,
        consume_audio: bool = True,
    ) -> None:
        self.name = name
        self.accepts = tuple(accepts)
        self.produces = tuple(produces)
        self.capabilities = capabilities
        self.connect_error = connect_error
        self.consume_audio = consume_audio
        self.sessions: list[ScriptedSession] = []
        self.session_started = anyio.Event()
        self.closed = False

    @asynccontextmanager
    async def open_session(
        self,
        audio_in: AsyncIterable[bytes],
        config: ProcessConfig,
        *,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> AsyncIterator[ScriptedSession]:
        if self.connect_error is not None:
            raise self.connect_error
        session = ScriptedSession(config, input_format, output_format)
        self.sessions.append(session)
        self.session_started.set()
        try:
            async with anyio.create_task_group() as tasks:
                if self.consume_audio:
                    tasks.start_soon(session.consume, audio_in)
                yield session
                tasks.cancel_scope.cancel()
        finally:
            session.close()

    async def aclose(self) -> None:
        self.closed = True
