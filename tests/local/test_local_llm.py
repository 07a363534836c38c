"""The ``local`` LLM provider: a deterministic rule-based responder, not a language model."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence

import pytest

from omnivoice.pipeline import Message, TextDelta, ToolCall
from omnivoice.realtime import FunctionDeclaration
from omnivoice_local import CURRENT_TIME_TOOL, DEMO_CALLER_SCRIPT, LocalResponder

pytestmark = pytest.mark.anyio

TOOLS = (CURRENT_TIME_TOOL,)


async def answer(
    messages: Sequence[Message], tools: Sequence[FunctionDeclaration] = TOOLS
) -> list[TextDelta | ToolCall]:
    return [item async for item in LocalResponder().stream(messages, tools=tools)]


async def say(text: str, tools: Sequence[FunctionDeclaration] = TOOLS) -> str:
    items = await answer([Message("user", text)], tools)
    assert all(isinstance(item, TextDelta) for item in items)
    return "".join(item.text for item in items if isinstance(item, TextDelta))


def time_call(number: int = 1) -> ToolCall:
    return ToolCall(id=f"local-call-{number}", name="current_time", arguments="{}")


async def test_the_answer_streams_word_by_word() -> None:
    items = await answer([Message("user", "Hello there")])
    texts = [item.text for item in items if isinstance(item, TextDelta)]
    assert len(texts) == len(items) > 5
    assert texts[0] == "Hello!"
    for text in texts[1:]:  # one word each, after its space
        assert text.startswith(" ")
        assert " " not in text[1:]
        assert text.strip()


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("Hello, who am I speaking with?", "Hello! This is the offline demo assistant."),
        ("Good morning", "Hello!"),
        ("Thanks a lot.", "You are welcome. Is there anything else?"),
        ("Thank you, that is all. Goodbye.", "You are welcome. Goodbye!"),
        ("Can you book a table for dinner?", "Sorry, I did not catch that."),
        ("", "Sorry, I did not catch that."),
    ],
)
async def test_intents(said: str, expected: str) -> None:
    assert (await say(said)).startswith(expected)


async def test_the_demo_script_gets_an_answer_of_each_kind() -> None:
    greeting, time_question, request, goodbye = DEMO_CALLER_SCRIPT
    assert "demo assistant" in await say(greeting)
    assert await answer([Message("user", time_question)]) == [time_call()]
    assert "did not catch" in await say(request)
    assert "Goodbye" in await say(goodbye)


async def test_a_time_question_calls_the_function_then_answers_from_its_result() -> None:
    conversation = [Message("system", "Be brief."), Message("user", "Hello, what time is it?")]
    (call,) = await answer(conversation)
    assert call == time_call()
    assert isinstance(call, ToolCall)
    assert json.loads(call.arguments) == {}
    conversation += [
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", json.dumps("2025-01-31T15:05:00"), tool_call_id=call.id),
    ]
    assert await answer(conversation) == [
        TextDelta("It"),
        TextDelta(" is"),
        TextDelta(" 3:05"),
        TextDelta(" PM."),
    ]


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (json.dumps({"time": "09:30"}), "It is 9:30 AM."),
        (json.dumps({"now": "2025-01-31T00:10:59+01:00"}), "It is 12:10 AM."),
        (json.dumps("half past nine"), "It is half past nine."),
        ("12:00", "It is 12:00 PM."),  # not JSON: taken as text
        (json.dumps({"error": "cancelled: the caller interrupted"}), "Sorry, I could not read"),
        (json.dumps(""), "Sorry, I could not read"),
    ],
)
async def test_the_time_is_said_from_the_function_result(result: str, expected: str) -> None:
    conversation = [
        Message("user", "What time is it?"),
        Message("assistant", "", tool_calls=(time_call(),)),
        Message("tool", result, tool_call_id=time_call().id),
    ]
    items = await answer(conversation)
    assert "".join(item.text for item in items if isinstance(item, TextDelta)).startswith(expected)


async def test_without_the_function_it_says_it_has_no_clock() -> None:
    other = FunctionDeclaration("hang_up")
    assert "no clock" in await say("What time is it?", tools=(other,))
    assert "no clock" in await say("What time is it?", tools=())


async def test_each_call_of_a_conversation_has_its_own_id() -> None:
    conversation = [
        Message("user", "What time is it?"),
        Message("assistant", "", tool_calls=(time_call(1),)),
        Message("tool", '"10:00"', tool_call_id="local-call-1"),
        Message("assistant", "It is 10:00 AM."),
        Message("user", "Sorry, what time did you say?"),
    ]
    assert await answer(conversation) == [time_call(2)]


async def test_a_result_of_another_function_gets_the_fallback() -> None:
    conversation = [
        Message("user", "What time is it?"),
        Message("assistant", "", tool_calls=(ToolCall("x", "lookup", "{}"),)),
        Message("tool", '"done"', tool_call_id="x"),
    ]
    assert (await say_items(conversation)).startswith("Sorry, I did not catch that.")


async def say_items(conversation: Sequence[Message]) -> str:
    items = await answer(conversation)
    return "".join(item.text for item in items if isinstance(item, TextDelta))


async def test_the_same_conversation_gets_the_same_answer() -> None:
    for text in [*DEMO_CALLER_SCRIPT, "something else entirely"]:
        conversation = [Message("user", text)]
        assert await answer(conversation) == await answer(conversation)


async def test_closing_the_stream_early_stops_it() -> None:
    stream = LocalResponder().stream([Message("user", "Hello")], tools=TOOLS)
    assert isinstance(stream, AsyncGenerator)
    assert await anext(stream) == TextDelta("Hello!")
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_temperature_and_instructions_change_nothing() -> None:
    plain = await answer([Message("user", "Hello")])
    steered = [
        item
        async for item in LocalResponder().stream(
            [Message("system", "Answer in French."), Message("user", "Hello")],
            tools=TOOLS,
            temperature=1.5,
        )
    ]
    assert steered == plain
