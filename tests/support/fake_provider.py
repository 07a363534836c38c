"""An in-process realtime provider that a test scripts event by event."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import asynccontextmanager

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from omnivoice.audio import TWILIO, AudioFormat
from omnivoice.errors import OmnivoiceError
from omnivoice.realtime import ProcessConfig
from omnivoice.realtime.provider import Provider, ProviderEvent


class FakeSession:
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
        self.audio_ended = anyio.Event()
        self.interrupts: list[int] = []
        self.interrupted = anyio.Event()
        self._received_changed = anyio.Event()
        self._tx: MemoryObjectSendStream[ProviderEvent | Exception]
        self._rx: MemoryObjectReceiveStream[ProviderEvent | Exception]
        self._tx, self._rx = anyio.create_memory_object_stream[ProviderEvent | Exception](1000)

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
        while len(self.received) < n_bytes:
            self._received_changed = anyio.Event()
            await self._received_changed.wait()
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

    async def interrupt(self, heard_ms: int) -> None:
        self.interrupts.append(heard_ms)
        self.interrupted.set()

    async def consume(self, audio_in: AsyncIterable[bytes]) -> None:
        async for chunk in audio_in:
            self.received += chunk
            self._received_changed.set()
        self.audio_ended.set()


class FakeProvider(Provider):
    """A provider whose sessions are :class:`FakeSession` objects."""

    def __init__(
        self,
        name: str = "fake",
        *,
        accepts: Iterable[AudioFormat] = (TWILIO,),
        produces: Iterable[AudioFormat] = (TWILIO,),
        connect_error: OmnivoiceError | None = None,
        consume_audio: bool = True,
    ) -> None:
        self.name = name
        self.accepts = tuple(accepts)
        self.produces = tuple(produces)
        self.connect_error = connect_error
        self.consume_audio = consume_audio
        self.sessions: list[FakeSession] = []
        self.session_started = anyio.Event()
        self.closed = False

    @asynccontextmanager
    async def process_audio_stream(
        self,
        audio_in: AsyncIterable[bytes],
        config: ProcessConfig,
        *,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> AsyncIterator[FakeSession]:
        if self.connect_error is not None:
            raise self.connect_error
        session = FakeSession(config, input_format, output_format)
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
