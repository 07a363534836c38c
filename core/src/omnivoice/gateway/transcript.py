"""The conversation as it was heard: one turn per utterance of the caller or the agent."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from omnivoice.realtime.conversation import heard_part  # where it lives now: below the gateway

__all__ = ["Turn", "heard_part"]


@attrs.define
class Turn:
    """One utterance. Times are seconds since the session started."""

    role: Literal["user", "agent"]
    text: str = ""
    start: float = 0.0
    end: float | None = None
    interrupted: bool = False
    """Agent turns: the caller barged in before it finished."""
    heard_text: str | None = None
    """Agent turns: the part of ``text`` the caller heard (all of it unless interrupted)."""
    heard_ms: int | None = None
    """Agent turns: milliseconds of its audio the caller heard."""

    def to_dict(self) -> dict[str, Any]:
        document = attrs.asdict(self)
        if self.role == "user":
            for key in ("interrupted", "heard_text", "heard_ms"):
                document.pop(key)
        return document
