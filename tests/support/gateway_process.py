"""Run ``omnivoice serve`` as a real process, as a user would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

OMNIVOICE = str(Path(sys.executable).parent / "omnivoice")


@contextmanager
def running_gateway(*args: str, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start ``omnivoice serve ARGS --port 0``; yield its base URL (``http://127.0.0.1:PORT``)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "TELNYX_"))}
    environ.update(env or {})
    process = subprocess.Popen(
        [OMNIVOICE, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environ,
    )
    # The first line says where it listens; a stuck start-up is killed rather than awaited.
    watchdog = threading.Timer(30, process.kill)
    watchdog.start()
    drain: threading.Thread | None = None
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        watchdog.cancel()
        match = re.search(r"serving on (http://\S+)", line)
        assert match, f"the gateway did not start: {line}{process.stdout.read()}"
        # Keep draining its log so it never blocks on a full pipe.
        drain = threading.Thread(target=process.stdout.read, daemon=True)
        drain.start()
        yield match.group(1)
    finally:
        watchdog.cancel()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if drain is not None:
            drain.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
