"""Separate installability: real wheels installed into a fresh virtual environment.

The core and each plugin are distributions of their own; the core finds a plugin only
because it is installed, through its entry point. A third-party plugin kept under
``tests/fixtures`` registers a provider with no change to this repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _clean_env() -> dict[str, str]:
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("OMNIVOICE")}


class FreshEnv:
    """A new virtual environment with its own pip."""

    def __init__(self, path: Path, wheelhouse: Path) -> None:
        venv.EnvBuilder(with_pip=True).create(path)
        self.bin = path / "bin"
        self.wheelhouse = wheelhouse

    def pip(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / "python"), "-m", "pip", "--disable-pip-version-check", "-q", *args],
            check=True,
            env=_clean_env(),
        )

    def install(self, *distributions: str) -> None:
        self.pip("install", "--find-links", str(self.wheelhouse), *distributions)

    def plugins(self) -> list[dict[str, Any]]:
        result = subprocess.run(
            [str(self.bin / "omnivoice"), "plugins", "--json"],
            capture_output=True,
            text=True,
            check=True,
            env=_clean_env(),
        )
        document: list[dict[str, Any]] = json.loads(result.stdout)
        return document


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    projects = [ROOT / "core", ROOT / "plugins" / "twilio", ROOT / "tests/fixtures/acme_plugin"]
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
            *("--disable-pip-version-check", "-w", str(out), *map(str, projects)),
        ],
        check=True,
        env=_clean_env(),
    )
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> FreshEnv:
    return FreshEnv(tmp_path_factory.mktemp("env") / "venv", wheelhouse)


def _distributions(document: list[dict[str, Any]]) -> set[str]:
    return {entry["distribution"] for entry in document}


def test_core_and_one_plugin_list_exactly_what_is_installed(env: FreshEnv) -> None:
    env.install("omnivoice-core", "omnivoice-twilio")
    document = env.plugins()
    assert _distributions(document) == {"omnivoice-core", "omnivoice-twilio"}
    twilio = next(e for e in document if e["distribution"] == "omnivoice-twilio")
    assert twilio["version"] == "0.1.0"
    assert twilio["error"] is None

    env.pip("uninstall", "-y", "omnivoice-twilio")
    assert _distributions(env.plugins()) == {"omnivoice-core"}


def test_third_party_plugin_registers_a_provider(env: FreshEnv) -> None:
    env.install("omnivoice-core", "omnivoice-acme")
    document = env.plugins()
    assert "omnivoice-acme" in _distributions(document)
    acme = next(e for e in document if e["distribution"] == "omnivoice-acme")
    assert acme["version"] == "1.2.3"
    assert acme["error"] is None
    (registration,) = acme["registrations"]
    assert (registration["kind"], registration["name"]) == ("realtime", "acme")
    assert registration["env_vars"] == ["ACME_API_KEY"]
    # Declared once, on the provider class: the registry read them from it.
    assert registration["accepts"] == registration["produces"] == ["pcm16@16000", "mulaw@8000"]
    assert registration["capabilities"] == ["speech_events", "interruption", "streaming"]

    # The provider is found by name and built through the core's registry.
    code = (
        "from omnivoice.plugins import get_registry\n"
        "from omnivoice.registration import Kind\n"
        "provider = get_registry().create(Kind.REALTIME, 'acme', api_key='k')\n"
        "print(type(provider).__module__, provider.options)\n"
    )
    result = subprocess.run(
        [str(env.bin / "python"), "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=_clean_env(),
    )
    assert result.stdout.strip() == "omnivoice_acme.plugin {'api_key': 'k'}"


def test_third_party_plugin_passes_the_conformance_suite_from_its_wheel(
    env: FreshEnv, tmp_path: Path
) -> None:
    # As a plugin author runs it: the installed core's suite, the plugin's own test module,
    # nothing of this checkout (its tests are copied out, away from this repository's
    # pytest configuration).
    env.install("omnivoice-core", "omnivoice-acme", "pytest", "anyio")
    tests = tmp_path / "acme-tests"
    shutil.copytree(ROOT / "tests/fixtures/acme_plugin/tests", tests)
    result = subprocess.run(
        [str(env.bin / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "."],
        cwd=tests,
        capture_output=True,
        text=True,
        env=_clean_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
    assert "failed" not in result.stdout
