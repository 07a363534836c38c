"""Audio formats and conversion. Pure code: no I/O, no tasks."""

from omnivoice.audio.format import (
    GEMINI_INPUT,
    GEMINI_OUTPUT,
    OPENAI,
    TELNYX,
    TELNYX_L16_16K,
    TWILIO,
    AudioFormat,
    Encoding,
)

__all__ = [
    "GEMINI_INPUT",
    "GEMINI_OUTPUT",
    "OPENAI",
    "TELNYX",
    "TELNYX_L16_16K",
    "TWILIO",
    "AudioFormat",
    "Encoding",
]
