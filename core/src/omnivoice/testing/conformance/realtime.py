"""The realtime provider conformance suite.

A plugin author runs it against their provider with one fixture::

    from omnivoice.testing import RealtimeDriver, RealtimeProviderConformance

    class TestAcme(RealtimeProviderConformance):
        @pytest.fixture
        async def driver(self):
            async with FakeAcmeServer() as fake:        # the vendor, on localhost
                yield AcmeDriver(AcmeProvider(url=fake.url), fake)

The driver (:class:`RealtimeDriver`) tells the suite how to make the provider answer; its
defaults speak to the provider (a voiced tone, then quiet), which is all a provider that
answers speech needs. Every session the suite opens is checked against the contract
(``docs/providers/contract.md``); the tests of a capability the provider does not declare
are skipped, saying so.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar, TypeVar

import anyio
import pytest

from omnivoice.audio.format import AudioFormat, Encoding
from omnivoice.errors import AuthFailedError, ConnectionFailedError, UnsupportedFormatError
from omnivoice.realtime.provider import FunctionCall, Provider, SpeechStarted
from omnivoice.realtime.types import (
    AudioChunk,
    ConversationItem,
    FunctionDeclaration,
    ProcessConfig,
)
from omnivoice.registration import Capability
from omnivoice.testing.audio import silence, tone
from omnivoice.testing.probe import SessionProbe, open_probe

__all__ = ["RealtimeDriver", "RealtimeProviderConformance"]

T = TypeVar("T")


class RealtimeDriver:
    """How the conformance suite makes one provider do things; subclass it for yours.

    ``provider`` is the provider under test (pointed at its fake vendor). Override what
    your provider needs: :meth:`respond` (by default the caller speaks), and, for the
    capabilities it declares, :meth:`barge_in`, :meth:`call_function` and
    :meth:`function_output`; :meth:`failing` gives providers that cannot connect.
    """

    timeout: float = 15.0
    """Seconds the suite waits for what it asked for."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    def speech(self, audio_format: AudioFormat) -> bytes:
        """Caller audio that makes the provider answer once: 600 ms of a voiced tone,
        then a second of quiet (longer than any endpointer waits)."""
        return tone(600, audio_format) + silence(1000, audio_format)

    async def respond(self, probe: SessionProbe, *, hold: bool = False) -> None:
        """Make the provider answer once. With ``hold``, the answer should still be going
        (audio still to come) until the session is interrupted, if the provider can.

        The default: the caller speaks (:meth:`speech`)."""
        await probe.send(self.speech(probe.input_format))

    async def barge_in(self, probe: SessionProbe) -> None:
        """Make the provider hear the caller speak (for ``SPEECH_EVENTS``): by default,
        600 ms of the voiced tone."""
        await probe.send(tone(600, probe.input_format))

    async def call_function(
        self, probe: SessionProbe, name: str, arguments: Mapping[str, Any]
    ) -> None:
        """Make the model call ``name`` with ``arguments`` (for ``FUNCTION_CALLING``)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement call_function: the provider declares "
            "FUNCTION_CALLING"
        )

    async def function_output(self, probe: SessionProbe, call_id: str) -> str:
        """The JSON text the vendor received as the answer to ``call_id``."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement function_output: the provider declares "
            "FUNCTION_CALLING"
        )

    def failing(self, problem: str) -> Provider | None:
        """A provider that cannot open a session because of ``problem``: ``"auth"`` (the
        vendor refuses the key: ``AuthFailedError``) or ``"unreachable"`` (nothing
        answers: ``ConnectionFailedError``); ``None`` if there is none to make."""
        return None


async def _within(driver: RealtimeDriver, action: Awaitable[T], what: str) -> T:
    """Run one of the driver's actions, at most ``driver.timeout`` seconds: a provider
    that stops reading the caller's audio must fail the test, not hang it."""
    with anyio.move_on_after(driver.timeout):
        return await action
    raise AssertionError(
        f"{what} did not finish within {driver.timeout:g} s (is the provider "
        "still reading the caller's audio?)"
    )


def _requires(driver: RealtimeDriver, capability: Capability) -> None:
    if not driver.provider.capabilities & capability:
        pytest.skip(f"{driver.provider.name} does not declare {capability.names[0].upper()}")


