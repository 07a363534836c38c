"""``omnivoice serve`` as a real process whose output a test waits on, line by line, and
whose ``/metrics`` it scrapes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import anyio.to_thread
import httpx
from prometheus_client.parser import text_string_to_metric_families

OMNIVOICE = str(Path(sys.executable).parent / "omnivoice")


class GatewayProcess:
    """A running ``omnivoice serve``: its URLs and everything it printed so far."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        first = self.wait_for_line_sync(r"serving on (http://\S+)", timeout=60)
        self.url = re.search(r"serving on (http://[^\s;]+)", first).group(1)  # type: ignore[union-attr]
        metrics = re.search(r"metrics on (http://\S+)", first)
        self.metrics_url = metrics.group(1) if metrics else f"{self.url}/metrics"

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # the end of the output
            self._changed.notify_all()

    def wait_for_line_sync(self, pattern: str, *, timeout: float = 30) -> str:
        compiled = re.compile(pattern)
        index = 0
        with self._changed:
            while True:
                while index < len(self.lines):
                    line = self.lines[index]
                    if line == "" and index == len(self.lines) - 1:
                        raise AssertionError(
                            f"the gateway ended without {pattern!r}:\n{self.output}"
                        )
                    if compiled.search(line):
                        return line
                    index += 1
                if not self._changed.wait(timeout):
                    raise AssertionError(f"no line matched {pattern!r}:\n{''.join(self.lines)}")

    async def wait_for_line(self, pattern: str, *, within: float = 30) -> str:
        """The first line matching ``pattern`` (waiting at most ``within`` seconds for it)."""
        return await anyio.to_thread.run_sync(
            lambda: self.wait_for_line_sync(pattern, timeout=within)
        )

    async def scrape(self) -> Samples:
        """Every sample of ``/metrics``, by name and labels (a new connection each time)."""
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(self.metrics_url)
        response.raise_for_status()
        return samples(response.text)

    def stop(self) -> int:
        self.process.terminate()
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(timeout=10)
        return code


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""Sample values by name and sorted labels."""


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(
    found: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and wanted <= set(ls))


@contextmanager
def serving(*args: str, env: Mapping[str, str] | None = None) -> Iterator[GatewayProcess]:
    """Start ``omnivoice serve ARGS --port 0`` without carrier credentials or a metrics
    directory from the environment; stop it at the end of the block."""
    with running([OMNIVOICE, "serve", "--port", "0", *args], env=env) as gateway:
        yield gateway


@contextmanager
def running(command: list[str], env: Mapping[str, str] | None = None) -> Iterator[GatewayProcess]:
    """Run ``command``, an ``omnivoice serve`` command line, until the end of the block."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "TELNYX_"))}
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environ.update(env or {})
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environ
    )
    gateway = None
    try:
        gateway = GatewayProcess(process)
        yield gateway
    finally:
        if gateway is not None:
            gateway.stop()
        else:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
