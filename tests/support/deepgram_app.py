"""A text-mode gateway for ``omnivoice serve support.deepgram_app:config`` in tests.

Speech-to-text is the ``deepgram`` provider (``DEEPGRAM_URL`` points it at the fake, the key
comes from ``DEEPGRAM_API_KEY``); the model and the synthesis are the scripted fakes, whose
voice goes out as the carrier's mu-law. The pipeline's own detector is off, so every turn
boundary of the call is Deepgram's.
"""

from __future__ import annotations

from collections.abc import Sequence

from omnivoice.audio import TWILIO
from omnivoice.gateway.config import Config, PipelineMode, TextConfig
from omnivoice.pipeline import Message
from support.fake_pipeline import FakeLLM, FakeTTS

ANSWER = "You asked about {}. Let me look that up for you, it will only take a moment."


def _answer(messages: Sequence[Message]) -> str:
    said = next(m.content for m in reversed(messages) if m.role == "user")
    return ANSWER.format(said) if said != "wait" else "Of course."


config = Config(
    mode=PipelineMode.TEXT,
    stt_provider="deepgram",
    llm_provider=FakeLLM(then=_answer),
    tts_provider=FakeTTS(produces=[TWILIO], ms_per_char=40),
    text=TextConfig(instructions="Answer the caller.", options={"vad": False}),
)
