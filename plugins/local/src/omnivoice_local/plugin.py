"""Hook implementations of omnivoice-local: the three ``local`` providers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from omnivoice import hookimpl
from omnivoice.registration import Register
from omnivoice_local.llm import LocalResponder
from omnivoice_local.stt import LocalSTT
from omnivoice_local.tts import LocalTTS

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


@hookimpl
def register_stt_providers(register: Register) -> None:
    register(
        "local",
        LocalSTT,
        description="PocketSphinx, offline: open US English, or a phrase list or JSGF grammar",
    )


@hookimpl
def register_llm_providers(register: Register) -> None:
    register(
        "local",
        LocalResponder,
        description="offline demo responder: intent rules, not a language model",
    )


@hookimpl
def register_tts_providers(register: Register) -> None:
    register(
        "local",
        LocalTTS,
        description="eSpeak NG, offline (library and voices from espeakng-loader)",
    )


@hookimpl
def register_commands(subparsers: Subparsers) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="an offline phone call through the gateway, with the local providers",
        description="Start the gateway with the local text pipeline on a free localhost "
        "port and call it from the simulated phone with a scripted caller: offline, no "
        "API key. Prints the transcript, a latency table per turn and the recognition "
        "word error rate; writes a stereo recording and the call record.",
    )
    demo.add_argument(
        "--out", type=Path, default=Path("demo-call.wav"), help="the stereo recording"
    )
    demo.add_argument(
        "--records", type=Path, default=Path("demo-records"), help="where the call record goes"
    )
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from omnivoice_local.demo import command  # the gateway loads only for the demo

    return command(args.out, args.records)
