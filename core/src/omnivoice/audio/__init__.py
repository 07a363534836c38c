"""Audio formats and conversion. Pure code: no I/O, no tasks."""

from omnivoice.audio.converter import (
    SUPPORTED_FORMATS,
    SUPPORTED_RATES,
    Converter,
    PolyphaseConverter,
    StreamConverter,
    gemini_to_twilio,
    openai_to_twilio,
    twilio_to_gemini,
    twilio_to_openai,
)
from omnivoice.audio.format import (
    GEMINI_INPUT,
    GEMINI_OUTPUT,
    OPENAI,
    TELNYX,
    TELNYX_L16_16K,
    TWILIO,
    AudioFormat,
    Encoding,
    choose_format,
)

__all__ = [
    "GEMINI_INPUT",
    "GEMINI_OUTPUT",
    "OPENAI",
    "SUPPORTED_FORMATS",
    "SUPPORTED_RATES",
    "TELNYX",
    "TELNYX_L16_16K",
    "TWILIO",
    "AudioFormat",
    "Converter",
    "Encoding",
    "PolyphaseConverter",
    "StreamConverter",
    "choose_format",
    "gemini_to_twilio",
    "openai_to_twilio",
    "twilio_to_gemini",
    "twilio_to_openai",
]
