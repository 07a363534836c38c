"""The ``local`` LLM provider: a deterministic offline responder for demos and tests.

It is not a language model. A few intent rules read the caller's last message and choose
a fixed answer; asked the time, it calls the ``current_time`` function when the call
declares one, and answers from its result on the next round. That is enough for a whole
phone conversation without any service, one that exercises the pipeline's function
calling, and its answers are the same every time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence

import anyio.lowlevel

from omnivoice.pipeline.contracts import LanguageModel, Message, TextDelta, ToolCall
from omnivoice.realtime.types import FunctionDeclaration
from omnivoice.registration import Capability
from omnivoice_local.wer import words

__all__ = ["CURRENT_TIME_TOOL", "LocalResponder"]

CURRENT_TIME_TOOL = FunctionDeclaration(
    name="current_time",
    description="The current local time, as ISO 8601 text (for example 2025-01-31T15:05).",
)
"""The function :class:`LocalResponder` calls when asked the time; declare it in
``ProcessConfig.functions`` with a handler that returns the time (a string, or an object
with a ``time`` field)."""

_GREETING = "Hello! This is the offline demo assistant. I can tell you the time."
_GOODBYE = "You are welcome. Goodbye!"
_THANKS = "You are welcome. Is there anything else?"
_FALLBACK = "Sorry, I did not catch that. You can ask me what time it is."
_NO_CLOCK = "Sorry, I have no clock to look at on this line."
_CLOCK_FAILED = "Sorry, I could not read the clock."

# Intents, the first that matches wins: a time question that starts with "hello" is a
# time question.
_TIME_WORDS = frozenset({"time", "clock"})
_GOODBYE_WORDS = frozenset({"bye", "goodbye"})
_THANKS_WORDS = frozenset({"thank", "thanks"})
_GREETING_WORDS = frozenset({"hello", "hi", "hey", "morning", "afternoon", "evening"})


class LocalResponder(LanguageModel):
    """A demo and offline responder, not a language model: intent rules over the caller's
    last message (greeting, the time, thanks, goodbye, and a fallback), with fixed answers
    streamed word by word.

    Asked the time, it calls the ``current_time`` function if the call declares it
    (:data:`CURRENT_TIME_TOOL`), then says the time from the function's result. The system
    instructions and the temperature are ignored; the same conversation always gets the
    same answer.
    """

    name = "local"
    capabilities = Capability.FUNCTION_CALLING | Capability.STREAMING

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[FunctionDeclaration] = (),
        temperature: float | None = None,
    ) -> AsyncIterator[TextDelta | ToolCall]:
        """Answer the conversation: one :class:`ToolCall`, or the answer's words."""
        answer = _answer(messages, tools)
        if isinstance(answer, ToolCall):
            yield answer
            return
        for index, word in enumerate(answer.split()):
            await anyio.lowlevel.checkpoint()  # a cancelled answer stops between words
            yield TextDelta(word if index == 0 else " " + word)


def _answer(messages: Sequence[Message], tools: Sequence[FunctionDeclaration]) -> str | ToolCall:
    if messages and messages[-1].role == "tool":
        return _after_function(messages)
    said = next((set(words(m.content)) for m in reversed(messages) if m.role == "user"), set())
    if said & _TIME_WORDS:
        if not any(tool.name == CURRENT_TIME_TOOL.name for tool in tools):
            return _NO_CLOCK
        # Unique within the conversation, and the same for the same conversation.
        number = 1 + sum(len(m.tool_calls) for m in messages)
        return ToolCall(id=f"local-call-{number}", name=CURRENT_TIME_TOOL.name, arguments="{}")
    if said & _GOODBYE_WORDS:
        return _GOODBYE
    if said & _THANKS_WORDS:
        return _THANKS
    if said & _GREETING_WORDS:
        return _GREETING
    return _FALLBACK


def _after_function(messages: Sequence[Message]) -> str:
    """The answer from a function's result (the last message)."""
    result = messages[-1]
    called = {call.id: call.name for m in messages for call in m.tool_calls}
    if called.get(result.tool_call_id or "") != CURRENT_TIME_TOOL.name:
        return _FALLBACK
    try:
        value = json.loads(result.content)
    except ValueError:
        value = result.content
    if isinstance(value, dict):
        if "error" in value:
            return _CLOCK_FAILED
        value = value.get("time", next(iter(value.values()), ""))
    text = str(value).strip()
    if not text:
        return _CLOCK_FAILED
    return f"It is {_spoken_time(text)}."


def _spoken_time(text: str) -> str:
    """``2025-01-31T15:05:00`` or ``15:05`` as ``3:05 PM``; other text as it is."""
    try:
        moment = dt.datetime.fromisoformat(text).time()
    except ValueError:
        try:
            moment = dt.time.fromisoformat(text)
        except ValueError:
            return text
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"
