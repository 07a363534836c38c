"""The provider's options: where to connect, how to authenticate, what each setup says.

:class:`Options` holds every option of :class:`~omnivoice_gemini_live.GeminiLiveProvider`
(environment fallbacks already applied), checks them against the model's capabilities
(:mod:`omnivoice_gemini_live.models`) and builds the endpoint, the handshake headers and,
with a call's :class:`~omnivoice.realtime.ProcessConfig`, the ``setup`` message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs

from omnivoice.realtime import ProcessConfig
from omnivoice_gemini_live import protocol as p
from omnivoice_gemini_live.models import MODELS, ModelInfo, model_info

__all__ = ["Options"]

log = logging.getLogger(__name__)

API_VERSIONS = ("v1beta", "v1alpha")
START_SENSITIVITIES = ("START_SENSITIVITY_HIGH", "START_SENSITIVITY_LOW")
END_SENSITIVITIES = ("END_SENSITIVITY_HIGH", "END_SENSITIVITY_LOW")
ACTIVITY_HANDLING = ("START_OF_ACTIVITY_INTERRUPTS", "NO_INTERRUPTION")
TURN_COVERAGE = (
    "TURN_INCLUDES_ONLY_ACTIVITY",
    "TURN_INCLUDES_ALL_INPUT",
    "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO",
)
THINKING_LEVELS = ("minimal", "low", "medium", "high")


def _one_of(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


def _positive(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


@attrs.frozen(kw_only=True)
class Options:
    """Everything a session is configured with, before the call's ProcessConfig."""

    api_key: str | None
    model: str
    voice: str | None
    instructions: str | None
    url: str | None
    api_version: str = "v1beta"
    language: str | None = None
    temperature: float | None = None
    input_transcription: bool = True
    output_transcription: bool = True
    automatic_activity_detection: bool = True
    start_sensitivity: str | None = None
    end_sensitivity: str | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    activity_handling: str | None = None
    turn_coverage: str | None = None
    context_compression: bool = True
    compression_trigger_tokens: int | None = None
    compression_target_tokens: int | None = None
    proactive_audio: bool | None = None
    affective_dialog: bool | None = None
    thinking_budget: int | None = None
    thinking_level: str | None = None
    non_blocking: Mapping[str, str] = attrs.field(factory=dict)
    input_rate: int = 16000
    setup_options: Mapping[str, Any] = attrs.field(factory=dict)
    vertex: bool = False
    project: str | None = None
    location: str = "us-central1"
    access_token: str | None = None
    connect_timeout: float = 10.0
    ping_interval: float | None = 20.0
    ping_timeout: float = 45.0
    go_away_margin: float = 5.0
    hold_ms: int = 10000
    history_limit: int = 16000
    max_function_calls: int = 16
    event_buffer: int = 256
    drain_timeout: float = 10.0

    def __attrs_post_init__(self) -> None:
        _one_of("api_version", self.api_version, API_VERSIONS)
        _one_of("start_sensitivity", self.start_sensitivity, START_SENSITIVITIES)
        _one_of("end_sensitivity", self.end_sensitivity, END_SENSITIVITIES)
        _one_of("activity_handling", self.activity_handling, ACTIVITY_HANDLING)
        _one_of("turn_coverage", self.turn_coverage, TURN_COVERAGE)
        _one_of("thinking_level", self.thinking_level, THINKING_LEVELS)
        for name, scheduling in self.non_blocking.items():
            if scheduling not in p.SCHEDULING:
                raise ValueError(
                    f"non_blocking[{name!r}] must be one of {', '.join(sorted(p.SCHEDULING))}, "
                    f"not {scheduling!r}"
                )
        if self.input_rate not in (8000, 16000, 24000, 48000):
            raise ValueError(
                f"input_rate must be 8000, 16000, 24000 or 48000, not {self.input_rate}"
            )
        for name in ("connect_timeout", "drain_timeout", "ping_interval", "ping_timeout"):
            _positive(name, getattr(self, name))
        for name in ("hold_ms", "history_limit", "go_away_margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_function_calls < 1 or self.event_buffer < 1:
            raise ValueError("max_function_calls and event_buffer must be at least 1")
        if self.thinking_budget is not None and self.thinking_level is not None:
            raise ValueError("give thinking_budget or thinking_level, not both")
        full_name = self.model.startswith("projects/")
        if self.vertex and self.url is None and not full_name and not self.project:
            raise ValueError(
                "Vertex AI needs a project: pass project= or set GOOGLE_CLOUD_PROJECT "
                "(or give the model's full resource name)"
            )
        self._check_model(self.info)

    @property
    def info(self) -> ModelInfo:
        return model_info(self.model)

    def _check_model(self, info: ModelInfo) -> None:
        """Refuse what the model does not take, saying so (the service would close the
        session with 1007, mid-way through the first call)."""
        model = info.name
        if self.non_blocking and not info.non_blocking_tools:
            raise ValueError(f"{model} takes blocking functions only: non_blocking must be empty")
        if self.proactive_audio is not None:
            if info.proactive_audio == "no":
                raise ValueError(f"{model} has no proactive audio")
            if info.proactive_audio == "always" and not self.proactive_audio:
                raise ValueError(f"{model} always uses proactive audio: it cannot be turned off")
        if self.affective_dialog is not None and not info.affective_dialog:
            raise ValueError(f"{model} has no affective dialog")
        if self.thinking_budget is not None or self.thinking_level is not None:
            wanted = "budget" if self.thinking_budget is not None else "level"
            if info.name in MODELS and info.thinking is None:
                raise ValueError(f"{model} takes no thinking settings")
            if info.thinking is not None and info.thinking != wanted:
                raise ValueError(f"{model} takes thinking_{info.thinking}, not thinking_{wanted}")
        if not self.vertex and self.api_version != "v1alpha":
            asked = {
                name
                for name in ("proactive_audio", "affective_dialog")
                if getattr(self, name) is not None
            }
            alpha = sorted(asked & info.alpha_features)
            if alpha:
                raise ValueError(
                    f"{', '.join(alpha)} of {model} is served on api_version='v1alpha' only"
                )
        if info.deprecated:
            log.warning("Gemini Live model %s: %s", model, info.deprecated)

    # --- the connection -----------------------------------------------------------------

    @property
    def ephemeral(self) -> bool:
        """The key is an ephemeral token (``auth_tokens/...``)."""
        return bool(self.api_key and self.api_key.startswith("auth_tokens/"))

    def endpoint(self) -> str:
        """The WebSocket URL: ``url`` when given, whole; else the vendor's."""
        if self.url:
            return self.url
        if self.vertex:
            if self.location == "global":
                return p.VERTEX_ENDPOINT.replace("{location}-", "")
            return p.VERTEX_ENDPOINT.format(location=self.location)
        url = p.API_ENDPOINT.format(api_version=self.api_version)
        if self.ephemeral:
            url += "Constrained"
        return url

    def headers(self) -> list[tuple[str, str]]:
        if self.vertex:
            return [("Authorization", f"Bearer {self.access_token}")]
        if self.ephemeral:
            return [("Authorization", f"Token {self.api_key}")]
        return [("x-goog-api-key", str(self.api_key))]

    @property
    def model_name(self) -> str:
        """The model as the setup names it: ``models/...`` or a Vertex resource name."""
        model = self.model
        if self.vertex:
            if model.startswith("projects/"):
                return model
            base = f"projects/{self.project}/locations/{self.location}"
            if model.startswith("publishers/"):
                return f"{base}/{model}"
            return f"{base}/publishers/google/models/{model.removeprefix('models/')}"
        return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"

    # --- the setup ------------------------------------------------------------------------

    @property
    def activity_detection(self) -> dict[str, Any] | None:
        detection: dict[str, Any] = {}
        if not self.automatic_activity_detection:
            detection["disabled"] = True
        for key, value in (
            ("startOfSpeechSensitivity", self.start_sensitivity),
            ("endOfSpeechSensitivity", self.end_sensitivity),
            ("prefixPaddingMs", self.prefix_padding_ms),
            ("silenceDurationMs", self.silence_duration_ms),
        ):
            if value is not None:
                detection[key] = value
        return detection or None

    def setup(
        self, config: ProcessConfig, *, handle: str | None = None, initial_history: bool = False
    ) -> p.Setup:
        """The setup of one connection: a new session, or the resumption of ``handle``."""
        info = self.info
        thinking: dict[str, Any] | None = None
        if self.thinking_budget is not None:
            thinking = {"thinkingBudget": self.thinking_budget}
        elif self.thinking_level is not None:
            thinking = {"thinkingLevel": self.thinking_level}
        compression: dict[str, Any] | None = None
        if self.context_compression:
            window: dict[str, Any] = {}
            if self.compression_target_tokens is not None:
                window["targetTokens"] = self.compression_target_tokens
            compression = {"slidingWindow": window}
            if self.compression_trigger_tokens is not None:
                compression["triggerTokens"] = self.compression_trigger_tokens
        proactive = self.proactive_audio
        if info.proactive_audio == "always":
            proactive = None  # always on: the model refuses the field
        non_blocking = {
            name: scheduling
            for name, scheduling in self.non_blocking.items()
            if any(f.name == name for f in config.functions)
        }
        return p.Setup(
            model=self.model_name,
            voice=config.voice or self.voice,
            language=self.language,
            instructions=config.instructions
            if config.instructions is not None
            else self.instructions,
            temperature=config.temperature if config.temperature is not None else self.temperature,
            functions=config.functions,
            non_blocking=non_blocking,
            declare_blocking=info.non_blocking_default,
            input_transcription=self.input_transcription,
            output_transcription=self.output_transcription,
            activity_detection=self.activity_detection,
            activity_handling=self.activity_handling,
            turn_coverage=self.turn_coverage,
            resumption_handle=handle,
            compression=compression,
            proactive_audio=proactive,
            affective_dialog=self.affective_dialog,
            thinking=thinking,
            initial_history=initial_history,
            extra=self.setup_options,
        )


"""The options a call's ``ProcessConfig.extensions`` may override by name."""
