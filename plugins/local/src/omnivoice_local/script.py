"""What the demo's simulated caller says, one utterance a turn.

The sentences visit each of :class:`~omnivoice_local.llm.LocalResponder`'s intents (a
greeting, the time through a function call, a request it cannot serve, goodbye). Give them
as ``LocalSTT(phrases=DEMO_CALLER_SCRIPT)`` for the recogniser to expect them.
"""

from __future__ import annotations

__all__ = ["DEMO_CALLER_SCRIPT"]

DEMO_CALLER_SCRIPT: tuple[str, ...] = (
    "Hello, who am I speaking with?",
    "What time is it, please?",
    "Can you book a table for dinner?",
    "Thank you, that is all. Goodbye.",
)
