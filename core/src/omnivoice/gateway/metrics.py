"""Numbers about one call."""

from __future__ import annotations

import statistics
from typing import Any

import attrs

__all__ = ["Metrics"]


@attrs.define
class Metrics:
    """Counters and timings of one call; :meth:`snapshot` gives a JSON-ready copy."""

    duration_s: float = 0.0
    turns: int = 0
    """Agent responses that started playing."""
    interruptions: int = 0
    function_calls: int = 0
    errors: int = 0
    audio_in_bytes: int = 0
    """Caller audio received from the carrier."""
    audio_out_bytes: int = 0
    """Agent audio handed to the carrier."""
    user_speech_s: float = 0.0
    agent_speech_s: float = 0.0
    """Agent audio the caller actually heard."""
    input_tokens: int = 0
    output_tokens: int = 0
    provider_switches: int = 0
    events_dropped: int = 0
    response_latencies_ms: list[float] = attrs.field(factory=list)
    """Per turn: end of the caller's speech to the first agent audio handed to the carrier."""

    def snapshot(self) -> dict[str, Any]:
        document = attrs.asdict(self)
        document["response_latency_ms"] = _distribution(self.response_latencies_ms)
        return document


def _distribution(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]

    return {
        "count": len(ordered),
        "mean": round(statistics.fmean(ordered), 1),
        "p50": round(rank(0.5), 1),
        "p90": round(rank(0.9), 1),
        "p95": round(rank(0.95), 1),
        "min": round(ordered[0], 1),
        "max": round(ordered[-1], 1),
    }
