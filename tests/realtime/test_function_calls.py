"""Function calls through ProcessConfig.on_function_call."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from omnivoice.realtime import FunctionDeclaration, ProcessConfig
from omnivoice.realtime.functions import must_complete, run_function_call

pytestmark = pytest.mark.anyio


def config(handler: Any, **options: Any) -> ProcessConfig:
    return ProcessConfig(on_function_call=handler, **options)


async def test_a_plain_handler_runs_in_a_worker_thread() -> None:
    seen: list[tuple[str, str, Mapping[str, Any], bool]] = []

    def lookup(call_id: str, name: str, args: Mapping[str, Any]) -> dict[str, str]:
        seen.append((call_id, name, args, threading.current_thread() is threading.main_thread()))
        return {"status": "shipped"}

    outcome = await run_function_call(config(lookup), "c1", "lookup", '{"order_id": "42"}')
    assert outcome.ok
    assert json.loads(outcome.output) == {"status": "shipped"}
    assert seen == [("c1", "lookup", {"order_id": "42"}, False)]


async def test_an_async_handler_is_awaited() -> None:
    async def lookup(call_id: str, name: str, args: Mapping[str, Any]) -> list[int]:
        await anyio.lowlevel.checkpoint()
        return [1, 2]

    outcome = await run_function_call(config(lookup), "c2", "lookup", {"x": 1})
    assert (outcome.ok, outcome.output) == (True, "[1, 2]")


async def test_an_exception_goes_back_to_the_model_as_an_error() -> None:
    async def broken(call_id: str, name: str, args: Mapping[str, Any]) -> None:
        raise LookupError("no such order")

    outcome = await run_function_call(config(broken), "c3", "lookup", "{}")
    assert not outcome.ok
    assert outcome.error == "LookupError: no such order"


async def test_a_slow_handler_times_out() -> None:
    release = anyio.Event()

    async def slow(call_id: str, name: str, args: Mapping[str, Any]) -> None:
        await release.wait()

    outcome = await run_function_call(config(slow, function_timeout=0.05), "c4", "f", "{}")
    assert outcome.error == "timed out after 0.05 s"


async def test_a_slow_plain_handler_times_out_too() -> None:
    release = threading.Event()

    def slow(call_id: str, name: str, args: Mapping[str, Any]) -> None:
        release.wait(5)

    try:
        outcome = await run_function_call(config(slow, function_timeout=0.05), "c5", "f", "{}")
    finally:
        release.set()
    assert outcome.error == "timed out after 0.05 s"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [("{oops", "not valid JSON"), ("[1]", "must be a JSON object")],
)
async def test_bad_arguments_are_reported(arguments: str, message: str) -> None:
    outcome = await run_function_call(config(lambda *a: None), "c6", "f", arguments)
    assert message in (outcome.error or "")


async def test_no_handler_and_unserialisable_results_are_reported() -> None:
    outcome = await run_function_call(ProcessConfig(), "c7", "f", "")
    assert "no handler" in (outcome.error or "")
    outcome = await run_function_call(config(lambda *a: object()), "c8", "f", "")
    assert "not JSON" in (outcome.error or "")


async def test_cancellation_reaches_the_handler() -> None:
    started, cancelled = anyio.Event(), anyio.Event()

    async def handler(call_id: str, name: str, args: Mapping[str, Any]) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_function_call, config(handler), "c9", "f", "{}")
        await started.wait()
        tasks.cancel_scope.cancel()
    assert cancelled.is_set()


def test_must_complete_follows_the_declarations() -> None:
    cfg = ProcessConfig(
        functions=[
            FunctionDeclaration("place_order", must_complete=True),
            FunctionDeclaration("lookup"),
        ]
    )
    assert must_complete(cfg, "place_order")
    assert not must_complete(cfg, "lookup")
    assert not must_complete(cfg, "unknown")
