"""The realtime conformance suite fails providers that break the contract, and says why.

Each case is a small provider with one defect, run through the suite by pytest itself."""

from __future__ import annotations

import textwrap

import pytest

PROVIDER = """
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import pytest

from omnivoice.audio import TWILIO
from omnivoice.errors import AuthFailedError
from omnivoice.realtime import (
    AudioChunk, Capability, EventChannel, Provider, SpeechStarted, SpeechStopped,
    serve_session,
)
from omnivoice.testing import RealtimeDriver, RealtimeProviderConformance

DEFECT = "{defect}"


class Broken(Provider):
    name = "broken"
    accepts = produces = (TWILIO,)
    capabilities = Capability.SPEECH_EVENTS | Capability.INTERRUPTION

    def __init__(self, fail_start=False):
        self.fail_start = fail_start

    def open_session(self, audio_in, config, *, input_format, output_format):
        session = Session(audio_in, self.fail_start)
        return serve_session(session, session.run, events=session.events)


class Session:
    def __init__(self, audio_in, fail_start):
        self.events = EventChannel()
        self.audio_in = audio_in
        self.fail_start = fail_start
        self.stop = anyio.Event()

    def __aiter__(self):
        return aiter(self.events)

    async def interrupt(self, heard_ms, *, responses=()):
        if DEFECT != "deaf":
            self.stop.set()

    async def run(self, *, task_status):
        if self.fail_start:
            if DEFECT == "wrapped":
                raise ExceptionGroup("oops", [AuthFailedError("bad key"), ValueError("x")])
            raise AuthFailedError("bad key")
        task_status.started()
        async for chunk in self.audio_in:
            voiced = bool(chunk.strip(b"\\xff"))  # mu-law silence is all 0xff
            if voiced and not getattr(self, "spoke", False):
                self.spoke = True
                if DEFECT != "stopped-first":
                    await self.events.emit(SpeechStarted())
                await self.events.emit(SpeechStopped())
                await self.events.emit(AudioChunk(b"\\x01" * 160))
                if DEFECT == "deaf":
                    await anyio.sleep_forever()
                if DEFECT != "no-final":
                    await self.events.emit(AudioChunk(b"", is_final=True))
            elif not voiced:
                self.spoke = False


@pytest.fixture
def anyio_backend():
    return "asyncio"  # the suite's own backends are the rest of the test run's business


class Driver(RealtimeDriver):
    timeout = 1.0

    def failing(self, problem):
        return Broken(fail_start=True) if problem == "auth" else None


class TestBroken(RealtimeProviderConformance):
    @pytest.fixture
    def driver(self):
        return Driver(Broken())
"""


def run_suite(pytester: pytest.Pytester, defect: str) -> pytest.RunResult:
    pytester.makepyfile(test_broken=textwrap.dedent(PROVIDER).replace("{defect}", defect))
    return pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")


def test_a_correct_provider_passes(pytester: pytest.Pytester) -> None:
    outcomes = run_suite(pytester, "none").parseoutcomes()
    assert outcomes.get("failed", 0) == outcomes.get("errors", 0) == 0
    assert outcomes["passed"] == 13  # function calls and history are not declared: skipped


@pytest.mark.parametrize(
    ("defect", "failing", "rule"),
    [
        ("no-final", "test_an_answer_follows_the_grammar", "no final chunk"),
        ("stopped-first", "test_an_answer_follows_the_grammar", "speech-alternates"),
        # It answers, then stops reading the caller's audio (and ignores interrupt()).
        ("deaf", "test_interrupt_ends_the_answer_in_progress", "did not finish"),
        ("wrapped", "test_a_failed_start_raises_a_typed_error", "ExceptionGroup"),
    ],
)
def test_a_defect_fails_the_suite_naming_the_rule(
    pytester: pytest.Pytester, defect: str, failing: str, rule: str
) -> None:
    result = run_suite(pytester, defect)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1, result.stdout.str()
    failed = [line for line in result.stdout.lines if line.startswith("FAILED")]
    assert any(failing in line for line in failed), failed
    assert rule in result.stdout.str()
