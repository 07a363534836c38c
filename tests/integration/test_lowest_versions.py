"""The core works with the lowest versions of its dependencies that it allows.

A fresh environment gets the core (and the carrier and OpenAI plugins) from their wheels,
with every runtime dependency pinned to the floor in ``core/pyproject.toml``; then the
core's own tests run there. A floor too low for what the code uses fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from integration.test_separate_install import FreshEnv, _clean_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ["twilio", "telnyx", "openai_realtime"]
TESTS = [
    # What the floors matter to: the audio engine (numpy, scipy), the plugin registry
    # (pluggy), the session kit and the bridge (anyio), the WebSocket layer (websockets),
    # and the conformance suites over them.
    "tests/audio",
    "tests/core/test_plugins.py",
    "tests/net/test_websocket_client.py",
    "tests/realtime/test_session_kit.py",
    "tests/realtime/test_caller_audio.py",
    "tests/realtime/test_fallback_client.py",
    "tests/gateway/test_bridge.py",
    "tests/gateway/test_call.py",
    "tests/conformance",
    "tests/openai_realtime/test_openai_conformance.py",
    "tests/telephony/test_transport_conformance.py",
]


def floors() -> dict[str, str]:
    """Each runtime dependency of the core at the lowest version it allows."""
    project = tomllib.loads((ROOT / "core/pyproject.toml").read_text())["project"]
    pins = {}
    for requirement in project["dependencies"]:
        if ";" in requirement:  # for other Pythons only (audioop-lts)
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][0-9.]*)", requirement.strip())
        assert match, f"a core dependency without a plain floor: {requirement!r}"
        pins[match[1].lower()] = match[2]
    return pins


def test_every_dependency_has_a_floor() -> None:
    assert {"anyio", "numpy", "scipy", "websockets", "pluggy"} <= set(floors())


def test_the_core_passes_its_tests_with_the_lowest_allowed_versions(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    wheels = tmp_path_factory.mktemp("lowest-wheels")
    projects = [ROOT / "core", *(ROOT / "plugins" / name for name in PLUGINS)]
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
            *("--disable-pip-version-check", "-w", str(wheels), *map(str, projects)),
        ],
        check=True,
        env=_clean_env(),
    )
    pins = floors()
    constraints = tmp_path_factory.mktemp("lowest") / "constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
    env = FreshEnv(tmp_path_factory.mktemp("lowest-env") / "venv", wheels)
    distributions = ["omnivoice-" + name.replace("_", "-") for name in PLUGINS]
    env.install("-c", str(constraints), "omnivoice-core", *distributions, "pytest", "trio")
    env.install("-c", str(constraints), "hypothesis")
    freeze = subprocess.run(
        [str(env.bin / "python"), "-m", "pip", "freeze"],
        capture_output=True,
        text=True,
        check=True,
        env=_clean_env(),
    ).stdout.lower()
    for name, version in pins.items():
        assert f"{name.replace('_', '-')}=={version}" in freeze.replace("_", "-"), freeze
    result = subprocess.run(
        [str(env.bin / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=900,  # bounded: a hang with old versions fails here instead of hanging CI
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
