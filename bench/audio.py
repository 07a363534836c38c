"""Benchmark: the cost of converting call audio, per 20 ms frame, on one core.

    python3 tasks.py bench audio [--seconds 60] [--repeat 7]

Each pipeline converts the same speech-like audio in 20 ms frames, with its state kept
from frame to frame, the way a call does: mu-law 8 kHz (the phone) to PCM16 16 and
24 kHz (the AI providers), and back. omnivoice's converter runs beside two references in
the same run: ``audioop`` (``ulaw2lin``/``lin2ulaw`` with ``ratecv``, the seed's kind of
conversion) and soxr's streaming resampler at HQ with ``audioop`` for G.711. Figures are
the best of ``--repeat`` runs, interleaved so that a noisy neighbour slows all alike;
compare ratios, not microseconds, across machines. See docs/performance.md.
"""

from __future__ import annotations

import os
import sys

# Workplace quirk: on some processors OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are set to
# work around old OpenBLAS builds; they slow a current numpy. Measure without them (this
# process only), and say so. One core, one BLAS thread: set before numpy loads.
_QUIRKS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
if any(name in os.environ for name in _QUIRKS) and "OMNIVOICE_BENCH_CHILD" not in os.environ:
    env = {k: v for k, v in os.environ.items() if k not in _QUIRKS}
    unset = [f"{k}={os.environ[k]}" for k in _QUIRKS if k in os.environ]
    env["OMNIVOICE_BENCH_UNSET"] = ", ".join(unset)
    env["OMNIVOICE_BENCH_CHILD"] = "1"
    os.execve(sys.executable, [sys.executable, *sys.argv], env)
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})

import argparse  # noqa: E402 - after the environment is set for numpy
import ctypes  # noqa: E402
import glob  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
from scipy import signal  # noqa: E402

from omnivoice.audio import TWILIO, AudioFormat, Encoding, StreamConverter  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

try:
    import soxr
except ImportError:  # soxr is a development dependency; without it its rows are left out
    soxr = None

FRAME_MS = 20
FRAMES_PER_SECOND = 1000 // FRAME_MS

Convert = Callable[[bytes], bytes]
Pipeline = Callable[[], tuple[Convert, Callable[[], bytes]]]
"""Builds a fresh stream: ``(convert one frame, flush at the end)``."""


# --- the pipelines ------------------------------------------------------------------------


def omnivoice_pipeline(src: AudioFormat, dst: AudioFormat) -> Pipeline:
    def build() -> tuple[Convert, Callable[[], bytes]]:
        stream = StreamConverter(src, dst)
        return stream.convert, stream.flush

    return build


def audioop_pipeline(src: AudioFormat, dst: AudioFormat) -> Pipeline:
    def build() -> tuple[Convert, Callable[[], bytes]]:
        state: list[Any] = [None]
        rates = (src.sample_rate, dst.sample_rate)
        if src.encoding is Encoding.MULAW:

            def convert(frame: bytes) -> bytes:
                out, state[0] = audioop.ratecv(audioop.ulaw2lin(frame, 2), 2, 1, *rates, state[0])
                return out
        else:

            def convert(frame: bytes) -> bytes:
                out, state[0] = audioop.ratecv(frame, 2, 1, *rates, state[0])
                return audioop.lin2ulaw(out, 2)

        return convert, lambda: b""

    return build


def soxr_pipeline(src: AudioFormat, dst: AudioFormat) -> Pipeline:
    def build() -> tuple[Convert, Callable[[], bytes]]:
        stream = soxr.ResampleStream(src.sample_rate, dst.sample_rate, 1, "int16", "HQ")
        if src.encoding is Encoding.MULAW:

            def convert(frame: bytes) -> bytes:
                pcm = np.frombuffer(audioop.ulaw2lin(frame, 2), np.int16)
                return bytes(stream.resample_chunk(pcm).tobytes())

            def flush() -> bytes:
                return bytes(stream.resample_chunk(np.zeros(0, np.int16), last=True).tobytes())
        else:

            def convert(frame: bytes) -> bytes:
                pcm = stream.resample_chunk(np.frombuffer(frame, np.int16))
                return audioop.lin2ulaw(pcm.tobytes(), 2)

            def flush() -> bytes:
                pcm = stream.resample_chunk(np.zeros(0, np.int16), last=True)
                return audioop.lin2ulaw(pcm.tobytes(), 2)

        return convert, flush

    return build


# --- audio -----------------------------------------------------------------------------------


