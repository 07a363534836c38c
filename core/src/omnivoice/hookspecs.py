"""The hook specifications: every way a plugin extends omnivoice.

A plugin is a module (or object) with functions decorated by :data:`hookimpl` whose
names match the specifications below. It is found through the ``omnivoice`` entry-point
group of its distribution::

    # pyproject.toml of a plugin distribution
    [project.entry-points.omnivoice]
    acme = "omnivoice_acme.plugin"

    # omnivoice_acme/plugin.py
    from omnivoice import hookimpl

    @hookimpl
    def register_realtime_providers(register):
        register("acme", AcmeProvider, capabilities=["transcripts"], env_vars=["ACME_KEY"])

The core's own implementations (its codecs, the ``echo`` provider) are built-in plugins
that use these very hooks. Registration hooks are called once per plugin, each in
isolation: a plugin that raises is reported with its error and skipped, and the others
load. See ``docs/hooks.md`` for a section per hook.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import pluggy

from omnivoice.calls import CallInfo
from omnivoice.registration import Register

__all__ = ["hookimpl", "hookspec"]

PROJECT_NAME = "omnivoice"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marks a hook specification (used by this module only)."""
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a plugin's implementation of a hook."""


@hookspec
def register_realtime_providers(register: Register) -> None:
    """Register voice-to-voice providers.

    Called once, when the plugins are loaded. ``register(name, factory, ...)`` records one
    provider. ``factory(**options)`` returns an :class:`omnivoice.realtime.Provider`; the
    options are keyword arguments the plugin documents (``api_key``, ``model``, ``voice``,
    ...). Declare ``accepts``/``produces`` so the bridge can convert or pass audio through
    without guessing, and ``env_vars`` for the keys and endpoints it reads.
    The return value is ignored.
    """


@hookspec
def register_stt_providers(register: Register) -> None:
    """Register speech-to-text providers for the text pipeline.

    Called once, when the plugins are loaded. ``factory(**options)`` returns a
    speech-to-text provider; ``accepts`` lists the audio formats it takes.
    The return value is ignored.
    """


@hookspec
def register_llm_providers(register: Register) -> None:
    """Register LLM providers for the text pipeline.

    Called once, when the plugins are loaded. ``factory(**options)`` returns an LLM
    provider. Declare ``function_calling`` in ``capabilities`` if it can call tools.
    The return value is ignored.
    """


@hookspec
def register_tts_providers(register: Register) -> None:
    """Register text-to-speech providers for the text pipeline.

    Called once, when the plugins are loaded. ``factory(**options)`` returns a
    text-to-speech provider; ``produces`` lists the audio formats it can give.
    The return value is ignored.
    """


@hookspec
def register_codecs(register: Register) -> None:
    """Register audio converters (format conversion and resampling).

    Called once, when the plugins are loaded. ``factory(src, dst)`` takes two
    :class:`omnivoice.audio.AudioFormat` and returns a fresh stateful converter for one
    stream, an object with ``convert(chunk: bytes) -> bytes`` and ``flush() -> bytes``; it
    raises :class:`omnivoice.errors.UnsupportedFormatError` for a pair it cannot convert.
    Users select a converter by name; the core registers its own as ``polyphase``, and a
    plugin replaces it by registering the same name with a higher ``priority``.
    The return value is ignored.
    """


@hookspec
def register_transports(register: Register) -> None:
    """Register telephony transports (a carrier's media-stream protocol).

    Called once, when the plugins are loaded. ``factory(**options)`` returns a transport
    that the gateway mounts under its name (``/NAME/voice``, ``/NAME/media``); ``accepts``
    and ``produces`` list the carrier audio formats.
    The return value is ignored.
    """


@hookspec
def register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add subcommands to the ``omnivoice`` command line.

    Called each time the command line starts, before arguments are parsed.
    ``subparsers.add_parser(NAME, help=...)`` adds a command; set its handler with
    ``parser.set_defaults(handler=fn)``, where ``fn(args: argparse.Namespace) -> int | None``
    returns the exit status. The return value is ignored.
    """


@hookspec
def call_started(call: CallInfo) -> None:
    """Observe the start of a call.

    Called once per call, when the carrier's stream has started and a provider was
    chosen, in the call's task before any audio flows: keep it quick. Exceptions are
    logged and counted; they never affect the call. The return value is ignored.
    """


@hookspec
def call_event(call: CallInfo, event: Any) -> None:
    """Observe one event of a call as it happens (an ``omnivoice.gateway.Event``).

    Called for every event of every call (speech started, transcripts, interruptions,
    function calls, errors...; never per audio frame), synchronously in the call's task:
    keep it quick. Exceptions are logged and counted; they never affect the call.
    The return value is ignored.
    """


@hookspec
def call_ended(call: CallInfo, transcript: Any, metrics: Any) -> None:
    """Observe the end of a call, with its transcript and metrics.

    Called once per call, after the call's tasks have finished (whatever the cause:
    hang-up, error, shutdown). ``transcript`` is the call's list of turns and ``metrics``
    its metrics snapshot. Exceptions are logged and counted; they never affect other calls.
    The return value is ignored.
    """


@hookspec
def stream_ended(
    transport: str,
    call: CallInfo | None,
    error: BaseException | None,
    bad_frames: Mapping[str, int],
) -> None:
    """Observe the end of a carrier's media stream, whether or not its call started.

    Called once per media WebSocket the gateway accepted, last of all (after
    ``call_ended`` for a call that started), in the stream's task. ``transport`` is its
    transport's name; ``call`` is ``None`` when the carrier never started the stream;
    ``error`` is what ended it (an ``omnivoice.telephony.protocol.ProtocolError`` when the
    carrier broke the protocol, ``ConnectionFailedError`` when no provider connected,
    another exception for an internal failure, a cancellation at shutdown) or ``None``
    for an orderly end; ``bad_frames`` counts the frames skipped or refused, by reason.
    Exceptions are logged and counted. The return value is ignored.
    """
