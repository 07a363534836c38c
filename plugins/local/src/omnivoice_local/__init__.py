"""omnivoice plugin: speech-to-text, a responder and text-to-speech with no network.

The embedded default, registered as ``local`` for each of the three kinds: PocketSphinx
recognition (:class:`LocalSTT`), a rule-based demo responder (:class:`LocalResponder`, not
a language model) and eSpeak NG synthesis (:class:`LocalTTS`). Their models and voices
come in their wheels: no API key, no download at run time. :data:`DEMO_CALLER_SCRIPT` is
what the demo's caller says, and :func:`word_error_rate` measures the recogniser.
"""

from omnivoice_local.llm import CURRENT_TIME_TOOL, LocalResponder
from omnivoice_local.script import DEMO_CALLER_SCRIPT
from omnivoice_local.stt import LocalSTT
from omnivoice_local.tts import LocalTTS
from omnivoice_local.wer import word_error_rate

__all__ = [
    "CURRENT_TIME_TOOL",
    "DEMO_CALLER_SCRIPT",
    "LocalResponder",
    "LocalSTT",
    "LocalTTS",
    "word_error_rate",
]
