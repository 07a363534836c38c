"""What each Gemini Live model can do: one table, read instead of testing model names.

The Live models differ in ways a session must respect: which function behaviours they
take, whether proactive audio and affective dialog exist (and on which API version),
which thinking setting they use, and how a new session is given the conversation so far.
:func:`model_info` looks a model up (a ``models/`` prefix or a Vertex resource name is
ignored); a model not in the table gets :data:`UNKNOWN_MODEL`, which sends only what the
caller asks for. ``docs/providers/gemini-live.md`` says which documentation each row was
checked against.
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_VERTEX_MODEL",
    "MODELS",
    "UNKNOWN_MODEL",
    "ModelInfo",
    "model_info",
]

Thinking = Literal["budget", "level"]
"""``thinkingBudget`` (tokens, 2.5 models) or ``thinkingLevel`` (``minimal``... 3.1)."""
Feature = Literal["no", "optional", "always"]
HistorySeed = Literal["client_content", "history_config"]
"""How a fresh session takes the conversation so far: ``clientContent`` turns with
``turnComplete: false``, or (models that take client content only as initial history)
``historyConfig.initialHistoryInClientContent`` in the setup and ``turnComplete: true``."""


@attrs.frozen
class ModelInfo:
    """The capabilities of one Live model, as its documentation gives them."""

    name: str
    non_blocking_tools: bool
    """Takes ``behavior: NON_BLOCKING`` function declarations (asynchronous calls)."""
    non_blocking_default: bool = False
    """A declaration without ``behavior`` is non-blocking: blocking ones say so."""
    proactive_audio: Feature = "no"
    """``proactivity.proactiveAudio``: not there, optional, or always on (then sending
    ``false`` is an error)."""
    affective_dialog: bool = False
    thinking: Thinking | None = None
    """The thinking setting it takes (``None``: none; sending one is an error)."""
    alpha_features: frozenset[str] = frozenset()
    """Features served only on the ``v1alpha`` API version of the Gemini API."""
    history_seed: HistorySeed = "client_content"
    vertex: bool = False
    """A Vertex AI model name (served by ``aiplatform``, not the Gemini API)."""
    deprecated: str | None = None
    """Why not to use it, if its vendor says so."""


MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo(
            "gemini-3.8-live",
            non_blocking_tools=True,
            non_blocking_default=True,
            proactive_audio="always",
        ),
        ModelInfo(
            "gemini-3.1-flash-live-preview",
            non_blocking_tools=False,
            thinking="level",
            history_seed="history_config",
            deprecated="a legacy preview: gemini-3.8-live replaces it",
        ),
        ModelInfo(
            "gemini-2.5-flash-native-audio-preview-12-2025",
            non_blocking_tools=True,
            proactive_audio="optional",
            affective_dialog=True,
            thinking="budget",
            alpha_features=frozenset({"proactive_audio", "affective_dialog"}),
        ),
        ModelInfo(
            "gemini-2.5-flash-native-audio-preview-09-2025",
            non_blocking_tools=True,
            proactive_audio="optional",
            affective_dialog=True,
            thinking="budget",
            alpha_features=frozenset({"proactive_audio", "affective_dialog"}),
            deprecated="deprecated by its vendor: use gemini-3.8-live or the 12-2025 preview",
        ),
        ModelInfo(
            "gemini-live-2.5-flash-native-audio",
            non_blocking_tools=True,
            proactive_audio="optional",
            affective_dialog=True,
            thinking="budget",
            vertex=True,
        ),
    )
}

DEFAULT_MODEL = "gemini-3.8-live"
"""The Gemini API's stable default for voice agents."""
DEFAULT_VERTEX_MODEL = "gemini-live-2.5-flash-native-audio"
"""The generally available native-audio Live model on Vertex AI."""

UNKNOWN_MODEL = ModelInfo(
    "unknown",
    non_blocking_tools=True,
    proactive_audio="optional",
    affective_dialog=True,
    thinking=None,
)
"""For a model not in the table: nothing is refused and nothing implicit is sent (a
thinking setting given is passed as ``thinkingConfig`` as given)."""


def model_info(model: str) -> ModelInfo:
    """The table's row for ``model`` (``gemini-3.8-live``, ``models/gemini-3.8-live`` or
    ``projects/P/locations/L/publishers/google/models/gemini-3.8-live``)."""
    name = model.rsplit("/", 1)[-1]
    return MODELS.get(name, attrs.evolve(UNKNOWN_MODEL, name=name))
