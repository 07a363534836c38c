"""A gateway configuration for ``omnivoice serve support.fake_gemini_app:config`` in tests:
``RealtimeConfig(provider="gemini")`` with a function, the provider from the environment
(``GEMINI_API_KEY``, ``GEMINI_LIVE_URL`` pointing at the fake service)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omnivoice.gateway.config import Config, RealtimeConfig
from omnivoice.realtime import FunctionDeclaration

LOOKUP = FunctionDeclaration(
    "lookup_order",
    "Find an order by its number",
    {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]},
)


def lookup_order(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
    return {"order": arguments.get("order"), "status": "shipped", "call": call_id}


def config() -> Config:
    return Config(
        realtime=RealtimeConfig(
            provider="gemini",
            instructions="You are the front desk.",
            functions=[LOOKUP],
            on_function_call=lookup_order,
        ),
        mark_every=1,
    )
