"""The conversation as it was heard: one turn per utterance of the caller or the agent."""

from __future__ import annotations

from typing import Any, Literal

import attrs

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


def heard_part(text: str, heard_ms: int, total_ms: int) -> str:
    """The words of ``text`` spoken in the first ``heard_ms`` of ``total_ms`` of audio.

    Without word timings from the provider, speech is taken to run at an even pace over
    the response's audio; a word counts as heard once its midpoint has played.
    """
    words = text.split()
    if not words or total_ms <= 0 or heard_ms <= 0:
        return ""
    if heard_ms >= total_ms:
        return text
    weights = [len(word) + 1 for word in words]
    budget = sum(weights) * heard_ms / total_ms
    heard: list[str] = []
    spent = 0.0
    for word, weight in zip(words, weights, strict=True):
        if spent + weight / 2 > budget:
            break
        heard.append(word)
        spent += weight
    return " ".join(heard)