def speech_like(rate: int, seconds: float, seed: int = 7) -> npt.NDArray[np.int16]:
    """Voiced syllables (a gliding pitch through three formants), fricatives, pauses."""
    rng = np.random.default_rng(seed)
    n = round(rate * seconds)
    t = np.arange(n) / rate
    pitch = 140 + 45 * np.sin(2 * np.pi * 0.3 * t) + 15 * np.sin(2 * np.pi * 1.7 * t)
    pulses = np.diff(np.floor(np.cumsum(pitch) / rate), prepend=0.0)
    voiced = np.zeros(n)
    for centre, width in ((500, 80), (1500, 120), (2500, 160)):  # formants, Hz
        r = np.exp(-np.pi * width / rate)
        resonator = [1, -2 * r * np.cos(2 * np.pi * centre / rate), r * r]
        voiced += signal.lfilter([1 - r], resonator, pulses)
    hiss = signal.lfilter([1, -0.95], [1], rng.standard_normal(n))  # rising towards Nyquist
    syllable = 0.5 - 0.5 * np.cos(2 * np.pi * 4 * t)
    fricative = (np.sin(2 * np.pi * 0.7 * t + 1) > 0.8).astype(float)
    talking = np.sin(2 * np.pi * 0.15 * t) > -0.6  # pauses between phrases
    mix = (voiced / np.std(voiced) + 0.3 * fricative * hiss / np.std(hiss)) * syllable * talking
    level = 10 ** (-20 / 20) * 32767 / np.sqrt(np.mean(mix[talking] ** 2))  # -20 dBFS speech
    speech: npt.NDArray[np.int16] = np.clip(np.rint(mix * level), -32768, 32767).astype(np.int16)
    return speech


