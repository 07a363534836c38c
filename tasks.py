#!/usr/bin/env python3
"""The project's commands. Each one creates or reuses the environment in ``.venv`` itself.

    python3 tasks.py run [ARGS...]        the main job: ``omnivoice demo``, an offline call
    python3 tasks.py test [PYTEST ARGS]   lint, type check, the docs site and the whole test suite
    python3 tasks.py bench NAME [ARGS]    one benchmark from bench/ (see docs/performance.md)
    python3 tasks.py omnivoice ARGS...    any ``omnivoice`` command, in the environment

Needs only Python 3.11+ and the package index. The environment holds every distribution
of the workspace installed editable plus the pinned development tools; it is rebuilt when
a ``pyproject.toml`` or a requirements file changes.
"""

from __future__ import annotations

import sys

if sys.version_info < (3, 11):  # noqa: UP036 - say so plainly instead of failing on an import
    sys.exit(f"omnivoice needs Python 3.11 or newer; this is {sys.version.split()[0]}")

import hashlib
import os
import subprocess
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("OMNIVOICE_VENV", ROOT / ".venv"))
STAMP = VENV / ".omnivoice-stamp"
DEV_REQUIREMENTS = ROOT / "requirements" / "dev.txt"


def _members() -> list[Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [ROOT / m for m in config["tool"]["omnivoice"]["workspace"]["members"]]


def _bin(name: str) -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / name


def _fingerprint(members: list[Path]) -> str:
    digest = hashlib.sha256(sys.version.encode())
    for path in [
        ROOT / "pyproject.toml",
        DEV_REQUIREMENTS,
        *(m / "pyproject.toml" for m in members),
    ]:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_env() -> None:
    """Create ``.venv`` and install the workspace into it, unless it is up to date."""
    members = _members()
    fingerprint = _fingerprint(members)
    if STAMP.exists() and STAMP.read_text() == fingerprint and _bin("omnivoice").exists():
        return
    print(f"tasks: preparing the environment in {VENV} ...", file=sys.stderr, flush=True)
    if not _bin("python").exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    pip = [str(_bin("python")), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip>=24"], check=True)
    editable = [arg for m in members for arg in ("-e", str(m))]
    subprocess.run([*pip, "install", "-r", str(DEV_REQUIREMENTS), *editable], check=True)
    STAMP.write_text(fingerprint)


def _run(*command: str | Path) -> int:
    return subprocess.run([str(c) for c in command], cwd=ROOT).returncode


def test(args: list[str]) -> int:
    """Lint, type check, build the docs, then the tests; pytest's summary is printed last."""
    checks = {
        "ruff check": (_bin("ruff"), "check", "."),
        "ruff format": (_bin("ruff"), "format", "--check", "."),
        "mypy": (_bin("mypy"),),
        # The documentation site: a broken link or a missing API reference fails the run.
        # (Not --quiet: it hides the warnings that --strict counts.)
        "mkdocs": (_bin("mkdocs"), "build", "--strict"),
    }
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")  # the theme's notice about its future
    failed = [name for name, command in checks.items() if _run(*command) != 0]
    status = _run(_bin("python"), "-m", "pytest", *args)
    if failed:
        print(f"tasks: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return status


def bench(args: list[str]) -> int:
    if not args:
        names = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_"))
        print("usage: python3 tasks.py bench NAME [ARGS]; benchmarks: " + ", ".join(names))
        return 2
    return _run(_bin("python"), ROOT / "bench" / f"{args[0]}.py", *args[1:])


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0 if argv else 2
    task, args = argv[0], argv[1:]
    if task not in {"run", "test", "bench", "omnivoice"}:
        print(f"tasks: unknown task {task!r}\n{__doc__}", file=sys.stderr)
        return 2
    ensure_env()
    if task == "test":
        return test(args)
    if task == "bench":
        return bench(args)
    if task == "run":
        return _run(_bin("omnivoice"), "demo", *args)
    return _run(_bin("omnivoice"), *args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
