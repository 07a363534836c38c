"""The Gemini Live provider: options, formats and capabilities; a session per call.

See ``docs/providers/gemini-live.md`` for the options, the event mapping, what happens at
``goAway``, the error mapping and Vertex AI.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from omnivoice.audio.format import GEMINI_INPUT, GEMINI_OUTPUT, AudioFormat, Encoding
from omnivoice.errors import AuthFailedError
from omnivoice.realtime import (
    Capability,
    ProcessConfig,
    RealtimeSession,
    serve_session,
    with_extensions,
)
from omnivoice.realtime.provider import Provider as _ProviderBase
from omnivoice_gemini_live.models import DEFAULT_MODEL, DEFAULT_VERTEX_MODEL
from omnivoice_gemini_live.options import Options
from omnivoice_gemini_live.session import Session

__all__ = ["GeminiLiveProvider", "Provider"]

_TRUE = ("1", "true", "yes", "on")


class GeminiLiveProvider(_ProviderBase):
    """Gemini Live (the Gemini API or Vertex AI) as an omnivoice provider.

    ``GeminiLiveProvider()`` works from the environment alone: the key from
    ``GEMINI_API_KEY`` (else ``GOOGLE_API_KEY``), sent as ``x-goog-api-key``; the endpoint
    from ``GEMINI_LIVE_URL`` (it replaces the whole URL); the model from
    ``GEMINI_LIVE_MODEL`` (default ``gemini-3.8-live``). Vertex AI
    (``vertex=True`` or ``GOOGLE_GENAI_USE_VERTEXAI``) takes a Bearer ``access_token``
    (``GEMINI_LIVE_ACCESS_TOKEN``), ``project`` (``GOOGLE_CLOUD_PROJECT``) and ``location``
    (``GOOGLE_CLOUD_LOCATION``, default ``us-central1``).

    Options apply to every session; a call's :class:`~omnivoice.realtime.ProcessConfig`
    overrides ``instructions``, ``voice`` and ``temperature``, adds its functions and its
    history, and its ``extensions`` override any other option by name
    (``{"silence_duration_ms": 800}``). Every option is documented in
    ``docs/providers/gemini-live.md``.
    """

    name = "gemini-live"
    accepts: tuple[AudioFormat, ...] = (GEMINI_INPUT,)
    produces: tuple[AudioFormat, ...] = (GEMINI_OUTPUT,)
    capabilities = (
        Capability.FUNCTION_CALLING
        | Capability.TRANSCRIPTS
        | Capability.SPEECH_EVENTS
        | Capability.INTERRUPTION
        | Capability.HISTORY
        | Capability.STREAMING
    )

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str | None = None,
        voice: str | None = "Puck",
        instructions: str | None = None,
        url: str | None = None,
        api_version: str = "v1beta",
        language: str | None = None,
        temperature: float | None = None,
        input_transcription: bool = True,
        output_transcription: bool = True,
        automatic_activity_detection: bool = True,
        start_sensitivity: str | None = None,
        end_sensitivity: str | None = None,
        prefix_padding_ms: int | None = None,
        silence_duration_ms: int | None = None,
        activity_handling: str | None = None,
        turn_coverage: str | None = None,
        context_compression: bool = True,
        compression_trigger_tokens: int | None = None,
        compression_target_tokens: int | None = None,
        proactive_audio: bool | None = None,
        affective_dialog: bool | None = None,
        thinking_budget: int | None = None,
        thinking_level: str | None = None,
        non_blocking: Mapping[str, str] | None = None,
        input_rate: int = 16000,
        setup_options: Mapping[str, Any] | None = None,
        vertex: bool | None = None,
        project: str | None = None,
        location: str | None = None,
        access_token: str | None = None,
        connect_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float = 45.0,
        go_away_margin: float = 5.0,
        hold_ms: int = 10000,
        history_limit: int = 16000,
        max_function_calls: int = 16,
        event_buffer: int = 256,
        drain_timeout: float = 10.0,
    ) -> None:
        env = os.environ
        if vertex is None:
            vertex = env.get("GOOGLE_GENAI_USE_VERTEXAI", "").strip().lower() in _TRUE
        default_model = DEFAULT_VERTEX_MODEL if vertex else DEFAULT_MODEL
        self._options = Options(
            api_key=api_key or env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY") or None,
            model=model or env.get("GEMINI_LIVE_MODEL") or default_model,
            voice=voice,
            instructions=instructions,
            url=url or env.get("GEMINI_LIVE_URL") or None,
            api_version=api_version,
            language=language,
            temperature=temperature,
            input_transcription=input_transcription,
            output_transcription=output_transcription,
            automatic_activity_detection=automatic_activity_detection,
            start_sensitivity=start_sensitivity,
            end_sensitivity=end_sensitivity,
            prefix_padding_ms=prefix_padding_ms,
            silence_duration_ms=silence_duration_ms,
            activity_handling=activity_handling,
            turn_coverage=turn_coverage,
            context_compression=context_compression,
            compression_trigger_tokens=compression_trigger_tokens,
            compression_target_tokens=compression_target_tokens,
            proactive_audio=proactive_audio,
            affective_dialog=affective_dialog,
            thinking_budget=thinking_budget,
            thinking_level=thinking_level,
            non_blocking=dict(non_blocking or {}),
            input_rate=input_rate,
            setup_options=dict(setup_options or {}),
            vertex=vertex,
            project=project or env.get("GOOGLE_CLOUD_PROJECT") or None,
            location=location or env.get("GOOGLE_CLOUD_LOCATION") or "us-central1",
            access_token=access_token or env.get("GEMINI_LIVE_ACCESS_TOKEN") or None,
            connect_timeout=connect_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            go_away_margin=go_away_margin,
            hold_ms=hold_ms,
            history_limit=history_limit,
            max_function_calls=max_function_calls,
            event_buffer=event_buffer,
            drain_timeout=drain_timeout,
        )
        self.accepts = _input_formats(input_rate)
        if not input_transcription:
            self.capabilities &= ~Capability.USER_TRANSCRIPTS
        if not output_transcription:
            self.capabilities &= ~Capability.AGENT_TRANSCRIPTS

    @property
    def model(self) -> str:
        return self._options.model

    @property
    def options(self) -> Options:
        """Every option, as the provider was configured."""
        return self._options

    @property
    def endpoint(self) -> str:
        return self._options.endpoint()

    def __repr__(self) -> str:
        where = "Vertex AI" if self._options.vertex else self._options.api_version
        return f"<{type(self).__name__} {self.name} {self.model} ({where}) at {self.endpoint}>"

    @asynccontextmanager
    async def open_session(
        self,
        audio_in: AsyncIterable[bytes],
        config: ProcessConfig,
        *,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> AsyncIterator[RealtimeSession]:
        options = with_extensions(self._options, config)
        if options.vertex and not options.access_token:
            raise AuthFailedError(
                "no Vertex AI access token: pass access_token= to the provider or set "
                "GEMINI_LIVE_ACCESS_TOKEN (for example from `gcloud auth print-access-token`)"
            )
        if not options.vertex and not options.api_key:
            raise AuthFailedError(
                "no Gemini API key: pass api_key= to the provider or set GEMINI_API_KEY"
            )
        session = Session(self.name, options, config, audio_in, input_format)
        async with serve_session(session, session.run, events=session.events, name=self.name):
            yield session


def _input_formats(rate: int) -> tuple[AudioFormat, ...]:
    """The service's own 16 kHz, or first the rate asked for (8 kHz: the carrier's own
    rate, resampled by the service instead of the bridge)."""
    if rate == GEMINI_INPUT.sample_rate:
        return (GEMINI_INPUT,)
    return (AudioFormat(Encoding.PCM16, rate), GEMINI_INPUT)


Provider = GeminiLiveProvider
"""The plugin's provider under the short name every provider plugin exports."""