def tone(freq: float, rate: int, seconds: float = 1.0) -> npt.NDArray[np.int16]:
    t = np.arange(round(rate * seconds)) / rate
    return np.rint(0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def encoded(samples: npt.NDArray[np.int16], fmt: AudioFormat) -> bytes:
    data = samples.astype("<i2").tobytes()
    return audioop.lin2ulaw(data, 2) if fmt.encoding is Encoding.MULAW else data


def decoded(data: bytes, fmt: AudioFormat) -> npt.NDArray[np.float64]:
    pcm = audioop.ulaw2lin(data, 2) if fmt.encoding is Encoding.MULAW else data
    return np.frombuffer(pcm, "<i2").astype(np.float64)


def frames(data: bytes, fmt: AudioFormat) -> list[bytes]:
    size = fmt.bytes_per_frame(FRAME_MS)
    return [data[i : i + size] for i in range(0, len(data) - size + 1, size)]


# --- measurements ------------------------------------------------------------------------


def cost(pipeline: Pipeline, chunks: list[bytes]) -> float:
    """Microseconds per frame for one pass over ``chunks`` with a fresh stream."""
    convert, _ = pipeline()
    start = time.perf_counter()
    for chunk in chunks:
        convert(chunk)
    return (time.perf_counter() - start) / len(chunks) * 1e6


def stream_all(pipeline: Pipeline, chunks: list[bytes]) -> tuple[list[bytes], bytes]:
    convert, flush = pipeline()
    return [convert(chunk) for chunk in chunks], flush()


def latency_ms(pipeline: Pipeline, src: AudioFormat, dst: AudioFormat) -> float:
    """When a click comes out, after it went in: the signal's delay plus the worst
    backlog of output held back (what a caller hears added)."""
    click = np.zeros(src.sample_rate, dtype=np.int16)
    at = 0.5
    click[round(at * src.sample_rate)] = 20000
    outs, tail = stream_all(pipeline, frames(encoded(click, src), src))
    out = decoded(b"".join(outs) + tail, dst)
    delay = int(np.argmax(np.abs(out))) / dst.sample_rate - at
    frame = dst.bytes_per_frame(FRAME_MS)
    produced = np.cumsum([len(o) for o in outs])
    expected = frame * np.arange(1, len(outs) + 1)
    backlog = max(0, int(np.max(expected - produced))) / dst.bytes_per_second
    return 1000 * (delay + backlog)


def level_db(samples: npt.NDArray[np.float64], freq: float, rate: int) -> float:
    window = np.blackman(len(samples))
    t = np.arange(len(samples)) / rate
    amplitude = 2 * abs(np.sum(samples * window * np.exp(-2j * np.pi * freq * t))) / window.sum()
    return float(20 * np.log10(max(amplitude, 1e-9)))


def stray_db(pipeline: Pipeline, src: AudioFormat, dst: AudioFormat) -> float:
    """The worst image (going up) or alias (going down) of a -6 dBFS tone, in dB relative
    to a 1 kHz tone through the same pipeline."""

    def through(freq: float) -> npt.NDArray[np.float64]:
        outs, tail = stream_all(pipeline, frames(encoded(tone(freq, src.sample_rate), src), src))
        out = decoded(b"".join(outs) + tail, dst)
        return out[dst.sample_rate // 5 : dst.sample_rate * 4 // 5]  # clear of both edges

    reference = level_db(through(1000), 1000, dst.sample_rate)
    if dst.sample_rate > src.sample_rate:  # images of 1 kHz at 8 kHz +- 1 kHz, ...
        out = through(1000)
        images = [k * src.sample_rate + s * 1000 for k in range(1, 3) for s in (-1, 1)]
        worst = max(level_db(out, f, dst.sample_rate) for f in images if f < dst.sample_rate / 2)
    else:  # 6 kHz folds to 2 kHz at 8 kHz
        worst = level_db(through(6000), 2000, dst.sample_rate)
    return worst - reference


def stray(pipeline: Pipeline, src: AudioFormat, dst: AudioFormat) -> str:
    level = stray_db(pipeline, src, dst)
    return "silent" if level < -150 else f"{level:.0f}"  # silent: not one sample differs


# --- the run -------------------------------------------------------------------------------


@dataclass
class Row:
    direction: str
    name: str
    pipeline: Pipeline
    chunks: list[bytes]
    src: AudioFormat
    dst: AudioFormat
    runs: list[float]

    @property
    def us(self) -> float:
        return min(self.runs)


def openblas_core() -> str:
    """Which OpenBLAS kernel numpy runs (best effort: numpy's bundled OpenBLAS)."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*"))
    for path in libs:
        library = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename"):
            if hasattr(library, name):
                function = getattr(library, name)
                function.restype = ctypes.c_char_p
                return str(function().decode())
    return "unknown"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per run (60)")
    parser.add_argument("--repeat", type=int, default=7, help="runs per pipeline (7)")
    args = parser.parse_args(argv)

    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") if os.path.exists("/proc/cpuinfo") else open(os.devnull) as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if "model name" in line), cpu)
    print(f"# omnivoice audio benchmark: {args.seconds:g} s of speech-like audio, 20 ms frames")
    where = f"pinned to CPU {sorted(os.sched_getaffinity(0))}"
    print(f"# {cpu}; {where}; Python {platform.python_version()}")
    print(f"# numpy {np.__version__}, OpenBLAS kernel {openblas_core()}, 1 BLAS thread", end="")
    print(f"; soxr {soxr.__version__}" if soxr else "; soxr not installed")
    if os.environ.get("OMNIVOICE_BENCH_UNSET"):
        print(f"# unset for this run: {os.environ['OMNIVOICE_BENCH_UNSET']}")

    phone = TWILIO
    references: list[tuple[str, Callable[[AudioFormat, AudioFormat], Pipeline]]] = [
        ("omnivoice polyphase", omnivoice_pipeline),
        ("audioop ratecv", audioop_pipeline),
    ]
    if soxr is not None:
        references.append(("soxr HQ stream", soxr_pipeline))
    rows: list[Row] = []
    for rate in (16000, 24000):
        provider = AudioFormat(Encoding.PCM16, rate)
        for src, dst in ((phone, provider), (provider, phone)):
            direction = f"{'mu-law 8k' if src is phone else f'PCM {rate // 1000}k'} -> "
            direction += f"PCM {rate // 1000}k" if src is phone else "mu-law 8k"
            chunks = frames(encoded(speech_like(src.sample_rate, args.seconds), src), src)
            for name, make in references:
                rows.append(Row(direction, name, make(src, dst), chunks, src, dst, []))

    for _ in range(args.repeat):
        for row in rows:
            row.runs.append(cost(row.pipeline, row.chunks))

    print()
    print("| direction | pipeline | us/frame best (median) | vs audioop | vs soxr ", end="")
    print("| latency ms | stray dB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    by_key = {(row.direction, row.name): row for row in rows}
    for row in rows:
        audioop_us = by_key[row.direction, "audioop ratecv"].us
        soxr_row = by_key.get((row.direction, "soxr HQ stream"))
        vs_soxr = f"{row.us / soxr_row.us:.2f}" if soxr_row else "-"
        spread = statistics.median(row.runs)
        print(
            f"| {row.direction} | {row.name} | {row.us:.1f} ({spread:.1f}) "
            f"| {row.us / audioop_us:.2f} | {vs_soxr} "
            f"| {latency_ms(row.pipeline, row.src, row.dst):.1f} "
            f"| {stray(row.pipeline, row.src, row.dst)} |"
        )

    print()
    print("| provider rate | pipeline | us per frame pair (in + out) | calls per core |")
    print("|---|---|---:|---:|")
    for rate in (16000, 24000):
        for name, _ in references:
            pair = [r.us for r in rows if r.name == name and f"{rate // 1000}k" in r.direction]
            total = sum(pair)
            calls = 1e6 / (FRAMES_PER_SECOND * total)  # both directions, 50 frames/s each
            print(f"| {rate // 1000} kHz | {name} | {total:.1f} | {calls:,.0f} |")
    print()
    print("latency: a click's delay plus the worst backlog held back; stray: the worst image")
    print("of 1 kHz (going up) or the 2 kHz alias of 6 kHz (going down), relative to 1 kHz.")
    print("calls per core: conversion alone, both directions of a call, on one core.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
