"""The ``omnivoice`` command line: version, plugins listing, plugin subcommands."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from omnivoice import __version__, hookimpl
from omnivoice.audio import TWILIO
from omnivoice.cli import main
from omnivoice.plugins import PLUGINS_ENV_VAR, Registry
from omnivoice.registration import Register


class AcmePlugin:
    @hookimpl
    def register_transports(self, register: Register) -> None:
        register("acme-phone", dict, accepts=[TWILIO], env_vars=["ACME_TOKEN"])

    @hookimpl
    def register_commands(
        self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
    ) -> None:
        hello = subparsers.add_parser("hello", help="say hello")
        hello.add_argument("who")
        hello.set_defaults(handler=lambda args: print(f"hello {args.who}") or 3)


class BrokenCommands:
    @hookimpl
    def register_commands(
        self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
    ) -> None:
        raise RuntimeError("no commands today")


@pytest.fixture
def registry() -> Registry:
    return Registry.load(
        environ={PLUGINS_ENV_VAR: ""},
        extra=[("acme", AcmePlugin()), ("broken-commands", BrokenCommands())],
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"], registry=Registry.load(environ={PLUGINS_ENV_VAR: ""}))
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"omnivoice {__version__}"


def test_plugins_json(registry: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"], registry=registry) == 0
    document = json.loads(capsys.readouterr().out)
    acme = next(entry for entry in document if entry["name"] == "acme")
    assert acme["error"] is None
    assert acme["registrations"][0]["kind"] == "transport"
    assert acme["registrations"][0]["name"] == "acme-phone"
    assert acme["registrations"][0]["env_vars"] == ["ACME_TOKEN"]
    assert {"distribution", "version", "registrations", "error"} <= set(acme)


def test_plugins_text(registry: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"], registry=registry) == 0
    out = capsys.readouterr().out
    assert "transport acme-phone  [in mulaw@8000; reads ACME_TOKEN]" in out


def test_plugin_subcommand_runs_and_a_broken_one_is_reported(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hello", "world"], registry=registry) == 3
    captured = capsys.readouterr()
    assert captured.out.strip() == "hello world"
    assert "broken-commands could not add its commands: no commands today" in captured.err


def test_no_command_prints_help(registry: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], registry=registry) == 2
    assert "plugins" in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    # The real console script of the environment, as a user runs it.
    script = subprocess.run(
        [str(Path(sys.executable).parent / "omnivoice"), "plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env={PLUGINS_ENV_VAR: "twilio", "PATH": ""},
    )
    names = {entry["distribution"] for entry in json.loads(script.stdout)}
    assert names == {"omnivoice-core", "omnivoice-twilio"}
