"""omnivoice plugin: Deepgram streaming speech-to-text (``DeepgramSTT``, registered as the
``deepgram`` speech-to-text provider). See ``docs/providers/deepgram.md``."""

from omnivoice_deepgram_stt.stt import FORMATS, DeepgramSTT

Provider = DeepgramSTT
"""The plugin's provider under the short name every provider plugin exports."""

__all__ = ["FORMATS", "DeepgramSTT", "Provider"]