def _undeclared(offered: tuple[AudioFormat, ...]) -> AudioFormat:
    for rate in (11025, 32000, 8000, 16000, 24000, 48000):
        for encoding in Encoding:
            candidate = AudioFormat(encoding, rate)
            if candidate not in offered:
                return candidate
    raise AssertionError("the provider declares every format there is")  # pragma: no cover


_FAILURES = (("auth", AuthFailedError), ("unreachable", ConnectionFailedError))


class _LookupError(Exception):
    """The suite's own error, raised inside a session's block."""


@pytest.mark.anyio
class RealtimeProviderConformance:
    """The contract of a realtime provider, as tests. Subclass it and define ``driver``."""

    FUNCTION: ClassVar[FunctionDeclaration] = FunctionDeclaration(
        "lookup_order",
        "Find an order by its number",
        {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]},
    )
    ARGUMENTS: ClassVar[Mapping[str, Any]] = {"order": "A-1"}
    RESULT: ClassVar[Mapping[str, Any]] = {"status": "shipped"}

    @pytest.fixture
    def driver(self) -> RealtimeDriver:
        raise NotImplementedError("define a `driver` fixture that returns a RealtimeDriver")

    # --- declarations ------------------------------------------------------------------

    async def test_it_declares_its_name_formats_and_capabilities(
        self, driver: RealtimeDriver
    ) -> None:
        provider = driver.provider
        assert isinstance(provider.name, str)
        assert provider.name
        for formats in (provider.accepts, provider.produces):
            assert isinstance(formats, tuple)
            assert formats, "a provider declares the formats it takes and gives"
            assert all(isinstance(f, AudioFormat) for f in formats)
        assert isinstance(provider.capabilities, Capability)

    # --- opening -----------------------------------------------------------------------

    async def test_it_opens_in_its_preferred_formats_without_format_arguments(
        self, driver: RealtimeDriver
    ) -> None:
        provider = driver.provider
        tx, rx = anyio.create_memory_object_stream[bytes](8)
        with tx, rx, anyio.fail_after(driver.timeout):
            async with provider.process_audio_stream(rx, ProcessConfig()) as session:
                assert callable(session.interrupt)
                assert aiter(session) is not None

    async def test_an_undeclared_format_is_refused_on_entry(self, driver: RealtimeDriver) -> None:
        provider = driver.provider
        tx, rx = anyio.create_memory_object_stream[bytes](8)
        bad = _undeclared(provider.accepts)
        with tx, rx, pytest.raises(UnsupportedFormatError):
            async with provider.process_audio_stream(rx, ProcessConfig(), input_format=bad):
                pass

    async def test_every_declared_format_opens(self, driver: RealtimeDriver) -> None:
        provider = driver.provider
        # Each declared format, with the same one the other way when it is declared too
        # (a provider may need related formats both ways), else the preferred one.
        pairs = {
            (f, f if f in provider.produces else provider.produces[0]) for f in provider.accepts
        }
        pairs |= {
            (f if f in provider.accepts else provider.accepts[0], f) for f in provider.produces
        }
        for input_format, output_format in sorted(pairs, key=str):
            async with open_probe(
                provider,
                input_format=input_format,
                output_format=output_format,
                within=driver.timeout,
            ):
                pass

    async def test_a_failed_start_raises_a_typed_error(self, driver: RealtimeDriver) -> None:
        tried = 0
        for problem, expected in (
            ("auth", AuthFailedError),
            ("unreachable", ConnectionFailedError),
        ):
            provider = driver.failing(problem)
            if provider is None:
                continue
            tried += 1
            with anyio.fail_after(driver.timeout), pytest.raises(expected):
                async with open_probe(provider):
                    pass
        if not tried:
            pytest.skip("the driver makes no failing provider (RealtimeDriver.failing)")

    # --- a conversation ----------------------------------------------------------------

    async def test_an_answer_follows_the_grammar(self, driver: RealtimeDriver) -> None:
        async with open_probe(driver.provider, within=driver.timeout) as probe:
            await _within(driver, driver.respond(probe), "the driver's respond")
            final = await probe.wait_for(AudioChunk, lambda c: c.is_final)
            audio = b"".join(c.audio for c in probe.of_type(AudioChunk))
            assert audio, "an answer has audio"
            assert final.is_final
            assert probe.checker is not None
            assert probe.checker.completed >= 1

    async def test_interrupt_ends_the_answer_in_progress(self, driver: RealtimeDriver) -> None:
        _requires(driver, Capability.INTERRUPTION)
        async with open_probe(driver.provider, within=driver.timeout) as probe:
            await _within(driver, driver.respond(probe, hold=True), "the driver's respond")
            first = await probe.wait_for(AudioChunk)
            start = probe.events.index(first)
            if not first.is_final:
                await probe.interrupt(heard_ms=0)
                # Its final chunk ends it (what is still on its way is discarded).
                await probe.wait_for(AudioChunk, lambda c: c.is_final, after=start)
            assert probe.checker is not None
            assert not probe.checker.response_open

    async def test_interrupt_with_nothing_to_stop_is_harmless(self, driver: RealtimeDriver) -> None:
        async with open_probe(driver.provider, within=driver.timeout) as probe:
            await probe.interrupt(heard_ms=0, responses=())
            await _within(driver, driver.respond(probe), "the driver's respond")
            await probe.wait_for(AudioChunk, lambda c: c.is_final)

    async def test_it_reports_the_caller_speaking(self, driver: RealtimeDriver) -> None:
        _requires(driver, Capability.SPEECH_EVENTS)
        async with open_probe(driver.provider, within=driver.timeout) as probe:
            await _within(driver, driver.barge_in(probe), "the driver's barge_in")
            await probe.wait_for(SpeechStarted)

    async def test_a_function_call_is_run_and_answered(self, driver: RealtimeDriver) -> None:
        _requires(driver, Capability.FUNCTION_CALLING)
        calls: list[tuple[str, str, Mapping[str, Any]]] = []

        def handler(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
            calls.append((call_id, name, dict(arguments)))
            return dict(self.RESULT)

        config = ProcessConfig(functions=[self.FUNCTION], on_function_call=handler)
        async with open_probe(driver.provider, config, within=driver.timeout) as probe:
            await _within(
                driver,
                driver.call_function(probe, self.FUNCTION.name, self.ARGUMENTS),
                "the driver's call_function",
            )
            call = await probe.wait_for(FunctionCall)
            assert call.name == self.FUNCTION.name
            assert dict(call.arguments) == dict(self.ARGUMENTS)
            output = await _within(
                driver, driver.function_output(probe, call.call_id), "the driver's function_output"
            )
        assert [(name, args) for _, name, args in calls] == [(call.name, dict(self.ARGUMENTS))]
        assert calls[0][0] == call.call_id
        assert json.loads(output) == dict(self.RESULT)

    async def test_it_takes_over_a_conversation(self, driver: RealtimeDriver) -> None:
        _requires(driver, Capability.HISTORY)
        history = (
            ConversationItem("user", "Hello, is the shop open today?"),
            ConversationItem("agent", "Yes, until six."),
        )
        config = ProcessConfig(history=history)
        async with open_probe(driver.provider, config, within=driver.timeout) as probe:
            await _within(driver, driver.respond(probe), "the driver's respond")
            await probe.wait_for(AudioChunk, lambda c: c.is_final)

    # --- the end -----------------------------------------------------------------------

    async def test_the_caller_hanging_up_ends_its_events(self, driver: RealtimeDriver) -> None:
        async with open_probe(driver.provider, within=driver.timeout) as probe:
            await _within(driver, driver.respond(probe), "the driver's respond")
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
            probe.end_audio()
            await probe.wait_ended()
        assert probe.error is None, f"the session's iteration raised {probe.error!r}"

    async def test_leaving_in_the_middle_of_an_answer_ends_the_session(
        self, driver: RealtimeDriver
    ) -> None:
        with anyio.fail_after(driver.timeout):
            async with open_probe(driver.provider, check=False) as probe:
                await _within(driver, driver.respond(probe, hold=True), "the driver's respond")
                await probe.wait_for(AudioChunk)
            # Leaving cancelled everything it started: nothing is left waiting.

    async def test_an_error_of_the_callers_code_leaves_as_itself(
        self, driver: RealtimeDriver
    ) -> None:
        tx, rx = anyio.create_memory_object_stream[bytes](8)
        with tx, rx, anyio.fail_after(driver.timeout), pytest.raises(_LookupError):
            async with driver.provider.process_audio_stream(rx, ProcessConfig()):
                raise _LookupError("the caller's own code failed")

    async def test_aclose_can_be_called_twice(self, driver: RealtimeDriver) -> None:
        await driver.provider.aclose()
        await driver.provider.aclose()
