"""Built-in plugin: the core's audio converter, ``polyphase``."""

from __future__ import annotations

from omnivoice.audio.converter import DEFAULT_CODEC, SUPPORTED_FORMATS, PolyphaseConverter
from omnivoice.hookspecs import hookimpl
from omnivoice.registration import Capability, Register


@hookimpl
def register_codecs(register: Register) -> None:
    register(
        DEFAULT_CODEC,
        PolyphaseConverter,
        accepts=SUPPORTED_FORMATS,
        produces=SUPPORTED_FORMATS,
        capabilities=[Capability.STREAMING],
        description=(
            "G.711 bit-exact; stateful polyphase FIR resampling between 8, 16, 22.05, 24, "
            "44.1 and 48 kHz with 2 ms delay"
        ),
    )
