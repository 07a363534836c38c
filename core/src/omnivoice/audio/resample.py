"""Stateful polyphase FIR resampling, exact and frame-aligned.

One :class:`Resampler` serves one direction of one call. It reads whole samples of its
source encoding and writes whole samples of its destination encoding, so G.711 decoding
and encoding are fused with the filter (a table lookup each). Design, quality and cost are
described in ``docs/audio.md``; the points the code relies on:

* **Exact arithmetic.** Coefficients are multiples of ``2**-24`` and samples are
  half-integers, so every product and every partial sum is exactly representable in
  float64. Each output is therefore independent of the order BLAS adds its terms in, and
  of how the input was split into chunks: streaming output is bit-identical to one-shot
  output, whatever the chunk sizes.
* **Offset binary.** Samples are stored plus ``32768.5`` and every phase of the filter has
  a DC gain of exactly 1, so an output is its true value plus ``32768.5``: truncating it to
  an integer rounds it and gives an index from 0 into a 65,536-entry output table, where a
  clipped lookup saturates and encodes in one step.
* **Causal blocks.** Output ``m`` depends on inputs up to ``floor(m * down / up)`` and is
  produced as soon as that input arrives: a 20 ms frame in gives a 20 ms frame out, and
  nothing is held back but the filter's history (``delay`` seconds of output).
* **A fixed, small number of numpy calls per chunk** (six or seven), on views into
  buffers allocated once per stream, built once per chunk length and state (:class:`_Plan`)
  and reused: with steady 20 ms frames, a handful of plans serve the whole call.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from omnivoice.audio import g711
from omnivoice.audio.format import AudioFormat, Encoding
from omnivoice.errors import UnsupportedFormatError

__all__ = ["HALF_SPAN", "PolyphaseFilter", "Resampler", "design_filter"]

HALF_SPAN = 0.002
"""Half the length of every filter, in seconds: the algorithmic delay of a conversion."""

_QUANTUM = 2.0**-24  # coefficient grid: keeps every sum exact in float64 (design_filter)
_OFFSET = 32768.5  # offset-binary bias plus the half that turns truncation into rounding
_BIAS = np.array(_OFFSET)  # a 0-d array: numpy resolves its type faster than a float's
_PCM16 = np.dtype("<i2")
_FLOAT = np.dtype(np.float64)

# Filter design (see docs/audio.md). Equiripple where the prototype is short enough for the
# Remez exchange (every pair among 8, 16, 24 and 48 kHz, and 22.05 <-> 44.1 kHz); a Kaiser
# window otherwise (the pairs that mix the 22.05/44.1 kHz family with the others).
_TRANSITION = 600.0  # Hz either side of the lower Nyquist frequency (3.4 / 4.6 kHz at 8 kHz)
_STOPBAND_WEIGHT = 100.0
_REMEZ_MAX_TAPS = 400
_KAISER_CUTOFF_BELOW_NYQUIST = 250.0
_KAISER_ATTENUATION = 92.0

_MIN_RATE = 8000  # the band edges above are in Hz, sized for telephony and up
_MAX_PHASES = 1000  # keeps filter matrices small: 44.1 <-> 48 kHz needs 160
_PIECE_SECONDS = 0.02  # longer chunks go through in pieces, so that buffers stay small
# OpenBLAS splits a matrix product of more than 65536 * 4 multiply-adds across threads,
# which at this size costs more than it saves and competes with the other calls' work.
_SINGLE_THREAD_PRODUCT = 200_000
_SPARE_PIECES = 4
_MAX_PLANS = 32


@attrs.frozen(eq=False)
class PolyphaseFilter:
    """A resampling filter from ``src_rate`` to ``dst_rate``, laid out for one matmul.

    The prototype low-pass runs at ``up * src_rate``; ``matrix`` holds it as one column
    per output phase, so a block of ``up`` outputs is ``window @ matrix``, where ``window``
    is ``window_size`` consecutive inputs starting ``history`` samples before the block.
    """

    src_rate: int
    dst_rate: int
    up: int
    """Interpolation factor: outputs per block."""
    down: int
    """Decimation factor: inputs per block."""
    centre: int
    """Index of the prototype's centre tap: its delay, in samples at ``up * src_rate``."""
    history: int
    """Inputs kept from before a block (the taps per phase, less one)."""
    window_size: int
    matrix: npt.NDArray[np.float64] = attrs.field(repr=False)
    """Shape ``(window_size, up)``; read-only; entries are multiples of ``2**-24``."""
    method: str
    """``"equiripple"`` or ``"kaiser"``."""

    @property
    def delay(self) -> float:
        """The algorithmic delay, in seconds."""
        return self.centre / (self.up * self.src_rate)

    @property
    def tail(self) -> int:
        """Output samples that :meth:`Resampler.flush` returns: the delay, rounded up."""
        return -(-self.centre // self.down)


def _prototype(up: int, src_rate: int, dst_rate: int) -> tuple[npt.NDArray[np.float64], str]:
    """The low-pass prototype at ``up * src_rate``, with a DC gain of ``up``."""
    from scipy import signal  # imported on first design: it takes a second to load

    rate = up * src_rate
    centre = round(HALF_SPAN * rate)
    n_taps = 2 * centre + 1
    nyquist = min(src_rate, dst_rate) / 2
    if src_rate == dst_rate:
        taps, method = np.ones(1), "identity"
    elif n_taps <= _REMEZ_MAX_TAPS:
        bands = [0.0, nyquist - _TRANSITION, nyquist + _TRANSITION, rate / 2]
        taps = signal.remez(n_taps, bands, [1.0, 0.0], weight=[1.0, _STOPBAND_WEIGHT], fs=rate)
        method = "equiripple"
    else:
        beta = signal.kaiser_beta(_KAISER_ATTENUATION)
        cutoff = nyquist - _KAISER_CUTOFF_BELOW_NYQUIST
        taps = signal.firwin(n_taps, cutoff, window=("kaiser", beta), fs=rate)
        method = "kaiser"
    return np.asarray(taps, dtype=np.float64) * (up / np.sum(taps)), method


@functools.cache
def design_filter(src_rate: int, dst_rate: int) -> PolyphaseFilter:
    """The filter for one pair of rates (designed once per process, then shared)."""
    if min(src_rate, dst_rate) < _MIN_RATE:
        raise UnsupportedFormatError(f"sample rates below {_MIN_RATE} Hz are not supported")
    gcd = math.gcd(src_rate, dst_rate)
    up, down = dst_rate // gcd, src_rate // gcd
    if max(up, down) > _MAX_PHASES:
        raise UnsupportedFormatError(
            f"the ratio {dst_rate}/{src_rate} reduces to {up}/{down}: too many filter phases"
        )
    taps, method = _prototype(up, src_rate, dst_rate)
    per_phase = -(-len(taps) // up)
    history = per_phase - 1
    padded = np.zeros(per_phase * up)
    padded[: len(taps)] = taps
    # Output r of a block reads inputs up to (r * down) // up past the block's start, with
    # coefficient h[phase + j * up] on the input j samples before that one.
    window_size = per_phase + ((up - 1) * down) // up
    grid = np.zeros((window_size, up), dtype=np.int64)
    j = np.arange(per_phase)
    for r in range(up):
        phase, lead = (r * down) % up, (r * down) // up
        grid[history + lead - j, r] = np.rint(padded[phase::up] / _QUANTUM).astype(np.int64)
    # Exactly unit DC gain per phase keeps the offset-binary bias exact (see the module doc).
    unit = round(1 / _QUANTUM)
    peaks = np.argmax(np.abs(grid), axis=0)
    grid[peaks, np.arange(up)] += unit - grid.sum(axis=0)
    # Every sum of products must stay an exact float64: |sample| <= 2**16, grid 2**-25.
    worst = int(np.abs(grid).sum(axis=0).max())
    if worst * 2**16 * 2 >= 2**53:  # pragma: no cover - a design error, not an input error
        raise AssertionError(f"filter {src_rate}->{dst_rate} is too large for exact sums")
    matrix = grid.astype(np.float64) * _QUANTUM
    matrix.flags.writeable = False
    return PolyphaseFilter(
        src_rate=src_rate,
        dst_rate=dst_rate,
        up=up,
        down=down,
        centre=(len(taps) - 1) // 2,
        history=history,
        window_size=window_size,
        matrix=matrix,
        method=method,
    )


# --- tables of the fused codec stages -------------------------------------------------


@functools.cache
def _input_table(encoding: Encoding) -> npt.NDArray[np.float64]:
    """G.711 code byte -> offset-binary sample."""
    table = g711.decode_table(encoding).astype(np.float64) + _OFFSET
    table.flags.writeable = False
    return table


@functools.cache
def _output_table(encoding: Encoding) -> npt.NDArray[Any]:
    """Offset-binary index 0..65535 (sample + 32768) -> the encoded sample."""
    if encoding is Encoding.PCM16:
        table: npt.NDArray[Any] = np.arange(-32768, 32768).astype(_PCM16)
    else:
        table = np.roll(g711.encode_table(encoding), 32768)
    table.flags.writeable = False
    return table


def _dot_rows(
    windows: npt.NDArray[np.float64], taps: npt.NDArray[np.float64], *, out: npt.NDArray[Any]
) -> None:
    windows.dot(taps, out=out)  # pragma: no cover - numpy < 2.0: copies the rows, then gemv


# One BLAS dot product per row, straight from the strided windows (numpy >= 2.0).
_row_dots: Callable[..., Any] = getattr(np, "vecdot", None) or _dot_rows


class _Plan:
    """Views for one chunk length in one state: where its input goes, where its output is."""

    __slots__ = (
        "index",
        "ints",
        "move",
        "out",
        "raw",
        "samples",
        "scratch",
        "slot",
        "source",
        "state",
        "windows",
        "y",
    )

    def __init__(
        self,
        *,
        raw: memoryview,
        samples: npt.NDArray[Any],
        slot: npt.NDArray[np.float64],
        windows: npt.NDArray[np.float64] | None,
        scratch: npt.NDArray[np.float64] | None,
        y: npt.NDArray[np.float64],
        ints: npt.NDArray[np.intp],
        source: npt.NDArray[np.float64],
        index: npt.NDArray[np.intp],
        out: npt.NDArray[Any],
        move: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None,
        state: tuple[int, int, int],
    ) -> None:
        self.raw = raw  # the chunk's bytes are copied here ...
        self.samples = samples  # ... and read from here as samples,
        self.slot = slot  # decoded into the history buffer here;
        self.windows = windows  # the filter reads these (None: no output is complete),
        self.scratch = scratch  # through a contiguous copy when several phases share them;
        self.y = y  # it writes here;
        self.ints = ints  # here the outputs become table indices,
        self.source = source  # read from ``y`` in output order;
        self.index = index  # the indices of the outputs to return,
        self.out = out  # and the encoded outputs.
        self.move = move  # (destination, source) when the live samples move to the front
        self.state = state  # the state after this chunk


class Resampler:
    """Converts one stream between two sample rates (and encodings), keeping state.

    ``convert`` takes whole samples of ``src`` (mono) and returns every output sample that
    its input completes; ``flush`` ends the stream with the delayed tail and starts a new
    one. Build one per call and direction, and never reset it mid-call.
    """

    def __init__(self, src: AudioFormat, dst: AudioFormat) -> None:
        if src.channels != 1 or dst.channels != 1:
            raise UnsupportedFormatError(f"cannot resample {src} to {dst}: mono only")
        try:
            self.filter = design_filter(src.sample_rate, dst.sample_rate)
        except UnsupportedFormatError as exc:
            raise UnsupportedFormatError(f"cannot resample {src} to {dst}: {exc}") from None
        self.src = src
        self.dst = dst
        f = self.filter
        self._up, self._down, self._history = f.up, f.down, f.history
        # The kernel. Decimating (one phase): one BLAS dot product per output, straight from
        # the overlapping windows. Several phases: copy the windows once, as contiguous
        # columns, then one matrix product (cheaper than numpy's own copy and gemm).
        self._rowwise = f.up == 1
        self._coefficients = np.ascontiguousarray(f.matrix[:, 0] if f.up == 1 else f.matrix.T)
        self._in_width = src.bytes_per_sample
        self._in_dtype = _PCM16 if src.encoding is Encoding.PCM16 else np.dtype(np.uint8)
        self._in_table = None if src.encoding is Encoding.PCM16 else _input_table(src.encoding)
        self._out_table = _output_table(dst.encoding)
        self._out_width = dst.bytes_per_sample
        # Chunks longer than a piece are converted piece by piece, so buffers stay small.
        blocks = min(
            round(_PIECE_SECONDS * src.sample_rate) // f.down,
            _SINGLE_THREAD_PRODUCT // (f.window_size * f.up),
        )
        self._piece = f.down * max(1, blocks)
        # How far past a block's start one piece can read; the buffer holds several, so
        # that the live samples move to its front only once every few chunks.
        self._reach = self._piece + 2 * f.down + f.window_size
        # Windows of a block whose outputs are not ready yet read past the input received:
        # those outputs are discarded, but the values read must still be finite samples.
        self._buf = np.full(self._reach + _SPARE_PIECES * self._piece, _OFFSET)
        self._staging = np.empty(self._piece, dtype=self._in_dtype)
        self._staging_bytes = self._staging.data.cast("B")
        most = self._piece // f.down + 3  # blocks per piece, at most
        self._scratch = np.empty(0 if f.up == 1 else most * f.window_size, dtype=_FLOAT)
        self._y = np.empty(most * f.up, dtype=_FLOAT)
        self._index = np.empty(most * f.up, dtype=np.intp)
        self._out = np.empty(most * f.up, dtype=self._out_table.dtype)
        self._plans: dict[tuple[tuple[int, int, int], int], _Plan] = {}
        self._reset()

    @property
    def delay(self) -> float:
        """The algorithmic delay, in seconds."""
        return self.filter.delay

    def _reset(self) -> None:
        self._buf[: self._history] = _OFFSET  # silence before the first sample
        # (done, pending, base): outputs of the current block already returned; inputs
        # received past the block's start (negative while the next block starts later);
        # where the block's window starts in the buffer.
        self._state = (0, 0, 0)
        self._fed = False

    def convert(self, data: bytes) -> bytes:
        """Resample whole samples of ``src``; return every output sample they complete."""
        plan = self._plans.get((self._state, len(data)))
        if plan is None:  # a chunk length not seen in this state: check it, plan for it
            n, partial = divmod(len(data), self._in_width)
            if partial:
                raise ValueError(f"{len(data)} bytes is not a whole number of {self.src} samples")
            if n > self._piece:
                step = self._piece * self._in_width
                pieces = range(0, len(data), step)
                return b"".join(self.convert(data[i : i + step]) for i in pieces)
            if not n:
                return b""
            plan = self._plan(n)
        plan.raw[:] = data
        if self._in_table is None:
            np.add(plan.samples, _BIAS, out=plan.slot)
        else:
            self._in_table.take(plan.samples, out=plan.slot, mode="clip")
        self._fed = True
        return self._run(plan)

    def flush(self) -> bytes:
        """End the stream: return the delayed tail, then start a new stream."""
        if not self._fed:
            return b""
        tail = self.filter.tail
        done, pending, _ = self._state
        # The fewest silent inputs that complete ``tail`` more outputs.
        n = ((done + tail - 1) * self._down) // self._up + 1 - pending
        plan = self._plan(n)
        plan.slot.fill(_OFFSET)
        out = self._run(plan)[: tail * self._out_width]
        self._reset()
        return out

    def _run(self, plan: _Plan) -> bytes:
        self._state = plan.state
        windows = plan.windows
        if windows is None:
            return b""
        if plan.scratch is None:
            _row_dots(windows, self._coefficients, out=plan.y)
        else:
            plan.scratch[...] = windows
            self._coefficients.dot(plan.scratch, out=plan.y)
        np.copyto(plan.ints, plan.source, casting="unsafe")  # truncation: see module doc
        self._out_table.take(plan.index, out=plan.out, mode="clip")
        if plan.move is not None:
            np.copyto(*plan.move)
        return plan.out.tobytes()

    def _plan(self, n: int) -> _Plan:
        """The views for ``n`` more inputs in the current state (cached for reuse)."""
        up, down, history = self._up, self._down, self._history
        window_size = self.filter.window_size
        done, pending, base = self._state
        received = pending + n
        ready = max(done, -(-received * up // down))  # outputs whose last input is here
        blocks = -(-ready // up)  # computed whole; outputs of the last may not be ready
        advance = ready // up  # blocks whose outputs are all returned
        buf, step = self._buf, self._buf.itemsize
        if base + self._reach > len(buf) or (blocks - 1) * down + window_size > self._reach:
            raise AssertionError("resampler plan out of bounds")  # pragma: no cover
        windows = scratch = None
        if self._rowwise:
            y = source = self._y[:blocks]
            ints = self._index[:blocks]
            if ready > done:
                windows = as_strided(
                    buf[base:], (blocks, window_size), (down * step, step), writeable=False
                )
        else:  # block b's window is column b: (window_size, blocks)
            y = self._y[: up * blocks].reshape(up, blocks)
            ints = self._index[: up * blocks].reshape(blocks, up)
            source = y.T
            if ready > done:
                windows = as_strided(
                    buf[base:], (window_size, blocks), (step, down * step), writeable=False
                )
                scratch = self._scratch[: window_size * blocks].reshape(window_size, blocks)
        left = history + received - advance * down  # inputs that later blocks still read
        next_base = base + advance * down
        move = None
        if next_base + self._reach > len(buf):
            move = (buf[:left], buf[next_base : next_base + left])
            next_base = 0
        plan = _Plan(
            raw=self._staging_bytes[: n * self._in_width],
            samples=self._staging[:n],
            slot=buf[base + history + pending : base + history + received],
            windows=windows,
            scratch=scratch,
            y=y,
            ints=ints,
            source=source,
            index=self._index[done:ready],
            out=self._out[: ready - done],
            move=move,
            state=(ready - advance * up, received - advance * down, next_base),
        )
        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()
        self._plans[self._state, n * self._in_width] = plan  # keyed by the chunk's length
        return plan
