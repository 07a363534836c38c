"""``omnivoice serve --workers N``: N gateway processes serving one port.

The supervisor binds the listening socket once and starts N worker processes (the
``spawn`` start method: each a fresh interpreter) that accept connections on it; the
kernel hands each new connection to one of them, and a call's webhook, its media stream
and everything of the call live in the worker that accepted the stream. Each worker is a
whole gateway (plugins, providers, its own event loop); they share nothing but the socket
and the metrics directory. Call ids are ``call-PID-N`` (``call-N`` in a single process),
so logs, records and spans of different workers never share one.

Metrics: the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory (or
empties the one given) before the workers start, so ``prometheus_client`` in every worker
writes there and a scrape of any worker, or of ``--metrics-port`` served by the
supervisor, adds up all of them. A worker that exits has its live gauges removed.

Signals: SIGTERM or SIGINT to the supervisor is passed to every worker as SIGTERM (each
then stops the way a single gateway does: draining, if configured); a second one is
passed on again. A worker that dies is replaced; one that dies before it started serving
stops the whole server, since its replacement would fail the same way. Workers run in
their own process group (a terminal's Ctrl-C reaches the supervisor only) and end when
the supervisor disappears.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

import attrs

from omnivoice.telemetry.metrics import MULTIPROCESS_ENV_VAR

__all__ = ["Supervisor", "WorkerTarget"]

log = logging.getLogger(__name__)

WorkerTarget = Callable[[socket.socket, Connection], None]
"""``target(listener, ready)``, run in each worker: serve on ``listener`` and send one
message (a description of what is served) on ``ready`` once accepting. Picklable."""

_READY_TIMEOUT = 120.0
"""Seconds a new worker may take to load its plugins and start serving."""


@attrs.define(eq=False)
class _Worker:
    process: BaseProcess
    ready: Connection
    started_at: float
    serving: bool = False


class Supervisor:
    """Runs ``workers`` copies of ``target`` on one listening socket at ``host:port``."""

    def __init__(
        self,
        target: WorkerTarget,
        workers: int,
        host: str,
        port: int,
        *,
        metrics_port: int | None = None,
        announce: Callable[[str], None] = print,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.target = target
        self.count = workers
        self.host = host
        self.port = port
        self.metrics_port = metrics_port
        self.announce = announce
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._signals: list[int] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False

    def run(self) -> int:
        """Serve until a signal asks to stop; return the exit status."""
        created = _prepare_metrics_dir()
        listener = _listen(self.host, self.port)
        stop_metrics: Callable[[], None] | None = None
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
        try:
            for _ in range(self.count):
                self._workers.append(self._start(listener))
            if not self._await_ready():
                self._stop_all()
                return 1
            port = listener.getsockname()[1]
            description = self._workers[0].ready.recv() if self._workers else ""
            line = f"omnivoice: serving on http://{self.host}:{port} ({self.count} workers; "
            line += f"{description})"
            if self.metrics_port is not None:
                from omnivoice.telemetry.metrics import serve_metrics

                bound, stop_metrics = serve_metrics(self.host, self.metrics_port)
                line += f"; metrics on http://{self.host}:{bound}/metrics"
            self.announce(line)
            return self._supervise(listener)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if stop_metrics is not None:
                stop_metrics()
            listener.close()
            self._wake_r.close()
            self._wake_w.close()
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)

    # --- workers --------------------------------------------------------------------------

    def _start(self, listener: socket.socket) -> _Worker:
        ready_r, ready_w = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main,
            args=(self.target, listener, ready_w, os.getpid()),
            name="omnivoice-worker",
        )
        process.start()
        ready_w.close()  # the worker holds its own end
        return _Worker(process, ready_r, time.monotonic())

    def _await_ready(self) -> bool:
        """Wait for every worker to serve; ``False`` if one died first or a signal came."""
        deadline = time.monotonic() + _READY_TIMEOUT
        for worker in self._workers:
            while not worker.serving:
                if self._signals or self._stopping:
                    return False
                if not worker.process.is_alive():
                    log.error("a worker exited with %s before serving", worker.process.exitcode)
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.error("a worker did not start serving within %.0f s", _READY_TIMEOUT)
                    return False
                waited: list[Connection | socket.socket | int] = [
                    worker.ready,
                    worker.process.sentinel,
                    self._wake_r,
                ]
                ready = multiprocessing.connection.wait(waited, timeout=min(remaining, 1.0))
                if worker.ready in ready and worker.process.is_alive():
                    worker.serving = True
                self._drain_wake()
        return True

    def _supervise(self, listener: socket.socket) -> int:
        while True:
            waited: list[socket.socket | int] = [w.process.sentinel for w in self._workers]
            multiprocessing.connection.wait([*waited, self._wake_r], timeout=5.0)
            self._drain_wake()
            while self._signals:
                sig = self._signals.pop(0)
                if not self._stopping:
                    log.info("%s: stopping the workers", signal.Signals(sig).name)
                self._stopping = True
                self._signal_all(signal.SIGTERM)
            for index, worker in enumerate(self._workers):
                if worker.process.is_alive():
                    continue
                _forget(worker)
                if self._stopping:
                    continue
                log.error(
                    "worker %s exited with %s; starting another",
                    worker.process.pid,
                    worker.process.exitcode,
                )
                replacement = self._start(listener)
                self._workers[index] = replacement
                threading.Thread(target=self._watch_start, args=(replacement,), daemon=True).start()
            alive = [w for w in self._workers if w.process.is_alive()]
            if self._stopping and not alive:
                codes = [w.process.exitcode for w in self._workers]
                return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1
            if not self._stopping and self._failed_at_start():
                self._stop_all()
                return 1

    def _watch_start(self, worker: _Worker) -> None:
        """Note when a replacement worker serves (from a thread: the loop stays free)."""
        if worker.ready.poll(_READY_TIMEOUT):
            try:
                worker.ready.recv()
                worker.serving = True
            except (EOFError, OSError):
                pass
        self._wake()

    def _failed_at_start(self) -> bool:
        for worker in self._workers:
            if worker.serving or worker.process.is_alive():
                continue
            if time.monotonic() - worker.started_at < _READY_TIMEOUT:
                log.error("a new worker exited before serving; stopping the server")
                return True
        return False

    def _signal_all(self, sig: signal.Signals) -> None:
        for worker in self._workers:
            pid = worker.process.pid
            if pid is not None and worker.process.is_alive():
                with contextlib.suppress(ProcessLookupError):  # it has just exited
                    os.kill(pid, sig)

    def _stop_all(self) -> None:
        self._signal_all(signal.SIGTERM)
        for worker in self._workers:
            worker.process.join(timeout=30)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            _forget(worker)

    # --- signals --------------------------------------------------------------------------

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._signals.append(sig)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # the supervisor is closing
            self._wake_w.send(b"\0")

    def _drain_wake(self) -> None:
        self._wake_r.setblocking(False)
        try:
            while self._wake_r.recv(64):
                pass
        except (BlockingIOError, OSError):
            pass
        finally:
            self._wake_r.setblocking(True)


_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _forget(worker: _Worker) -> None:
    from omnivoice.telemetry.metrics import mark_worker_dead

    if worker.process.pid is not None:
        mark_worker_dead(worker.process.pid)
    worker.ready.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=2048)
    listener.set_inheritable(True)
    return listener


def _prepare_metrics_dir() -> str | None:
    """Set up the multiprocess metrics directory; return it if this process created it."""
    given = os.environ.get(MULTIPROCESS_ENV_VAR)
    if given:
        # Values left by an earlier run would be added to this one's.
        for stale in Path(given).glob("*.db"):
            stale.unlink(missing_ok=True)
        Path(given).mkdir(parents=True, exist_ok=True)
        return None
    created = tempfile.mkdtemp(prefix="omnivoice-metrics-")
    os.environ[MULTIPROCESS_ENV_VAR] = created
    return created


def _worker_main(
    target: WorkerTarget, listener: socket.socket, ready: Connection, parent: int
) -> None:
    """The entry point of a worker process."""
    os.setpgrp()  # a terminal's Ctrl-C goes to the supervisor, which passes it on
    # Call ids (in logs, records, spans) stay unique across the workers: call-PID-N.
    os.environ["OMNIVOICE_CALL_ID_PREFIX"] = f"call-{os.getpid()}-"
    threading.Thread(target=_end_with_parent, args=(parent,), daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        target(listener, ready)


def _end_with_parent(parent: int) -> None:
    """Stop this worker (as SIGTERM would) once the supervisor has gone."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
