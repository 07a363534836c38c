"""Driving one provider session in a test: the caller's audio in, its events collected.

    async with open_probe(provider, config) as probe:
        await probe.send(speech)                    # the caller speaks
        chunk = await probe.wait_for(AudioChunk, lambda c: c.is_final)
        await probe.interrupt(heard_ms=200)         # as the bridge would on barge-in
        probe.end_audio()                           # the caller hangs up
        await probe.wait_ended()

Every event goes through a :class:`~omnivoice.testing.SessionChecker` (unless
``check=False``): a broken rule of the contract fails the test where it happens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, overload

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from omnivoice.audio.format import AudioFormat, choose_format
from omnivoice.realtime.provider import Provider, ProviderEvent, RealtimeSession
from omnivoice.realtime.types import HeardResponse, ProcessConfig
from omnivoice.testing.checker import ContractViolation, SessionChecker

__all__ = ["SessionProbe", "open_probe"]

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
"""Seconds a probe waits for an event before the test fails (generous: a loaded machine
must not fail a test that asserts no timing)."""


class SessionProbe:
    """One open session under test: feed it the caller's audio, read what it yields."""

    def __init__(
        self,
        session: RealtimeSession,
        audio: MemoryObjectSendStream[bytes],
        input_format: AudioFormat,
        output_format: AudioFormat,
        checker: SessionChecker | None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.session = session
        self.input_format = input_format
        self.output_format = output_format
        self.checker = checker
        self.timeout = timeout
        self.events: list[ProviderEvent] = []
        self.ended = anyio.Event()
        self.error: BaseException | None = None
        """What the session's iteration raised, if it did (the contract says it should not)."""
        self.violation: ContractViolation | None = None
        """The first contract rule the session broke (collection stops there)."""
        self._audio = audio
        self._changed = anyio.Event()

    # --- the caller's side ------------------------------------------------------------------

    async def send(self, audio: bytes, *, chunk_ms: int = 20) -> None:
        """Send ``audio`` (in the input format) in ``chunk_ms`` pieces, as fast as taken."""
        step = max(self.input_format.bytes_per_frame(chunk_ms), self.input_format.bytes_per_sample)
        for start in range(0, len(audio), step):
            await self._audio.send(audio[start : start + step])

    async def send_audio(self, chunk: bytes) -> None:
        """Send one chunk as it is."""
        await self._audio.send(chunk)

    def end_audio(self) -> None:
        """The caller hangs up: the audio input ends."""
        self._audio.close()

    hang_up = end_audio

    async def interrupt(
        self, heard_ms: int = 0, responses: Sequence[HeardResponse] | None = None
    ) -> None:
        """Interrupt as the bridge does on barge-in (by default: the open response, heard
        for ``heard_ms``)."""
        if responses is None:
            responses = self.checker.heard(heard_ms) if self.checker is not None else ()
        if self.checker is not None:
            self.checker.interrupted()
        await self.session.interrupt(heard_ms, responses=responses)

    # --- what the session said --------------------------------------------------------------

    def of_type(self, kind: type[T]) -> list[T]:
        return [event for event in self.events if isinstance(event, kind)]

    @overload
    async def wait_for(
        self,
        kind: Callable[[ProviderEvent], bool],
        predicate: None = None,
        *,
        count: int = 1,
        after: int = 0,
    ) -> ProviderEvent: ...

    @overload
    async def wait_for(
        self,
        kind: type[T],
        predicate: Callable[[T], bool] | None = None,
        *,
        count: int = 1,
        after: int = 0,
    ) -> T: ...

    async def wait_for(
        self,
        kind: Any,
        predicate: Any = None,
        *,
        count: int = 1,
        after: int = 0,
    ) -> Any:
        """The ``count``-th event from index ``after`` on that is of ``kind`` (a type) and
        satisfies ``predicate`` (or that satisfies ``kind``, a predicate), waiting for it
        at most :attr:`timeout` seconds."""
        if isinstance(kind, type):
            cls = kind

            def matches(event: object) -> bool:
                return isinstance(event, cls) and (predicate is None or predicate(event))
        else:
            matches = kind
        with anyio.move_on_after(self.timeout):
            while True:
                found = [e for e in self.events[after:] if matches(e)]
                if len(found) >= count:
                    return found[count - 1]
                if self.violation is not None:
                    raise self.violation
                if self.ended.is_set():
                    raise AssertionError(
                        f"the session ended without it ({self.error!r}); events: {self.events}"
                    )
                await self._changed.wait()
        state = ""
        if self.checker is not None and self.checker.response_open:
            state = f"; response #{len(self.checker.responses)} is open (no final chunk)"
        raise AssertionError(
            f"waited {self.timeout:g} s for {getattr(kind, '__name__', kind)} #{count}{state}; "
            f"events so far: {self.events[-20:]}"
        )

    async def wait_ended(self) -> list[ProviderEvent]:
        """Until the session's events end (at most :attr:`timeout` seconds)."""
        with anyio.fail_after(self.timeout):
            await self.ended.wait()
        if self.violation is not None:
            raise self.violation
        return self.events

    async def _collect(self) -> None:
        try:
            async for event in self.session:
                if self.checker is not None:
                    self.checker.check(event)
                self.events.append(event)
                self._notify()
            if self.checker is not None:
                self.checker.end()
        except ContractViolation as violation:
            self.violation = violation
        except Exception as exc:
            self.error = exc
            if self.checker is not None:
                try:
                    self.checker.end(error=exc)
                except ContractViolation as violation:
                    self.violation = violation
        finally:
            self.ended.set()
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


@asynccontextmanager
async def open_probe(
    provider: Provider,
    config: ProcessConfig | None = None,
    *,
    input_format: AudioFormat | None = None,
    output_format: AudioFormat | None = None,
    collect: bool = True,
    check: bool = True,
    within: float = DEFAULT_TIMEOUT,
) -> AsyncIterator[SessionProbe]:
    """Open a session of ``provider`` (in its preferred formats unless given) and collect
    its events in the background while the block runs (unless ``collect`` is false); the
    probe's waits fail after ``within`` seconds.

    An exception of the block leaves as itself, not in an exception group; so does a
    broken contract rule (:class:`ContractViolation`) when ``check`` is on.
    """
    input_format = input_format or choose_format(provider.accepts, who=provider.name)
    output_format = output_format or choose_format(provider.produces, who=provider.name)
    checker = SessionChecker(output_format) if check else None
    tx, rx = anyio.create_memory_object_stream[bytes](64)
    failure: BaseException | None = None
    with tx, rx:
        stream = provider.process_audio_stream(
            rx, config or ProcessConfig(), input_format=input_format, output_format=output_format
        )
        async with stream as session, anyio.create_task_group() as tasks:
            probe = SessionProbe(session, tx, input_format, output_format, checker, within)
            if collect:
                tasks.start_soon(probe._collect)
            try:
                yield probe
            except BaseException as exc:
                failure = exc
            tasks.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if probe.violation is not None:
        raise probe.violation
