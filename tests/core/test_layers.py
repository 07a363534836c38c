"""Lower layers never import higher ones: providers and the pipeline never import the
gateway (checked on the source, so a lazy import inside a function counts too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core/src/omnivoice"
LOWER_LAYERS = ["audio", "net", "realtime", "pipeline", "telephony", "testing"]
PROVIDER_PLUGINS = sorted(
    path for path in (ROOT / "plugins").glob("*/src/omnivoice_*") if path.is_dir()
)
APPLICATIONS = {"omnivoice_local/demo.py"}
"""Commands that run the gateway (``omnivoice demo``): applications, not providers."""


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules() -> list[Path]:
    found = [p for layer in LOWER_LAYERS for p in (CORE / layer).rglob("*.py")]
    for package in PROVIDER_PLUGINS:
        found.extend(
            p
            for p in package.rglob("*.py")
            if str(p.relative_to(package.parent)) not in APPLICATIONS
        )
    return sorted(found)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_lower_layer_imports_the_gateway(path: Path) -> None:
    gateway = {
        n for n in imported(path) if n == "omnivoice.gateway" or n.startswith("omnivoice.gateway.")
    }
    assert not gateway, f"{path.relative_to(ROOT)} imports {sorted(gateway)}"


def test_the_check_sees_the_packages() -> None:
    assert len(PROVIDER_PLUGINS) >= 6
    assert any(p.name == "client.py" for p in modules())
