"""Prometheus metrics of the gateway, with ``prometheus_client``.

The metric objects are created on first use, once per process, in ``prometheus_client``'s
default registry. With ``PROMETHEUS_MULTIPROC_DIR`` set (``omnivoice serve --workers N``
sets it for its workers), every process writes its values there and :func:`exposition`
adds up all of them, so any worker answers a scrape for the whole server. The names, the
labels and what each counts are in ``docs/operations.md``.

Label values are bounded: each label keeps at most :data:`MAX_LABEL_VALUES` distinct
values per process (more become ``other``), each at most 64 characters, so neither a
misbehaving plugin nor a caller can make the metrics grow. No call id is ever a label.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "MAX_LABEL_VALUES",
    "MULTIPROCESS_ENV_VAR",
    "GatewayMetrics",
    "exposition",
    "gateway_metrics",
    "mark_worker_dead",
    "multiprocess_dir",
    "serve_metrics",
]

MULTIPROCESS_ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
MAX_LABEL_VALUES = 50
_MAX_LABEL_LENGTH = 64
_OTHER = "other"

_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
"""Response and pipeline-stage latencies: what a caller notices starts near 300 ms."""
_FAST_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
"""What the gateway itself adds (onset, barge-in): a few milliseconds when healthy."""
_DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/@+-]")


def multiprocess_dir() -> str | None:
    """The multiprocess directory in use, or ``None`` in single-process mode."""
    return os.environ.get(MULTIPROCESS_ENV_VAR) or None


class _Labels:
    """Keeps label values bounded: per label name, the first few values seen, then ``other``."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self._limit = limit
        self._seen: dict[str, set[str]] = {}

    def __call__(self, name: str, value: object) -> str:
        text = _UNSAFE.sub("_", str(value))[:_MAX_LABEL_LENGTH] or "unknown"
        seen = self._seen.setdefault(name, set())
        if text in seen:
            return text
        if len(seen) >= self._limit:
            return _OTHER
        seen.add(text)
        return text


class GatewayMetrics:
    """The gateway's metric objects. One per process: use :func:`gateway_metrics`."""

    def __init__(self, registry: CollectorRegistry | None = prometheus_client.REGISTRY) -> None:
        self._label = _Labels()
        r = registry
        self.active_calls = Gauge(
            "omnivoice_active_calls",
            "Calls in progress (their stream started and has not ended).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.workers = Gauge(
            "omnivoice_worker_up",
            "1 for each gateway process serving (one sample per worker with --workers).",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.calls = Counter(
            "omnivoice_calls",
            "Calls ended, by transport, provider and outcome.",
            ["transport", "provider", "outcome"],
            registry=r,
        )
        self.call_duration = Histogram(
            "omnivoice_call_duration_seconds",
            "How long calls lasted, from the stream's start to its end.",
            ["transport", "provider"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.provider_errors = Counter(
            "omnivoice_provider_errors",
            "Errors of providers, by error class; fatal ones (failed connections included) "
            "ended the provider's session.",
            ["provider", "error", "fatal"],
            registry=r,
        )
        self.provider_switches = Counter(
            "omnivoice_provider_switches",
            "Calls moved from one provider session to another (fallback or renewal).",
            ["previous", "current"],
            registry=r,
        )
        self.bad_frames = Counter(
            "omnivoice_carrier_bad_frames",
            "Carrier frames skipped or refused, by reason.",
            ["transport", "reason"],
            registry=r,
        )
        self.barge_ins = Counter(
            "omnivoice_barge_ins",
            "Times the caller spoke over the agent and the line was cleared.",
            ["transport", "provider"],
            registry=r,
        )
        self.function_calls = Counter(
            "omnivoice_function_calls",
            "Function (tool) calls run for the model, by outcome: ok, error, timeout, cancelled.",
            ["outcome"],
            registry=r,
        )
        self.response_latency = Histogram(
            "omnivoice_response_latency_seconds",
            "End of the caller's speech to the first audio of the answer on the caller's line.",
            ["transport", "provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.onset = Histogram(
            "omnivoice_gateway_onset_seconds",
            "Added by the gateway: the provider's first audio of an answer to the caller's line.",
            ["transport", "provider"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.barge_in_latency = Histogram(
            "omnivoice_barge_in_latency_seconds",
            "The provider's word that the caller started speaking to the carrier's clear.",
            ["transport", "provider"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.pipeline_stage = Histogram(
            "omnivoice_pipeline_stage_seconds",
            "Text pipeline latency per stage: stt_final (end of speech to the final "
            "transcript), llm_first_token, tts_first_audio.",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def label(self, name: str, value: object) -> str:
        """``value`` as a bounded label value for label ``name``."""
        return self._label(name, value)

    def labels(self, **values: object) -> dict[str, str]:
        return {name: self._label(name, value) for name, value in values.items()}

    def count_bad_frames(self, transport: str, bad_frames: Mapping[str, int]) -> None:
        for reason, count in bad_frames.items():
            if count > 0:
                self.bad_frames.labels(**self.labels(transport=transport, reason=reason)).inc(count)

    def count_function_call(self, outcome: str) -> None:
        self.function_calls.labels(outcome=self.label("outcome", outcome)).inc()


@functools.cache
def gateway_metrics() -> GatewayMetrics:
    """The process's metrics, created on first use (after ``--workers`` has set the
    multiprocess directory, which ``prometheus_client`` reads when it is imported)."""
    metrics = GatewayMetrics()
    metrics.workers.set(1)
    return metrics


def _scrape_registry() -> CollectorRegistry:
    """This process's registry, or one that adds up every worker's files."""
    if multiprocess_dir() is None:
        return prometheus_client.REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def exposition(accept: str | None = None) -> tuple[bytes, str]:
    """The metrics in Prometheus' text format (or OpenMetrics, if ``accept`` asks for it),
    and its content type: this process's, or every worker's in multiprocess mode."""
    from prometheus_client import exposition as formats

    gateway_metrics()  # a scrape before the first call still lists every metric
    encoder, content_type = formats.choose_encoder(accept or "")
    return encoder(_scrape_registry()), content_type


def serve_metrics(host: str, port: int) -> tuple[int, Callable[[], None]]:
    """Serve ``/metrics`` on ``host:port`` from a thread (``prometheus_client``'s own
    server); return the port bound and a function that stops it."""
    if multiprocess_dir() is None:
        gateway_metrics()
    server, thread = prometheus_client.start_http_server(port, host, registry=_scrape_registry())

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return server.server_port, stop


def mark_worker_dead(pid: int) -> None:
    """Forget the live gauges of a worker that has exited (multiprocess mode)."""
    directory = multiprocess_dir()
    if directory is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
